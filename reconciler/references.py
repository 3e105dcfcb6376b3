"""What a ``${KIND.NAME.ATTR}`` reference resolves to, for the planner and the applier alike.

The planner adds each block once it is planned (:meth:`References.add`); the applier starts from the
plan's changes (:meth:`References.of`) and adds what each change made (:meth:`References.made`), so a
reference resolved at apply time takes the value the cloud gave.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection, Iterable

from .addresses import Address, Reference
from .plan import UNKNOWN, Action, Change, contains_unknown
from .resources import KINDS

#: The actions that make a new object: what the cloud computes of it is not known before apply.
MAKES = (Action.CREATE, Action.REPLACE, Action.CREATE_THEN_DELETE)


@dataclass(frozen=True)
class Planned:
    """What the planner knows about a desired resource once visited."""

    change: Change
    resolved: dict[str, Any]
    live: dict[str, Any] | None


class References:
    """The blocks planned so far, as the references of later blocks see them.

    A reference to a block that a change makes anew takes the file's value, or UNKNOWN where the
    cloud computes it; to any other block, the live value overlaid with the file's, or UNKNOWN where
    the change recomputes it (the instance ids of hosts an update replaces). Once apply made a block,
    its references take the attributes it was made with.
    """

    def __init__(self) -> None:
        self.planned: dict[Address, Planned] = {}
        self._made: dict[Address, dict[str, Any]] = {}

    @classmethod
    def of(cls, changes: Iterable[Change]) -> "References":
        """The references of a plan's desired blocks, as the planner saw them."""
        refs = cls()
        for change in changes:
            desired = change.payload.desired
            if desired is not None and change.deposed_id is None:
                refs.add(change.address, Planned(change, desired, change.payload.live))
        return refs

    def add(self, address: Address, planned: Planned) -> None:
        self.planned[address] = planned

    def made(self, address: Address, attrs: dict[str, Any]) -> None:
        """Apply made (or found up to date) the block: its attributes now."""
        self._made[address] = attrs

    def value(self, ref: Reference) -> Any:
        """The value a reference resolves to now."""
        kind = KINDS[ref.address.kind]
        attrs = self._made.get(ref.address)
        if attrs is None:
            attrs = self._planned_attrs(ref)
        if attrs is None:
            return UNKNOWN
        value = kind.output(ref.address.name, attrs, ref.attr)
        return UNKNOWN if value is None or contains_unknown(value) else value

    def _planned_attrs(self, ref: Reference) -> dict[str, Any] | None:
        """The attributes a reference sees of a block not made yet (None: UNKNOWN)."""
        target = self.planned.get(ref.address)
        if target is None:
            return None
        traits, fields = KINDS[ref.address.kind].traits, KINDS[ref.address.kind].fields
        change = target.change
        if change.action in MAKES:
            return None if ref.attr in traits.computed else target.resolved
        if ref.attr in traits.computed and any(p.split(".")[0] in traits.recompute_on for p in change.changed_paths):
            return None
        return {**(target.live or {}), **{k: v for k, v in target.resolved.items() if k in fields}}

    def sensitive(self, ref: Reference) -> bool:
        """Whether the referenced attribute holds a hidden value."""
        target = self.planned.get(ref.address)
        return target is not None and ref.attr in {p.split(".")[0] for p in target.change.sensitive_paths}

    def pending(self, addresses: Collection[Address]) -> bool:
        """Whether any of these blocks is planned to change."""
        return any(self.planned[a].change.action is not Action.NOOP for a in addresses if a in self.planned)
