"""The planner's steps for what lies beyond the file's blocks.

What state holds that the file no longer asks for (:func:`orphans`: blocks that left the file, and
the objects create-before-destroy replacements deposed), what interrupted applies made in steps of
objects no longer wanted (:func:`interrupted`), and what the cloud holds of this stack that neither
file nor state knows (:func:`unmanaged`). :func:`delete_change` makes the delete of a live object for
these and for the planner's moves; :class:`Part` is what a step of the planner adds to the plan. Like
the planner, pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .addresses import Address
from .config import Stack
from .plan import UNKNOWN, Action, Change, Payload
from .redact import digest_keys
from .references import Planned
from .resources import KINDS, Kind
from .resources.abilities import Removal, removal
from .resources.tags import OWNER
from .state.model import Entry, State

Live = Mapping[str, Mapping[str, dict[str, Any]]]  # kind -> cloud name -> attributes
Leaving = Mapping[tuple[str, str], Address]         # (kind, cloud id) -> address, see leaving_the_cloud


@dataclass
class Part:
    """What a step adds to the plan: changes in plan order, state entries and deposed objects to drop
    from state without a cloud call, and the problems that stop the plan."""

    changes: list[Change] = field(default_factory=list)
    forget: list[Address] = field(default_factory=list)
    forget_deposed: list[tuple[Address, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def leaving_the_cloud(stack: Stack, state: State, live: Live, selected: set[Address] | None) -> Leaving:
    """The live objects this plan deletes because their block left the file, by (kind, cloud id)."""
    found = {}
    for address, entry in state.resources.items():
        kind = KINDS.get(address.kind)
        if address in stack.resources or kind is None or (selected is not None and address not in selected):
            continue
        if entry.id in live.get(address.kind, {}) and \
                removal(kind, address.name, stack.settings.get(address.kind, {})) is Removal.DELETE:
            found[(address.kind, entry.id)] = address
    return found


def orphans(stack: Stack, live: Live, state: State, selected: set[Address] | None) -> Part:
    """What state holds that the file no longer asks for: the deletes of deposed objects still live
    (forgetting those gone), and of objects whose block left the file (forgetting them where the kind
    keeps its objects, or the cloud lost them already)."""
    part = Part()
    for address, entry in sorted(state.resources.items()):
        if selected is not None and address not in selected:
            continue
        kind = KINDS.get(address.kind)
        if kind is None:
            part.problems.append(f"{address}: state holds a kind this recon does not know")
            continue
        part.changes.extend(deposed_deletes(address, entry, live))
        part.forget_deposed.extend((address, item["id"]) for item in entry.deposed
                                   if item["id"] not in live.get(address.kind, {}))
        if address in stack.resources:
            continue
        live_attrs = live.get(address.kind, {}).get(entry.id)
        if removal(kind, address.name, stack.settings.get(address.kind, {})) is Removal.FORGET or live_attrs is None:
            part.forget.append(address)
            continue
        before = {k: v for k, v in live_attrs.items() if k in entry.attrs}
        part.changes.append(delete_change(address, entry.id, before, entry.attrs, kind,
                                          depends_on=list(entry.depends_on)))
    return part


def deposed_deletes(address: Address, entry: Entry, live: Live) -> list[Change]:
    """Deletes of the objects a create-before-destroy replaced and an earlier apply left behind."""
    kind = KINDS[address.kind]
    out = []
    for item in entry.deposed:
        old = live.get(address.kind, {}).get(item["id"])
        if old is not None:
            out.append(delete_change(address, item["id"], {k: v for k, v in old.items() if k in item["attrs"]},
                                     item["attrs"], kind, deposed=True))
    return out


def interrupted(stack: Stack, live: Live, state: State, selected: set[Address] | None,
                planned: Mapping[Address, Planned]) -> list[Change]:
    """The deletes of what interrupted applies made in steps of objects the file no longer asks for."""
    changes = []
    for address, partial in sorted(state.partial.items()):
        if selected is not None and address not in selected:
            continue
        change = left_by_interrupted(address, partial, stack, state, live, planned)
        if change is not None:
            changes.append(change)
    return changes


def left_by_interrupted(address: Address, partial: dict[str, Any], stack: Stack, state: State, live: Live,
                        planned: Mapping[Address, Planned]) -> Change | None:
    """The delete of what an interrupted apply made in steps of an object the file no longer asks for
    (the block is gone, or wants another object now); None where the create resumes it."""
    kind = KINDS.get(address.kind)
    if kind is None:
        return None
    cloud_id = partial["id"]
    target = planned.get(address)
    if target is not None:
        wanted = kind.live_name(address.name, target.resolved)
        if wanted is UNKNOWN or wanted == cloud_id:
            return None
    elif address in stack.resources:  # not planned (a problem, or not targeted): left for later
        return None
    entry = state.resources.get(address)
    if entry is not None and cloud_id in {entry.id, *(item["id"] for item in entry.deposed)}:
        return None   # deleted as that object
    found = live.get(address.kind, {}).get(cloud_id) or {}
    before = {k: found.get(k, v) for k, v in partial["attrs"].items()}
    return delete_change(address, cloud_id, before, partial["attrs"], kind, deposed=True,
                         reason="left by an interrupted apply")


def unmanaged(stack: Stack, live: Live, state: State) -> list[tuple[Address, str]]:
    """Live resources tagged with this stack whose address is in neither the file nor the state. One
    that state holds by its id is managed, whatever address its tag names (``recon state mv`` moved it)."""
    found = []
    in_state = {(address.kind, entry.id) for address, entry in state.resources.items()}
    for kind_name, items in live.items():
        for cloud_id, attrs in items.items():
            owner = attrs.get(OWNER)
            if not owner or owner.get("stack") != stack.name or (kind_name, cloud_id) in in_state:
                continue
            try:
                address = Address.parse(owner["address"].split("[", 1)[0])
            except ValueError:
                continue
            if address not in stack.resources and address not in state.resources:
                found.append((address, cloud_id))
    return sorted(found)


def delete_change(address: Address, cloud_id: str, before: dict[str, Any], prior: dict[str, Any], kind: Kind, *,
                  deposed: bool = False, depends_on: list[Address] | None = None, reason: str | None = None) -> Change:
    """The delete of a live object (``deposed``: an earlier object of a block, by its id)."""
    if reason is None:
        reason = "replaced" if deposed else kind.removal_reason(address.name, prior)
    return Change(address, Action.DELETE, before, None, changed_paths=sorted(before),
                  sensitive_paths=sorted(kind.sensitive_paths(address.name, prior, before) | digest_keys(prior)),
                  depends_on=depends_on or [],
                  depends_on_reasons={dep: ["depended on it when last applied"] for dep in depends_on or []},
                  reason=reason, deposed_id=cloud_id if deposed else None, payload=Payload(live=before, prior=prior))
