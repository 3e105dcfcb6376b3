"""Wall-clock bounds on cloud calls: a deadline for each HTTP attempt, a budget for the whole call.

botocore's connect and read timeouts bound one socket operation each, not an attempt: a server
that accepts and never answers is only given up on after the read timeout, and one that sends a
byte every few seconds keeps a read going for ever. So each attempt runs on a thread of its own
and the caller stops waiting at the attempt's deadline (:func:`run_attempt`), which then counts as
a transient fault (:class:`NoAnswer`) like a reset connection: retried, and for a mutating call
handled as a possibly lost reply. The call as a whole, every attempt and the waits between them,
is bounded by :attr:`Deadline.budget`.

An attempt given up on is left to finish on its daemon thread: its socket's read timeout (the
attempt deadline) ends it once the server goes quiet, or the server does by closing. Such threads
are at most one per attempt that timed out, and recon is a command that exits when done.

Defaults suit Eucalyptus: its front end closes a connection after 60 s without traffic
(``bootstrap.webservices.pipeline_idle_timeout_seconds``), so a reply that takes longer than
that is not coming; a slow DescribeInstances or RunInstances on a busy 4.x cloud takes tens of
seconds, well inside :data:`DEFAULT_TIMEOUT`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from .errors import ConfigError

__all__ = ["DEFAULT_TIMEOUT", "MIN_TIMEOUT", "MAX_TIMEOUT", "Deadline", "NoAnswer", "run_attempt",
           "timeout_setting"]

DEFAULT_TIMEOUT = 90
"""Seconds one HTTP attempt may take, from sending the request to the last byte of the reply."""
MIN_TIMEOUT, MAX_TIMEOUT = 1, 3600
ATTEMPTS_PER_BUDGET = 3
"""The whole call (its retries included) may take as long as this many full attempts."""
CONNECT_TIMEOUT = 10
NOTICE_AFTER = 10
"""Seconds without an answer after which the user is told that recon is still waiting."""
ENV_TIMEOUT = "RECON_CALL_TIMEOUT"

T = TypeVar("T")


class NoAnswer(TimeoutError):
    """An attempt had no complete reply within its deadline (a transient fault)."""

    def __init__(self, seconds: float):
        super().__init__(f"no answer within {seconds:g} s")
        self.seconds = seconds


@dataclass(frozen=True)
class Deadline:
    """The bounds of one cloud call, from the per-attempt ``timeout`` in seconds."""

    timeout: float = DEFAULT_TIMEOUT

    @property
    def connect(self) -> float:
        """botocore's connect timeout."""
        return min(CONNECT_TIMEOUT, self.timeout)

    @property
    def read(self) -> float:
        """botocore's per-read timeout: it ends an attempt given up on once the server is quiet."""
        return self.timeout

    @property
    def budget(self) -> float:
        """Seconds the whole call may take, retries and the waits between them included."""
        return self.timeout * ATTEMPTS_PER_BUDGET

    @property
    def notice_after(self) -> float:
        """Seconds without an answer before the user is told (half the deadline, at most 10 s)."""
        return min(NOTICE_AFTER, max(1, self.timeout // 2))

    def for_attempt(self, started: float) -> float:
        """The deadline of an attempt starting now, in a call that started at ``started`` (monotonic)."""
        return max(1.0, min(self.timeout, started + self.budget - time.monotonic()))


def timeout_setting(value: int | None, env: Mapping[str, str]) -> int:
    """``[cloud] timeout`` if given (``value``, checked with the file against its field), else
    ``RECON_CALL_TIMEOUT``, else the default.

    Raises :class:`ConfigError` naming the variable for anything but a whole number of seconds
    from :data:`MIN_TIMEOUT` to :data:`MAX_TIMEOUT`.
    """
    if value is not None:
        return value
    raw = (env.get(ENV_TIMEOUT) or "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    number = int(raw) if re.fullmatch(r"[0-9]{1,9}", raw) else None
    if number is None or not MIN_TIMEOUT <= number <= MAX_TIMEOUT:
        shown = repr(raw) if len(repr(raw)) <= 40 else repr(raw)[:37] + "..."
        raise ConfigError(f"must be a whole number of seconds from {MIN_TIMEOUT} to {MAX_TIMEOUT}, not {shown}",
                          where=f"environment variable {ENV_TIMEOUT}",
                          hint="the seconds one attempt of a cloud call may take, e.g. 120 "
                               f"(default {DEFAULT_TIMEOUT})")
    return number


def run_attempt(attempt: Callable[[], T], seconds: float, *, notice_after: float,
                still_waiting: Callable[[float], None]) -> T:
    """``attempt()``'s result or exception, or :class:`NoAnswer` once ``seconds`` have passed.

    ``still_waiting(notice_after)`` is called once if there is no answer after that many seconds.
    """
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            outcome["result"] = attempt()
        except BaseException as exc:  # handed to the caller, whatever it is
            outcome["error"] = exc
        finally:
            done.set()

    started = time.monotonic()
    threading.Thread(target=work, name="recon-call", daemon=True).start()
    if notice_after < seconds and not done.wait(notice_after):
        still_waiting(notice_after)
    if not done.wait(max(0.0, started + seconds - time.monotonic())):
        raise NoAnswer(seconds)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
