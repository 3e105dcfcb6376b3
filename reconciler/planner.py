"""The planner: a pure function of (desired, live, state) to a Plan.

No I/O happens here. :func:`make_plan` reads as its steps: refuse an empty read (:func:`guard`), take
the targets and what they depend on (:func:`select`), plan each desired block (:func:`desired`, one
:func:`plan_block` each), then what state holds that the file no longer asks for (:func:`orphans`),
what interrupted applies left behind (:func:`interrupted`), and what the cloud holds of this stack
that neither file nor state knows (:func:`unmanaged`); those last three live in
``reconciler/leftovers.py``. Two inputs beside the file: ``replacing`` (``--replace``: resources, or
parts of one, replaced although nothing changed, see :func:`requested`) and ``destroy`` (the plan
of ``recon destroy``, :func:`destruction`: what removing every block from the file would plan).

Blocks are visited in reference order so that a reference to a resource that is unchanged resolves
to its live value, and one to a resource that is still to be made stays UNKNOWN until apply
(:class:`~reconciler.references.References`, which the applier uses too).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from graphlib import TopologicalSorter
from typing import Any, Collection, Mapping

from .addresses import Address, SubAddress
from .config import ResourceSpec, Stack
from .diff import changed_paths, get_path
from .errors import PlanError
from .leftovers import Leaving, Live, Part, delete_change, interrupted, leaving_the_cloud, orphans, unmanaged
from .names import missing
from .plan import UNKNOWN, Action, Change, Payload, Plan, Replacement, contains_unknown
from .redact import digested, redact, remember
from .references import Planned, References
from .resolve import resolve_attrs
from .resources import KINDS, Kind
from .resources.abilities import ChecksLive, Preexisting, ReplacesInstances, ReplacesParts, Resumable
from .schema import nearest
from .state.model import Entry, State

#: What a plan says of a create that resumes an interrupted one, unless its kind is Resumable.
RESUMES = "resumes what an interrupted apply began"


def make_plan(stack: Stack, live: Live, state: State, *, targets: Collection[Address] = (),
              replacing: Collection[SubAddress] = (), destroy: bool = False) -> Plan:
    """The plan that brings the cloud to the file (``destroy``: to nothing of what state holds), the
    resources and parts ``replacing`` names replaced (``--replace``); a PlanError naming every problem
    where there is one."""
    guard(state, live)
    if destroy:
        return destruction(stack, live, state, targets)
    selected = select(targets, stack.resources)
    wanted, refs = desired(stack, live, state, selected, replacing)
    left = orphans(stack, live, state, selected)
    resumed = interrupted(stack, live, state, selected, refs.planned)
    outside = [f"--replace {request}: not among the --target addresses and what they depend on"
               for request in replacing if selected is not None and request.address not in selected]
    problems = outside + wanted.problems + left.problems
    if problems:
        raise PlanError("cannot plan:\n  " + "\n  ".join(problems))
    return Plan(stack=stack.name, changes=wanted.changes + left.changes + resumed, forget=left.forget,
                forget_deposed=left.forget_deposed, unmanaged=unmanaged(stack, live, state), serving=serving(stack))


def destruction(stack: Stack, live: Live, state: State, targets: Collection[Address]) -> Plan:
    """The plan of ``recon destroy``: what removing every (targeted) block from the file plans -- the
    deletes of what state holds (dependents first), forgetting what the kind keeps -- with the
    targets' dependents in state along (a target cannot go while something still uses it)."""
    nothing = replace(stack, resources={})
    selected = dependents(targets, state) if targets else None
    left = orphans(nothing, live, state, selected)
    resumed = interrupted(nothing, live, state, selected, {})
    if left.problems:
        raise PlanError("cannot plan:\n  " + "\n  ".join(left.problems))
    return Plan(stack=stack.name, changes=left.changes + resumed, forget=left.forget,
                forget_deposed=left.forget_deposed, unmanaged=unmanaged(stack, live, state), destroy=True)


def dependents(targets: Collection[Address], state: State) -> set[Address]:
    """The targets and every state entry that depended on one of them when last applied."""
    found = set(targets)
    while True:
        more = {address for address, entry in state.resources.items()
                if address not in found and found & set(entry.depends_on)}
        if not more:
            return found
        found |= more


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

def desired(stack: Stack, live: Live, state: State, selected: set[Address] | None,
            replacing: Collection[SubAddress] = ()) -> tuple[Part, References]:
    """The changes of the file's (selected) blocks in reference order, and the references they resolve."""
    part, refs = Part(), References()
    leaving = leaving_the_cloud(stack, state, live, selected)
    for address in order(stack.resources):
        if selected is not None and address not in selected:
            continue
        asked = [request.part for request in replacing if request.address == address]
        block_part, planned = plan_block(address, stack, live, state, refs, leaving, asked)
        part.changes.extend(block_part.changes)
        part.problems.extend(block_part.problems)
        if planned is not None:
            refs.add(address, planned)
    return part, refs


