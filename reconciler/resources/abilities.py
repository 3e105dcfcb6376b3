"""What only some resource kinds do, each as a protocol a kind's class derives from.

The core of every kind is :class:`.base.Kind`. A kind that can do more names the ability in its
class header (``class LbImages(Kind, Prepares, Resumable, Adoptable)``) and implements its methods;
callers ask ``isinstance(kind, Ability)`` and do without where a kind lacks it:

- :class:`Importable`: ``recon import`` writes a file block for a live resource;
- :class:`Adoptable`: ``recon import`` of a block already in the file takes a live resource as it;
- :class:`Prepares`: local work a plan needs and validate does not (reading a base image);
- :class:`TableSettings`: kind-wide settings in its table, and what leaving the file means;
- :class:`Preexisting`: resources recon cannot always make (they must exist in the cloud);
- :class:`NamesOthers`: attributes that name other resources by their cloud name;
- :class:`ChecksLive`: problems only the live read shows;
- :class:`ReplacesInstances`: an update replaces the resource's instances one by one;
- :class:`ReplacesParts`: ``--replace KIND.NAME[PART]`` names one of its instances (a host, an LB worker);
- :class:`ServesInstances`: traffic to instances moves when those instances are replaced;
- :class:`Resumable`: a create made in checkpointed steps, resumed after an interruption.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, runtime_checkable

from ..errors import ReconError

if TYPE_CHECKING:
    from ..plan import Replacement
    from ..schema import Problems
    from .base import CloudContext, Kind, NameUse


class Removal(enum.Enum):
    """What a block leaving the file means for its resource."""

    DELETE = "delete"   # delete it from the cloud
    FORGET = "forget"   # drop it from state, leave it in the cloud


@runtime_checkable
class Importable(Protocol):
    def import_block(self, ctx: CloudContext, name: str, cloud_id: str,
                     options: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """For ``recon import``: the file block that describes a live resource, and its cloud name."""


@runtime_checkable
class Adoptable(Protocol):
    def adopt(self, ctx: CloudContext, name: str, cloud_id: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """For ``recon import`` of a block already in the file: make ``cloud_id`` that resource; its live attrs."""


@runtime_checkable
class Prepares(Protocol):
    def prepare(self, name: str, attrs: dict[str, Any], base_dir: Path,
                report: Callable[[str, str], None] | None = None) -> dict[str, Any]:
        """Local work a plan needs and validate does not (reading a base image): more attributes.

        ``report(address, message)`` says what long work is doing.
        """


@runtime_checkable
class TableSettings(Protocol):
    def split_table(self, table: Mapping[str, Any], problems: Problems) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split a kind's table into resource blocks and kind-wide settings."""

    def removal(self, name: str, settings: Mapping[str, Any]) -> Removal:
        """What leaving the file means, under the kind-wide ``settings``."""


@runtime_checkable
class Preexisting(Protocol):
    def creatable(self, name: str, attrs: Mapping[str, Any]) -> bool:
        """Whether recon can make this resource when the cloud lacks it."""

    def missing_message(self, cloud_name: Any) -> str:
        """What a plan says of a resource the cloud lacks and recon cannot make."""


@runtime_checkable
class NamesOthers(Protocol):
    def named(self, name: str, attrs: Mapping[str, Any]) -> list[NameUse]:
        """The string values of normalized attributes that name other resources (see ``names.py``)."""


@runtime_checkable
class ChecksLive(Protocol):
    def check(self, name: str, resolved: Mapping[str, Any], live: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Problems only the live read shows (a name naming several things); ``live`` is every kind's.

        (A required name of :meth:`NamesOthers.named` naming nothing is checked for every kind.)
        """


@runtime_checkable
class ReplacesInstances(Protocol):
    def replacements(self, name: str, want: Mapping[str, Any], live: Mapping[str, Any]) -> list[Replacement]:
        """The parts an update to ``want`` (the compared desired view) terminates and launches again,
        from the live attributes (for changes of ``Traits.replaces_instances``); plans show and count
        each one as a replacement."""


@runtime_checkable
class ReplacesParts(Protocol):
    def requested(self, name: str, part: str | None, live: Mapping[str, Any]) -> list[Replacement] | None:
        """The parts ``--replace`` names (``part``: one of them, as in ``KIND.NAME[part]``; None: what
        ``--replace KIND.NAME`` replaces, all its parts, or None where that replaces the resource whole),
        from the live attributes. Raises ValueError saying why ``part`` names none."""


@runtime_checkable
class ServesInstances(Protocol):
    def hand_over(self, ctx: CloudContext, name: str, attrs: Mapping[str, Any], add: list[str],
                  remove: list[str]) -> None:
        """Start serving the instances ``add``, then stop serving ``remove`` (which are about to be
        terminated), for the attributes of ``Traits.serves_instances``. Nothing if the resource does
        not exist yet."""


@runtime_checkable
class Resumable(Protocol):
    def resume_reason(self, name: str, progress: Mapping[str, Any]) -> str:
        """What a plan says of a create that resumes an interrupted one (``progress``: its checkpoint)."""


def split_table(kind: Kind, table: Mapping[str, Any], problems: Problems) -> tuple[dict[str, Any], dict[str, Any]]:
    """A kind's table as resource blocks and kind-wide settings (none, unless it has :class:`TableSettings`)."""
    return kind.split_table(table, problems) if isinstance(kind, TableSettings) else (dict(table), {})


def removal(kind: Kind, name: str, settings: Mapping[str, Any]) -> Removal:
    """What leaving the file means for a resource: delete it, unless its kind's settings say otherwise."""
    return kind.removal(name, settings) if isinstance(kind, TableSettings) else Removal.DELETE


def import_block(kind: Kind, ctx: CloudContext, name: str, cloud_id: str,
                 options: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """For ``recon import``: the block of a live resource and its cloud name, where its kind is :class:`Importable`."""
    if not isinstance(kind, Importable):
        raise ReconError(f"recon import does not support {kind.name} yet")
    return kind.import_block(ctx, name, cloud_id, options)


def adopt(kind: Kind, ctx: CloudContext, name: str, cloud_id: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """For ``recon import`` of a block in the file: its live attributes, where its kind is :class:`Adoptable`."""
    if not isinstance(kind, Adoptable):
        raise ReconError(f"{kind.name}.{name} is already in the file")
    return kind.adopt(ctx, name, cloud_id, attrs)


def prepare(kind: Kind, name: str, attrs: dict[str, Any], base_dir: Path,
            report: Callable[[str, str], None] | None = None) -> dict[str, Any]:
    """A block's attributes with its kind's local preparation done (none, unless it :class:`Prepares`)."""
    return kind.prepare(name, attrs, base_dir, report) if isinstance(kind, Prepares) else attrs
