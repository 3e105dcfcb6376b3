"""What ``recon drift --all-unmanaged`` adds to the drift report: the account's key pairs, security groups,
load balancers and images that neither the file nor the state knows, tagged by recon or not (a key pair
made by hand, a group somebody added). Resources recon tagged for a stack are that stack's: this
stack's untracked ones are in the plan already (``leftovers.unmanaged``), another stack's are left to it.

What the cloud makes by itself is never reported: the ``default`` group, the groups Eucalyptus makes
for a load balancer's workers (``euca-internal-ACCOUNT-NAME``, and a balancer's source group), and the
instances of its workers (instances are not listed at all). ``[drift] ignore_unmanaged`` patterns
(``keypairs.admin*``, ``images.*``) leave out more (``drift.report`` applies them).

One read of each, made apart from the plan's own: one DescribeKeyPairs, DescribeSecurityGroups and
DescribeImages (owner self), DescribeLoadBalancers and a DescribeTags per 20 balancers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Iterable

from .addresses import REF_RE, Address
from .resources import KINDS
from .resources.tags import STACK_TAG
if TYPE_CHECKING:   # the config checks patterns with this module
    from .cloud import Cloud
    from .config import Stack
    from .state.model import State

#: The kinds whose unmanaged resources are listed, in the report's order.
LISTED = ("keypairs", "security_groups", "load_balancers", "images")
#: Groups the cloud makes: every account's default one, and a load balancer's workers'.
CLOUD_GROUPS = ("default", "euca-internal-*")
IMAGE_ID = re.compile(r"^[ea][mkr]i-[0-9a-fA-F]{8,17}$")
TAGS_BATCH = 20


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot match an unmanaged resource (for the config check), or None."""
    kind, dot, rest = pattern.partition(".")
    if not dot or not rest:
        return 'expected "KIND.NAME", wildcards allowed ("keypairs.admin*")'
    if kind not in LISTED and not any(fnmatchcase(listed, kind) for listed in LISTED):
        return f"{kind!r} is not one of the kinds --all-unmanaged lists ({', '.join(LISTED)})"
    return None


@dataclass(frozen=True)
class Listed:
    """One resource of the account: what its address names it by, its id, its tags, the other names it is
    known by (an image's name), and the images it uses (an image's kernel and ramdisk)."""

    name: str
    cloud_id: str
    tags: dict[str, str]
    aliases: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()


def find(cloud: Cloud, stack: Stack, state: State) -> list[tuple[Address, str]]:
    """The unmanaged resources: (KIND.CLOUD_NAME, cloud id)."""
    balancers, source_groups = _load_balancers(cloud)
    live = {"keypairs": _key_pairs(cloud), "security_groups": _groups(cloud), "load_balancers": balancers,
            "images": _images(cloud)}
    known = _known(stack, state)
    # the kernel and ramdisk of a known image are known
    known |= {("images", used) for item in live["images"] if _is_known(item, "images", known) for used in item.uses}
    found = []
    for kind in LISTED:
        for item in sorted(live[kind], key=lambda item: item.name):
            if STACK_TAG in item.tags or _is_known(item, kind, known):
                continue
            if kind == "security_groups" and (item.name in source_groups or
                                              any(fnmatchcase(item.name, p) for p in CLOUD_GROUPS)):
                continue
            found.append((Address(kind, item.name), item.cloud_id))
    return found


def _is_known(item: Listed, kind: str, known: set[tuple[str, str]]) -> bool:
    return any((kind, name) in known for name in (item.name, item.cloud_id, *item.aliases))


def _known(stack: Stack, state: State) -> set[tuple[str, str]]:
    """(kind, cloud name or id) of everything the file or the state names; for images also every image
    id state mentions (an image's kernel and ramdisk, the image an LB revision installed)."""
    known = set()
    for address, entry in state.resources.items():
        known.add((address.kind, entry.id))
        known.update((address.kind, item["id"]) for item in entry.deposed)
        known.update(("images", value) for value in _strings(entry.attrs) if IMAGE_ID.match(value))
    for address, spec in stack.resources.items():
        known.add((address.kind, address.name))
        names = [KINDS[address.kind].live_name(address.name, spec.attrs)] if address.kind != "images" else \
            [spec.attrs.get("id"), spec.attrs.get("name")]
        known.update((address.kind, name) for name in names if isinstance(name, str) and not REF_RE.search(name))
    return known


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _tags(items: list[dict[str, Any]] | None) -> dict[str, str]:
    return {tag.get("Key", ""): tag.get("Value", "") for tag in items or []}


def _key_pairs(cloud: Cloud) -> list[Listed]:
    reply = cloud.call("ec2", "describe_key_pairs", where="--all-unmanaged")
    return [Listed(kp["KeyName"], kp["KeyName"], _tags(kp.get("Tags"))) for kp in reply.get("KeyPairs", [])]


def _groups(cloud: Cloud) -> list[Listed]:
    groups = cloud.paginate("ec2", "describe_security_groups", "SecurityGroups", where="--all-unmanaged")
    return [Listed(g["GroupName"], g["GroupId"], _tags(g.get("Tags"))) for g in groups]


def _images(cloud: Cloud) -> list[Listed]:
    images = cloud.paginate("ec2", "describe_images", "Images", where="--all-unmanaged", Owners=["self"])
    return [Listed(i["ImageId"], i["ImageId"], _tags(i.get("Tags")), tuple(filter(None, [i.get("Name")])),
                   tuple(filter(None, [i.get("KernelId"), i.get("RamdiskId")]))) for i in images]


def _load_balancers(cloud: Cloud) -> tuple[list[Listed], set[str]]:
    """The balancers, and the source groups the cloud made for them."""
    found = cloud.paginate("elb", "describe_load_balancers", "LoadBalancerDescriptions", where="--all-unmanaged")
    tags: dict[str, dict[str, str]] = {lb["LoadBalancerName"]: {} for lb in found}
    names = sorted(tags)
    for start in range(0, len(names), TAGS_BATCH):
        reply = cloud.call("elb", "describe_tags", where="--all-unmanaged",
                           LoadBalancerNames=names[start:start + TAGS_BATCH])
        for item in reply.get("TagDescriptions", []):
            if item.get("LoadBalancerName") in tags:
                tags[item["LoadBalancerName"]].update(_tags(item.get("Tags")))
    return ([Listed(name, name, tags[name]) for name in names],
            {group for lb in found if (group := (lb.get("SourceSecurityGroup") or {}).get("GroupName"))})
