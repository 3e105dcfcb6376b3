"""Ctrl-C and SIGTERM: stop starting changes and let the running ones finish, or abandon them.

recon's entry point installs :class:`Signals` for the whole run. Outside an apply's changes a
signal raises KeyboardInterrupt as usual: nothing is being changed, so unwinding (and releasing
the state lock on the way) is safe. While changes run (:meth:`Signals.graceful`), the first
signal only sets a :class:`StopToken`: the applier starts nothing new, and long steps (waits,
uploads) end at their next check by raising :class:`Interrupted`. The second one abandons the
running changes: the applier reports and the process exits at once (:func:`exit_now`), without
releasing the state lock while any thread of recon could still change the cloud -- a local lock
dies with the process, a remote one's lease runs out.

The handler only sets flags: it never prints nor takes a lock the main thread may hold.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator, NoReturn

from . import scratch
from .errors import ReconError

EXIT_INTERRUPTED = 130
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(ReconError):
    """A step stopped part-way because recon was told to stop (Ctrl-C, SIGTERM)."""

    exit_code = EXIT_INTERRUPTED


class StopToken:
    """Set once recon should stop: long steps check it between parts and polls."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""
        #: A second signal came: stop waiting for the running changes.
        self.abandoned = False
        #: Set when recon stopped because of an error rather than a signal (see :meth:`fail`).
        self.error: ReconError | None = None

    @property
    def stopped(self) -> bool:
        return self._event.is_set()

    def stop(self, reason: str) -> None:
        self.reason = self.reason or reason
        self._event.set()

    def fail(self, error: ReconError) -> None:
        """Stop because of ``error`` (this run lost its state lock), not a signal: the apply
        stops the same way, then reports ``error`` and exits with its code."""
        self.error = self.error or error
        self.stop("the state lock was lost")

    def check(self, where: str, step: str) -> None:
        """Raise :class:`Interrupted` if stopped; ``step`` says where the work stops
        ("before uploading part 3", "while waiting for …")."""
        if self.stopped:
            raise Interrupted(f"interrupted ({self.reason}) {step}", where=where)

    def sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True (at once) when stopped meanwhile."""
        return self._event.wait(seconds)


class Signals:
    """SIGINT and SIGTERM handling for one run of recon (main thread only)."""

    def __init__(self) -> None:
        self._token: StopToken | None = None
        self._previous: dict = {}
        #: Name of the last signal received (SIGINT, SIGTERM), for messages.
        self.received = ""

    def __enter__(self) -> "Signals":
        self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @contextmanager
    def graceful(self) -> Iterator[StopToken]:
        """While changes run: the first signal stops the token, the second abandons."""
        token = StopToken()
        self._token = token
        try:
            yield token
        finally:
            self._token = None

    def _handle(self, signum: int, frame) -> None:
        self.received = signal.Signals(signum).name
        token = self._token
        if token is None:
            raise KeyboardInterrupt
        if token.stopped:
            token.abandoned = True
        else:
            token.stop(self.received)


def exit_now(code: int = EXIT_INTERRUPTED) -> NoReturn:
    """Leave the process at once, threads and all, after flushing what was printed and removing
    the run's temporary files (``os._exit`` runs no exit handlers)."""
    scratch.remove()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
