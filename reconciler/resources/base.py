"""What every resource kind provides.

A kind reads all of its live resources in a constant number of calls, normalizes
them to plain dicts, and creates, updates or deletes one resource at a time. The
planner compares the normalized desired dict with the normalized live dict, so both
sides must use the same shape: sorted lists for sets, strings where the cloud speaks
strings.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Mapping

from ..errors import ConfigError, ReconError, shown
from ..interrupts import StopToken
from ..plan import Plan, Replacement
from ..schema import Field, Problems
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
    #: resource that serves those instances (see :attr:`Kind.serves_instances`).
    hand_over: Callable[["Reference", list[str], list[str]], None] = lambda ref, add, remove: None
    #: A create made in steps records each step in state before the cloud call that does it:
    #: checkpoint(address, cloud name of the object, what it knows so far). The applier saves it.
    checkpoint: Callable[[str, str, dict[str, Any]], None] = lambda address, cloud_id, attrs: None
    #: What an interrupted apply checkpointed for ``address`` ({"id", "attrs"}), or None: the create resumes it.
    resumed: Callable[[str], dict[str, Any] | None] = lambda address: None


class Kind:
    """Base of the resource kinds; subclasses set the class attributes and the cloud methods."""

    name: str = ""
    #: What one resource is called in messages ("key pair").
    noun: str = "resource"
    #: Fields of one resource's table.
    fields: Mapping[str, Field] = {}
    #: Top-level attributes whose change forces replacement.
    replace_on: frozenset[str] = frozenset()
    #: Top-level attributes that are sets: compared regardless of order.
    set_attrs: frozenset[str] = frozenset()
    #: Top-level attributes that are never shown or stored in clear text.
    sensitive: frozenset[str] = frozenset()
    #: Outputs other resources may reference, with a one-line description.
    outputs: Mapping[str, str] = {}
    #: Outputs the cloud decides (ids, DNS names): unknown until the resource exists.
    computed: frozenset[str] = frozenset()
    #: Replacement creates the new resource before deleting the old one.
    create_before_destroy: bool = False
    #: Attributes whose change makes update() replace the resource's instances one by one
    #: (the resource itself stays, so this is not ``replace_on``; see :meth:`replacements`).
    replaces_instances: frozenset[str] = frozenset()
    #: Attributes whose change in an update gives the resource new computed outputs (new
    #: instances, new ids): references to those outputs are unknown until apply.
    recompute_on: frozenset[str] = frozenset()
    #: Other kinds whose live resources :meth:`check` or the names of :meth:`named` are looked up in
    #: (read even if the file has none).
    needs_live: frozenset[str] = frozenset()
    #: Attributes listing instances the resource sends traffic to (a load balancer's ``instances``):
    #: when the instances such an attribute references are replaced, :meth:`hand_over` is called.
    serves_instances: frozenset[str] = frozenset()
    #: Its live resources carry recon's ownership tags (so unmanaged ones can be found).
    owner_tags: bool = False
    #: Order of reading and of listing, cosmetic.
    order: int = 50

    def json_schema(self, block_schema: dict[str, Any]) -> dict[str, Any]:
        """The JSON Schema of this kind's table, given the schema of one block."""
        return {"type": "object", "description": self.__doc__ or self.name,
                "additionalProperties": block_schema}

    # --- desired side (pure, no cloud) -------------------------------------------------
    def split_table(self, table: Mapping[str, Any], problems: "Problems") -> tuple[dict[str, Any], dict[str, Any]]:
        """Split a kind's table into resource blocks and kind-wide settings (none by default)."""
        return dict(table), {}

    def normalize(self, name: str, block: Mapping[str, Any], ctx: LoadContext) -> dict[str, Any]:
        """The canonical desired attributes of one block (references left in place)."""
        return dict(block)

    def prepare(self, name: str, attrs: dict[str, Any], base_dir: Path,
                report: Callable[[str, str], None] | None = None) -> dict[str, Any]:
        """Local work a plan needs and validate does not (reading a base image): more attributes.

        ``report(address, message)`` says what long work is doing.
        """
        return attrs

    def notes(self, attrs: Mapping[str, Any]) -> list[str]:
        """Lines a plan shows under a change (e.g. a unified diff of a file); none by default."""
        return []

    def finalize(self, name: str, attrs: dict[str, Any]) -> dict[str, Any]:
        """Canonicalize attributes after references were resolved (e.g. sort sets)."""
        return attrs

    def named(self, name: str, attrs: Mapping[str, Any]) -> list[NameUse]:
        """The string values of normalized attributes that name other resources; none by default."""
        return []

    # --- comparison -------------------------------------------------------------------
    def compare_view(self, name: str, desired: dict[str, Any], live: dict[str, Any],
                     prior: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The pair the planner diffs. By default attributes the file leaves out are not managed."""
        return desired, {key: value for key, value in live.items() if key in desired}

    def replacements(self, name: str, want: Mapping[str, Any], live: Mapping[str, Any]) -> list[Replacement]:
        """The parts an update to ``want`` (the compared desired view) terminates and launches again,
        from the live attributes; plans show and count each one as a replacement. None by default."""
        return []

    def check(self, name: str, resolved: Mapping[str, Any], live: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Problems only the live read shows (a name naming several things); ``live`` is every kind's.

        None by default. (A required name of :meth:`named` naming nothing is checked for every kind.)
        """
        return []

    def output(self, name: str, attrs: Mapping[str, Any], attr: str) -> Any:
        """The value of an output, from live or applied attributes."""
        return attrs.get(attr)

    def live_name(self, name: str, attrs: Mapping[str, Any]) -> str:
        """The name the cloud knows the resource by (the block name unless the kind says)."""
        return name

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

    def hand_over(self, ctx: CloudContext, name: str, attrs: Mapping[str, Any], add: list[str],
                  remove: list[str]) -> None:
        """Start serving the instances ``add``, then stop serving ``remove`` (which are about to be
        terminated); for kinds with :attr:`serves_instances`. Nothing if the resource does not exist yet."""
        raise NotImplementedError

    def removal(self, name: str, settings: Mapping[str, Any]) -> str:
        """What leaving the file means: "delete" it from the cloud, or "forget" it."""
        return "delete"

    def removal_reason(self, prior: Mapping[str, Any]) -> str:
        """Why a plan deletes a resource that left the file, and what the delete does."""
        return "removed from the file"

    def resume_reason(self, progress: Mapping[str, Any]) -> str:
        """What a plan says of a create that resumes an interrupted one (``progress``: its checkpoint)."""
        return "resumes what an interrupted apply began"

    def sensitive_paths(self, desired: Mapping[str, Any] | None, live: Mapping[str, Any] | None) -> frozenset[str]:
        """Attributes to mask in output for this resource."""
        return self.sensitive

    def import_block(self, ctx: CloudContext, name: str, cloud_id: str,
                     options: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """For ``recon import``: the file block that describes a live resource, and its cloud name."""
        raise ReconError(f"recon import does not support {self.name} yet")

    def adopt(self, ctx: CloudContext, name: str, cloud_id: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """For ``recon import`` of a block already in the file: make ``cloud_id`` that resource; its live attrs."""
        raise ReconError(f"{self.name}.{name} is already in the file")

    def creatable(self, attrs: Mapping[str, Any]) -> bool:
        """Whether recon can make this resource when the cloud lacks it."""
        return True

    def missing_message(self, cloud_name: Any) -> str:
        return f"{cloud_name!r} does not exist in the cloud"

    def state_attrs(self, name: str, attrs: Mapping[str, Any], live: Mapping[str, Any],
                    prior: Mapping[str, Any] | None) -> dict[str, Any]:
        """What state records for a resource: applied attributes plus live outputs, no secrets."""
        return {**{k: v for k, v in live.items() if k in self.outputs}, **attrs}

    def display_view(self, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """The desired attributes as a plan shows them for a resource to be created."""
        return dict(attrs)

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
