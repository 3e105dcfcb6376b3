"""Remote state on the cloud's own object storage, locked with a leased lock object, every write fenced.

``[state] backend = "s3"`` keeps the state as one object (``bucket``/``key``) and every
write first copies the previous state to ``KEY.backup.SERIAL``. The lock is a separate
object, ``KEY.lock``, created with ``PUT If-None-Match: *`` so that exactly one writer
gets it. It holds who took it, for what, and a lease that a background thread renews
while the holder works; a lock whose lease ran out (its holder was killed or paused) is
taken over, with a warning, by replacing it conditionally (``If-Match`` on the expired
lock's ETag).

A holder can lose its lock without knowing it -- paused past its lease, another run took it
over -- so nothing it writes is trusted to still be current:

- every state write is conditional on the object as this run last read or wrote it
  (``If-Match`` on its ETag, ``If-None-Match: *`` for the first one), and refused otherwise;
- before every state write and every cloud change (see :meth:`S3Backend.check_held`) the
  holder checks that its lease has not run out by its own clock and that the lock object
  still names it; once it does not, the apply stops (:class:`~reconciler.state.lock.LockLost`);
- a state older than the one this checkout last saw is refused (:mod:`reconciler.state.seen`).

A conditional write whose reply was lost is retried, and the retry is refused because the
first attempt went through: a refused write that finds the object holding exactly what it
sent knows it was its own. Conditional writes are what make all this safe, and not every
object store honours them: before its first lock, recon probes both kinds on a probe object
and refuses to go on if a write that should have been refused was accepted, unless told to
run unlocked.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ..deadline import ATTEMPTS_PER_BUDGET, Deadline
from ..errors import CloudError, LockError, ReconError, StateError
from .backend import Backend
from .lock import LockInfo, LockLost, wait_for_lock
from .model import State
from .seen import Seen

PRECONDITION_FAILED = ("PreconditionFailed", "412", "ConditionalRequestConflict")
MISSING = ("NoSuchKey", "404")
DEFAULT_LEASE = 60.0
#: The lease is renewed once this share of it has passed; a renewal may take at most as long.
RENEW_SHARE = 1 / 3


class S3Backend:
    def __init__(self, cloud, bucket: str, key: str, stack: str, *, base_dir: Path,
                 lease_seconds: float = DEFAULT_LEASE, lock_timeout: float = 0.0,
                 warn: Callable[[str], None] = lambda message: None):
        """``base_dir``: the desired file's folder, where the serial last seen is recorded."""
        self.cloud = cloud
        self.bucket = bucket
        self.key = key
        self.stack = stack
        self.lease_seconds = lease_seconds
        #: Seconds to wait for a lock another process holds (``--lock-timeout``).
        self.lock_timeout = lock_timeout
        self.lock_key = f"{key}.lock"
        self.warn = warn
        self.seen = Seen.beside(base_dir, stack, self.describe(), warn)
        self._probed = False
        #: The state object as this run last read or wrote it, and its ETag (None: there was none).
        self._body = b""
        self._etag: str | None = None
        # The lock this run holds: what it wrote, its ETag, until when (monotonic) the lease
        # runs by this process's clock, and why it was lost, once it was.
        self._held: LockInfo | None = None
        self._lock_etag = ""
        self._valid_until = 0.0
        self._lost: str | None = None

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    # --- objects ---------------------------------------------------------------------------
    def _get(self, key: str, deadline: Deadline | None = None) -> tuple[bytes, str] | None:
        reply = self.cloud.call("s3", "get_object", where=self.describe(), ignore_codes=MISSING, deadline=deadline,
                                Bucket=self.bucket, Key=key)
        if reply is None:
            return None
        return reply["Body"].read(), reply.get("ETag", "")

    def _put(self, key: str, body: bytes, *, deadline: Deadline | None = None, **conditions: str) -> str | None:
        """Write an object; its new ETag, or None when a condition (If-None-Match / If-Match) refused it.

        A refused write that finds the object holding exactly ``body`` was this run's own: an earlier
        attempt of the call went through and its reply was lost, so the retry was refused.
        """
        try:
            reply = self.cloud.call("s3", "put_object", where=self.describe(), fenced=False, deadline=deadline,
                                    Bucket=self.bucket, Key=key, Body=body, ContentType="application/json",
                                    **conditions)
        except CloudError as exc:
            if exc.code in PRECONDITION_FAILED or (exc.code in MISSING and "IfMatch" in conditions):
                got = self._get(key, deadline)
                return got[1] if got is not None and got[0] == body else None
            if exc.code == "NoSuchBucket":
                raise StateError(f"bucket {self.bucket!r} does not exist", where=self.describe(),
                                 hint="create it first (e.g. `aws s3 mb` against the cloud's object storage)")
            raise
        return (reply or {}).get("ETag", "")

    # --- state -----------------------------------------------------------------------------
    def read(self) -> State:
        """The state (an empty one if there is no object yet); refused if older than the one last seen."""
        try:
            got = self._get(self.key)
        except CloudError as exc:
            if exc.code == "NoSuchBucket":
                raise StateError(f"bucket {self.bucket!r} does not exist", where=self.describe())
            raise
        if got is None:
            self.seen.check(None)
            self._body, self._etag = b"", None
            return State(stack=self.stack)
        try:
            text = got[0].decode("utf-8")
        except UnicodeDecodeError:
            raise StateError("state object is not UTF-8 text", where=self.describe())
        state = State.loads(text, self.describe())
        if state.stack != self.stack:
            raise StateError(f"this state belongs to stack {state.stack!r}, not {self.stack!r}", where=self.describe())
        self.seen.check(state)
        self._body, self._etag = got
        self.seen.record(state)
        return state

    def write(self, state: State) -> None:
        """Write the state (serial + 1), first keeping the previous one as KEY.backup.SERIAL.

        Only while this run holds its lock, and only over the object as this run last read or
        wrote it: otherwise StateError (LockLost), and nothing is written over it. The backup is
        that same object as this run has it, so a backup never holds another run's state.
        """
        from .. import __version__

        self.check_held("saving the state")
        if self._etag is not None:
            self._put(f"{self.key}.backup.{state.serial}", self._body)
        written = dataclasses.replace(state, serial=state.serial + 1, recon_version=__version__)
        body = written.dumps().encode()
        etag = self._put(self.key, body, **({"IfMatch": self._etag} if self._etag is not None
                                           else {"IfNoneMatch": "*"}))
        if etag is None:
            raise self._changed(state.serial)
        self._body, self._etag = body, etag
        state.serial, state.recon_version = written.serial, written.recon_version
        self.seen.record(state)

    def _changed(self, serial: int) -> StateError:
        return StateError(f"the state object is no longer the one this run read or wrote (serial {serial}): "
                          "another run wrote or removed it meanwhile, so this run's state was not saved over it",
                          where=self.describe(),
                          hint="run plan to see the state as it is now: the next apply reads the cloud and "
                               "finishes what this one left")

    # --- locking ---------------------------------------------------------------------------
    def check_conditional_writes(self) -> None:
        """Refuse a store that accepts a write that If-None-Match: * or If-Match should have refused."""
        if self._probed:
            return
        probe = f"{self.key}.probe-{uuid.uuid4().hex}"

        def body(write: int) -> bytes:
            return json.dumps({"probe": probe, "write": write}).encode()

        hint = ("use an object store that honours conditional writes (If-None-Match and If-Match), or run with "
                "--lock=false when you alone apply this stack")
        try:
            first = self._put(probe, body(1), IfNoneMatch="*")
            if first is None:
                raise LockError("the object store refused a conditional write of a new object",
                                where=self.describe())
            if self._put(probe, body(2), IfNoneMatch="*") is not None:
                raise LockError(
                    "the object store ignores If-None-Match: it accepted a second conditional write of one "
                    "object, so two applies could both take the lock", where=self.describe(), hint=hint)
            if self._put(probe, body(3), IfMatch=f'"{uuid.uuid4().hex}"') is not None:
                raise LockError(
                    "the object store ignores If-Match: it accepted a write conditional on an ETag the object "
                    "does not have, so a run that lost the lock could overwrite the state", where=self.describe(),
                    hint=hint)
            if self._put(probe, body(4), IfMatch=first) is None:
                raise LockError("the object store refused a write conditional on the object's own ETag",
                                where=self.describe(), hint=hint)
        finally:
            self.cloud.call("s3", "delete_object", where=self.describe(), fenced=False, Bucket=self.bucket,
                            Key=probe, ignore_codes=MISSING)
        self._probed = True

    def current_lock(self) -> tuple[LockInfo, str] | None:
        got = self._get(self.lock_key)
        return None if got is None else (LockInfo.from_json(got[0]), got[1])

    def _acquire(self, info: LockInfo) -> None:
        """Take the lock for ``info`` (with a fresh lease), or LockError naming its holder."""
        sent = time.monotonic()
        mine = info.renewed(self.lease_seconds)
        body = mine.to_json().encode()
        etag = self._put(self.lock_key, body, IfNoneMatch="*")
        if etag is None:
            current = self.current_lock()
            if current is None:  # released between our write and our read: try once more
                etag = self._put(self.lock_key, body, IfNoneMatch="*")
                current = None if etag is not None else self.current_lock()
            if current is not None and current[0].expired():
                holder, expired = current
                etag = self._put(self.lock_key, body, IfMatch=expired)
                if etag is not None:
                    self.warn(f"took over an expired lock on {self.describe()} held by {holder.describe()}")
                else:
                    current = self.current_lock()
            if etag is None:
                holder = current[0] if current else None
                raise LockError(f"state is locked by {holder.describe() if holder else 'another process'}",
                                where=self.describe(),
                                hint="wait for it to finish (--lock-timeout DURATION waits for it; an abandoned lock "
                                     "is taken over when its lease runs out); "
                                     f"if its holder is gone: recon force-unlock {holder.id if holder else 'ID'}")
        self._held, self._lock_etag, self._valid_until, self._lost = mine, etag, sent + self.lease_seconds, None

    @contextmanager
    def lock(self, operation: str) -> Iterator[LockInfo]:
        self.check_conditional_writes()
        info = LockInfo.new(operation, self.lease_seconds)
        wait_for_lock(lambda: self._acquire(info), self.lock_timeout, self.warn,
                      interval=min(2.0, self.lease_seconds / 3))
        stop = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(stop,), name="recon-lease", daemon=True)
        renewer.start()
        try:
            yield info
        finally:
            stop.set()
            renewer.join()
            self._held = None
            current = self.current_lock()
            if current and current[0].id == info.id:
                self.cloud.call("s3", "delete_object", where=self.describe(), fenced=False, Bucket=self.bucket,
                                Key=self.lock_key)

    def lock_after_exit(self) -> str:
        """What becomes of the lock when recon exits without releasing it."""
        return (f"the lock object {self.lock_key} stays until its lease runs out (within {self.lease_seconds:g}s): "
                "the next run waits for it with --lock-timeout, or takes it over then")

    def _renew(self, stop: threading.Event) -> None:
        """Extend the lease each time a third of it has passed, while the holder works.

        A renewal is one PUT conditional on the lock as this run last wrote it, with a deadline of its
        own of a third of the lease (the normal one is far longer): a slow renewal gives up while the
        lease still runs, rather than landing after it ran out. A renewal refused because the lock
        names another run means the lock is lost: it is said at once, and the holder stops at its next
        check (:meth:`check_held`).
        """
        period = self.lease_seconds * RENEW_SHARE
        deadline = Deadline(period / ATTEMPTS_PER_BUDGET)
        wait = period
        while not stop.wait(wait):
            held = self._held
            if held is None or self._lost is not None:
                return
            sent = time.monotonic()
            renewed = held.renewed(self.lease_seconds)
            try:
                etag = self._put(self.lock_key, renewed.to_json().encode(), deadline=deadline,
                                 IfMatch=self._lock_etag)
                if etag is None:
                    current = self.current_lock()
                    if current is not None and current[0].id == held.id:
                        # an earlier renewal went through though recon gave up on its reply: renew that one
                        self._lock_etag, wait = current[1], 0
                        continue
                    self._lose(self._holder_now(current))
                    return
            except ReconError as exc:  # try again soon: the lease is still ours until it runs out
                self.warn(f"could not renew the lock lease on {self.describe()}: {exc}")
                wait = period / 3
                continue
            self._held, self._lock_etag, self._valid_until = renewed, etag, sent + self.lease_seconds
            wait = period

    def _holder_now(self, current: tuple[LockInfo, str] | None = None) -> str:
        """Who holds the lock this run lost (``current``: the lock object as just read, else read now)."""
        current = current or self.current_lock()
        return f"it is now held by {current[0].describe()}" if current else "the lock object was removed"

    def _lose(self, why: str) -> None:
        if self._lost is None:
            self._lost = why
            self.warn(f"lost the lock on {self.describe()}: {why}")

    def check_held(self, operation: str) -> None:
        """LockLost unless this run still holds its lock (nothing to check when it holds none).

        Before each state write and each cloud change of an apply: the lease must not have run out
        by this process's clock (a paused process finds out here, on waking) and the lock object
        must still name this run (a takeover is found out here). One GET of the lock object.
        """
        held = self._held
        if held is None:
            return
        if self._lost is None and time.monotonic() >= self._valid_until:
            self._lose(f"its lease of {self.lease_seconds:g}s ran out before it was renewed "
                       "(was recon paused, or the object store too slow?)")
        if self._lost is None:
            current = self.current_lock()
            if current is None or current[0].id != held.id:
                self._lose(self._holder_now(current))
        if self._lost is not None:
            raise LockLost(f"this run lost the state lock ({self._lost}); stopped before {operation}",
                           where=self.describe(),
                           hint="the run that holds the lock now owns the state: this one changes nothing more. "
                                "Once that run is done, run plan to see what is left")

    def force_unlock(self, lock_id: str) -> LockInfo:
        current = self.current_lock()
        if current is None:
            raise LockError("state is not locked", where=self.describe())
        holder, _ = current
        if holder.id != lock_id:
            raise LockError(f"lock id {lock_id!r} does not match the lock held by {holder.describe()}",
                            where=self.describe())
        self.cloud.call("s3", "delete_object", where=self.describe(), fenced=False, Bucket=self.bucket,
                        Key=self.lock_key)
        return holder


class Unlocked:
    """A backend used with --lock=false: the same state, no lock (for a store that cannot lock)."""

    def __init__(self, backend: Backend):
        self.backend = backend

    def __getattr__(self, name):
        return getattr(self.backend, name)

    @contextmanager
    def lock(self, operation: str) -> Iterator[None]:
        yield None

    def lock_after_exit(self) -> str:
        return "no lock was held (--lock=false)"
