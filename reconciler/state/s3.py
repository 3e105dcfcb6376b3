"""Remote state on the cloud's own object storage, locked with a leased lock object.

``[state] backend = "s3"`` keeps the state as one object (``bucket``/``key``) and every
write first copies the previous state to ``KEY.backup.SERIAL``. The lock is a separate
object, ``KEY.lock``, created with ``PUT If-None-Match: *`` so that exactly one writer
gets it. It holds who took it, for what, and a lease that a background thread renews
while the holder works; a lock whose lease ran out (its holder was killed) is taken over,
with a warning, by replacing it conditionally (``If-Match`` on the expired lock's ETag).

Conditional writes are what make this safe, and not every object store honours them:
before its first lock, recon writes a probe object twice with ``If-None-Match: *`` and
refuses to go on if the second write was accepted, unless told to run unlocked.
"""

from __future__ import annotations

import json
import threading
import uuid
from contextlib import contextmanager
from typing import Callable, Iterator

from ..errors import CloudError, LockError, StateError
from .lock import LockInfo, wait_for_lock
from .model import State

PRECONDITION_FAILED = ("PreconditionFailed", "412", "ConditionalRequestConflict")
DEFAULT_LEASE = 60.0


class S3Backend:
    def __init__(self, cloud, bucket: str, key: str, stack: str, *, lease_seconds: float = DEFAULT_LEASE,
                 lock_timeout: float = 0.0, warn: Callable[[str], None] = lambda message: None):
        self.cloud = cloud
        self.bucket = bucket
        self.key = key
        self.stack = stack
        self.lease_seconds = lease_seconds
        #: Seconds to wait for a lock another process holds (``--lock-timeout``).
        self.lock_timeout = lock_timeout
        self.lock_key = f"{key}.lock"
        self.warn = warn
        self._probed = False

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    # --- objects ---------------------------------------------------------------------------
    def _get(self, key: str) -> tuple[bytes, str] | None:
        reply = self.cloud.call("s3", "get_object", where=self.describe(), ignore_codes=("NoSuchKey", "404"),
                                Bucket=self.bucket, Key=key)
        if reply is None:
            return None
        return reply["Body"].read(), reply.get("ETag", "")

    def _put(self, key: str, body: bytes, **conditions: str) -> bool:
        """Write an object; False when a condition (If-None-Match / If-Match) refused it."""
        try:
            self.cloud.call("s3", "put_object", where=self.describe(), Bucket=self.bucket, Key=key, Body=body,
                            ContentType="application/json", **conditions)
        except CloudError as exc:
            if exc.code in PRECONDITION_FAILED:
                return False
            if exc.code == "NoSuchBucket":
                raise StateError(f"bucket {self.bucket!r} does not exist", where=self.describe(),
                                 hint="create it first (e.g. `aws s3 mb` against the cloud's object storage)")
            raise
        return True

    # --- state -----------------------------------------------------------------------------
    def read(self) -> State:
        try:
            got = self._get(self.key)
        except CloudError as exc:
            if exc.code == "NoSuchBucket":
                raise StateError(f"bucket {self.bucket!r} does not exist", where=self.describe())
            raise
        if got is None:
            return State(stack=self.stack)
        try:
            text = got[0].decode("utf-8")
        except UnicodeDecodeError:
            raise StateError("state object is not UTF-8 text", where=self.describe())
        state = State.loads(text, self.describe())
        if state.stack != self.stack:
            raise StateError(f"this state belongs to stack {state.stack!r}, not {self.stack!r}", where=self.describe())
        return state

    def write(self, state: State) -> None:
        """Write the state (serial + 1), first keeping the previous one as KEY.backup.SERIAL."""
        from .. import __version__

        if state.serial > 0:
            self.cloud.call("s3", "copy_object", where=self.describe(), Bucket=self.bucket,
                            Key=f"{self.key}.backup.{state.serial}",
                            CopySource={"Bucket": self.bucket, "Key": self.key}, ignore_codes=("NoSuchKey",))
        state.serial += 1
        state.recon_version = __version__
        self._put(self.key, state.dumps().encode())

    # --- locking ---------------------------------------------------------------------------
    def check_conditional_writes(self) -> None:
        """Refuse a store that accepts a second ``If-None-Match: *`` write of one object."""
        if self._probed:
            return
        probe = f"{self.key}.probe-{uuid.uuid4().hex}"
        try:
            if not self._put(probe, b"{}", IfNoneMatch="*"):
                raise LockError("the object store refused a conditional write of a new object",
                                where=self.describe())
            if self._put(probe, b"{}", IfNoneMatch="*"):
                raise LockError(
                    "the object store ignores If-None-Match: it accepted a second conditional write of one "
                    "object, so two applies could both take the lock", where=self.describe(),
                    hint="use an object store that honours conditional writes, or run with --lock=false "
                         "when you alone apply this stack")
        finally:
            self.cloud.call("s3", "delete_object", where=self.describe(), Bucket=self.bucket, Key=probe,
                            ignore_codes=("NoSuchKey",))
        self._probed = True

    def current_lock(self) -> tuple[LockInfo, str] | None:
        got = self._get(self.lock_key)
        return None if got is None else (LockInfo.from_json(got[0]), got[1])

    def _acquire(self, info: LockInfo) -> None:
        if self._put(self.lock_key, info.to_json().encode(), IfNoneMatch="*"):
            return
        current = self.current_lock()
        if current is None:  # released between our write and our read: try once more
            if self._put(self.lock_key, info.to_json().encode(), IfNoneMatch="*"):
                return
            current = self.current_lock()
        if current is not None and current[0].expired():
            holder, etag = current
            if self._put(self.lock_key, info.to_json().encode(), IfMatch=etag):
                self.warn(f"took over an expired lock on {self.describe()} held by {holder.describe()}")
                return
            current = self.current_lock()
        holder = current[0] if current else None
        raise LockError(f"state is locked by {holder.describe() if holder else 'another process'}",
                        where=self.describe(),
                        hint="wait for it to finish (--lock-timeout DURATION waits for it; an abandoned lock is "
                             "taken over when its lease runs out); "
                             f"if its holder is gone: recon force-unlock {holder.id if holder else 'ID'}")

    @contextmanager
    def lock(self, operation: str) -> Iterator[LockInfo]:
        self.check_conditional_writes()
        info = LockInfo.new(operation, self.lease_seconds)
        wait_for_lock(lambda: self._acquire(info), self.lock_timeout, self.warn,
                      interval=min(2.0, self.lease_seconds / 3))
        stop = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(info, stop), name="recon-lease", daemon=True)
        renewer.start()
        try:
            yield info
        finally:
            stop.set()
            renewer.join()
            current = self.current_lock()
            if current and current[0].id == info.id:
                self.cloud.call("s3", "delete_object", where=self.describe(), Bucket=self.bucket, Key=self.lock_key)

    def lock_after_exit(self) -> str:
        """What becomes of the lock when recon exits without releasing it."""
        return (f"the lock object {self.lock_key} stays until its lease runs out (within {self.lease_seconds:g}s): "
                "the next run waits for it with --lock-timeout, or takes it over then")

    def _renew(self, info: LockInfo, stop: threading.Event) -> None:
        """Extend the lease every third of it while the holder works."""
        while not stop.wait(self.lease_seconds / 3):
            try:
                current = self.current_lock()
                if current is None or current[0].id != info.id:
                    self.warn(f"lost the lock on {self.describe()}: "
                              f"{current[0].describe() if current else 'it was removed'}")
                    return
                self._put(self.lock_key, info.renewed(self.lease_seconds).to_json().encode(), IfMatch=current[1])
            except CloudError as exc:  # keep trying: the lease is still ours until it runs out
                self.warn(f"could not renew the lock lease on {self.describe()}: {exc}")

    def force_unlock(self, lock_id: str) -> LockInfo:
        current = self.current_lock()
        if current is None:
            raise LockError("state is not locked", where=self.describe())
        holder, _ = current
        if holder.id != lock_id:
            raise LockError(f"lock id {lock_id!r} does not match the lock held by {holder.describe()}",
                            where=self.describe())
        self.cloud.call("s3", "delete_object", where=self.describe(), Bucket=self.bucket, Key=self.lock_key)
        return holder


class Unlocked:
    """A backend used with --lock=false: the same state, no lock (for a store that cannot lock)."""

    def __init__(self, backend):
        self.backend = backend

    def __getattr__(self, name):
        return getattr(self.backend, name)

    @contextmanager
    def lock(self, operation: str) -> Iterator[None]:
        yield None

    def lock_after_exit(self) -> str:
        return "no lock was held (--lock=false)"
