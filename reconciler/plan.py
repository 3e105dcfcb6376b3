"""What a plan is: a list of changes, each with an action.

Like Terraform's ``plans.Action``, an action's value is its symbol.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .addresses import Address

if TYPE_CHECKING:
    from .identity import CloudIdentity


class Unknown:
    """A value that is known only once apply has made what it depends on."""

    _instance: "Unknown | None" = None

    def __new__(cls) -> "Unknown":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "(known after apply)"

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return (Unknown, ())


UNKNOWN = Unknown()


def contains_unknown(value: Any) -> bool:
    if value is UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_unknown(v) for v in value)
    return False


class Action(enum.Enum):
    NOOP = " "
    CREATE = "+"
    UPDATE = "~"
    REPLACE = "-/+"                 # delete, then create
    CREATE_THEN_DELETE = "+/-"      # create the new one first
    DELETE = "-"

    @property
    def symbol(self) -> str:
        return self.value

    @property
    def verb(self) -> str:
        return {
            Action.NOOP: "is up to date",
            Action.CREATE: "will be created",
            Action.UPDATE: "will be updated in place",
            Action.REPLACE: "must be replaced",
            Action.CREATE_THEN_DELETE: "must be replaced (new one created first)",
            Action.DELETE: "will be destroyed",
        }[self]

    @property
    def json_actions(self) -> list[str]:
        return {
            Action.NOOP: ["no-op"], Action.CREATE: ["create"], Action.UPDATE: ["update"],
            Action.REPLACE: ["delete", "create"], Action.CREATE_THEN_DELETE: ["create", "delete"],
            Action.DELETE: ["delete"],
        }[self]


@dataclass(frozen=True)
class Replacement:
    """A part of a resource an update terminates and launches again (a host of docker_hosts)."""

    #: What a plan calls it: ``docker_hosts.docker[0]``.
    label: str
    #: The cloud ids of what is terminated.
    old_ids: tuple[str, ...]


@dataclass(frozen=True)
class Payload:
    """What apply needs of a change and plans do not show, kept beside it."""

    #: The file's attributes, references unresolved (what apply resolves again).
    config: dict[str, Any] | None = None
    #: The desired attributes as resolved at plan time.
    desired: dict[str, Any] | None = None
    #: The live attributes, and the prior (state) ones.
    live: dict[str, Any] | None = None
    prior: dict[str, Any] | None = None
    #: The subset of the change's ``sensitive_paths`` sensitive because they reference a sensitive
    #: value: state keeps only their digest.
    sensitive_refs: list[str] = field(default_factory=list)
    #: What an interrupted apply checkpointed of the object this create resumes (state's ``partial``).
    resumes: dict[str, Any] | None = None


@dataclass(frozen=True)
class Change:
    """One resource's change, made once by the planner and never changed after (later steps make
    new ones with ``dataclasses.replace``).

    ``before`` is the live value as recon compares it (None when it does not exist);
    ``after`` the desired value (None when it is to be deleted), with UNKNOWN where a
    value depends on a resource not made yet. ``changed_paths`` are dotted attribute
    paths; ``replace_paths`` the subset that forces replacement.
    """

    address: Address
    action: Action
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changed_paths: list[str] = field(default_factory=list)
    replace_paths: list[str] = field(default_factory=list)
    sensitive_paths: list[str] = field(default_factory=list)
    reason: str = ""
    #: Lines shown under the change, such as a unified diff of a file it writes.
    notes: list[str] = field(default_factory=list)
    #: In state, and the cloud no longer has it (drift), or its attributes moved since apply.
    drift: str | None = None
    depends_on: list[Address] = field(default_factory=list)
    #: Why it depends on each of ``depends_on`` ("references ${…}", "names KIND.NAME", "depends_on").
    depends_on_reasons: dict[Address, list[str]] = field(default_factory=dict)
    #: What it depended on when last applied: it stops using those before they are deleted.
    prior_depends_on: list[Address] = field(default_factory=list, repr=False)

    #: Parts an update replaces (computed by the kind from desired and live): each one is a
    #: create and a delete, in ``replace_action``'s order.
    replacements: list[Replacement] = field(default_factory=list)
    replace_action: Action = Action.CREATE_THEN_DELETE
    #: The labels of the parts ``--replace`` asked for (of ``replacements``): the applier has the kind
    #: launch them again although nothing about them changed.
    requested: list[str] = field(default_factory=list)

    #: For the delete of a deposed object (the old one a create-before-destroy replaced): its id.
    deposed_id: str | None = None
    #: For apply, not shown.
    payload: Payload = field(default_factory=Payload, repr=False)

    @property
    def key(self) -> tuple[Address, str]:
        """Unique within a plan: a resource's change and the deletes of its deposed objects."""
        return (self.address, self.deposed_id or "")

    @property
    def label(self) -> str:
        return f"{self.address} (deposed {self.deposed_id})" if self.deposed_id else str(self.address)

    @property
    def kind(self) -> str:
        return self.address.kind

    @property
    def shown_action(self) -> Action:
        """What the change does as plans show it: an update that replaces parts is a replacement."""
        return self.replace_action if self.replacements else self.action

    @property
    def in_place(self) -> bool:
        """Whether an update changes something other than the parts it replaces."""
        return self.action is Action.UPDATE and (
            not self.replacements or any(p not in self.replace_paths for p in self.changed_paths))

    @property
    def name(self) -> str:
        return self.address.name


@dataclass
class Plan:
    stack: str
    changes: list[Change]
    #: State entries that leave state without any cloud call (removed from the file
    #: for a kind that keeps its resources, or already gone from the cloud).
    forget: list[Address] = field(default_factory=list)
    #: Deposed objects already gone from the cloud (a retire killed after its last call): (address, id),
    #: dropped from state without any cloud call.
    forget_deposed: list[tuple[Address, str]] = field(default_factory=list)
    #: Live resources tagged with this stack, in neither the file nor the state: (address, cloud id).
    unmanaged: list[tuple[Address, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: What the cloud differs in from the file and this plan leaves as it is, with why (load balancers'
    #: workers on another image under ``workers = "report"``, a revision kept for the workers that run
    #: it): (address, message). Drift reports them.
    reported: list[tuple[Address, str]] = field(default_factory=list)
    #: Every block of the file, targeted or not, that serves instances (``Traits.serves_instances``),
    #: with its configuration: a rolling replacement hands the traffic over to the new ones.
    serving: dict[Address, dict[str, Any]] = field(default_factory=dict)
    #: The cloud and account the plan was made against (None: a plan made without a cloud).
    cloud: CloudIdentity | None = None
    #: A plan of ``recon destroy`` / ``plan --destroy``: everything in state goes.
    destroy: bool = False

    @property
    def actionable(self) -> list[Change]:
        return [c for c in self.changes if c.action is not Action.NOOP]

    @property
    def has_changes(self) -> bool:
        return bool(self.actionable)

    def summary(self) -> dict[str, int]:
        add = change = destroy = 0
        for c in self.actionable:
            if c.replacements:
                add += len(c.replacements)
                destroy += sum(len(r.old_ids) for r in c.replacements)
                change += 1 if c.in_place else 0
            elif c.action is Action.CREATE:
                add += 1
            elif c.action is Action.UPDATE:
                change += 1
            elif c.action is Action.DELETE:
                destroy += 1
            elif c.action is Action.CREATE_THEN_DELETE:
                add += 1   # its delete is the separate change of the deposed object
            else:
                add += 1
                destroy += 1
        return {"add": add, "change": change, "destroy": destroy}
