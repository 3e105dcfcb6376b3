"""A sandbox left running in the background: ``recon sandbox --background`` and ``--stop``.

``start`` launches a detached child (``start_child(detach=True)``), returns once it serves (its
eucarc written, the cloud answering) and records its process id in ``DIR/sandbox.pid``; ``stop``
sends that process SIGTERM and waits until it is gone. A second start in the same folder while
one runs is refused.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Sequence

from ..errors import ReconError
from .child import SandboxProcess, start_child

PID_FILE = "sandbox.pid"
#: Seconds a background sandbox is given to come up, and to stop before it is killed.
START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0


def _running(directory: Path) -> int | None:
    """The process id of the sandbox running for ``directory``, if one does."""
    try:
        pid = int((directory / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists() and b"reconciler.sandbox" not in cmdline.read_bytes():
        return None   # that process id has been given to another program since
    return pid


def start(directory: Path, *, port: int, zones: Sequence[str], eucalyptus_version: str,
          account_id: str, lb_image_installed: bool) -> SandboxProcess:
    directory = Path(directory)
    pid = _running(directory)
    if pid is not None:
        raise ReconError(f"a sandbox already runs for this folder (process {pid})", where=str(directory),
                         hint=f"stop it with `recon sandbox --stop --dir {directory}`, or use it: "
                              f"source {directory / 'eucarc'}")
    child = start_child(directory, port=port, zones=zones, eucalyptus_version=eucalyptus_version,
                        account_id=account_id, lb_image_installed=lb_image_installed, timeout=START_TIMEOUT,
                        detach=True)
    (child.directory / PID_FILE).write_text(f"{child.pid}\n")
    return child


def stop(directory: Path) -> int | None:
    """Stop the background sandbox of ``directory``; its process id, or None if none ran."""
    directory = Path(directory)
    pid = _running(directory)
    (directory / PID_FILE).unlink(missing_ok=True)
    if pid is None:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    return pid


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie its new parent has not reaped yet does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True

