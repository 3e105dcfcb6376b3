"""What every resource kind provides.

A kind reads all of its live resources in a constant number of calls, normalizes
them to plain dicts, and creates, updates or deletes one resource at a time. The
planner compares the normalized desired dict with the normalized live dict, so both
sides must use the same shape: sorted lists for sets, strings where the cloud speaks
strings.

Here: :class:`Kind` (the core every kind implements) and its :class:`Traits`, and the contexts its
hooks get (:class:`LoadContext` on the file side, :class:`CloudContext` on the cloud side). What only
some kinds do is in ``abilities.py``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Mapping

from ..errors import ConfigError, shown
from ..interrupts import StopToken
from ..plan import Plan
from ..schema import Field
from ..toml_edits import append_block

if TYPE_CHECKING:
    import typer

    from ..addresses import Address, Reference
    from ..cloud import Cloud


class _NotRegular(OSError):
    """A path names a folder, a FIFO, a device…: what it is, in words."""


def read_regular(path: Path, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of a regular file; never blocks on a FIFO nor reads a device forever."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _NotRegular("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
                          "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a special file")
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit + 1)


@dataclass(frozen=True)
class LoadContext:
    """What normalizing a desired block may use: the file's folder, never the cloud."""

    base_dir: Path
    source: str  # the desired file's name, for error messages
    stack: str
    #: The file's ``[stack]`` table: stack-wide defaults of kinds' fields (``lb_workers``).
    stack_table: Mapping[str, Any] = field(default_factory=dict)
    #: sha256 of every companion file read, by its path as written: saved plans check them.
    companions: dict[str, str] = field(default_factory=dict)

    def read_companion(self, relative: str, where: str, *, limit: int = 1 << 20) -> bytes:
        """Read a file named in the desired file (relative to it), bounded in size."""
        path = (self.base_dir / relative)
        try:
            data = read_regular(path, limit)
        except _NotRegular as exc:
            raise ConfigError(f"{relative!r} is {exc}, not a regular file", where=where)
        except FileNotFoundError:
            raise ConfigError(f"file {relative!r} not found (looked in {self.base_dir})", where=where)
        except (IsADirectoryError, PermissionError, OSError) as exc:
            raise ConfigError(f"cannot read {relative!r}: {exc.strerror or exc}", where=where)
        if len(data) > limit:
            raise ConfigError(f"file {relative!r} is larger than {limit} bytes", where=where)
        target = path.resolve()
        if not target.is_relative_to(self.base_dir.resolve()):   # a link (or path) leading elsewhere
            raise ConfigError(f"{shown(relative)} leads outside this file's folder (to {shown(str(target))})",
                              where=where, hint="keep the files a stack sends to the cloud in its folder")
        self.companions[relative] = hashlib.sha256(data).hexdigest()
        return data


@dataclass(frozen=True)
class NameUse:
    """A value that names another resource by its cloud name, without a ``${…}`` reference.

    A key pair's name in a property, a docker host's ``key_name``, a group in an ingress rule:
    when the file has a block of one of ``kinds`` with that cloud name, that block becomes a
    dependency exactly as a reference would make it (see ``reconciler/names.py``).
    """

    #: The attribute, as the file writes it ("key_name", "ingress.group", "value").
    path: str
    #: The kinds whose resources it may name.
    kinds: tuple[str, ...]
    #: The literal value.
    value: str
    #: It must name something: a resource of the file, or else one the cloud has (checked at plan).
    required: bool = False


@dataclass(frozen=True)
class ImportOption:
    """An option ``recon import`` takes for one kind (``--public-key-file``); its value is a string or None."""

    #: The flag, as typed.
    flag: str
    #: What it is (the help text names the kind before it).
    help: str


