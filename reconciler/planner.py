"""The planner: a pure function of (desired, live, state) to a Plan.

No I/O happens here. :func:`make_plan` reads as its steps: refuse an empty read (:func:`guard`), take
the targets and what they depend on (:func:`select`), plan each desired block (:func:`desired`, one
:func:`plan_block` each), then what state holds that the file no longer asks for (:func:`orphans`),
what interrupted applies left behind (:func:`interrupted`), and what the cloud holds of this stack
that neither file nor state knows (:func:`unmanaged`).

Blocks are visited in reference order so that a reference to a resource that is unchanged resolves
to its live value, and one to a resource that is still to be made stays UNKNOWN until apply
(:class:`References`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from graphlib import TopologicalSorter
from typing import Any, Collection, Mapping

from .addresses import Address, Reference
from .config import ResourceSpec, Stack
from .diff import changed_paths, get_path
from .errors import PlanError
from .names import missing
from .plan import UNKNOWN, Action, Change, Plan, contains_unknown
from .redact import digest_keys, digested, redact, remember
from .resolve import resolve_attrs
from .resources import KINDS, Kind
from .resources.tags import OWNER
from .schema import nearest
from .state.model import Entry, State

Live = Mapping[str, Mapping[str, dict[str, Any]]]  # kind -> cloud name -> attributes
Leaving = Mapping[tuple[str, str], Address]         # (kind, cloud id) -> address, see leaving_the_cloud

#: The actions that make a new object: what the cloud computes of it is not known before apply.
MAKES = (Action.CREATE, Action.REPLACE, Action.CREATE_THEN_DELETE)


def make_plan(stack: Stack, live: Live, state: State, *, targets: Collection[Address] = ()) -> Plan:
    """The plan that brings the cloud to the file; a PlanError naming every problem where there is one."""
    guard(state, live)
    selected = select(targets, stack.resources)
    wanted, refs = desired(stack, live, state, selected)
    left = orphans(stack, live, state, selected)
    resumed = interrupted(stack, live, state, selected, refs)
    problems = wanted.problems + left.problems
    if problems:
        raise PlanError("cannot plan:\n  " + "\n  ".join(problems))
    return Plan(stack=stack.name, changes=wanted.changes + left.changes + resumed, forget=left.forget,
                forget_deposed=left.forget_deposed, unmanaged=unmanaged(stack, live, state), serving=serving(stack))


@dataclass
class Part:
    """What a step adds to the plan: changes in plan order, state entries and deposed objects to drop
    from state without a cloud call, and the problems that stop the plan."""

    changes: list[Change] = field(default_factory=list)
    forget: list[Address] = field(default_factory=list)
    forget_deposed: list[tuple[Address, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def guard(state: State, live: Live) -> None:
    """Refuse a read that found nothing at all while state holds resources."""
    if state.resources and not any(live.values()):
        raise PlanError(
            f"the cloud returned no resources of any kind, yet state holds {len(state.resources)}: that is a wrong "
            "endpoint or wrong credentials, not an empty cloud; refusing to plan their re-creation or deletion",
            hint="check EC2_URL / [cloud] and the access key (recon validate; euca-describe-properties); if the "
                 "cloud really lost everything, move the state file away and plan again")


def select(targets: Collection[Address], resources: Mapping[Address, ResourceSpec]) -> set[Address] | None:
    """The addresses a targeted plan covers (None: all of them)."""
    return closure(targets, resources) if targets else None


def closure(targets: Collection[Address], resources: Mapping[Address, ResourceSpec]) -> set[Address]:
    """The targets and everything they depend on."""
    seen: set[Address] = set()
    stack = list(targets)
    while stack:
        address = stack.pop()
        if address in seen:
            continue
        seen.add(address)
        if address in resources:
            stack.extend(resources[address].dependencies())
    return seen


# --- the file's blocks -------------------------------------------------------------------------------

@dataclass
class Planned:
    """What the planner knows about a desired resource once visited."""

    change: Change
    resolved: dict[str, Any]
    live: dict[str, Any] | None


class References:
    """The blocks planned so far, as the references of later blocks see them.

    A reference to a block that a change makes anew takes the file's value, or UNKNOWN where the
    cloud computes it; to any other block, the live value overlaid with the file's, or UNKNOWN where
    the change recomputes it (the instance ids of hosts an update replaces).
    """

    def __init__(self) -> None:
        self.planned: dict[Address, Planned] = {}

    def add(self, address: Address, planned: Planned) -> None:
        self.planned[address] = planned

    def value(self, ref: Reference) -> Any:
        """The value a reference resolves to at plan time."""
        target = self.planned.get(ref.address)
        if target is None:
            return UNKNOWN
        kind = KINDS[ref.address.kind]
        change = target.change
        if change.action in MAKES:
            if ref.attr in kind.computed:
                return UNKNOWN
            attrs = target.resolved
        elif ref.attr in kind.computed and any(p.split(".")[0] in kind.recompute_on for p in change.changed_paths):
            return UNKNOWN
        else:
            attrs = {**(target.live or {}), **{k: v for k, v in target.resolved.items() if k in kind.fields}}
        value = kind.output(ref.address.name, attrs, ref.attr)
        return UNKNOWN if value is None or contains_unknown(value) else value

    def sensitive(self, ref: Reference) -> bool:
        """Whether the referenced attribute holds a hidden value."""
        target = self.planned.get(ref.address)
        return target is not None and ref.attr in {p.split(".")[0] for p in target.change.sensitive_paths}

    def pending(self, addresses: Collection[Address]) -> bool:
        """Whether any of these blocks is planned to change."""
        return any(self.planned[a].change.action is not Action.NOOP for a in addresses if a in self.planned)


def desired(stack: Stack, live: Live, state: State, selected: set[Address] | None) -> tuple[Part, References]:
    """The changes of the file's (selected) blocks in reference order, and the references they resolve."""
    part, refs = Part(), References()
    leaving = leaving_the_cloud(stack, state, live, selected)
    for address in order(stack.resources):
        if selected is not None and address not in selected:
            continue
        block_part, planned = plan_block(address, stack, live, state, refs, leaving)
        part.changes.extend(block_part.changes)
        part.problems.extend(block_part.problems)
        if planned is not None:
            refs.add(address, planned)
    return part, refs


