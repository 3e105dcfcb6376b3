"""What the cloud refuses in text it would store, checked before a request reaches moto.

- Any query request: a parameter holding a character XML 1.0 cannot carry (a control character
  but tab, newline and CR). The cloud returns what it stores inside XML replies; stored, such a
  character would make every later reply that carries it unreadable, for every client.
- CreateSecurityGroup (Eucalyptus 4.x ``NetworkGroupManager``, EC2-Classic): a group name or
  description beyond ASCII is refused, with the cloud's message.
- CreateTags and RunInstances' tag specifications (``TagManager``): a key empty or over 127
  characters, a value over 255, and more than 10 tags on one resource (the default of
  ``tagging.max_tags_per_resource``; moto allows 50) are refused, with the cloud's messages.
"""

from __future__ import annotations

import re
from typing import Callable

from .wire import XML_ILLEGAL, QueryRequest

TAGS_PER_RESOURCE = 10
TAG_KEY_CHARS = 127
TAG_VALUE_CHARS = 255
Refusal = tuple[str, str]        # (code, message)


def unstorable(params: QueryRequest) -> Refusal | None:
    """The first parameter whose value no XML reply could carry back, as a refusal."""
    for key, value in params.items():
        if XML_ILLEGAL.search(value):
            return "InvalidParameterValue", f"Value for parameter {key} contains a character that is not allowed"
    return None


def _group_text(params: QueryRequest) -> Refusal | None:
    for parameter in ("GroupName", "GroupDescription"):
        value = params.get(parameter) or ""
        if not value.isascii():
            return ("InvalidParameterValue", f"Value ({value}) for parameter {parameter} is invalid. "
                    "Character sets beyond ASCII are not supported.")
    return None


def _tag_text(tags: dict[str, str]) -> Refusal | None:
    for key, value in tags.items():
        if not key.strip() or len(key.strip()) > TAG_KEY_CHARS:
            return "InvalidParameterValue", "Tag key exceeds the maximum length of 127 characters"
        if len(value.strip()) > TAG_VALUE_CHARS:
            return "InvalidParameterValue", "Tag value exceeds the maximum length of 255 characters"
    return None


def _tags(params: QueryRequest, prefix: str) -> dict[str, str]:
    """``prefix.N.Key`` / ``prefix.N.Value`` pairs as a dict."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.(Key|Value)$")
    found: dict[str, dict[str, str]] = {}
    for key, value in params.items():
        match = pattern.match(key)
        if match:
            found.setdefault(match.group(1), {})[match.group(2)] = value
    return {pair.get("Key", ""): pair.get("Value", "") for _, pair in sorted(found.items())}


TOO_MANY = ("TagLimitExceeded", "The maximum number of Tags for a resource has been reached.")


def _create_tags(params: QueryRequest, existing: Callable[[str], dict[str, str]]) -> Refusal | None:
    tags = _tags(params, "Tag")
    problem = _tag_text(tags)
    if problem:
        return problem
    for resource in params.members("ResourceId"):
        if len({**existing(resource), **tags}) > TAGS_PER_RESOURCE:
            return TOO_MANY
    return None


def _run_instances(params: QueryRequest) -> Refusal | None:
    index = 1
    while params.get(f"TagSpecification.{index}.ResourceType") is not None:
        tags = _tags(params, f"TagSpecification.{index}.Tag")
        problem = _tag_text(tags)
        if problem:
            return problem
        if len(tags) > TAGS_PER_RESOURCE:
            return TOO_MANY
        index += 1
    return None


def ec2_refusal(params: QueryRequest, existing_tags: Callable[[str], dict[str, str]]) -> Refusal | None:
    """What the cloud refuses of this EC2 request, or None. ``existing_tags(resource_id)``: its tags now."""
    if params.action == "CreateSecurityGroup":
        return _group_text(params)
    if params.action == "CreateTags":
        return _create_tags(params, existing_tags)
    if params.action == "RunInstances":
        return _run_instances(params)
    return None