def order(resources: Mapping[Address, ResourceSpec]) -> list[Address]:
    """The addresses, each after those it depends on."""
    graph = {address: sorted(d for d in spec.dependencies() if d in resources) for address, spec in resources.items()}
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
               leaving: Leaving, asked: list[str | None] = ()) -> tuple[Part, Planned | None]:
    """One desired block: its change (after the delete of the object it moves away from, where it does
    so), and what references see of it; or the problems that stop it. ``asked``: the parts of it
    ``--replace`` names (None: the whole resource)."""
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
        change, deletes = compare(block), switched_from(block, live)
    if asked:
        change, problems = requested(change, block, asked)
        if problems:
            return Part(problems=problems), None
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
                 sorted(kind.sensitive_paths(address.name, attrs, found) | tainted))


def hidden_name(block: Block) -> list[str]:
    """The problem of a name in the cloud that would hold a hidden value."""
    name = block.cloud_name
    if block.tainted and name is not UNKNOWN and redact(str(name)) != str(name):
        return [f"{block.address}: its name in the cloud would hold a hidden value, and every user of the "
                "cloud sees names (and state keeps them): name it otherwise"]
    return []


def checks(block: Block, stack: Stack, live: Live, leaving: Leaving) -> list[str]:
    """The problems of required names that name nothing which stays, and those only the live read shows."""
    found = missing(block.address, block.spec, live, stack.resources, leaving)
    if isinstance(block.kind, ChecksLive):
        found += block.kind.check(block.address.name, block.attrs, live)
    return [f"{block.address}: {problem}" for problem in found]


