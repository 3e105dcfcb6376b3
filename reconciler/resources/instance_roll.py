"""The instances of an instance set (:mod:`.instance_set`) as recon reads them, how each is
launched exactly once, and what a roll does with them -- pure functions, no cloud calls.

Ownership and finding. Instance ``i`` of ``KIND.NAME`` carries, from its launch
(TagSpecifications), the tags ``recon:stack``, ``recon:address`` = ``KIND.NAME[i]`` and
``recon:generation`` (and ``recon:user-data-sha256`` if it has user data). They are found by those
tags -- one paginated DescribeInstances filtered on the stack tag -- so a lost state file loses
nothing, and recon never touches an instance without its tags.

Exactly once. One RunInstances per index, with ClientToken = sha256 of stack, address, index,
generation and a digest of every launch parameter (:func:`client_token`): a retried or repeated
call gets the instance the first one made, never a second one; a token whose instance is gone
(terminated behind recon's back) gets the next generation. An index's next launch has a
generation above every one seen at that index, terminated instances included.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Collection, Iterable, Mapping

from .tags import ADDRESS_TAG, STACK_TAG, ownership_tags

GENERATION_TAG = "recon:generation"
USER_DATA_TAG = "recon:user-data-sha256"
OWN_TAGS = (STACK_TAG, ADDRESS_TAG, GENERATION_TAG, USER_DATA_TAG)   # on every instance of a set
#: What an instance was launched with, as the set reads it back (``Instance.launch``).
LAUNCH_ATTRS = ("image", "kernel_id", "ramdisk_id", "instance_type", "key_name", "zone", "security_groups",
                "user_data_sha256")
PRESENT = ("pending", "running", "stopping", "stopped")
GONE = ("shutting-down", "terminated")


@dataclass(frozen=True)
class Instance:
    """One instance of a set, as DescribeInstances shows it."""

    id: str
    name: str            # the block's name
    index: int
    generation: int
    state: str
    private_ip: str | None
    launch: dict[str, Any]
    tags: dict[str, str]  # the user's tags (not recon's)

    @classmethod
    def from_api(cls, item: Mapping[str, Any], kind: str) -> "Instance | None":
        """The instance ``item`` is if its address tag makes it one of ``kind``'s, else None."""
        tags = {t["Key"]: t.get("Value", "") for t in item.get("Tags", [])}
        match = re.match(rf"^{re.escape(kind)}\.(.+)\[(\d+)\]$", tags.get(ADDRESS_TAG, ""))
        if match is None:
            return None
        groups = item.get("SecurityGroups") or next(iter(item.get("NetworkInterfaces") or []), {}).get("Groups", [])
        generation = tags.get(GENERATION_TAG, "0")
        return cls(
            id=item["InstanceId"], name=match.group(1), index=int(match.group(2)),
            generation=int(generation) if generation.isdigit() else 0,
            state=(item.get("State") or {}).get("Name", "pending"), private_ip=item.get("PrivateIpAddress"),
            launch={
                "image": item.get("ImageId"), "kernel_id": item.get("KernelId"), "ramdisk_id": item.get("RamdiskId"),
                "instance_type": item.get("InstanceType"), "key_name": item.get("KeyName"),
                "zone": (item.get("Placement") or {}).get("AvailabilityZone"),
                "security_groups": sorted(g["GroupName"] for g in groups if g.get("GroupName")),
                "user_data_sha256": tags.get(USER_DATA_TAG),
            },
            tags={k: v for k, v in tags.items() if not k.startswith(("recon:", "aws:"))},
        )

    @property
    def present(self) -> bool:
        return self.state in PRESENT

    def matches(self, spec: Mapping[str, Any]) -> bool:
        return all(self.launch.get(key) == value for key, value in spec.items())


@dataclass(frozen=True)
class Launch:
    """What a kind launches each instance of its set with; the set adds one instance a call, its
    tags and the client token."""

    #: RunInstances parameters from the kind's fields (ImageId, InstanceType, KeyName, Placement …).
    params: Mapping[str, Any]
    #: The user data document sent, or None.
    user_data: str | None = None
    #: Its sha256: tagged on the instance (read back as ``user_data_sha256``) and part of the token.
    user_data_sha256: str | None = None


