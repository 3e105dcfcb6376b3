"""Running the sandbox as a child process: a fresh process is a fresh cloud.

``start_child`` launches ``python -m reconciler.sandbox``, waits for its ready line and hands back
a ``SandboxProcess`` with the URL and the eucarc's variables. The child's stderr goes to
``DIR/sandbox.log``; its stdout is read by a thread so that it can never block on a full pipe.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import reconciler

from ..errors import ReconError
from .credentials import ACCOUNT_ID, EUCARC, make_directory, read_eucarc
from .server import READY_PREFIX, STOPPED_LINE
from .zones import DEFAULT_ZONES

LOG_FILE = "sandbox.log"
_READY = re.compile(re.escape(READY_PREFIX) + r"\s+(\S+)")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class SandboxProcess:
    """A sandbox cloud running in a child process."""

    def __init__(self, process: subprocess.Popen, directory: Path, url: str, lines: "queue.Queue[str | None]"):
        self.process = process
        self.directory = directory
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        self.eucarc = directory / EUCARC
        self.env: dict[str, str] = read_eucarc(self.eucarc)
        self.output: list[str] = []
        self._lines = lines

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._drain()
        return self.process.returncode

    def _drain(self) -> None:
        while True:
            try:
                line = self._lines.get(timeout=1)
            except queue.Empty:
                return
            if line is None:
                return
            self.output.append(line)

    @property
    def stopped_cleanly(self) -> bool:
        return self.process.returncode == 0 and STOPPED_LINE in self.output

    def __enter__(self) -> "SandboxProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SandboxProcess(pid={self.pid}, url={self.url!r}, directory={str(self.directory)!r})"


def _pump(stream, lines: "queue.Queue[str | None]") -> None:
    try:
        for raw in iter(stream.readline, ""):
            lines.put(raw.rstrip("\n"))
    finally:
        lines.put(None)


def start_child(
    directory: Path,
    *,
    port: int = 0,
    zones: Sequence[str] = DEFAULT_ZONES,
    timeout: float = 180,
    eucalyptus_version: str = "4.0",
    account_id: str = ACCOUNT_ID,
    lb_image_installed: bool = False,
    spawn: Callable[..., subprocess.Popen] = subprocess.Popen,
    detach: bool = False,
) -> SandboxProcess:
    """Start ``python -m reconciler.sandbox`` and return once it is serving.

    ``lb_image_installed``: the cloud starts with its default load-balancer image installed and
    enabled (``Sandbox``). ``timeout`` bounds only a start that hangs (one that fails is seen at once); it is generous
    because a busy machine can take many times the usual second or two.

    ``spawn`` starts the process (``subprocess.Popen`` or a drop-in, such as the test suite's fork
    server, which starts it without paying the interpreter's start-up again). A ``detach``-ed child
    runs in its own session and outlives this process (``recon sandbox --background``).
    """
    directory = make_directory(Path(directory))
    command = [
        sys.executable, "-m", "reconciler.sandbox",
        "--port", str(port),
        "--dir", str(directory),
        "--zones", ",".join(zones),
        "--eucalyptus-version", eucalyptus_version,
        "--account-id", account_id,
        *(["--lb-image-installed"] if lb_image_installed else []),
    ]
    if not detach:
        command += ["--parent-pid", str(os.getpid())]   # a child whose parent is gone stops by itself
    env = dict(os.environ)
    package_root = str(Path(reconciler.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    log_path = directory / LOG_FILE
    with open(log_path, "ab") as log:
        process = spawn(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
            text=True, env=env, **({"start_new_session": True} if detach else {}),
        )
    lines: "queue.Queue[str | None]" = queue.Queue()
    threading.Thread(target=_pump, args=(process.stdout, lines), name="recon-sandbox-stdout",
                     daemon=True).start()

    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(remaining, 0.01)) if remaining > 0 else None
        except queue.Empty:
            line = None
            remaining = 0
        if line is not None:
            match = _READY.search(line)
            if match:
                child = SandboxProcess(process, directory, match.group(1), lines)
                child.output.extend(seen + [line])
                return child
            seen.append(line)
            continue
        # end of output (child died) or timed out
        if remaining <= 0 and process.poll() is None:
            process.kill()
        process.wait()
        raise ReconError(
            f"the sandbox did not start (exit code {process.returncode})",
            where=" ".join(command[1:4]),
            hint=f"its log {log_path} ends with:\n{_tail(log_path)}" if _tail(log_path) else None,
        )
