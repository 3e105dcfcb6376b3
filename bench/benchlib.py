"""What the benchmarks share: the machine they ran on, a child process's wall time, CPU and peak RSS,
an environment that lets Python keep its bytecode, and loopback HTTP servers in front of the sandbox
(one that counts, and records, the requests it passes on; one that replays recorded replies).

Not part of recon and not used by the tests.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

#: Variables of the caller's cloud that must not leak into a benchmark's runs.
CLOUD_VARIABLES = ("AWS_", "EC2_", "EUCA", "S3_")


@contextmanager
def work_folder(given: Path | None, prefix: str) -> Iterator[Path]:
    """The benchmark's folder: ``given`` (kept afterwards), or a temporary one removed at the end."""
    work = given or Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    finally:
        if given is None:
            shutil.rmtree(work, ignore_errors=True)


def machine() -> str:
    """CPUs, CPU model, RAM, Python version, and the load average when this is called."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        ram = f"{kib / (1 << 20):.0f} GiB"
    except (OSError, AttributeError):
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), {ram} RAM, Python {platform.python_version()}, {load()}"


def load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def python_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (the caller's environment) without cloud variables, with bytecode caching on: an
    installed recon has its ``.pyc`` files, so compiling its sources on every run is not its cost.
    The cache goes to a folder of its own in the temp dir, not beside the sources."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith(CLOUD_VARIABLES)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "recon-bench-pycache")
    env["NO_COLOR"] = "1"
    return env


@dataclass
class Run:
    code: int
    out: str
    err: str
    seconds: float
    cpu: float       # user + system seconds of the process and the children it waited for
    peak_kib: int    # the largest peak RSS of the process or one of its children

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / 1024


#: The process the benchmarks' children are started from. Linux gives a child the peak RSS of the
#: process it was forked from, and exec keeps it, so a child of the benchmark itself (with moto and
#: recon loaded: 80 MiB) would report at least that. This one is a bare Python (about 10 MiB, the floor
#: of any peak reported), started once; it runs one command at a time and reports what wait4 says.
_LAUNCHER = r"""
import json, os, subprocess, sys, time
for line in sys.stdin:
    job = json.loads(line)
    with open(job["out"], "w") as out, open(job["err"], "w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(job["argv"], cwd=job["cwd"], env=job["env"], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > job["timeout"]:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
    seconds = time.perf_counter() - started
    print(json.dumps({"code": os.waitstatus_to_exitcode(status), "seconds": seconds,
                      "cpu": usage.ru_utime + usage.ru_stime, "peak_kib": usage.ru_maxrss,
                      "timed_out": seconds > job["timeout"]}), flush=True)
"""
_launcher: subprocess.Popen | None = None
_launcher_lock = threading.Lock()


def run(argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 3600) -> Run:
    """``argv`` in a child process: exit code, output, wall time, CPU and peak RSS (wait4, in the
    launcher: ``_LAUNCHER``)."""
    global _launcher
    with _launcher_lock, tempfile.TemporaryDirectory(prefix="recon-bench-run-") as folder:
        if _launcher is None or _launcher.poll() is not None:
            _launcher = subprocess.Popen([sys.executable, "-S", "-c", _LAUNCHER], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True, env={"PATH": os.environ.get("PATH", "")})
        assert _launcher.stdin is not None and _launcher.stdout is not None
        out, err = Path(folder) / "out", Path(folder) / "err"
        job = {"argv": [str(a) for a in argv], "env": env, "cwd": str(cwd), "timeout": timeout,
               "out": str(out), "err": str(err)}
        _launcher.stdin.write(json.dumps(job) + "\n")
        _launcher.stdin.flush()
        line = _launcher.stdout.readline()
        if not line:
            raise SystemExit(f"the benchmark's launcher died running {' '.join(argv[:4])}")
        done = json.loads(line)
        if done["timed_out"]:
            raise SystemExit(f"{' '.join(argv[:4])} took more than {timeout}s")
        return Run(done["code"], out.read_text(errors="replace"), err.read_text(errors="replace"), done["seconds"],
                   done["cpu"], done["peak_kib"])


def recon(*args: str, env: dict[str, str], cwd: Path, timeout: float = 3600) -> Run:
    """The real recon CLI (``python -m reconciler``) in a child process."""
    return run([sys.executable, "-m", "reconciler", *args], env=env, cwd=cwd, timeout=timeout)


# --- loopback HTTP ------------------------------------------------------------------------------

def request_key(method: str, path: str, body: bytes) -> tuple[str, str, bytes]:
    """What identifies a request for replay: method, path with query, body (signatures and dates,
    which change on every run, are in headers)."""
    return method, path, body


def operation(path: str, body: bytes) -> str:
    """``service.Action`` of a query-protocol request (``compute.DescribeInstances``); S3 by method."""
    parts = path.split("/")
    service = parts[2] if len(parts) > 2 and parts[1] == "services" else "?"
    action = (parse_qs(body.decode("latin-1")).get("Action") or parse_qs(urlsplit(path).query).get("Action")
              or ["?"])[0]
    return f"{service}.{action}"


Reply = tuple[int, list[tuple[str, str]], bytes]


class _Server:
    """A threaded loopback HTTP/1.1 server whose requests go to ``answer(method, path, headers, body)``."""

    def __init__(self, answer: Callable[[str, str, dict[str, str], bytes], Reply]) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, data = answer(self.command, self.path, dict(self.headers.items()), body)
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def env(self, cloud_env: dict[str, str], upstream: str) -> dict[str, str]:
        """The sandbox's eucarc variables with ``upstream`` replaced by this server."""
        return {k: v.replace(upstream, self.url) for k, v in cloud_env.items()}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class CountingProxy(_Server):
    """Passes every request on to ``upstream`` (Host header kept, so signatures hold), counting them by
    ``service.Action``; with ``record``, keeps each reply under its :func:`request_key`. Operations
    in ``answers`` (``{"Tokens.GetCallerIdentity": reply}``) are answered here, and counted too; the
    reply bodies of those in ``rewrite`` go through its function on their way back."""

    def __init__(self, upstream: str, *, record: bool = False, answers: dict[str, Reply] | None = None,
                 rewrite: dict[str, Callable[[bytes], bytes]] | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.target = urlsplit(self.upstream)
        self.counts: Counter = Counter()
        self.recorded: dict[tuple[str, str, bytes], Reply] | None = {} if record else None
        self.answers = dict(answers or {})
        self.rewrite = dict(rewrite or {})
        self._lock = threading.Lock()
        super().__init__(self._forward)

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        name = operation(path, body)
        with self._lock:
            self.counts[name] += 1
        if name in self.answers:
            return self.answers[name]
        conn = http.client.HTTPConnection(self.target.hostname, self.target.port, timeout=600)
        try:
            conn.request(method, path, body=body,
                         headers={k: v for k, v in headers.items() if k.lower() != "connection"})
            reply = conn.getresponse()
            answer = (reply.status, reply.getheaders(), reply.read())
        finally:
            conn.close()
        if name in self.rewrite and answer[0] == 200:
            answer = (answer[0], answer[1], self.rewrite[name](answer[2]))
        if self.recorded is not None:
            with self._lock:
                self.recorded[request_key(method, path, body)] = answer
        return answer

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()


class ReplayServer(_Server):
    """Answers each request with the reply recorded for it at once; a request never recorded gets a
    500 and is counted in ``misses`` (a benchmark then stops: it would time something else)."""

    def __init__(self, recorded: dict[tuple[str, str, bytes], Reply]) -> None:
        self.recorded = dict(recorded)
        self.misses: Counter = Counter()
        super().__init__(self._answer)

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        found = self.recorded.get(request_key(method, path, body))
        if found is None:
            self.misses[operation(path, body)] += 1
            return 500, [("Content-Type", "text/plain")], b"not recorded"
        return found
