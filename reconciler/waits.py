"""Bounded waits that say what they wait for."""

from __future__ import annotations

import os
import re
import time
from typing import Callable, TypeVar

from .errors import CloudError
from .interrupts import StopToken

T = TypeVar("T")

DEFAULT_INTERVAL = 2.0


def poll_interval() -> float:
    """Seconds between checks: ``RECON_WAIT_INTERVAL`` (tests make it short), else 2."""
    try:
        value = float(os.environ.get("RECON_WAIT_INTERVAL", DEFAULT_INTERVAL))
    except ValueError:
        return DEFAULT_INTERVAL
    return value if 0 <= value <= 60 else DEFAULT_INTERVAL


def wait_until(check: Callable[[], T | None], *, what: str, where: str, timeout: float = 300.0,
               interval: float | None = None, report: Callable[[str, str], None] | None = None,
               stop: StopToken | None = None) -> T:
    """Call ``check`` until it returns something other than None, at most ``timeout`` seconds.

    Progress is reported every ~15 seconds through ``report(where, message)``. ``interval``
    defaults to :func:`poll_interval`. A ``stop`` token ends the wait at once, before the next
    check, with :class:`~reconciler.interrupts.Interrupted`.
    """
    interval = poll_interval() if interval is None else interval
    stop = stop or StopToken()
    started = time.monotonic()
    last_report = started
    while True:
        stop.check(where, f"while waiting for {what}")
        result = check()
        if result is not None:
            return result
        now = time.monotonic()
        if now - started >= timeout:
            raise CloudError(f"timed out after {timeout:.0f}s waiting for {what}", where=where)
        if report and now - last_report >= 15:
            report(where, f"still waiting for {what} ({now - started:.0f}s)")
            last_report = now
        stop.sleep(min(interval, max(0.0, timeout - (now - started))))


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """Seconds in a duration like ``30s``, ``2m``, ``1h30m``, ``500ms`` (a bare number is seconds)."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    if not text or _DURATION_PART.sub("", text):
        raise ValueError(f"{text!r} is not a duration like 30s, 2m or 1h30m")
    return sum(float(number) * _UNIT[unit] for number, unit in _DURATION_PART.findall(text))