@dataclass(frozen=True)
class CloudContext:
    """What a kind's read, create, update and delete may use."""

    cloud: "Cloud"
    stack: str
    base_dir: Path
    #: Progress for long steps (waits, uploads): report(address, message).
    report: Callable[[str, str], None] = lambda address, message: None
    #: The environment (a sourced eucarc: EC2_CERT, EC2_PRIVATE_KEY, EUCALYPTUS_CERT for bundling).
    env: Mapping[str, str] = field(default_factory=dict)
    #: Set when recon is told to stop: long steps check it between parts and polls.
    stop: StopToken = field(default_factory=StopToken)
    #: Called by a kind that replaces instances, before it terminates old ones:
    #: hand_over(reference to its instance-id output, new ids, old ids) moves the traffic of every
    #: resource that serves those instances (see :attr:`Traits.serves_instances`).
    hand_over: Callable[["Reference", list[str], list[str]], None] = lambda ref, add, remove: None
    #: A create made in steps records each step in state before the cloud call that does it:
    #: checkpoint(address, cloud name of the object, what it knows so far). The applier saves it.
    checkpoint: Callable[[str, str, dict[str, Any]], None] = lambda address, cloud_id, attrs: None
    #: What an interrupted apply checkpointed for ``address`` ({"id", "attrs"}), or None: the create resumes it.
    resumed: Callable[[str], dict[str, Any] | None] = lambda address: None
    #: The parts of the change being made that ``--replace`` asked for (``Change.requested``, labels
    #: such as ``docker_hosts.docker[1]``): launched again although nothing about them changed.
    renew: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Traits:
    """How the planner and the applier treat a kind's resources; every trait is off by default."""

    #: Top-level attributes whose change forces replacement.
    replace_on: frozenset[str] = frozenset()
    #: Top-level attributes that are sets: compared regardless of order.
    set_attrs: frozenset[str] = frozenset()
    #: Outputs the cloud decides (ids, DNS names): unknown until the resource exists.
    computed: frozenset[str] = frozenset()
    #: Replacement creates the new resource before deleting the old one.
    create_before_destroy: bool = False
    #: Attributes whose change makes update() replace the resource's instances one by one (the
    #: resource itself stays, so this is not ``replace_on``; see :class:`.abilities.ReplacesInstances`).
    replaces_instances: frozenset[str] = frozenset()
    #: Attributes whose change in an update gives the resource new computed outputs (new
    #: instances, new ids): references to those outputs are unknown until apply.
    recompute_on: frozenset[str] = frozenset()
    #: Other kinds whose live resources its checks or the names it uses are looked up in (read even
    #: if the file has none).
    needs_live: frozenset[str] = frozenset()
    #: Attributes listing instances the resource sends traffic to (a load balancer's ``instances``):
    #: when the instances such an attribute references are replaced, it is handed them over
    #: (see :class:`.abilities.ServesInstances`).
    serves_instances: frozenset[str] = frozenset()
    #: Its live resources carry recon's ownership tags (so unmanaged ones can be found).
    owner_tags: bool = False