def order(resources: Mapping[Address, ResourceSpec]) -> list[Address]:
    """The addresses, each after those it depends on."""
    graph = {address: sorted(spec.dependencies() & set(resources)) for address, spec in resources.items()}
    sorter = TopologicalSorter(graph)
    return list(sorter.static_order())


@dataclass(frozen=True)
class Block:
    """A desired block with its references resolved, beside what the cloud and state hold of it."""

    address: Address
    spec: ResourceSpec
    kind: Kind
    attrs: dict[str, Any]          # resolved and finalized (where nothing is UNKNOWN)
    tainted: set[str]              # the attributes that take a hidden value through a reference
    cloud_name: Any                # the name the cloud knows it by, or UNKNOWN
    live: dict[str, Any] | None
    entry: Entry | None            # state's
    sensitive: list[str]

    @property
    def deps(self) -> list[Address]:
        return sorted(self.spec.dependencies())

    @property
    def prior(self) -> dict[str, Any] | None:
        return self.entry.attrs if self.entry else None


def plan_block(address: Address, stack: Stack, live: Live, state: State, refs: References,
               leaving: Leaving) -> tuple[Part, Planned | None]:
    """One desired block: its change (after the delete of the object it moves away from, where it does
    so), and what references see of it; or the problems that stop it."""
    block = resolve(address, stack.resources[address], live, state, refs)
    problems = hidden_name(block)
    if not problems:
        remember([get_path(block.attrs, path) for path in block.sensitive])
        problems = checks(block, stack, live, leaving) or uncreatable(block, live, refs)
    if problems:
        return Part(problems=problems), None
    old = moved_from(block, live)
    if old is not None:
        change, deletes = move(block, old)
    elif block.live is None:
        change, deletes = create(block), []
    else:
        change, deletes = compare(block), []
    change = finish(change, block, state.partial.get(address))
    return Part(changes=[*deletes, change]), Planned(change, block.attrs, block.live)


def resolve(address: Address, spec: ResourceSpec, live: Live, state: State, refs: References) -> Block:
    """The block with its references resolved, and the live object of its name."""
    kind = KINDS[address.kind]
    attrs, tainted = resolve_attrs(spec.attrs, refs.value, refs.sensitive)
    if not contains_unknown(attrs):
        attrs = kind.finalize(address.name, attrs)
    cloud_name = kind.live_name(address.name, attrs)
    found = None if cloud_name is UNKNOWN else live.get(address.kind, {}).get(cloud_name)
    return Block(address, spec, kind, attrs, tainted, cloud_name, found, state.resources.get(address),
                 sorted(kind.sensitive_paths(attrs, found) | tainted))


def hidden_name(block: Block) -> list[str]:
    """The problem of a name in the cloud that would hold a hidden value."""
    name = block.cloud_name
    if block.tainted and name is not UNKNOWN and redact(str(name)) != str(name):
        return [f"{block.address}: its name in the cloud would hold a hidden value, and every user of the "
                "cloud sees names (and state keeps them): name it otherwise"]
    return []


