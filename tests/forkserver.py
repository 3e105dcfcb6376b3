"""``Popen`` and ``run`` for ``python -m reconciler …`` through the fork server (``zygote.py``).

The child is a real process -- its own pid, streams, folder, environment, signals, exit code --
forked from one that has already imported recon, so a test pays milliseconds instead of the
interpreter's start-up for each command. Any other command, or keyword arguments this does not
know, go to :mod:`subprocess` unchanged. ``RECON_TEST_EXEC=1`` sends everything to subprocess.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from zygote import MAX_MESSAGE, PRELOADED

_SUPPORTED = {"cwd", "env", "stdin", "stdout", "stderr", "text"}


class _Zygote:
    """The fork server of this test process for one module, started on first use -- or the one its
    xdist controller shares with all workers (each fork server imports and makes seconds' worth of
    things first)."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.shared = "RECON_TEST_ZYGOTE_" + module.upper().replace(".", "_")   # its socket, when shared
        self._lock = threading.Lock()
        self._path: str | None = None
        self._process: subprocess.Popen | None = None

    def share(self) -> None:
        """Start the fork server now and name it in the environment the workers are started with."""
        os.environ[self.shared] = self.path()

    def path(self) -> str:
        shared = os.environ.get(self.shared)
        if shared and self._process is None and os.path.exists(shared):
            return shared
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                folder = tempfile.mkdtemp(prefix="recon-zygote-")
                self._path = os.path.join(folder, "socket")
                self._process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("zygote.py")),
                                                  self._path, self.module], stdin=subprocess.DEVNULL,
                                                 stdout=subprocess.PIPE, text=True)
                line = self._process.stdout.readline()
                assert line.strip() == "ready", f"the fork server did not start: {line!r}"
                atexit.register(self._stop, self._process, folder)
            return self._path

    @staticmethod
    def _stop(process: subprocess.Popen, folder: str) -> None:
        """At exit: kill the fork server, reap it, and remove its socket's folder."""
        process.kill()
        process.wait()
        process.stdout.close()
        shutil.rmtree(folder, ignore_errors=True)


#: One fork server per module it serves (``zygote.PRELOADED``).
ZYGOTES = {module: _Zygote(module) for module in PRELOADED}


def _served(args) -> str | None:
    """The module of ``[python, -m, MODULE, …]`` when the fork server can run it."""
    if os.environ.get("RECON_TEST_EXEC") == "1" or not isinstance(args, (list, tuple)) or len(args) < 3:
        return None
    if args[0] != sys.executable or args[1] != "-m" or args[2] not in PRELOADED:
        return None
    return args[2]


class Forked:
    """The part of :class:`subprocess.Popen` the tests use, for a child of the fork server."""

    def __init__(self, args, *, cwd=None, env=None, stdin=None, stdout=None, stderr=None, text=False):
        self.args = args
        self.returncode: int | None = None
        self.stdin = self.stdout = self.stderr = None
        mine: list[int] = []     # the parent's ends, kept
        theirs: list[int] = []   # the child's ends, passed then closed here
        for index, spec in enumerate((stdin, stdout, stderr)):
            child_fd, parent_end = self._stream(index, spec, text, stdout_fd=theirs[1] if index == 2 else None)
            theirs.append(child_fd)
            if parent_end is not None:
                mine.append(parent_end.fileno())
                setattr(self, ("stdin", "stdout", "stderr")[index], parent_end)
        request = {"module": args[2], "args": [str(a) for a in args[3:]], "cwd": str(cwd or os.getcwd()),
                   "env": dict(os.environ if env is None else env)}
        self._conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._conn.connect(ZYGOTES[args[2]].path())
            data = json.dumps(request).encode()
            assert len(data) < MAX_MESSAGE, "request too large for the fork server"
            socket.send_fds(self._conn, [data], theirs)
            self.pid = struct.unpack("!q", self._conn.recv(8))[0]
        finally:
            for fd in set(theirs):
                if fd not in mine:
                    os.close(fd)

    @staticmethod
    def _stream(index: int, spec, text: bool, stdout_fd: int | None):
        """(fd the child gets, the parent's file object or None) for one of stdin/stdout/stderr."""
        if spec is None:
            return os.dup(index), None
        if spec == subprocess.DEVNULL:
            return os.open(os.devnull, os.O_RDWR), None
        if spec == subprocess.STDOUT:
            return os.dup(stdout_fd), None
        if spec == subprocess.PIPE:
            read_end, write_end = os.pipe()
            child_fd, parent_fd, mode = (read_end, write_end, "w") if index == 0 else (write_end, read_end, "r")
            parent = open(parent_fd, mode + ("" if text else "b"), buffering=-1 if not text or index else 1)
            return child_fd, parent
        fd = spec if isinstance(spec, int) else spec.fileno()
        return os.dup(fd), None

    # --- ending
    def _ended(self, timeout: float | None) -> bool:
        if self.returncode is not None:
            return True
        self._conn.settimeout(timeout)
        try:
            data = self._conn.recv(8)
        except (socket.timeout, BlockingIOError):
            return False
        assert len(data) == 8, "the fork server lost this child"
        self.returncode = struct.unpack("!q", data)[0]
        self._conn.close()
        return True

    def poll(self) -> int | None:
        self._ended(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(15)

    def kill(self) -> None:
        self.send_signal(9)

    def communicate(self, input=None, timeout: float | None = None):
        """Write ``input``, read both streams to their end, wait: (stdout, stderr)."""
        results: dict[str, object] = {}
        readers = []
        for name in ("stdout", "stderr"):
            stream = getattr(self, name)
            if stream is not None:
                reader = threading.Thread(target=lambda s=stream, n=name: results.__setitem__(n, s.read()),
                                          daemon=True)
                reader.start()
                readers.append(reader)
        if self.stdin is not None:
            try:
                if input:
                    self.stdin.write(input)
                self.stdin.close()
            except BrokenPipeError:
                pass
        deadline = None if timeout is None else time.monotonic() + timeout
        for reader in readers:
            reader.join(None if deadline is None else max(deadline - time.monotonic(), 0))
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout)
        self.wait(None if deadline is None else max(deadline - time.monotonic(), 0.01))
        for name in ("stdout", "stderr"):
            stream = getattr(self, name)
            if stream is not None:
                stream.close()
        return results.get("stdout"), results.get("stderr")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        self.wait()


def Popen(args, **kwargs):
    """:class:`Forked` for ``python -m reconciler…`` when it can be, else :class:`subprocess.Popen`."""
    if _served(args) is None or set(kwargs) - _SUPPORTED:
        return subprocess.Popen(args, **kwargs)
    return Forked(args, **kwargs)


def run(args, *, input=None, capture_output=False, timeout=None, check=False, **kwargs):
    """:func:`subprocess.run` through the fork server when it can be."""
    if _served(args) is None or set(kwargs) - _SUPPORTED:
        return subprocess.run(args, input=input, capture_output=capture_output, timeout=timeout, check=check,
                              **kwargs)
    if capture_output:
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    proc = Forked(args, **kwargs)
    try:
        out, err = proc.communicate(input, timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    result = subprocess.CompletedProcess(args, proc.returncode, out, err)
    if check:
        result.check_returncode()
    return result