def by_index(instances: Iterable[Instance]) -> dict[int, list[Instance]]:
    """``instances`` grouped by their index in the block."""
    slots: dict[int, list[Instance]] = {}
    for instance in instances:
        slots.setdefault(instance.index, []).append(instance)
    return slots


def client_token(stack: str, address: str, index: int, generation: int, params: Mapping[str, Any]) -> str:
    """The RunInstances ClientToken: the same launch of the same index always gets the same one."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
    return hashlib.sha256(f"{stack}/{address}/{index}/{generation}/{digest}".encode()).hexdigest()


def own_tags(stack: str, address: str, generation: int, user_data_sha256: str | None) -> list[dict[str, str]]:
    """recon's tags on the instance at ``address`` (``KIND.NAME[i]``)."""
    tags = ownership_tags(stack, address) + [{"Key": GENERATION_TAG, "Value": str(generation)}]
    if user_data_sha256:
        tags.append({"Key": USER_DATA_TAG, "Value": user_data_sha256})
    return tags


def run_request(stack: str, address: str, index: int, generation: int, launch: Launch,
                tags: Mapping[str, str]) -> dict[str, Any]:
    """The RunInstances parameters of ``launch`` at ``index`` and ``generation`` of the set at
    ``address``, with the user's ``tags`` and the client token."""
    own = own_tags(stack, f"{address}[{index}]", generation, launch.user_data_sha256)
    own += [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    params = {**launch.params, "MinCount": 1, "MaxCount": 1,
              "TagSpecifications": [{"ResourceType": "instance", "Tags": own}]}
    token = client_token(stack, address, index, generation, {**params, "UserData": launch.user_data_sha256})
    return {"ClientToken": token, **params, **({"UserData": launch.user_data} if launch.user_data is not None else {})}


def next_generation(seen: Iterable[Instance], index: int) -> int:
    """The generation of the next launch at ``index``: above every instance seen there (gone ones too)."""
    return max((i.generation + 1 for i in seen if i.index == index), default=0)


def batches(indexes: list[int], width: int) -> list[list[int]]:
    """``indexes`` in order, ``width`` at a time (``max_unavailable``)."""
    return [indexes[start:start + width] for start in range(0, len(indexes), width)]


@dataclass(frozen=True)
class Roll:
    """What converging a set to ``count`` instances matching a launch does, index by index."""

    #: The newest matching instance at each index below ``count`` that has one.
    kept: dict[int, Instance]
    #: Instances at an index at or beyond ``count``, highest index first: retired.
    beyond: list[Instance]
    #: The other instances at a kept index (an earlier apply stopped mid-roll): retired for the kept one.
    duplicates: list[Instance]
    #: Indexes below ``count`` with no instance: launched.
    missing: list[int]
    #: Indexes below ``count`` whose instances all differ, or that are renewed: replaced, create before destroy.
    stale: dict[int, list[Instance]]

    @property
    def renewed(self) -> list[int]:
        """The kept indexes that have duplicates to retire."""
        return sorted({i.index for i in self.duplicates})


def roll(present: Iterable[Instance], spec: Mapping[str, Any], count: int, renew: Collection[int] = ()) -> Roll:
    """What to do with the ``present`` instances of a set for ``count`` of them launched with ``spec``;
    the indexes ``renew`` are replaced even where they match (``--replace``)."""
    slots = by_index(present)
    kept: dict[int, Instance] = {}
    duplicates: list[Instance] = []
    for index in range(count):
        good = sorted((i for i in slots.get(index, []) if i.matches(spec) and index not in renew),
                      key=lambda i: (i.generation, i.id))
        if good:
            kept[index] = good[-1]
            duplicates += [i for i in slots[index] if i is not good[-1]]
    return Roll(kept=kept, beyond=[i for index in sorted(slots, reverse=True) if index >= count for i in slots[index]],
                duplicates=duplicates, missing=[i for i in range(count) if i not in slots],
                stale={i: slots[i] for i in range(count) if i in slots and i not in kept})