class Kind:
    """The core every resource kind provides: its fields and outputs, the desired side (normalize,
    finalize), the comparison, and read, create, update and delete in the cloud.

    What only some kinds do is an ability of :mod:`.abilities` that the kind's class also derives from
    (import, local preparation, table-wide settings, serving instances, resumable creates, …).
    """

    name: str = ""
    #: What one resource is called in messages ("key pair").
    noun: str = "resource"
    #: Fields of one resource's table.
    fields: Mapping[str, Field] = {}
    #: Outputs other resources may reference, with a one-line description.
    outputs: Mapping[str, str] = {}
    traits: Traits = Traits()

    def json_schema(self, block_schema: dict[str, Any]) -> dict[str, Any]:
        """The JSON Schema of this kind's table, given the schema of one block."""
        return {"type": "object", "description": self.__doc__ or self.name,
                "additionalProperties": block_schema}

    # --- desired side (pure, no cloud) -------------------------------------------------
    def normalize(self, name: str, block: Mapping[str, Any], ctx: LoadContext) -> dict[str, Any]:
        """The canonical desired attributes of one block (references left in place)."""
        return dict(block)

    def finalize(self, name: str, attrs: dict[str, Any]) -> dict[str, Any]:
        """Canonicalize attributes after references were resolved (e.g. sort sets)."""
        return attrs

    def live_name(self, name: str, attrs: Mapping[str, Any]) -> str:
        """The name the cloud knows the resource by (the block name unless the kind says)."""
        return name

    def output(self, name: str, attrs: Mapping[str, Any], attr: str) -> Any:
        """The value of an output, from live or applied attributes."""
        return attrs.get(attr)

    # --- comparison -------------------------------------------------------------------
    def compare_view(self, name: str, desired: dict[str, Any], live: dict[str, Any],
                     prior: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The pair the planner diffs. By default attributes the file leaves out are not managed."""
        return desired, {key: value for key, value in live.items() if key in desired}

    def display_view(self, name: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """The desired attributes as a plan shows them for a resource to be created."""
        return dict(attrs)

    def sensitive_paths(self, name: str, desired: Mapping[str, Any] | None,
                        live: Mapping[str, Any] | None) -> frozenset[str]:
        """Attributes to mask in output for this resource (none by default)."""
        return frozenset()

    def removal_reason(self, name: str, prior: Mapping[str, Any]) -> str:
        """Why a plan deletes a resource that left the file, and what the delete does."""
        return "removed from the file"

    def retires_previous(self, name: str, prior: Mapping[str, Any], old: Mapping[str, Any],
                         new: Mapping[str, Any]) -> str | None:
        """Where a block now names another object the cloud has (``new``) than the one state knows
        (``old``, recorded as ``prior``): why, and how, the old one is deleted -- or None where it stays."""
        return None

    def state_attrs(self, name: str, attrs: Mapping[str, Any], live: Mapping[str, Any],
                    prior: Mapping[str, Any] | None) -> dict[str, Any]:
        """What state records for a resource: applied attributes plus live outputs, no secrets."""
        return {**{k: v for k, v in live.items() if k in self.outputs}, **attrs}

    # --- cloud side ---------------------------------------------------------------------
    def read(self, ctx: CloudContext, wanted: Mapping[str, dict[str, Any] | None]) -> dict[str, dict[str, Any]]:
        """Live attributes by cloud name, in a constant number of calls.

        ``wanted`` maps the cloud names recon cares about to their desired attributes
        (None for resources only in state); a kind may return more than asked.
        """
        raise NotImplementedError

    def create(self, ctx: CloudContext, name: str, attrs: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def update(self, ctx: CloudContext, name: str, before: dict[str, Any], after: dict[str, Any],
               changed: Collection[str]) -> dict[str, Any]:
        raise NotImplementedError

    def delete(self, ctx: CloudContext, name: str, before: dict[str, Any],
               prior: dict[str, Any] | None) -> None:
        """Delete the resource; ``before`` is its live view, ``prior`` what state recorded."""
        raise NotImplementedError

    # --- edges: import, commands, rendering ------------------------------------------
    #: Options of ``recon import`` for this kind, by the key of ``options`` :meth:`import_block` reads them under.
    import_options: Mapping[str, ImportOption] = {}
    #: What ``recon import`` takes as this kind's cloud id, when it is not just a name or an id ("emi-… or vN").
    import_ids: str = ""

    def add_to_file(self, text: str, name: str, block: Mapping[str, Any]) -> str:
        """The desired file's text with an imported block added: by default its table at the end."""
        return append_block(text, self.name, name, block)

    def file_entry(self, block: Mapping[str, Any]) -> Any:
        """What the file's data holds under ``[kind] name`` once :meth:`add_to_file` added ``block``."""
        return dict(block)

    def prepare_stack(self, name: str, attrs: dict[str, Any], prepared: Mapping["Address", Mapping[str, Any]],
                      base_dir: Path) -> dict[str, Any]:
        """Local work that needs the file's other blocks, once :meth:`prepare` ran for each (all of them in
        ``prepared``): more attributes. None by default."""
        return attrs

    def review(self, plan: Plan, live: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> None:
        """A step after the planner, no I/O: notes on this kind's changes that need the whole plan and every
        kind's live resources (the version each LB image revision installs as). Nothing by default."""

    def commands(self, app: "typer.Typer") -> None:
        """Add this kind's own commands to the ``recon`` app (``recon images``); none by default."""
