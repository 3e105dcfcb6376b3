"""Local state: ``<dir>/<stack>.json`` written atomically, locked with a lock file.

Every write goes to a temporary file in the same folder, is fsynced and renamed over
the old file (which is kept as ``.backup``). The lock is ``<stack>.json.lock``, made
with O_EXCL so that exactly one process gets it; it holds who took it, when, and for
what, so a refused process can say who holds it.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import LockError, StateError
from .lock import LockInfo
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
    def __init__(self, directory: Path, stack: str):
        self.directory = directory
        self.stack = stack
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
    def current_lock(self) -> LockInfo | None:
        try:
            return LockInfo.from_json(self.lock_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except OSError:
            return LockInfo.unreadable()

    @contextmanager
    def lock(self, operation: str) -> Iterator[LockInfo]:
        info = LockInfo.new(operation)
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            holder = self.current_lock()
            raise LockError(f"state is locked by {holder.describe() if holder else 'another process'}",
                            where=str(self.path),
                            hint=f"wait for it to finish; if that process is gone: "
                                 f"recon force-unlock {holder.id if holder else 'ID'}")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(info.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        try:
            yield info
        finally:
            holder = self.current_lock()
            if holder and holder.id == info.id:
                self.lock_path.unlink(missing_ok=True)

    def force_unlock(self, lock_id: str) -> LockInfo:
        holder = self.current_lock()
        if holder is None:
            raise LockError("state is not locked", where=str(self.path))
        if holder.id != lock_id:
            raise LockError(f"lock id {lock_id!r} does not match the lock held by {holder.describe()}",
                            where=str(self.path))
        self.lock_path.unlink()
        return holder
