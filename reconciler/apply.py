"""Carrying out a plan: reference order, deletes reversed, independent changes at
once up to ``parallelism``, state saved after every change.

A change that makes its object in several cloud calls (an LB image install: bucket, parts,
manifest, register, tag) records each step in the state before making it, through the
context's ``checkpoint``; the next apply hands what was recorded back to the create
(``resumed``), and a plan that no longer wants that object deletes what the steps made. A
replacement made before the old object goes records the old one as deposed before it starts,
so that a crash at any point still retires it.

When the context's stop token is set (the first Ctrl-C or SIGTERM), nothing new starts;
the running changes finish, or end at their next check with ``Interrupted``. When it is
abandoned (the second one), the applier reports and the process exits at once, with the
state lock still held -- it dies with the process -- so no other run can take it while a
change of this one may still be under way.

When the state cannot be written after a change reached the cloud (a full disk, a store that
refuses the write), that change ends "unsaved" and nothing new starts: every further change would
be one more the state does not know of. The running ones finish, one last save is tried, and the
outcomes say exactly which changes reached the cloud and which of them the state holds.

Here: the order of the changes (:func:`apply_order`) and the :class:`Applier`, which runs them; what a
change records in the state, and the saving, are ``reconciler/apply_state.py``'s; references resolve
through the planner's ``reconciler/references.py``.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from graphlib import TopologicalSorter
from typing import Any, Callable, NoReturn

from .addresses import Address, Reference, references_in
from .apply_state import Recorder, StateNotSaved
from .diff import changed_paths, get_path
from .errors import PlanError, ReconError
from .interrupts import Interrupted, exit_now
from .plan import Action, Change, Plan, contains_unknown
from .redact import remember
from .references import References
from .resolve import resolve
from .resources import KINDS
from .resources.abilities import ServesInstances
from .resources.base import CloudContext
from .state.model import State


@dataclass
class Outcome:
    address: Address
    action: Action
    #: "done", "no-op", "failed", "skipped" (a dependency failed), "interrupted" (stopped part-way),
    #: "not started" (recon was stopped first), "abandoned" (still running when recon exited),
    #: "unsaved" (made in the cloud, but the state could not be written)
    status: str
    seconds: float = 0.0
    error: str | None = None


Progress = Callable[[str, Change, Outcome | None], None]
#: Told once, when a stop is first seen, which changes are still running.
Stopping = Callable[[list[Change]], None]
#: Told every change's outcome right before the process exits, abandoning the running ones.
Abandon = Callable[[list[Outcome]], None]
#: Seconds between looks at the stop token while changes run.
STOP_POLL = 0.2


Key = tuple[Address, str]


def apply_order(changes: list[Change]) -> dict[Key, set[Key]]:
    """Predecessors of each actionable change (by ``Change.key``): what must finish before it starts."""
    main = {c.address: c for c in changes if c.deposed_id is None}
    graph: dict[Key, set[Key]] = {c.key: set() for c in changes}
    for change in changes:
        if change.deposed_id is not None:
            # the old object goes once its replacement exists and everything using it moved on
            if change.address in main:
                graph[change.key].add(main[change.address].key)
            graph[change.key].update(c.key for c in changes if change.address in c.depends_on)
            continue
        for dep in {*change.depends_on, *change.prior_depends_on}:
            other = main.get(dep)
            if other is None:
                continue
            if other.action is Action.DELETE:
                graph[other.key].add(change.key)      # delete dependents first / stop using it, then delete it
            elif change.action is not Action.DELETE and dep in change.depends_on:
                graph[change.key].add(other.key)      # make what it needs first
    return graph


class Applier:
    def __init__(self, plan: Plan, state: State, save: Callable[[State], None], ctx: CloudContext,
                 *, parallelism: int = 10, progress: Progress | None = None, stopping: Stopping | None = None,
                 abandon: Abandon | None = None):
        if parallelism < 1:
            raise PlanError("--parallelism must be at least 1")
        self.plan = plan
        self.recorder = Recorder(state, save)
        self.ctx = replace(ctx, hand_over=self._hand_over, checkpoint=self.recorder.checkpoint,
                           resumed=self.recorder.resumed)
        self.parallelism = parallelism
        self.progress = progress or (lambda event, change, outcome: None)
        self.stopping = stopping or (lambda running: None)
        self.abandon = abandon or (lambda outcomes: None)
        #: what references resolve to: the plan's view, then what each change made
        self.refs = References.of(plan.changes)

    # --- one change ---------------------------------------------------------------------
    def _execute(self, change: Change) -> str:
        """Make one change in the cloud and record it; "done", or "no-op" for an update with nothing to set."""
        kind = KINDS[change.kind]
        payload = change.payload
        if change.action is Action.DELETE:
            kind.delete(self.ctx, change.name, change.before or {}, payload.prior)
            if change.deposed_id is None:
                self.recorder.record(change.address, None)
            else:
                self.recorder.forget_deposed(change.address, change.deposed_id)
            return "done"
        desired = self._desired(change)
        if change.action is Action.UPDATE:
            have, paths = self._to_set(change, desired)
            if not paths and not change.requested:
                self.refs.made(change.address, {**(payload.live or {}), **desired})
                return "no-op"
            ctx = replace(self.ctx, renew=frozenset(change.requested)) if change.requested else self.ctx
            result = kind.update(ctx, change.name, have, desired, paths)
        else:
            result = self._create(change, desired)
        attrs = {**desired, **(result or {})}
        self.refs.made(change.address, {**(payload.live or {}), **attrs})
        self.recorder.record_made(change, attrs, str(kind.live_name(change.name, desired)))
        return "done"

    def _desired(self, change: Change) -> dict[str, Any]:
        """The change's configuration with every reference resolved, finalized by its kind."""
        desired = resolve(change.payload.config, self.refs.value)
        if contains_unknown(desired):
            raise PlanError("a value it references is still unknown after its dependencies were applied",
                            where=str(change.address))
        desired = KINDS[change.kind].finalize(change.name, desired)
        remember([get_path(desired, path) for path in change.sensitive_paths])
        return desired

    @staticmethod
    def _to_set(change: Change, desired: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The live view an update starts from and the paths it sets: the plan's, unless a reference
        it left unknown resolved now, when they are compared again (and may turn out to be none)."""
        if desired == change.payload.desired:
            return change.before or {}, change.changed_paths
        kind = KINDS[change.kind]
        want, have = kind.compare_view(change.name, desired, change.payload.live or {}, change.payload.prior)
        return have, changed_paths(have, want, kind.traits.set_attrs)

    def _create(self, change: Change, desired: dict[str, Any]) -> dict[str, Any]:
        """Create (or replace) the object: the old one is deleted first, or deposed to go after."""
        kind = KINDS[change.kind]
        if change.action is Action.REPLACE:
            kind.delete(self.ctx, change.name, change.before or {}, change.payload.prior)
        old = self.recorder.state.resources.get(change.address)
        if change.action is Action.CREATE_THEN_DELETE and old is not None and \
                old.id != str(kind.live_name(change.name, desired)):
            self.recorder.depose(change.address, old)    # deleted by its own change, once the new one exists
        return kind.create(self.ctx, change.name, desired)

    def _hand_over(self, ref: Reference, add: list[str], remove: list[str]) -> None:
        """Every block of the file that stays and serves the instances ``ref`` lists (a load
        balancer whose ``instances`` reference them) starts serving ``add`` and stops serving
        ``remove`` -- in the plan or not (``--target`` of the hosts alone)."""
        changes = {c.address: c for c in self.plan.changes if c.deposed_id is None}
        for address, config in self.plan.serving.items():
            kind = KINDS[address.kind]
            change = changes.get(address)
            if change is not None and change.action not in (Action.NOOP, Action.UPDATE):
                continue    # made (again) by this apply, with the instances as they are then
            if isinstance(kind, ServesInstances) and \
                    any(ref in references_in(config.get(attr)) for attr in kind.traits.serves_instances):
                attrs = (change.payload.desired if change else None) or config
                kind.hand_over(self.ctx, address.name, attrs, add, remove)

    def _run_one(self, change: Change) -> Outcome:
        started = time.monotonic()
        self.progress("start", change, None)
        try:
            status = self._execute(change)
            outcome = Outcome(change.address, change.action, status, time.monotonic() - started)
        except StateNotSaved as exc:
            outcome = Outcome(change.address, change.action, "unsaved", time.monotonic() - started,
                              error=f"{change.label}: made in the cloud, but {exc}")
        except Interrupted as exc:
            outcome = Outcome(change.address, change.action, "interrupted", time.monotonic() - started,
                              error=str(exc) if exc.where else f"{change.label}: {exc}")
        except ReconError as exc:
            outcome = Outcome(change.address, change.action, "failed", time.monotonic() - started,
                              error=str(exc) if exc.where else f"{change.label}: {exc}")
        except Exception as exc:  # a bug or an unexpected library error: report, keep the rest consistent
            outcome = Outcome(change.address, change.action, "failed", time.monotonic() - started,
                              error=f"{change.label}: unexpected {type(exc).__name__}: {exc}")
        self.progress("end", change, outcome)
        return outcome

    # --- the whole plan -------------------------------------------------------------------
    def run(self) -> list[Outcome]:
        self.recorder.prepare(self.plan)
        changes = {c.key: c for c in self.plan.actionable}
        outcomes: dict[Key, Outcome] = {}
        running: dict[Future, Key] = {}
        with ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="recon-apply") as pool:
            try:
                self._run_all(changes, outcomes, running, pool)
            except KeyboardInterrupt:
                for future in running:
                    future.cancel()
                raise
        return self._save_at_end([outcomes.get(key) or self._not_started(change) for key, change in changes.items()])

    def _save_at_end(self, outcomes: list[Outcome]) -> list[Outcome]:
        """After a failed state write, try once more: if it works, the state holds every change made."""
        unsaved = [o for o in outcomes if o.status == "unsaved"]
        if unsaved and self.recorder.save_again():
            for outcome in unsaved:
                outcome.status, outcome.error = "done", None
        return outcomes

    def _run_all(self, changes: dict[Key, Change], outcomes: dict[Key, Outcome], running: dict[Future, Key],
                 pool: ThreadPoolExecutor) -> None:
        """Start each change once its predecessors are done, until all are, or a stop or a failed
        state write halts the run and the running ones are over."""
        graph = apply_order(list(changes.values()))
        sorter = TopologicalSorter(graph)
        sorter.prepare()
        stop = self.ctx.stop
        failed: set[Key] = set()
        halted = told = False
        while sorter.is_active():
            if stop.stopped or self.recorder.failure is not None:
                if not halted:
                    for future in [f for f in running if f.cancel()]:   # queued, not started
                        del running[future]
                    halted = True
                if stop.stopped and not told:
                    self.stopping([changes[key] for key in running.values()])
                    told = True
                if not running:
                    break
                if stop.abandoned:
                    self._abandon(changes, outcomes, running)
            else:
                self._start_ready(sorter, changes, graph, outcomes, failed, running, pool)
                if not running:
                    continue
            self._collect_finished(sorter, outcomes, failed, running)

    @staticmethod
    def _collect_finished(sorter: TopologicalSorter, outcomes: dict[Key, Outcome], failed: set[Key],
                          running: dict[Future, Key]) -> None:
        """Wait a moment for running changes to finish; take the outcomes of those that did."""
        finished, _ = wait(list(running), timeout=STOP_POLL, return_when=FIRST_COMPLETED)
        for future in finished:
            key = running.pop(future)
            outcome = future.result()
            outcomes[key] = outcome
            if outcome.status in ("failed", "interrupted", "unsaved"):
                failed.add(key)
            sorter.done(key)

    def _not_started(self, change: Change) -> Outcome:
        failure = self.recorder.failure
        why = None if failure is None else f"{change.label}: not started: the state could not be written " \
            f"({failure.where + ': ' if failure.where else ''}{failure.message})"
        return Outcome(change.address, change.action, "not started", error=why)

    def _start_ready(self, sorter: TopologicalSorter, changes: dict[Key, Change], graph: dict[Key, set[Key]],
                     outcomes: dict[Key, Outcome], failed: set[Key], running: dict[Future, Key],
                     pool: ThreadPoolExecutor) -> None:
        """Start every change whose predecessors are done; skip those whose predecessor failed."""
        for key in sorter.get_ready():
            change = changes[key]
            blocked = [changes[p].label for p in graph[key] if p in failed]
            if blocked:
                outcomes[key] = Outcome(change.address, change.action, "skipped",
                                        error=f"{change.label}: not attempted: {blocked[0]} failed")
                failed.add(key)
                self.progress("end", change, outcomes[key])
                sorter.done(key)
                continue
            running[pool.submit(self._run_one, change)] = key

    def _abandon(self, changes: dict[Key, Change], outcomes: dict[Key, Outcome],
                 running: dict[Future, Key]) -> NoReturn:
        """Report and leave the process now, running changes and state lock included.

        A save being written completes first and no other starts, so the state file stays whole;
        what the abandoned changes did is not in it, and the next apply reads it from the cloud.
        """
        with self.recorder.save_lock:
            for future, key in running.items():
                change = changes[key]
                outcomes[key] = future.result() if future.done() else \
                    Outcome(change.address, change.action, "abandoned")
            self.abandon([outcomes.get(key) or Outcome(change.address, change.action, "not started")
                          for key, change in changes.items()])
            exit_now()
