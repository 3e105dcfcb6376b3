"""``recon ARGS`` in a child forked from this process, for ``recon demo``.

The demo runs a score of recon commands; each started as ``python -m reconciler`` pays Python's
start-up and recon's imports again (most of a second of CPU). A forked child of the demo, which has
already imported the command line, starts in milliseconds and is still its own process: its own
folder, environment, standard streams, signal handlers and exit code, and whatever it leaves
running (threads, open files) ends with it.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import tempfile
import threading

from .interrupts import exit_now


def run_recon(args: list[str], *, cwd: str | os.PathLike, env: dict[str, str]) -> tuple[int, str]:
    """Run ``recon ARGS`` in ``cwd`` with exactly ``env``, stdin empty; its exit code and its output
    (standard output and error together, as a terminal shows them)."""
    from . import cli   # imported here, before the fork, so that the child starts with it

    sys.stdout.flush()
    sys.stderr.flush()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        _become(cli, args, cwd, env, write)
    os.close(write)
    with os.fdopen(read, "rb") as output:
        text = output.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), text


def _become(cli, args: list[str], cwd, env: dict[str, str], output: int) -> None:
    """In the child: become ``recon ARGS`` writing to ``output``; never returns."""
    code = 1
    try:
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(stdin)
        os.close(output)
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        tempfile.tempdir = None
        sys.argv = ["recon", *args]
        try:
            cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        threading._shutdown()   # type: ignore[attr-defined]  # what an interpreter does on its way out
        atexit._run_exitfuncs()
    finally:
        exit_now(code)   # flushed, the child's own temporary files removed
