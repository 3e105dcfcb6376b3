"""Literal names: a value that names, without ``${…}``, a resource the same file has.

``key_name = "euca-elb"`` beside ``[keypairs.euca-elb]``, an ingress rule's ``group = "web"``,
``"loadbalancing.loadbalancer_vm_keyname" = "euca-elb"``: each kind says which of its values name
what (:meth:`Kind.named`); :func:`infer` matches them, when the file is loaded, against the cloud
names of the file's blocks, and a match makes the named block a dependency exactly as a reference
would (so the reference-cycle check, plan order, the ``--target`` closure and apply order all see
it). A value that is, or contains, a ``${…}`` reference is not matched: the reference already is
the edge. :func:`missing` runs at plan time: a required name that matches no block of the file
must name a resource of the live read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from .addresses import Address
from .resources import KINDS
from .resources.abilities import NamesOthers
from .resources.base import NameUse
from .schema import nearest

if TYPE_CHECKING:
    from .config import ResourceSpec


@dataclass(frozen=True)
class Named:
    """One literal name of a block and the blocks of the file it matched (perhaps none)."""

    use: NameUse
    targets: tuple[Address, ...]

    def describe(self, owner: Address) -> str:
        return f"{owner}'s {self.use.path} {self.use.value!r}"


def cloud_names(resources: Mapping[Address, "ResourceSpec"]) -> dict[str, dict[str, list[Address]]]:
    """The file's blocks by kind and cloud name, for those whose cloud name is literal."""
    index: dict[str, dict[str, list[Address]]] = {}
    for address, spec in resources.items():
        name = KINDS[address.kind].live_name(address.name, spec.attrs)
        if isinstance(name, str) and "${" not in name:
            index.setdefault(address.kind, {}).setdefault(name, []).append(address)
    return index


def infer(resources: Mapping[Address, "ResourceSpec"]) -> dict[Address, tuple[Named, ...]]:
    """Each block's literal names with the blocks they match (pure: the file only, no cloud)."""
    index = cloud_names(resources)
    found: dict[Address, tuple[Named, ...]] = {}
    for address, spec in resources.items():
        names = []
        kind = KINDS[address.kind]
        uses = kind.named(address.name, spec.attrs) if isinstance(kind, NamesOthers) else []
        for use in uses:
            if "${" in use.value:
                continue
            targets = sorted({target for kind in use.kinds for target in index.get(kind, {}).get(use.value, ())})
            if address in targets:
                continue  # a group whose rule admits the group itself: no edge, nothing to look up
            names.append(Named(use, tuple(targets)))
        found[address] = tuple(names)
    return found


def missing(address: Address, spec: "ResourceSpec", live: Mapping[str, Mapping[str, Any]],
            resources: Mapping[Address, "ResourceSpec"],
            leaving: Mapping[tuple[str, str], Address] = {}) -> list[str]:
    """The required names of a block that match no block of the file and nothing in ``live`` that
    stays: ``leaving`` is what the plan deletes because its block left the file."""
    problems = []
    for named in spec.names:
        use = named.use
        if named.targets or not use.required:
            continue
        going = [leaving[(kind, use.value)] for kind in use.kinds if (kind, use.value) in leaving]
        if going:
            problems.append(f"{use.path} {use.value!r} names {going[0]}, which this plan destroys because its "
                            "block left the file: keep the block, or change the value")
            continue
        if any(use.value in live.get(kind, {}) for kind in use.kinds):
            continue
        what = " or ".join(KINDS[kind].noun for kind in use.kinds)
        problems.append(f"{use.path} {use.value!r} names no {what} in the cloud nor in this file"
                        + _suggestion(use, live, resources))
    return problems


def _suggestion(use: NameUse, live: Mapping[str, Mapping[str, Any]],
                resources: Mapping[Address, "ResourceSpec"]) -> str:
    """A block the value is the block name of (its cloud name differs), else the nearest name."""
    for kind in use.kinds:
        block = resources.get(Address(kind, use.value))
        if block is not None:
            cloud_name = KINDS[kind].live_name(use.value, block.attrs)
            attr = "id" if "id" in KINDS[kind].outputs else "name"
            reference = f"${{{kind}.{use.value}.{attr}}}"
            if "${" in str(cloud_name):
                return f" ({kind}.{use.value}'s cloud name comes from a reference: write {reference})"
            return f" ({kind}.{use.value} is named {cloud_name!r} in the cloud: write that, or {reference})"
    known = {name for kind in use.kinds for name in live.get(kind, {})}
    known |= {name for kind, names in cloud_names(resources).items() if kind in use.kinds for name in names}
    guess = nearest(use.value, known)
    return f" (did you mean {guess!r}?)" if guess else ""
