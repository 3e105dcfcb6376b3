"""The state: what recon last applied, per address.

``version`` is the format, ``lineage`` a UUID made once per state, ``serial`` grows by
one on every write. ``cloud`` is the identity (front-end host, account, region) of the cloud
the state was written for; a state without one (written by an older recon) gets it on its
next write. Entries keep the cloud's name or id of each resource and the
attributes recon last applied (secrets only as digests). ``partial`` holds, per address, how far
a change that makes its object in steps got (a kind's checkpoints): the object's cloud name and
what the steps made so far, kept until the change is recorded as done.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..addresses import Address
from ..errors import StateError
from ..identity import CloudIdentity

STATE_VERSION = 1


@dataclass
class Entry:
    address: Address
    id: str                          # the cloud's name or id for it
    attrs: dict[str, Any]
    depends_on: list[Address] = field(default_factory=list)
    #: Earlier objects of this resource, replaced but not yet deleted: [{"id": …, "attrs": {…}}].
    deposed: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = {"kind": self.address.kind, "name": self.address.name, "id": self.id,
               "attrs": self.attrs, "depends_on": [str(a) for a in self.depends_on]}
        if self.deposed:
            out["deposed"] = self.deposed
        return out


@dataclass
class State:
    stack: str
    lineage: str = field(default_factory=lambda: str(uuid.uuid4()))
    serial: int = 0
    resources: dict[Address, Entry] = field(default_factory=dict)
    recon_version: str = ""
    cloud: CloudIdentity | None = None
    #: Changes under way: address -> {"id": cloud name of the object being made, "attrs": {…}}.
    partial: dict[Address, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "recon_version": self.recon_version,
            "stack": self.stack,
            "lineage": self.lineage,
            "serial": self.serial,
            **({"cloud": self.cloud.to_json()} if self.cloud else {}),
            "resources": {str(a): self.resources[a].to_json() for a in sorted(self.resources)},
            **({"partial": {str(a): self.partial[a] for a in sorted(self.partial)}} if self.partial else {}),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def loads(cls, text: str, where: str) -> "State":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateError(f"state file is not valid JSON ({exc.msg} at line {exc.lineno})", where=where,
                             hint="restore it from the .backup beside it, or from version control")
        if not isinstance(data, dict) or "lineage" not in data or "resources" not in data:
            raise StateError("not a recon state file", where=where)
        if data.get("version") != STATE_VERSION:
            raise StateError(f"state format version {data.get('version')!r} is not supported "
                             f"(this recon reads version {STATE_VERSION})", where=where)
        try:
            resources = {}
            for key, item in data["resources"].items():
                address = Address(item["kind"], item["name"])
                resources[address] = Entry(address, str(item["id"]), dict(item["attrs"]),
                                           [Address.parse(a) for a in item.get("depends_on", [])],
                                           [dict(d) for d in item.get("deposed", [])])
            partial = {Address.parse(key): {"id": str(item["id"]), "attrs": dict(item["attrs"])}
                       for key, item in data.get("partial", {}).items()}
            return cls(stack=str(data["stack"]), lineage=str(data["lineage"]), serial=int(data["serial"]),
                       resources=resources, recon_version=str(data.get("recon_version", "")), partial=partial,
                       cloud=CloudIdentity.from_json(data["cloud"], where) if data.get("cloud") else None)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"state file is damaged: {exc}", where=where)
