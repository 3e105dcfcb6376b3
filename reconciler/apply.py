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
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from graphlib import TopologicalSorter
from typing import Any, Callable, NoReturn

from .addresses import Address, Reference, references_in
from .diff import changed_paths, get_path
from .errors import CloudError, PlanError, ReconError
from .interrupts import Interrupted, exit_now
from .plan import UNKNOWN, Action, Change, Plan, contains_unknown
from .redact import digested, remember
from .resolve import resolve
from .resources import KINDS
from .resources.base import CloudContext
from .state.model import Entry, State


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


class StateNotSaved(ReconError):
    """A change reached the cloud, but the state that records it could not be written."""


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
        self.state = state
        self.save = save
        self.ctx = replace(ctx, hand_over=self._hand_over, checkpoint=self._checkpoint, resumed=self._resumed)
        self.parallelism = parallelism
        self.progress = progress or (lambda event, change, outcome: None)
        self.stopping = stopping or (lambda running: None)
        self.abandon = abandon or (lambda outcomes: None)
        self._state_lock = threading.Lock()
        # Group commit: one save at a time, each covering every change recorded before it.
        self._save_lock = threading.Lock()
        self._recorded = 0
        self._saved = 0
        #: the first failed state write, once one failed: nothing new starts after it
        self.save_failure: ReconError | None = None
        # attributes each desired resource has right now, for resolving references
        self._current: dict[Address, dict[str, Any]] = {}
        for change in plan.changes:
            if change.desired is not None:
                self._current[change.address] = {**(change.live or {}), **{
                    k: v for k, v in change.desired.items() if not contains_unknown(v)}}

    # --- state ---------------------------------------------------------------------------
    def _record(self, address: Address, entry: Entry | None) -> None:
        def change() -> bool:
            if entry is None:
                self.state.resources.pop(address, None)
            else:
                self.state.resources[address] = entry
                self.state.partial.pop(address, None)      # its steps are done
            return True

        self._commit(change)

    def _checkpoint(self, address: str, cloud_id: str, attrs: dict[str, Any]) -> None:
        """Record in state how far the change of ``address`` got, before its next cloud call."""
        def change() -> bool:
            self.state.partial[Address.parse(address)] = {"id": cloud_id, "attrs": dict(attrs)}
            return True

        self._commit(change)

    def _resumed(self, address: str) -> dict[str, Any] | None:
        with self._state_lock:
            found = self.state.partial.get(Address.parse(address))
            return None if found is None else {"id": found["id"], "attrs": dict(found["attrs"])}

    def _depose(self, address: Address, entry: Entry) -> None:
        """Record the object a create-before-destroy replaces as deposed, before the new one is made."""
        def change() -> bool:
            if any(item["id"] == entry.id for item in entry.deposed):
                return False
            entry.deposed.append({"id": entry.id, "attrs": entry.attrs})
            return True

        self._commit(change)

    def _commit(self, change: Callable[[], bool]) -> None:
        """Change the state in memory, and return once a save that includes the change is written.

        A group commit: changes that finish while a save is being written wait for it and are then
        written together by the next save. Every change is still saved before its worker goes on,
        but ten changes finishing at once cost one state write (temp file, fsync, rename), not ten
        in a row.
        """
        with self._state_lock:
            if not change():
                return
            self._recorded += 1
            ticket = self._recorded
        with self._save_lock:
            if self._saved >= ticket:
                return  # a save that began after this change was recorded has written it
            with self._state_lock:
                covered = self._recorded
                try:
                    self.save(self.state)
                except ReconError as exc:
                    self.save_failure = self.save_failure or exc
                    raise StateNotSaved(str(exc)) from exc
            self._saved = covered

    def _save_at_end(self, outcomes: list[Outcome]) -> list[Outcome]:
        """After a failed state write, try once more: if it works, the state holds every change made."""
        unsaved = [o for o in outcomes if o.status == "unsaved"]
        if not unsaved:
            return outcomes
        try:
            with self._save_lock, self._state_lock:
                self.save(self.state)
        except ReconError:
            return outcomes
        for outcome in unsaved:
            outcome.status, outcome.error = "done", None
        return outcomes

    def _prepare_state(self) -> None:
        """Forget what left the file (for kinds that keep it) or left the cloud; adopt no-ops."""
        dirty = False
        for address in self.plan.forget:
            if address in self.state.resources:
                del self.state.resources[address]
                dirty = True
        for address, cloud_id in self.plan.forget_deposed:
            entry = self.state.resources.get(address)
            if entry is not None and any(item["id"] == cloud_id for item in entry.deposed):
                entry.deposed = [item for item in entry.deposed if item["id"] != cloud_id]
                dirty = True
        for change in self.plan.changes:
            if change.action is Action.NOOP and change.desired is not None:
                kind = KINDS[change.kind]
                attrs = digested(kind.state_attrs(change.name, change.desired, change.live or {}, change.prior),
                                 change.sensitive_refs)
                old = self.state.resources.get(change.address)
                entry = Entry(change.address, str(kind.live_name(change.name, change.desired)), attrs,
                              list(change.depends_on), list(old.deposed) if old else [])
                if old is None or old.to_json() != entry.to_json():
                    self.state.resources[change.address] = entry
                    dirty = True
                partial = self.state.partial.get(change.address)
                if partial is not None and partial["id"] == entry.id:   # finished, but not recorded
                    del self.state.partial[change.address]
                    dirty = True
        if dirty:
            with self._state_lock:
                self.save(self.state)

    # --- one change ---------------------------------------------------------------------
    def _lookup(self, ref: Reference) -> Any:
        attrs = self._current.get(ref.address)
        if attrs is None:
            return UNKNOWN
        value = KINDS[ref.address.kind].output(ref.address.name, attrs, ref.attr)
        return UNKNOWN if value is None else value

    def _execute(self, change: Change) -> str:
        """Make one change in the cloud and record it; "done", or "no-op" for an update with nothing to set."""
        kind = KINDS[change.kind]
        if change.action is Action.DELETE:
            kind.delete(self.ctx, change.name, change.before or {}, change.prior)
            if change.deposed_id is None:
                self._record(change.address, None)
            else:
                self._forget_deposed(change.address, change.deposed_id)
            return "done"
        desired = self._desired(change)
        if change.action is Action.UPDATE:
            want, have = kind.compare_view(change.name, desired, change.live or {}, change.prior)
            paths = changed_paths(have, want, kind.set_attrs)
            if not paths:
                self._current[change.address] = {**(change.live or {}), **desired}
                return "no-op"
            result = kind.update(self.ctx, change.name, have, desired, paths)
        else:
            result = self._create(change, desired)
        self._record_made(change, desired, result)
        return "done"

    def _desired(self, change: Change) -> dict[str, Any]:
        """The change's configuration with every reference resolved, finalized by its kind."""
        desired = resolve(change.config, self._lookup)
        if contains_unknown(desired):
            raise PlanError("a value it references is still unknown after its dependencies were applied",
                            where=str(change.address))
        desired = KINDS[change.kind].finalize(change.name, desired)
        remember([get_path(desired, path) for path in change.sensitive_paths])
        return desired

    def _create(self, change: Change, desired: dict[str, Any]) -> dict[str, Any]:
        """Create (or replace) the object: the old one is deleted first, or deposed to go after."""
        kind = KINDS[change.kind]
        if change.action is Action.REPLACE:
            kind.delete(self.ctx, change.name, change.before or {}, change.prior)
        old = self.state.resources.get(change.address)
        if change.action is Action.CREATE_THEN_DELETE and old is not None and \
                old.id != str(kind.live_name(change.name, desired)):
            self._depose(change.address, old)    # deleted by its own change, once the new one exists
        return kind.create(self.ctx, change.name, desired)

    def _record_made(self, change: Change, desired: dict[str, Any], result: dict[str, Any] | None) -> None:
        """Record the object a create or update made, keeping the deposed ones it did not replace."""
        kind = KINDS[change.kind]
        attrs = {**desired, **(result or {})}
        self._current[change.address] = {**(change.live or {}), **attrs}
        old = self.state.resources.get(change.address)
        new_id = str(kind.live_name(change.name, desired))
        deposed = [item for item in (old.deposed if old else []) if item["id"] != new_id]
        # The live view is this very resource's only for an update (a hidden property's, say).
        live = (change.live or {}) if change.action is Action.UPDATE else {}
        self._record(change.address, Entry(change.address, new_id,
                                           digested(kind.state_attrs(change.name, attrs, live, None),
                                                    change.sensitive_refs),
                                           list(change.depends_on), deposed))

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
            if any(ref in references_in(config.get(attr)) for attr in kind.serves_instances):
                kind.hand_over(self.ctx, address.name, (change.desired if change else None) or config, add, remove)

    def _forget_deposed(self, address: Address, cloud_id: str) -> None:
        """A deposed object, or what an interrupted change made of one no longer wanted, is deleted."""
        def change() -> bool:
            partial = self.state.partial.get(address)
            if partial is not None and partial["id"] == cloud_id:
                del self.state.partial[address]
                return True
            entry = self.state.resources.get(address)
            if entry is None:
                return False
            entry.deposed = [item for item in entry.deposed if item["id"] != cloud_id]
            return True

        self._commit(change)

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
        self._prepare_state()
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
            if stop.stopped or self.save_failure is not None:
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
        failure = self.save_failure
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
        with self._save_lock:
            for future, key in running.items():
                change = changes[key]
                outcomes[key] = future.result() if future.done() else \
                    Outcome(change.address, change.action, "abandoned")
            self.abandon([outcomes.get(key) or Outcome(change.address, change.action, "not started")
                          for key, change in changes.items()])
            exit_now()
