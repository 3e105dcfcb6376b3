"""What ``recon state show|rm|mv`` and ``recon output`` find in state, and the edits they make to it.

An address names a state entry (``KIND.NAME``) or, for a kind whose entry stands for a set of
instances (``docker_hosts``), one instance of it (``docker_hosts.web[1]``): the entry's list
outputs (``instance_ids``, ``private_ips``) taken at that index. Pure: the commands read and
write the state under its lock.

``rm`` forgets entries: nothing happens in the cloud. ``mv`` gives an entry another address of its
kind; the resource stays what it is, so it is refused where the cloud's name for the resource
follows the block's name (a key pair, a load balancer, the hosts of a ``docker_hosts`` block):
under the new address the next plan would replace it. Ownership tags (``recon:address``) are
not rewritten: they name the address recon made the resource under, and for a resource in
state it is the state, not the tag, that says which block owns it (``leftovers.unmanaged``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .addresses import REF_RE, Address
from .config import Stack
from .errors import StateError
from .redact import SENSITIVE, digest_keys
from .resources import KINDS
from .schema import nearest
from .state.model import Entry, State

INDEXED = re.compile(r"^(?P<address>.+)\[(?P<index>\d+)\]$")


@dataclass(frozen=True)
class Found:
    """A state entry, or one instance of it (``index``)."""

    address: Address
    entry: Entry
    index: int | None = None

    @property
    def label(self) -> str:
        return f"{self.address}[{self.index}]" if self.index is not None else str(self.address)

    def outputs(self) -> dict[str, Any]:
        """The kind's outputs, from what state recorded (those the kind calls sensitive, and those state keeps
        only as a secret's digest, as ``(sensitive)``); for an instance, its element of each list."""
        kind, name, attrs = KINDS.get(self.address.kind), self.address.name, self.entry.attrs
        if kind is None:
            return {}
        values = {output: kind.output(name, attrs, output) for output in kind.outputs}
        hidden = kind.sensitive_paths(name, attrs, None) | digest_keys(attrs) | digest_keys(values)
        values = {output: SENSITIVE if output in hidden else value for output, value in values.items()}
        if self.index is None:
            return values
        return {name: value[self.index] for name, value in values.items()
                if isinstance(value, list) and self.index < len(value)}


def parse(text: str, where: str) -> tuple[Address, int | None]:
    """``KIND.NAME`` or ``KIND.NAME[N]``; StateError naming ``where`` if it is neither."""
    match = INDEXED.match(text)
    try:
        address = Address.parse(match.group("address") if match else text)
    except ValueError as exc:
        raise StateError(str(exc), where=where)
    return address, int(match.group("index")) if match else None


def find(state: State, text: str, where: str) -> Found:
    """The entry (or instance) ``text`` names; StateError, with the nearest address, if state has none."""
    address, index = parse(text, where)
    entry = state.resources.get(address)
    if entry is None:
        guess = nearest(str(address), [str(a) for a in state.resources])
        raise StateError(f"{address} is not in state", where=where,
                         hint=f"did you mean {guess!r}?" if guess else "`recon state list` lists what state holds")
    found = Found(address, entry, index)
    if index is not None:
        ids = entry.attrs.get("instance_ids")
        if not isinstance(ids, list):
            raise StateError(f"{address} is one resource, not a set of instances: it has no [{index}]", where=where)
        if index >= len(ids):
            raise StateError(f"{address} has {len(ids)} instance(s) in state, so no [{index}]", where=where)
    return found


def whole(found: Found, where: str, doing: str) -> None:
    """Refuse an instance address where only a whole entry can be edited."""
    if found.index is not None:
        raise StateError(f"cannot {doing} {found.label} alone: the instances of {found.address} are found by "
                         "their tags, not by state, so state keeps them as one entry", where=where,
                         hint=f"{doing} {found.address} (all of them), or change its count in the file")


def remove(state: State, addresses: list[Address]) -> None:
    """Forget ``addresses`` (what they made stays in the cloud), and what other entries recorded of them."""
    for address in addresses:
        del state.resources[address]
        state.partial.pop(address, None)
    for entry in state.resources.values():
        entry.depends_on = [dep for dep in entry.depends_on if dep not in addresses]


def move(state: State, source: Address, dest_text: str, where: str) -> Address:
    """Give ``source``'s entry the address ``dest_text``; StateError where the resource could not stay
    what it is under it."""
    dest, index = parse(dest_text, where)
    if index is not None:
        raise StateError(f"{dest_text}: an instance address cannot be a destination", where=where)
    if dest.kind != source.kind:
        raise StateError(f"cannot move {source} to {dest}: a resource keeps its kind", where=where,
                         hint=f"give it another name of {source.kind}: {source.kind}.NEW_NAME")
    if dest in state.resources:
        raise StateError(f"{dest} is in state already", where=where,
                         hint=f"`recon state rm {dest}` first, if it is to be forgotten")
    entry = state.resources[source]
    kind = KINDS.get(source.kind)
    if kind is None:
        raise StateError(f"{source}: state holds a kind this recon does not know", where=where)
    cloud_name = kind.live_name(dest.name, entry.attrs)
    if cloud_name != entry.id:
        raise StateError(f"the cloud knows {source} as {entry.id!r}, and a {kind.noun}'s name in the cloud follows "
                         f"its block's name: as {dest} it would be {cloud_name!r}, so the next plan would replace "
                         "it", where=where,
                         hint="rename the block only (and let the plan replace it), or, where the kind has a "
                              "`name` attribute, keep the cloud's name in it")
    del state.resources[source]
    state.resources[dest] = Entry(dest, entry.id, entry.attrs, entry.depends_on, entry.deposed)
    if source in state.partial:
        state.partial[dest] = state.partial.pop(source)
    for other in state.resources.values():
        other.depends_on = sorted(dest if dep == source else dep for dep in other.depends_on)
    return dest


def file_disagrees(stack: Stack, dest: Address, entry: Entry) -> str | None:
    """Why the file's block at ``dest`` would not be the moved resource (another name in the cloud), or None."""
    spec = stack.resources.get(dest)
    if spec is None:
        return None
    cloud_name = KINDS[dest.kind].live_name(dest.name, spec.attrs)
    if not isinstance(cloud_name, str) or REF_RE.search(cloud_name) or cloud_name == entry.id:
        return None
    return (f"the file's block {dest} names {cloud_name!r} in the cloud, not {entry.id!r}: the next plan would "
            f"replace it; give the block name = {entry.id!r} to keep the resource")
