"""Ownership tags: what recon creates carries its stack and address, so a lost state
file can be rebuilt from the cloud and recon never touches what it does not own."""

from __future__ import annotations

from typing import Mapping

from ..errors import shown
from ..text import text_problem

STACK_TAG = "recon:stack"
ADDRESS_TAG = "recon:address"
#: Eucalyptus's TagManager: at most 10 tags on one resource (the cloud property
#: tagging.max_tags_per_resource), keys of 1-127 characters, values of at most 255; the prefixes
#: aws: and euca: are the cloud's.
TAGS_PER_RESOURCE = 10
TAG_KEY_CHARS = 127
TAG_VALUE_CHARS = 255
RESERVED_PREFIXES = ("recon:", "aws:", "euca:")


def user_tags_problem(tags: Mapping[str, str], own: int) -> str | None:
    """Why the cloud would refuse ``tags`` beside recon's ``own`` tags on one resource, or None."""
    if len(tags) + own > TAGS_PER_RESOURCE:
        return (f"{len(tags)} tags, but the cloud keeps at most {TAGS_PER_RESOURCE} per resource and recon puts "
                f"{own} of its own on each: give at most {TAGS_PER_RESOURCE - own}")
    for key, value in tags.items():
        if key.startswith(RESERVED_PREFIXES):
            return f"tag {shown(key)}: recon:, aws: and euca: tags are reserved"
        problem = (text_problem(key, maximum=TAG_KEY_CHARS) if key else "is empty")
        if problem:
            return f"tag key {shown(key)} {problem}"
        problem = text_problem(value, maximum=TAG_VALUE_CHARS) if isinstance(value, str) else None
        if problem:
            return f"tag {shown(key)}: its value {problem}"
    return None


def ownership_tags(stack: str, address: str) -> list[dict[str, str]]:
    return [{"Key": STACK_TAG, "Value": stack}, {"Key": ADDRESS_TAG, "Value": address}]


#: Key of the live attribute holding a resource's ownership tags, where the cloud has tags.
OWNER = "_owner"


def owner_from_tags(tags: list[dict[str, str]] | None) -> dict[str, str] | None:
    """{"stack": …, "address": …} from a resource's tags, or None if recon did not tag it."""
    values = {tag.get("Key"): tag.get("Value") for tag in tags or []}
    if STACK_TAG in values and ADDRESS_TAG in values:
        return {"stack": values[STACK_TAG], "address": values[ADDRESS_TAG]}
    return None
