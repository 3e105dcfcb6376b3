"""What an apply records in the state, and how it saves it: the applier's side of the state file.

The :class:`Recorder` holds the state an apply changes. Every change of it (a resource made or
deleted, a create's checkpoint, an object deposed before its replacement is made) is saved before
the worker that made it goes on, by a group commit (:meth:`Recorder.commit`). When a save fails,
the change ends with :class:`StateNotSaved` and :attr:`Recorder.failure` tells the applier to start
nothing new.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from .addresses import Address
from .errors import ReconError
from .plan import Action, Change, Plan
from .redact import digested
from .resources import KINDS
from .state.model import Entry, State


class StateNotSaved(ReconError):
    """A change reached the cloud, but the state that records it could not be written."""


class Recorder:
    def __init__(self, state: State, save: Callable[[State], None]):
        self.state = state
        self.save = save
        self._state_lock = threading.Lock()
        #: One save at a time; held while the process abandons the running changes, too.
        self.save_lock = threading.Lock()
        self._recorded = 0
        self._saved = 0
        #: the first failed state write, once one failed: nothing new starts after it
        self.failure: ReconError | None = None
        #: the (address, id) of the objects the plan deletes as deposed (set by :meth:`prepare`)
        self.retiring: set[tuple[Address, str]] = set()

    def commit(self, change: Callable[[], bool]) -> None:
        """Change the state in memory (``change`` says whether it did), and return once a save that
        includes the change is written.

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
        with self.save_lock:
            if self._saved >= ticket:
                return  # a save that began after this change was recorded has written it
            with self._state_lock:
                covered = self._recorded
                try:
                    self.save(self.state)
                except ReconError as exc:
                    self.failure = self.failure or exc
                    raise StateNotSaved(str(exc)) from exc
            self._saved = covered

    def save_again(self) -> bool:
        """After a failed state write, try once more; whether the state now holds every change made."""
        try:
            with self.save_lock, self._state_lock:
                self.save(self.state)
        except ReconError:
            return False
        return True

    # --- what a change records ---------------------------------------------------------------
    def record(self, address: Address, entry: Entry | None) -> None:
        """The resource at ``address`` is now ``entry`` (None: deleted); its steps are done."""
        def change() -> bool:
            if entry is None:
                self.state.resources.pop(address, None)
            else:
                self.state.resources[address] = entry
                self.state.partial.pop(address, None)
            return True

        self.commit(change)

    def record_made(self, change: Change, attrs: dict[str, Any], new_id: str) -> None:
        """Record the object a create or update made (``attrs``: desired and what the cloud returned),
        keeping the deposed objects it did not replace."""
        kind = KINDS[change.kind]
        old = self.state.resources.get(change.address)
        deposed = self._deposed(change.address, old, new_id)
        # The live view is this very resource's only for an update (a hidden property's, say).
        live = (change.payload.live or {}) if change.action is Action.UPDATE else {}
        self.record(change.address, Entry(change.address, new_id,
                                          digested(kind.state_attrs(change.name, attrs, live, None),
                                                   change.payload.sensitive_refs),
                                          list(change.depends_on), deposed))

    def _deposed(self, address: Address, old: Entry | None, new_id: str) -> list[dict[str, Any]]:
        """The deposed objects of an entry recorded anew as ``new_id``: the old entry's, but the one
        ``new_id`` is, and the old object itself where the plan retires it (the block names another
        object now), so that it is retired even if this apply stops before it gets to that."""
        if old is None:
            return []
        deposed = [item for item in old.deposed if item["id"] != new_id]
        if old.id != new_id and (address, old.id) in self.retiring and all(item["id"] != old.id for item in deposed):
            deposed.append({"id": old.id, "attrs": old.attrs})
        return deposed

    def checkpoint(self, address: str, cloud_id: str, attrs: dict[str, Any]) -> None:
        """Record in state how far the change of ``address`` got, before its next cloud call."""
        def change() -> bool:
            self.state.partial[Address.parse(address)] = {"id": cloud_id, "attrs": dict(attrs)}
            return True

        self.commit(change)

    def resumed(self, address: str) -> dict[str, Any] | None:
        """What an interrupted apply checkpointed for ``address``, or None."""
        with self._state_lock:
            found = self.state.partial.get(Address.parse(address))
            return None if found is None else {"id": found["id"], "attrs": dict(found["attrs"])}

    def depose(self, address: Address, entry: Entry) -> None:
        """Record the object a create-before-destroy replaces as deposed, before the new one is made."""
        def change() -> bool:
            if any(item["id"] == entry.id for item in entry.deposed):
                return False
            entry.deposed.append({"id": entry.id, "attrs": entry.attrs})
            return True

        self.commit(change)

    def forget_deposed(self, address: Address, cloud_id: str) -> None:
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

        self.commit(change)

    # --- before the first change --------------------------------------------------------------
    def prepare(self, plan: Plan) -> None:
        """Forget what left the file (for kinds that keep it) or left the cloud; adopt no-ops."""
        self.retiring = {(c.address, c.deposed_id) for c in plan.changes if c.deposed_id is not None}
        dirty = self._forget(plan)
        for change in plan.changes:
            if change.action is Action.NOOP and change.payload.desired is not None:
                dirty = self._adopt(change) or dirty
        if dirty:
            with self._state_lock:
                self.save(self.state)

    def _forget(self, plan: Plan) -> bool:
        """Drop the entries and deposed objects the plan forgets; whether any was in state."""
        dirty = False
        for address in plan.forget:
            if address in self.state.resources:
                del self.state.resources[address]
                dirty = True
        for address, cloud_id in plan.forget_deposed:
            entry = self.state.resources.get(address)
            if entry is not None and any(item["id"] == cloud_id for item in entry.deposed):
                entry.deposed = [item for item in entry.deposed if item["id"] != cloud_id]
                dirty = True
        return dirty

    def _adopt(self, change: Change) -> bool:
        """Record a resource that is up to date as state would after applying it; whether state moved."""
        kind, payload, dirty = KINDS[change.kind], change.payload, False
        attrs = digested(kind.state_attrs(change.name, payload.desired, payload.live or {}, payload.prior),
                         payload.sensitive_refs)
        old = self.state.resources.get(change.address)
        new_id = str(kind.live_name(change.name, payload.desired))
        entry = Entry(change.address, new_id, attrs, list(change.depends_on),
                      self._deposed(change.address, old, new_id))
        if old is None or old.to_json() != entry.to_json():
            self.state.resources[change.address] = entry
            dirty = True
        partial = self.state.partial.get(change.address)
        if partial is not None and partial["id"] == entry.id:   # finished, but not recorded
            del self.state.partial[change.address]
            dirty = True
        return dirty