def uncreatable(block: Block, live: Live, refs: References) -> list[str]:
    """The problem of a block the cloud lacks and its kind cannot make (an image, a property), unless a
    block it depends on changes first."""
    kind = block.kind
    if block.live is not None or not isinstance(kind, Preexisting) or kind.creatable(block.address.name, block.attrs) \
            or refs.pending(block.deps):
        return []
    known = live.get(block.address.kind, {})
    guess = nearest(str(block.cloud_name), list(known)) if known else None
    return [f"{block.address}: {kind.missing_message(block.cloud_name)}"
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
    entry, kind, cbd = block.entry, block.kind, block.kind.traits.create_before_destroy
    before = {k: old.get(k, v) for k, v in entry.attrs.items()}
    after = kind.display_view(block.address.name, block.attrs)
    moved = sorted(k for k in after if before.get(k) != after[k])
    reason = f"replaces {entry.id[:24]}"
    deletes = []
    if cbd:
        reason += ", deleted once nothing uses it"
        if not any(item["id"] == entry.id for item in entry.deposed):
            deletes.append(delete_change(block.address, entry.id, before, entry.attrs, kind, deposed=True))
    action = Action.CREATE_THEN_DELETE if cbd else Action.REPLACE
    return Change(block.address, action, before, after, changed_paths=moved, replace_paths=moved,
                  sensitive_paths=block.sensitive, depends_on=block.deps, reason=reason), deletes


def switched_from(block: Block, live: Live) -> list[Change]:
    """The delete of the object state knows of a block that now names another object the cloud has
    (an image block switched from a source to an existing image), where the kind retires it: after
    everything using it moved on, as a replaced object goes."""
    entry, kind = block.entry, block.kind
    if entry is None or block.cloud_name is UNKNOWN or entry.id == block.cloud_name or \
            any(item["id"] == entry.id for item in entry.deposed):
        return []
    old = live.get(block.address.kind, {}).get(entry.id)
    reason = None if old is None else kind.retires_previous(block.address.name, entry.attrs, old, block.live)
    if reason is None:
        return []
    before = {k: old.get(k, v) for k, v in entry.attrs.items()}
    return [delete_change(block.address, entry.id, before, entry.attrs, kind, deposed=True, reason=reason)]


def create(block: Block) -> Change:
    """The create of a block the cloud lacks (again, where state knew it: drift)."""
    after = block.kind.display_view(block.address.name, block.attrs)
    return Change(block.address, Action.CREATE, None, after, changed_paths=sorted(after),
                  sensitive_paths=block.sensitive, drift="missing" if block.entry else None, depends_on=block.deps,
                  reason="gone from the cloud" if block.entry else "")


def compare(block: Block) -> Change:
    """The change of a block the cloud has: its view of the file against the live one."""
    if contains_unknown(block.attrs):
        want = dict(block.kind.display_view(block.address.name, block.attrs))
        have = {k: v for k, v in block.live.items() if k in want}
    else:
        want, have = block.kind.compare_view(block.address.name, block.attrs, block.live, block.prior)
    return diff(block, want, have)


def diff(block: Block, want: dict[str, Any], have: dict[str, Any]) -> Change:
    """No-op, update (replacing parts where the kind says) or replacement, from the paths that differ;
    drift where state recorded what the file asks and the cloud moved away from it."""
    traits = block.kind.traits
    paths = changed_paths(have, want, traits.set_attrs)
    if not paths:
        return Change(block.address, Action.NOOP, have, want, depends_on=block.deps, sensitive_paths=block.sensitive)
    replacing = Action.CREATE_THEN_DELETE if traits.create_before_destroy else Action.REPLACE
    replace_paths = [p for p in paths if p.split(".")[0] in traits.replace_on]
    replacements = [] if replace_paths else instance_replacements(block, want, paths)
    action = replacing if replace_paths else Action.UPDATE
    if replacements:
        replace_paths = [p for p in paths if p.split(".")[0] in traits.replaces_instances]
    drifted = []
    if block.prior is not None:  # what state keeps of a referenced secret is its digest
        applied = digested(want, sorted(block.tainted))
        drifted = [p for p in paths
                   if get_path(block.prior, p) == get_path(applied, p) and get_path(want, p) is not None]
    return Change(block.address, action, have, want, changed_paths=paths, replace_paths=replace_paths,
                  replacements=replacements, replace_action=replacing, sensitive_paths=block.sensitive,
                  depends_on=block.deps, drift="changed" if drifted else None,
                  reason=("changed outside recon: " + ", ".join(drifted)) if drifted else "")


def instance_replacements(block: Block, want: dict[str, Any], paths: list[str]) -> list:
    """The instances an update replaces one by one, where a changed path makes the kind do so."""
    kind = block.kind
    if not isinstance(kind, ReplacesInstances) or \
            not any(p.split(".")[0] in kind.traits.replaces_instances for p in paths):
        return []
    return kind.replacements(block.address.name, want, block.live)


def requested(change: Change, block: Block, asked: list[str | None]) -> tuple[Change, list[str]]:
    """The change with the replacements ``--replace`` asked for, reason "requested"; or the problems.

    A kind whose parts ``--replace`` can name replaces the parts named (or all of them) in an update;
    another kind's resource is replaced whole. What does not exist yet is simply created."""
    kind, address = block.kind, block.address
    why = "; ".join(filter(None, [change.reason, "requested"]))
    if block.live is None or change.action is Action.CREATE:
        return change, []
    if isinstance(kind, ReplacesParts):
        try:
            named = [kind.requested(address.name, part, block.live) for part in asked]
        except ValueError as exc:
            return change, [f"--replace {address}: {exc}"]
        if None not in named:   # (None: the kind replaces the resource whole)
            return requested_parts(change, kind, [r for found in named for r in found], why), []
    elif any(part is not None for part in asked):
        return change, [f"--replace {address}[…]: {address} has no parts to replace (--replace {address} "
                        "replaces it whole)"]
    if isinstance(kind, Preexisting) and not kind.creatable(address.name, block.attrs):
        return change, [f"--replace {address}: recon cannot make this {kind.noun} (the cloud does), so it "
                        "cannot replace it"]
    if kind.traits.create_before_destroy:
        return change, [f"--replace {address}: this {kind.noun} is made anew when its content changes, "
                        "never again as it is"]
    if change.action in (Action.REPLACE, Action.CREATE_THEN_DELETE):
        return replace(change, reason=why), []
    return replace(change, action=Action.REPLACE, reason=why), []


def requested_parts(change: Change, kind: Kind, asked_for: list[Replacement], why: str) -> Change:
    """The change with the parts ``--replace`` named among its replacements (each once)."""
    have = {r.label for r in change.replacements}
    parts = change.replacements + [r for r in dict.fromkeys(asked_for) if r.label not in have]
    action = Action.UPDATE if change.action is Action.NOOP else change.action
    replacing = Action.CREATE_THEN_DELETE if kind.traits.create_before_destroy else Action.REPLACE
    return replace(change, action=action, replacements=parts, replace_action=replacing, reason=why,
                   requested=sorted({r.label for r in asked_for}))


def finish(change: Change, block: Block, partial: dict[str, Any] | None) -> Change:
    """The change with what apply needs beside it (the file's, resolved, live and prior attributes), why
    it depends on each block, and the checkpoint of an interrupted apply it resumes."""
    resumes, reason, kind = None, change.reason, block.kind
    if partial is not None and partial["id"] == block.cloud_name and change.action is not Action.NOOP:
        resumes = dict(partial["attrs"])
        resuming = kind.resume_reason(block.address.name, resumes) if isinstance(kind, Resumable) else RESUMES
        reason = "; ".join(filter(None, [reason, resuming]))
    payload = Payload(config=block.spec.attrs, desired=block.attrs, live=block.live, prior=block.prior,
                      sensitive_refs=sorted(block.tainted), resumes=resumes)
    return replace(change, reason=reason, depends_on_reasons=block.spec.reasons(), payload=payload,
                   prior_depends_on=list(block.entry.depends_on) if block.entry else [])


# --- what the plan serves -----------------------------------------------------------------------------

def serving(stack: Stack) -> dict[Address, dict[str, Any]]:
    """Every block of the file, targeted or not, whose kind serves instances, with its configuration."""
    return {address: spec.attrs for address, spec in stack.resources.items()
            if KINDS[address.kind].traits.serves_instances}
