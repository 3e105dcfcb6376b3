"""recon's temporary files: one folder per run, removed on every exit path.

Everything recon writes to the temporary folder (``TMPDIR``: customized images of tens of
MiB, debugfs scratch, haproxy checks) goes under ``TMPDIR/recon-PID-XXXXXXXX``, made on first
use. It goes when the run ends: each temporary folder is removed when its step ends (the
``with`` of :func:`directory`, also when Ctrl-C unwinds), the run's folder at interpreter exit
and in :func:`~reconciler.interrupts.exit_now`. A run killed with SIGKILL cannot clean up: the
next run removes every ``recon-PID-…`` folder whose process is gone (:func:`sweep`).
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

_RUN_DIR_RE = re.compile(r"^recon-(\d+)-[A-Za-z0-9_]+$")
_lock = threading.Lock()
_run_dir: Path | None = None
_owner = 0          # the pid that made _run_dir: a forked child never removes its parent's


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:    # another user's process
        return True
    return True


def sweep(base: Path | None = None) -> list[Path]:
    """Remove the run folders of recon processes that no longer exist; the ones removed."""
    base = Path(base or tempfile.gettempdir())
    removed = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        match = _RUN_DIR_RE.match(entry.name)
        if match is None or int(match.group(1)) == os.getpid() or _alive(int(match.group(1))):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
        except OSError:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


def run_dir() -> Path:
    """This process's folder under TMPDIR, made (after a :func:`sweep`) on first use."""
    global _run_dir, _owner
    with _lock:
        if _run_dir is None or _owner != os.getpid() or not _run_dir.is_dir():
            sweep()
            _run_dir, _owner = Path(tempfile.mkdtemp(prefix=f"recon-{os.getpid()}-")), os.getpid()
        return _run_dir


def directory(prefix: str) -> tempfile.TemporaryDirectory:
    """A temporary folder inside :func:`run_dir`, removed when the ``with`` ends."""
    return tempfile.TemporaryDirectory(prefix=prefix, dir=run_dir())


def remove() -> None:
    """Remove this process's folder and all in it (at exit; safe to call more than once)."""
    global _run_dir
    with _lock:
        if _run_dir is not None and _owner == os.getpid():
            shutil.rmtree(_run_dir, ignore_errors=True)
        _run_dir = None


atexit.register(remove)
