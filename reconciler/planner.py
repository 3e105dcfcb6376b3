"""The planner: a pure function of (desired, live, state) to a Plan.

No I/O happens here. Resources are visited in reference order so that a reference to
a resource that is unchanged resolves to its live value, and one to a resource that
is still to be made stays UNKNOWN until apply.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from .resources import KINDS
from .resources.tags import OWNER
from .schema import nearest
from .state.model import State

Live = Mapping[str, Mapping[str, dict[str, Any]]]  # kind -> cloud name -> attributes


@dataclass
class Planned:
    """What the planner knows about a desired resource once visited."""

    change: Change
    resolved: dict[str, Any]
    live: dict[str, Any] | None


def order(resources: Mapping[Address, ResourceSpec]) -> list[Address]:
    graph = {address: sorted(spec.dependencies() & set(resources)) for address, spec in resources.items()}
    sorter = TopologicalSorter(graph)
    return list(sorter.static_order())


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


def make_plan(stack: Stack, live: Live, state: State, *, targets: Collection[Address] = ()) -> Plan:
    if state.resources and not any(live.values()):
        raise PlanError(
            f"the cloud returned no resources of any kind, yet state holds {len(state.resources)}: that is a wrong "
            "endpoint or wrong credentials, not an empty cloud; refusing to plan their re-creation or deletion",
            hint="check EC2_URL / [cloud] and the access key (recon validate; euca-describe-properties); if the "
                 "cloud really lost everything, move the state file away and plan again")
    kinds_settings = stack.settings
    selected = closure(targets, stack.resources) if targets else None
    planned: dict[Address, Planned] = {}
    problems: list[str] = []
    plan = Plan(stack=stack.name, changes=[])
    leaving = leaving_the_cloud(stack, state, live, selected)

    def lookup(ref: Reference) -> Any:
        target = planned.get(ref.address)
        if target is None:
            return UNKNOWN
        kind = KINDS[ref.address.kind]
        change = target.change
        if change.action in (Action.CREATE, Action.REPLACE, Action.CREATE_THEN_DELETE):
            if ref.attr in kind.computed:
                return UNKNOWN
            value = kind.output(ref.address.name, target.resolved, ref.attr)
            return UNKNOWN if value is None or contains_unknown(value) else value
        if ref.attr in kind.computed and any(p.split(".")[0] in kind.recompute_on for p in change.changed_paths):
            return UNKNOWN  # e.g. the instance ids of hosts an update replaces
        merged = {**(target.live or {}), **{k: v for k, v in target.resolved.items() if k in kind.fields}}
        value = kind.output(ref.address.name, merged, ref.attr)
        return UNKNOWN if value is None or contains_unknown(value) else value

    def sensitive_output(ref: Reference) -> bool:
        target = planned.get(ref.address)
        return target is not None and ref.attr in {p.split(".")[0] for p in target.change.sensitive_paths}

    for address in order(stack.resources):
        if selected is not None and address not in selected:
            continue
        spec = stack.resources[address]
        kind = KINDS[address.kind]
        prior_entry = state.resources.get(address)
        prior = prior_entry.attrs if prior_entry else None
        resolved, tainted = resolve_attrs(spec.attrs, lookup, sensitive_output)
        if not contains_unknown(resolved):
            resolved = kind.finalize(address.name, resolved)
        cloud_name = kind.live_name(address.name, resolved)
        if tainted and cloud_name is not UNKNOWN and redact(str(cloud_name)) != str(cloud_name):
            problems.append(f"{address}: its name in the cloud would hold a hidden value, and every user of the "
                            "cloud sees names (and state keeps them): name it otherwise")
            continue
        live_attrs = None if cloud_name is UNKNOWN else live.get(address.kind, {}).get(cloud_name)
        deps = sorted(spec.dependencies())
        sensitive = sorted(kind.sensitive_paths(resolved, live_attrs) | tainted)
        remember([get_path(resolved, path) for path in sensitive])
        found = missing(address, spec, live, stack.resources, leaving) + kind.check(address.name, resolved, live)
        if found:
            problems.extend(f"{address}: {problem}" for problem in found)
            continue

        if live_attrs is None:
            pending = any(planned[d].change.action is not Action.NOOP for d in deps if d in planned)
            if not kind.creatable(resolved) and not pending:
                known = live.get(address.kind, {})
                guess = nearest(str(cloud_name), list(known)) if known else None
                problems.append(f"{address}: {kind.missing_message(cloud_name)}"
                                + (f" (did you mean {guess!r}?)" if guess else ""))
                continue
            # The resource now has another identity in the cloud (a renamed group, a new image
            # revision): the old one is replaced, after the new one exists where the kind allows.
            moved_from = (live.get(address.kind, {}).get(prior_entry.id)
                          if prior_entry and cloud_name is not UNKNOWN and prior_entry.id != cloud_name else None)
            if moved_from is not None:
                before = {k: moved_from.get(k, v) for k, v in prior_entry.attrs.items()}
                after = kind.display_view(resolved)
                moved = sorted(k for k in after if before.get(k) != after[k])
                change = Change(address, Action.REPLACE, before, after, changed_paths=moved, replace_paths=moved,
                                sensitive_paths=sensitive, depends_on=deps,
                                reason=f"replaces {prior_entry.id[:24]}")
                if kind.create_before_destroy:
                    change.action = Action.CREATE_THEN_DELETE
                    change.reason += ", deleted once nothing uses it"
                    if not any(item["id"] == prior_entry.id for item in prior_entry.deposed):
                        # (else an interrupted apply deposed it already: deposed_deletes plans it)
                        plan.changes.append(_delete(address, prior_entry.id, before, prior_entry.attrs, kind,
                                                    deposed=True))
            else:
                change = Change(address, Action.CREATE, None, kind.display_view(resolved),
                                changed_paths=sorted(kind.display_view(resolved)), sensitive_paths=sensitive,
                                drift="missing" if prior_entry else None, depends_on=deps,
                                reason="gone from the cloud" if prior_entry else "")
        elif contains_unknown(resolved):
            want = {k: v for k, v in kind.display_view(resolved).items()}
            have = {k: v for k, v in live_attrs.items() if k in want}
            change = _compare(address, kind, want, have, live_attrs, prior, deps, sensitive, tainted)
        else:
            want, have = kind.compare_view(address.name, resolved, live_attrs, prior)
            change = _compare(address, kind, want, have, live_attrs, prior, deps, sensitive, tainted)
        partial = state.partial.get(address)
        if partial is not None and partial["id"] == cloud_name and change.action is not Action.NOOP:
            change.resumes = dict(partial["attrs"])
            change.reason = "; ".join(filter(None, [change.reason, kind.resume_reason(partial["attrs"])]))
        planned[address] = Planned(change, resolved, live_attrs)
        change.sensitive_refs = sorted(tainted)
        change.depends_on_reasons = spec.reasons()
        change.config = spec.attrs
        if change.action is not Action.NOOP and not contains_unknown(resolved):
            change.notes = kind.notes(resolved)
        change.prior_depends_on = list(prior_entry.depends_on) if prior_entry else []
        change.desired = resolved
        change.live = live_attrs
        change.prior = prior
        plan.changes.append(change)

    for address, entry in sorted(state.resources.items()):
        if selected is not None and address not in selected:
            continue
        plan.changes.extend(deposed_deletes(address, entry, live))
        plan.forget_deposed.extend((address, item["id"]) for item in entry.deposed
                                   if item["id"] not in live.get(address.kind, {}))
        if address in stack.resources:
            continue
        kind = KINDS.get(address.kind)
        if kind is None:
            problems.append(f"{address}: state holds a kind this recon does not know")
            continue
        live_attrs = live.get(address.kind, {}).get(entry.id)
        if kind.removal(address.name, kinds_settings.get(address.kind, {})) == "forget" or live_attrs is None:
            plan.forget.append(address)
            continue
        before = {k: v for k, v in live_attrs.items() if k in entry.attrs}
        plan.changes.append(_delete(address, entry.id, before, entry.attrs, kind, depends_on=list(entry.depends_on)))

    for address, partial in sorted(state.partial.items()):
        if selected is not None and address not in selected:
            continue
        change = _left_by_interrupted(address, partial, stack, state, live, planned)
        if change is not None:
            plan.changes.append(change)

    if problems:
        raise PlanError("cannot plan:\n  " + "\n  ".join(problems))
    plan.unmanaged = unmanaged(stack, live, state)
    plan.serving = {address: spec.attrs for address, spec in stack.resources.items()
                    if KINDS[address.kind].serves_instances}
    return plan


def leaving_the_cloud(stack: Stack, state: State, live: Live, selected: set[Address] | None) -> dict[tuple[str, str], Address]:
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


def _delete(address: Address, cloud_id: str, before: dict[str, Any], prior: dict[str, Any], kind, *,
            deposed: bool = False, depends_on: list[Address] | None = None) -> Change:
    change = Change(address, Action.DELETE, before, None, changed_paths=sorted(before),
                    sensitive_paths=sorted(kind.sensitive_paths(prior, before) | digest_keys(prior)),
                    depends_on=depends_on or [],
                    depends_on_reasons={dep: ["depended on it when last applied"] for dep in depends_on or []},
                    reason="replaced" if deposed else kind.removal_reason(prior),
                    deposed_id=cloud_id if deposed else None)
    change.live, change.prior = before, prior
    return change


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
    change = _delete(address, cloud_id, before, partial["attrs"], kind, deposed=True)
    change.reason = "left by an interrupted apply"
    return change


def deposed_deletes(address: Address, entry, live: Live) -> list[Change]:
    """Deletes of the objects a create-before-destroy replaced and an earlier apply left behind."""
    kind = KINDS[address.kind]
    out = []
    for item in entry.deposed:
        old = live.get(address.kind, {}).get(item["id"])
        if old is not None:
            out.append(_delete(address, item["id"], {k: v for k, v in old.items() if k in item["attrs"]},
                               item["attrs"], kind, deposed=True))
    return out


def _compare(address: Address, kind, want: dict[str, Any], have: dict[str, Any], live: dict[str, Any],
             prior: dict[str, Any] | None, deps: list[Address], sensitive: list[str],
             secret_refs: Collection[str]) -> Change:
    paths = changed_paths(have, want, kind.set_attrs)
    if not paths:
        return Change(address, Action.NOOP, have, want, depends_on=deps, sensitive_paths=sensitive)
    order = Action.CREATE_THEN_DELETE if kind.create_before_destroy else Action.REPLACE
    replace = [p for p in paths if p.split(".")[0] in kind.replace_on]
    replacements = []
    if replace:
        action = order
    else:
        action = Action.UPDATE
        if any(p.split(".")[0] in kind.replaces_instances for p in paths):
            replacements = kind.replacements(address.name, want, live)
        if replacements:
            replace = [p for p in paths if p.split(".")[0] in kind.replaces_instances]
    drifted = []
    if prior is not None:  # what state keeps of a referenced secret is its digest
        applied = digested(want, sorted(secret_refs))
        drifted = [p for p in paths if get_path(prior, p) == get_path(applied, p) and get_path(want, p) is not None]
    return Change(address, action, have, want, changed_paths=paths, replace_paths=replace,
                  replacements=replacements, replace_action=order, sensitive_paths=sensitive, depends_on=deps,
                  drift="changed" if drifted else None,
                  reason=("changed outside recon: " + ", ".join(drifted)) if drifted else "")