def checks(block: Block, stack: Stack, live: Live, leaving: Leaving) -> list[str]:
    """The problems of required names that name nothing which stays, and those only the live read shows."""
    found = missing(block.address, block.spec, live, stack.resources, leaving) + \
        block.kind.check(block.address.name, block.attrs, live)
    return [f"{block.address}: {problem}" for problem in found]


def uncreatable(block: Block, live: Live, refs: References) -> list[str]:
    """The problem of a block the cloud lacks and its kind cannot make (an image, a property), unless a
    block it depends on changes first."""
    if block.live is not None or block.kind.creatable(block.attrs) or refs.pending(block.deps):
        return []
    known = live.get(block.address.kind, {})
    guess = nearest(str(block.cloud_name), list(known)) if known else None
    return [f"{block.address}: {block.kind.missing_message(block.cloud_name)}"
            + (f" (did you mean {guess!r}?)" if guess else "")]


def moved_from(block: Block, live: Live) -> dict[str, Any] | None:
    """The live object state knows of a block that now has another identity in the cloud (a renamed
    group, a new image revision), where the cloud lacks the new one."""
    entry = block.entry
    if block.live is not None or entry is None or block.cloud_name is UNKNOWN or entry.id == block.cloud_name:
        return None
    return live.get(block.address.kind, {}).get(entry.id)


def move(block: Block, old: dict[str, Any]) -> tuple[Change, list[Change]]:
    """The replacement of the object state knows by the block's new identity, after the new one exists
    where the kind allows; then also the delete of the old one, unless an interrupted apply deposed it
    already (:func:`deposed_deletes` plans it then)."""
    entry, kind = block.entry, block.kind
    before = {k: old.get(k, v) for k, v in entry.attrs.items()}
    after = kind.display_view(block.attrs)
    moved = sorted(k for k in after if before.get(k) != after[k])
    reason = f"replaces {entry.id[:24]}"
    deletes = []
    if kind.create_before_destroy:
        reason += ", deleted once nothing uses it"
        if not any(item["id"] == entry.id for item in entry.deposed):
            deletes.append(_delete(block.address, entry.id, before, entry.attrs, kind, deposed=True))
    action = Action.CREATE_THEN_DELETE if kind.create_before_destroy else Action.REPLACE
    return Change(block.address, action, before, after, changed_paths=moved, replace_paths=moved,
                  sensitive_paths=block.sensitive, depends_on=block.deps, reason=reason), deletes


def create(block: Block) -> Change:
    """The create of a block the cloud lacks (again, where state knew it: drift)."""
    after = block.kind.display_view(block.attrs)
    return Change(block.address, Action.CREATE, None, after, changed_paths=sorted(after),
                  sensitive_paths=block.sensitive, drift="missing" if block.entry else None, depends_on=block.deps,
                  reason="gone from the cloud" if block.entry else "")


def compare(block: Block) -> Change:
    """The change of a block the cloud has: its view of the file against the live one."""
    if contains_unknown(block.attrs):
        want = dict(block.kind.display_view(block.attrs))
        have = {k: v for k, v in block.live.items() if k in want}
    else:
        want, have = block.kind.compare_view(block.address.name, block.attrs, block.live, block.prior)
    return diff(block, want, have)


def diff(block: Block, want: dict[str, Any], have: dict[str, Any]) -> Change:
    """No-op, update (replacing parts where the kind says) or replacement, from the paths that differ;
    drift where state recorded what the file asks and the cloud moved away from it."""
    kind = block.kind
    paths = changed_paths(have, want, kind.set_attrs)
    if not paths:
        return Change(block.address, Action.NOOP, have, want, depends_on=block.deps, sensitive_paths=block.sensitive)
    replacing = Action.CREATE_THEN_DELETE if kind.create_before_destroy else Action.REPLACE
    replace_paths = [p for p in paths if p.split(".")[0] in kind.replace_on]
    replacements = []
    if replace_paths:
        action = replacing
    else:
        action = Action.UPDATE
        if any(p.split(".")[0] in kind.replaces_instances for p in paths):
            replacements = kind.replacements(block.address.name, want, block.live)
        if replacements:
            replace_paths = [p for p in paths if p.split(".")[0] in kind.replaces_instances]
    drifted = []
    if block.prior is not None:  # what state keeps of a referenced secret is its digest
        applied = digested(want, sorted(block.tainted))
        drifted = [p for p in paths
                   if get_path(block.prior, p) == get_path(applied, p) and get_path(want, p) is not None]
    return Change(block.address, action, have, want, changed_paths=paths, replace_paths=replace_paths,
                  replacements=replacements, replace_action=replacing, sensitive_paths=block.sensitive,
                  depends_on=block.deps, drift="changed" if drifted else None,
                  reason=("changed outside recon: " + ", ".join(drifted)) if drifted else "")


