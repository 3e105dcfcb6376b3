"""Slim replies: a large describe reply read for the fields recon uses, and nothing else.

botocore turns every element of a reply into a dict entry (a DescribeInstances item has some
eighty, with dates parsed); recon's instance sets look at a dozen. A :class:`SlimReader` reads the
XML with ElementTree (C) and builds only the fields its :data:`Spec` names, in botocore's names and
shapes: a field the reply lacks is absent, an empty element is ``""``, a list is a list of dicts.
The same spec projects botocore's own result (:func:`project`), which is how the tests check that
both give the same: on every reply the sandbox sends, ``read(body) == project(botocore's parse)``.

:meth:`reconciler.cloud.Cloud.call` uses a reader when asked (``slim=True``): inside the same call
(its retries, deadline, stats and errors), the reader runs in botocore's ``before-parse`` step on a
2xx reply, after :func:`~reconciler.replies.check_reply`, and botocore then parses an empty document
of the same operation (its ``ResponseMetadata``, nothing else). Error replies are botocore's alone.
"""

from __future__ import annotations

import contextvars
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from botocore.parsers import ResponseParserError

#: Output key -> XML element (a path below the item, ``"instanceState/name"``) for a text field;
#: -> Spec for a nested structure at the same level (``Placement``); -> (list element, Spec) for a
#: list of structures (``("groupSet", {...})``: its ``item`` children).
Spec = Mapping[str, Union[str, "Spec", tuple[str, "Spec"]]]

_GROUP: Spec = {"GroupId": "groupId", "GroupName": "groupName"}

#: What :meth:`reconciler.resources.instance_roll.Instance.from_api` and the instance sets read.
INSTANCE: Spec = {
    "InstanceId": "instanceId",
    "ImageId": "imageId",
    "KernelId": "kernelId",
    "RamdiskId": "ramdiskId",
    "InstanceType": "instanceType",
    "KeyName": "keyName",
    "PrivateIpAddress": "privateIpAddress",
    "State": {"Name": "instanceState/name"},
    "Placement": {"AvailabilityZone": "placement/availabilityZone"},
    "SecurityGroups": ("groupSet", _GROUP),
    "NetworkInterfaces": ("networkInterfaceSet", {"Groups": ("groupSet", _GROUP)}),
    "Tags": ("tagSet", {"Key": "key", "Value": "value"}),
}


@dataclass(frozen=True)
class SlimReader:
    """How one operation's reply is read: its list (``reservationSet``) of items, each with a list
    (``instancesSet``) of the items ``spec`` reads, and its page token."""

    operation: str            # the API's name, "DescribeInstances"
    outer: tuple[str, str]    # (botocore's key, XML element) of the list: ("Reservations", "reservationSet")
    inner: tuple[str, str]    # the same for each outer item's list: ("Instances", "instancesSet")
    spec: Spec
    token: tuple[str, str] = ("NextToken", "nextToken")

    def read(self, body: bytes) -> dict[str, Any]:
        try:
            root = ET.fromstring(body)
        except ET.ParseError as exc:
            raise ResponseParserError(f"Unable to parse response ({exc}), invalid XML received") from None
        ns = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        (outer_key, outer_tag), (inner_key, inner_tag) = self.outer, self.inner
        fields, item = _compiled(self.spec, ns), ns + "item"
        result: dict[str, Any] = {}
        outer = root.find(ns + outer_tag)
        if outer is not None:
            result[outer_key] = [
                {inner_key: [_build(member, fields, item) for member in inner.findall(item)]}
                if (inner := group.find(ns + inner_tag)) is not None else {}
                for group in outer.findall(item)]
        token = root.find(ns + self.token[1])
        if token is not None:
            result[self.token[0]] = token.text or ""
        return result

    def project(self, parsed: Mapping[str, Any]) -> dict[str, Any]:
        """botocore's result for the operation, cut to what :meth:`read` gives."""
        outer_key, inner_key, token = self.outer[0], self.inner[0], self.token[0]
        result: dict[str, Any] = {}
        if outer_key in parsed:
            result[outer_key] = [{inner_key: [project(item, self.spec) for item in group[inner_key]]}
                                 if inner_key in group else {} for group in parsed[outer_key]]
        if token in parsed:
            result[token] = parsed[token]
        return result

    def empty(self, body: bytes) -> bytes:
        """The operation's empty reply, in the namespace of ``body``."""
        start = body.find(b"xmlns=", 0, 4096)
        xmlns = body[start:body.find(body[start + 6:start + 7], start + 7) + 1] if start >= 0 else b""
        return b"<%sResponse %s></%sResponse>" % (self.operation.encode(), xmlns, self.operation.encode())


