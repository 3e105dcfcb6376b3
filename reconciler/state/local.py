"""Local state: ``<dir>/<stack>.json`` written atomically, locked with a lock file.

Every write goes to a temporary file in the same folder, is fsynced and renamed over
the old file (which is kept as ``.backup``). The lock is an OS lock (``flock``) on
``<stack>.json.lock``, held for the whole run, so exactly one process has it and it
dies with its holder; the file holds who took it, when, and for what, so a refused
process can say who holds it.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ..errors import LockError, StateError
from .lock import LockInfo, wait_for_lock
from .model import State


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class LocalBackend:
    def __init__(self, directory: Path, stack: str, *, lock_timeout: float = 0.0,
                 warn: Callable[[str], None] = lambda message: None):
        self.directory = directory
        self.stack = stack
        #: Seconds to wait for a lock another process holds (``--lock-timeout``).
        self.lock_timeout = lock_timeout
        self.warn = warn
        self.path = directory / f"{stack}.json"
        self.lock_path = directory / f"{stack}.json.lock"

    def describe(self) -> str:
        return str(self.path)

    def read(self) -> State:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return State(stack=self.stack)
        except OSError as exc:
            raise StateError(f"cannot read state: {exc.strerror or exc}", where=str(self.path))
        state = State.loads(text, str(self.path))
        if state.stack != self.stack:
            raise StateError(f"this state belongs to stack {state.stack!r}, not {self.stack!r}", where=str(self.path))
        return state

    def write(self, state: State) -> None:
        """Write the state (serial + 1), keeping the previous file as .backup."""
        from .. import __version__

        self.directory.mkdir(parents=True, exist_ok=True)
        state.serial += 1
        state.recon_version = __version__
        if self.path.exists():
            backup = self.path.with_name(self.path.name + ".backup")
            write_atomic(backup, self.path.read_text(encoding="utf-8"))
        write_atomic(self.path, state.dumps())

    # --- locking ----------------------------------------------------------------------
    def _read_holder(self, fd: int) -> LockInfo | None:
        data = os.pread(fd, 64 << 10, 0)
        return LockInfo.from_json(data) if data.strip() else None

    def _take(self, info: LockInfo) -> int:
        """Open and flock the lock file (LockError if another process holds it); write ``info``."""
        while True:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise StateError(f"cannot open the lock file: {exc.strerror or exc}", where=str(self.lock_path))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._read_holder(fd)
                os.close(fd)
                raise LockError(f"state is locked by {holder.describe() if holder else 'another process'}",
                                where=str(self.path),
                                hint="wait for it to finish (--lock-timeout DURATION waits for it); the lock "
                                     "is freed when that process exits, even if it was killed")
            except OSError as exc:   # a file system without flock (some network mounts)
                os.close(fd)
                raise StateError(f"cannot lock the lock file: {exc.strerror or exc}", where=str(self.lock_path),
                                 hint="keep local state on a local file system, or use [state] backend = \"s3\"")
            if self._is_current(fd):
                break
            os.close(fd)   # its holder removed that file as we opened it: lock the one there now
        previous = self._read_holder(fd)   # a released lock's file is removed: one that holds a holder is stale
        if previous is not None:
            self.warn(f"took over the lock on {self.path} left by {previous.describe()}: that process is gone")
        data = info.to_json().encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        return fd

    def _is_current(self, fd: int) -> bool:
        """Whether ``fd`` is still the file at the lock path (not one removed meanwhile)."""
        try:
            here = os.stat(self.lock_path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)

    @contextmanager
    def lock(self, operation: str) -> Iterator[LockInfo]:
        """Hold an OS lock (flock) on the lock file for the whole run; the file says who holds it.

        The kernel frees the lock when the process exits, however it exits, so the lock file a
        killed holder leaves behind does not lock anything: the next run takes it at once.
        """
        info = LockInfo.new(operation)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot make the state folder: {exc.strerror or exc}", where=str(self.directory))
        fd = wait_for_lock(lambda: self._take(info), self.lock_timeout, self.warn, interval=0.25)
        try:
            yield info
        finally:
            if self._is_current(fd):
                self.lock_path.unlink(missing_ok=True)
            os.close(fd)

    def lock_after_exit(self) -> str:
        """What becomes of the lock when recon exits without releasing it."""
        return "the operating system frees the lock as recon exits"

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Remove a lock file no process holds (one a killed or abandoned run left behind)."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise LockError("state is not locked", where=str(self.path))
        try:
            holder = self._read_holder(fd) or LockInfo.unreadable()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockError(f"state is locked by {holder.describe()}, which is still running",
                                where=str(self.path),
                                hint="a local lock is freed when its holder exits; wait for it, or stop that process")
            if holder.id != lock_id:
                raise LockError(f"lock id {lock_id!r} does not match the lock held by {holder.describe()}",
                                where=str(self.path))
            if self._is_current(fd):
                self.lock_path.unlink()
        finally:
            os.close(fd)
        return holder
