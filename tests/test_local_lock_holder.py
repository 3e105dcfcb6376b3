"""A run refused by the local state lock names the process holding it, even when it looks in the
instant between the holder taking the lock and writing its name -- when the lock file is still empty
or still names the killed process that held it before."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reconciler.errors import LockError
from reconciler.state.local import LocalBackend
from reconciler.state.lock import LockInfo


def gone_holder() -> LockInfo:
    """The lock details a process that has exited left behind."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    info = LockInfo.new("apply")
    return LockInfo(info.id, info.who.replace(f"(pid {os.getpid()})", f"(pid {child.stdout.strip()})"),
                    "apply", info.created)


@pytest.mark.parametrize("left", ["empty", "gone holder"])
def test_the_refusal_names_the_holder_that_is_still_writing_its_name(tmp_path: Path, left: str) -> None:
    backend = LocalBackend(tmp_path, "web")
    backend.holder_wait = 120   # however late the writer below runs on a busy machine
    holder = os.open(backend.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if left == "gone holder":
            os.write(holder, gone_holder().to_json().encode())
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)   # taken: its name comes a moment later
        mine = LockInfo.new("apply")
        writer = threading.Timer(0.3, lambda: (os.ftruncate(holder, 0), os.pwrite(holder, mine.to_json().encode(), 0)))
        writer.start()
        with pytest.raises(LockError) as refused:
            with backend.lock("plan"):
                pass
        writer.join()
    finally:
        os.close(holder)
    assert f"state is locked by {mine.describe()}" in str(refused.value), refused.value
