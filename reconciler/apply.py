"""Carrying out a plan: reference order, deletes reversed, independent changes at
once up to ``parallelism``, state saved after every change."""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from graphlib import TopologicalSorter
from typing import Any, Callable

from .addresses import Address, Reference
from .diff import changed_paths
from .errors import CloudError, PlanError, ReconError
from .plan import UNKNOWN, Action, Change, Plan, contains_unknown
from .resolve import resolve
from .resources import KINDS
from .resources.base import CloudContext
from .state.model import Entry, State


@dataclass
class Outcome:
    address: Address
    action: Action
    status: str  # "done", "failed", "skipped", "no-op"
    seconds: float = 0.0
    error: str | None = None


Progress = Callable[[str, Change, Outcome | None], None]


def apply_order(changes: list[Change]) -> dict[Address, set[Address]]:
    """Predecessors of each actionable change: what must finish before it starts."""
    by_address = {c.address: c for c in changes}
    graph: dict[Address, set[Address]] = {c.address: set() for c in changes}
    for change in changes:
        for dep in {*change.depends_on, *change.prior_depends_on}:
            other = by_address.get(dep)
            if other is None:
                continue
            if change.action is Action.DELETE and other.action is Action.DELETE:
                graph[dep].add(change.address)        # delete dependents first
            elif other.action is Action.DELETE:
                graph[dep].add(change.address)        # stop using it, then delete it
            elif change.action is not Action.DELETE and dep in change.depends_on:
                graph[change.address].add(dep)        # make what it needs first
    return graph


class Applier:
    def __init__(self, plan: Plan, state: State, save: Callable[[State], None], ctx: CloudContext,
                 *, parallelism: int = 10, progress: Progress | None = None):
        if parallelism < 1:
            raise PlanError("--parallelism must be at least 1")
        self.plan = plan
        self.state = state
        self.save = save
        self.ctx = ctx
        self.parallelism = parallelism
        self.progress = progress or (lambda event, change, outcome: None)
        self._state_lock = threading.Lock()
        # attributes each desired resource has right now, for resolving references
        self._current: dict[Address, dict[str, Any]] = {}
        self._made: set[Address] = set()
        for change in plan.changes:
            if change.desired is not None:
                self._current[change.address] = {**(change.live or {}), **{
                    k: v for k, v in change.desired.items() if not contains_unknown(v)}}

    # --- state ---------------------------------------------------------------------------
    def _record(self, address: Address, entry: Entry | None) -> None:
        with self._state_lock:
            if entry is None:
                self.state.resources.pop(address, None)
            else:
                self.state.resources[address] = entry
            self.save(self.state)

    def _prepare_state(self) -> None:
        """Forget what left the file (for kinds that keep it) or left the cloud; adopt no-ops."""
        dirty = False
        for address in self.plan.forget:
            if address in self.state.resources:
                del self.state.resources[address]
                dirty = True
        for change in self.plan.changes:
            if change.action is Action.NOOP and change.desired is not None:
                kind = KINDS[change.kind]
                attrs = kind.state_attrs(change.name, change.desired, change.live or {}, change.prior)
                entry = Entry(change.address, str(kind.live_name(change.name, change.desired)), attrs,
                              list(change.depends_on))
                old = self.state.resources.get(change.address)
                if old is None or old.to_json() != entry.to_json():
                    self.state.resources[change.address] = entry
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
        kind = KINDS[change.kind]
        name = change.name
        if change.action is Action.DELETE:
            kind.delete(self.ctx, name, change.before or {}, change.prior)
            self._record(change.address, None)
            return "done"
        desired = resolve(change.config, self._lookup)
        if contains_unknown(desired):
            raise PlanError("a value it references is still unknown after its dependencies were applied",
                            where=str(change.address))
        desired = kind.finalize(name, desired)
        if change.action is Action.UPDATE:
            want, have = kind.compare_view(name, desired, change.live or {}, change.prior)
            paths = changed_paths(have, want, kind.set_attrs)
            if not paths:
                self._current[change.address] = {**(change.live or {}), **desired}
                return "no-op"
            result = kind.update(self.ctx, name, have, desired, paths)
        else:
            if change.action is Action.REPLACE:
                kind.delete(self.ctx, name, change.before or {}, change.prior)
            result = kind.create(self.ctx, name, desired)
            if change.action is Action.CREATE_THEN_DELETE:
                kind.delete(self.ctx, name, change.before or {}, change.prior)
        attrs = {**desired, **(result or {})}
        self._current[change.address] = {**(change.live or {}), **attrs}
        self._record(change.address, Entry(change.address, str(kind.live_name(name, desired)),
                                           kind.state_attrs(name, attrs, {}, None), list(change.depends_on)))
        return "done"

    def _run_one(self, change: Change) -> Outcome:
        started = time.monotonic()
        self.progress("start", change, None)
        try:
            status = self._execute(change)
            outcome = Outcome(change.address, change.action, status, time.monotonic() - started)
        except ReconError as exc:
            outcome = Outcome(change.address, change.action, "failed", time.monotonic() - started,
                              error=str(exc) if exc.where else f"{change.address}: {exc}")
        except Exception as exc:  # a bug or an unexpected library error: report, keep the rest consistent
            outcome = Outcome(change.address, change.action, "failed", time.monotonic() - started,
                              error=f"{change.address}: unexpected {type(exc).__name__}: {exc}")
        self.progress("end", change, outcome)
        return outcome

    # --- the whole plan -------------------------------------------------------------------
    def run(self) -> list[Outcome]:
        self._prepare_state()
        changes = {c.address: c for c in self.plan.actionable}
        graph = apply_order(list(changes.values()))
        sorter = TopologicalSorter(graph)
        sorter.prepare()
        outcomes: dict[Address, Outcome] = {}
        failed: set[Address] = set()
        running: dict[Future, Address] = {}
        with ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="recon-apply") as pool:
            try:
                while sorter.is_active():
                    for address in sorter.get_ready():
                        blocked = [p for p in graph[address] if p in failed]
                        if blocked:
                            outcomes[address] = Outcome(address, changes[address].action, "skipped",
                                                        error=f"{address}: not attempted: {blocked[0]} failed")
                            failed.add(address)
                            self.progress("end", changes[address], outcomes[address])
                            sorter.done(address)
                            continue
                        running[pool.submit(self._run_one, changes[address])] = address
                    if not running:
                        continue
                    finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                    for future in finished:
                        address = running.pop(future)
                        outcome = future.result()
                        outcomes[address] = outcome
                        if outcome.status == "failed":
                            failed.add(address)
                        sorter.done(address)
            except KeyboardInterrupt:
                for future in running:
                    future.cancel()
                raise
        return [outcomes[a] for a in changes if a in outcomes]
