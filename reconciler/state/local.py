"""Local state: ``<dir>/<stack>.json`` written atomically, locked with a lock file.

Every write goes to a temporary file in the same folder, is fsynced and renamed over
the old file (which is kept as ``.backup``). The lock is an OS lock (``flock``) on
``<stack>.json.lock``, held for the whole run, so exactly one process has it and it
dies with its holder; the file holds who took it, when, and for what, so a refused
process can say who holds it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ..atomic import write_atomic
from ..errors import LockError, StateError
from .lock import LockInfo, wait_for_lock
from .model import State

#: Seconds a refused run reads the lock file again for its holder's name: the holder writes it just
#: after taking the lock, so for a moment the file may be empty, half-written or still name the
#: process that held it before (a killed one).
HOLDER_WAIT = 2.0
_WHO = re.compile(r"@(?P<host>.+) \(pid (?P<pid>\d+)\)$")


def _may_be_alive(holder: LockInfo) -> bool:
    """False only for a holder named as a process of this machine that is gone."""
    match = _WHO.search(holder.who)
    if match is None or match["host"] != socket.gethostname():
        return True
    try:
        os.kill(int(match["pid"]), 0)
    except ProcessLookupError:
        return False
    except OSError:   # alive, someone else's
        return True
    return True


def os_failure(exc: OSError, what: str, path: Path) -> StateError:
    """A StateError for an OS error on a local state file, with what to do about it."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EISDIR:
        hint = f"it is a folder where recon keeps a file: remove it ({path}) if nothing in it is needed"
    elif exc.errno == errno.ENOTDIR:
        hint = "[state] path must name a folder (recon keeps <stack>.json in it), not a file"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "make the state folder writable (fix its permissions, or mount it read-write), " \
               "or set [state] path to a folder you can write"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        hint = "free space on that file system (or raise the file size limit) and run again"
    else:
        hint = None
    return StateError(f"{what}: {reason}", where=str(path), hint=hint)


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
        #: Seconds a refused run waits for the holder's name (HOLDER_WAIT).
        self.holder_wait = HOLDER_WAIT

    def describe(self) -> str:
        return str(self.path)

    def _check_folder(self) -> None:
        """StateError unless the state folder is a folder (or not made yet)."""
        if self.directory.exists() and not self.directory.is_dir():
            raise StateError("[state] path names a file, not a folder", where=str(self.directory),
                             hint="set [state] path to a folder (recon keeps <stack>.json in it), "
                                  "or move that file away")

    def read(self) -> State:
        """The state in the file (an empty one if there is none yet). Only a regular file is read:
        a FIFO or a device there is refused at once rather than waited on."""
        self._check_folder()
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return State(stack=self.stack)
        except OSError as exc:
            raise os_failure(exc, "cannot read state", self.path)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StateError("the state file is not a regular file (a FIFO, device or folder)",
                                 where=str(self.path), hint="move it away; if it replaced your state, restore "
                                                            f"{self.path.name}.backup beside it")
            with os.fdopen(os.dup(fd), "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise os_failure(exc, "cannot read state", self.path)
        finally:
            os.close(fd)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StateError(f"state file is not valid UTF-8 (byte {exc.start})", where=str(self.path),
                             hint=f"restore it from {self.path.name}.backup beside it, or from version control")
        state = State.loads(text, str(self.path))
        if state.stack != self.stack:
            raise StateError(f"this state belongs to stack {state.stack!r}, not {self.stack!r}", where=str(self.path))
        return state

    def write(self, state: State) -> None:
        """Write the state (serial + 1), keeping the previous file as .backup."""
        from .. import __version__

        state.serial += 1
        state.recon_version = __version__
        backup = self.path.with_name(self.path.name + ".backup")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                write_atomic(backup, self.path.read_bytes())
            write_atomic(self.path, state.dumps())
        except OSError as exc:
            state.serial -= 1
            raise os_failure(exc, "cannot write state", self.path)

    # --- locking ----------------------------------------------------------------------
    def _read_holder(self, fd: int) -> LockInfo | None:
        data = os.pread(fd, 64 << 10, 0)
        return LockInfo.from_json(data) if data.strip() else None

    def _current_holder(self, fd: int) -> LockInfo | None:
        """Who holds the lock this run could not take (see HOLDER_WAIT)."""
        deadline = time.monotonic() + self.holder_wait
        while True:
            holder = self._read_holder(fd)
            readable = holder is not None and holder.id != LockInfo.unreadable().id
            if (readable and _may_be_alive(holder)) or time.monotonic() >= deadline:
                return holder
            time.sleep(0.01)

    def _open_lock(self, flags: int) -> int:
        """The lock file opened read-write (FileNotFoundError if absent and not ``os.O_CREAT``);
        StateError if it cannot be, or is not a regular file."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | flags, 0o600)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise os_failure(exc, "cannot open the lock file", self.lock_path)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StateError("the lock file is not a regular file", where=str(self.lock_path),
                             hint=f"remove it ({self.lock_path}) when no recon runs on this stack")
        return fd

    def _take(self, info: LockInfo) -> int:
        """Open and flock the lock file (LockError if another process holds it); write ``info``."""
        while True:
            fd = self._open_lock(os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._current_holder(fd)
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
        try:
            data = info.to_json().encode()
            os.pwrite(fd, data, 0)   # then cut what is left of the previous holder's: never empty meanwhile
            os.ftruncate(fd, len(data))
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            raise os_failure(exc, "cannot write the lock file", self.lock_path)
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
        self._check_folder()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise os_failure(exc, "cannot make the state folder", self.directory)
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

    def check_held(self, operation: str) -> None:
        """Nothing to check: an OS lock is held until this process exits, it cannot be taken over."""

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Remove a lock file no process holds (one a killed or abandoned run left behind).
        An unreadable one (damaged) that no process holds is removed whatever ``lock_id``."""
        self._check_folder()
        try:
            fd = self._open_lock(0)
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
            if holder.id != lock_id and holder != LockInfo.unreadable():
                raise LockError(f"lock id {lock_id!r} does not match the lock held by {holder.describe()}",
                                where=str(self.path))
            if self._is_current(fd):
                self.lock_path.unlink()
        finally:
            os.close(fd)
        return holder