#: A spec made ready for one namespace: (key, kind, what) with what, by kind: TEXT, the element's path as tags
#: (``("{ns}instanceState", "{ns}name")``); LIST, (the list's tag, the fields of each item); NESTED, the fields.
Fields = tuple[tuple[str, int, Any], ...]
TEXT, LIST, NESTED = range(3)


def _compiled(spec: Spec, ns: str) -> Fields:
    """``spec`` with its tags in namespace ``ns``: each is then found with ElementTree's C lookup of a plain
    tag (a path with "/" and ``iterfind`` go through its Python ElementPath, several times slower)."""
    fields = []
    for key, where in spec.items():
        if isinstance(where, str):
            fields.append((key, TEXT, tuple(ns + tag for tag in where.split("/"))))
        elif isinstance(where, tuple):
            fields.append((key, LIST, (ns + where[0], _compiled(where[1], ns))))
        else:
            fields.append((key, NESTED, _compiled(where, ns)))
    return tuple(fields)


def _build(element: ET.Element, fields: Fields, item: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, kind, what in fields:
        if kind == TEXT:
            found: ET.Element | None = element
            for tag in what:
                found = found.find(tag)
                if found is None:
                    break
            else:
                out[key] = found.text or ""
        elif kind == LIST:
            found = element.find(what[0])
            if found is not None:
                out[key] = [_build(member, what[1], item) for member in found.findall(item)]
        elif inner := _build(element, what, item):
            out[key] = inner
    return out


def project(item: Mapping[str, Any], spec: Spec) -> dict[str, Any]:
    """The fields of botocore's ``item`` that ``spec`` names, in the same nesting."""
    out: dict[str, Any] = {}
    for key, where in spec.items():
        if isinstance(where, tuple):
            if key in item:
                out[key] = [project(member, where[1]) for member in item[key]]
        elif isinstance(where, str):
            if key in item:
                out[key] = item[key]
        elif key in item:
            inner = project(item[key], where)
            if inner:
                out[key] = inner
    return out


DESCRIBE_INSTANCES = SlimReader("DescribeInstances", ("Reservations", "reservationSet"), ("Instances", "instancesSet"),
                                INSTANCE)
#: The readers by service and API name.
READERS = {("ec2", "DescribeInstances"): DESCRIBE_INSTANCES}

#: The reader the call running in this thread asked for (set by Cloud's send, read in before-parse).
current: contextvars.ContextVar[SlimReader | None] = contextvars.ContextVar("slim_reader", default=None)


def slim_reply(operation_model: Any, response_dict: dict, customized_response_dict: dict, **_: Any) -> None:
    """botocore ``before-parse`` handler: where the call asked for a slim reply of this operation and
    the reply is a success, read it here and leave botocore an empty document."""
    reader = current.get()
    if reader is None or reader.operation != operation_model.name:
        return
    status = response_dict.get("status_code") or 0
    body = response_dict.get("body")
    if not 200 <= status < 300 or not isinstance(body, bytes):
        return
    customized_response_dict.update(reader.read(body))
    response_dict["body"] = reader.empty(body)