def finish(change: Change, block: Block, partial: dict[str, Any] | None) -> Change:
    """The change with what apply needs beside it (the file's, resolved, live and prior attributes, why
    it depends on each block), its notes, and the checkpoint of an interrupted apply it resumes."""
    extra: dict[str, Any] = {}
    if partial is not None and partial["id"] == block.cloud_name and change.action is not Action.NOOP:
        extra["resumes"] = dict(partial["attrs"])
        extra["reason"] = "; ".join(filter(None, [change.reason, block.kind.resume_reason(partial["attrs"])]))
    if change.action is not Action.NOOP and not contains_unknown(block.attrs):
        extra["notes"] = block.kind.notes(block.attrs)
    return replace(change, sensitive_refs=sorted(block.tainted), depends_on_reasons=block.spec.reasons(),
                   config=block.spec.attrs, prior_depends_on=list(block.entry.depends_on) if block.entry else [],
                   desired=block.attrs, live=block.live, prior=block.prior, **extra)


# --- what state holds beyond the file ----------------------------------------------------------------

def leaving_the_cloud(stack: Stack, state: State, live: Live, selected: set[Address] | None) -> Leaving:
    """The live objects this plan deletes because their block left the file, by (kind, cloud id)."""
    found = {}
    for address, entry in state.resources.items():
        kind = KINDS.get(address.kind)
        if address in stack.resources or kind is None or (selected is not None and address not in selected):
            continue
        if entry.id in live.get(address.kind, {}) and \
                kind.removal(address.name, stack.settings.get(address.kind, {})) == "delete":
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
        if kind.removal(address.name, stack.settings.get(address.kind, {})) == "forget" or live_attrs is None:
            part.forget.append(address)
            continue
        before = {k: v for k, v in live_attrs.items() if k in entry.attrs}
        part.changes.append(_delete(address, entry.id, before, entry.attrs, kind, depends_on=list(entry.depends_on)))
    return part


def deposed_deletes(address: Address, entry: Entry, live: Live) -> list[Change]:
    """Deletes of the objects a create-before-destroy replaced and an earlier apply left behind."""
    kind = KINDS[address.kind]
    out = []
    for item in entry.deposed:
        old = live.get(address.kind, {}).get(item["id"])
        if old is not None:
            out.append(_delete(address, item["id"], {k: v for k, v in old.items() if k in item["attrs"]},
                               item["attrs"], kind, deposed=True))
    return out


def interrupted(stack: Stack, live: Live, state: State, selected: set[Address] | None,
                refs: References) -> list[Change]:
    """The deletes of what interrupted applies made in steps of objects the file no longer asks for."""
    changes = []
    for address, partial in sorted(state.partial.items()):
        if selected is not None and address not in selected:
            continue
        change = _left_by_interrupted(address, partial, stack, state, live, refs.planned)
        if change is not None:
            changes.append(change)
    return changes


def _left_by_interrupted(address: Address, partial: dict[str, Any], stack: Stack, state: State, live: Live,
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
    return _delete(address, cloud_id, before, partial["attrs"], kind, deposed=True,
                   reason="left by an interrupted apply")


# --- what the cloud holds beyond both ----------------------------------------------------------------

def unmanaged(stack: Stack, live: Live, state: State) -> list[tuple[Address, str]]:
    """Live resources tagged with this stack whose address is in neither the file nor the state."""
    found = []
    for kind_name, items in live.items():
        for cloud_id, attrs in items.items():
            owner = attrs.get(OWNER)
            if not owner or owner.get("stack") != stack.name:
                continue
            try:
                address = Address.parse(owner["address"].split("[", 1)[0])
            except ValueError:
                continue
            if address not in stack.resources and address not in state.resources:
                found.append((address, cloud_id))
    return sorted(found)


def serving(stack: Stack) -> dict[Address, dict[str, Any]]:
    """Every block of the file, targeted or not, whose kind serves instances, with its configuration."""
    return {address: spec.attrs for address, spec in stack.resources.items() if KINDS[address.kind].serves_instances}


def _delete(address: Address, cloud_id: str, before: dict[str, Any], prior: dict[str, Any], kind: Kind, *,
            deposed: bool = False, depends_on: list[Address] | None = None, reason: str | None = None) -> Change:
    """The delete of a live object (``deposed``: an earlier object of a block, by its id)."""
    if reason is None:
        reason = "replaced" if deposed else kind.removal_reason(prior)
    return Change(address, Action.DELETE, before, None, changed_paths=sorted(before),
                  sensitive_paths=sorted(kind.sensitive_paths(prior, before) | digest_keys(prior)),
                  depends_on=depends_on or [],
                  depends_on_reasons={dep: ["depended on it when last applied"] for dep in depends_on or []},
                  reason=reason, deposed_id=cloud_id if deposed else None, live=before, prior=prior)
