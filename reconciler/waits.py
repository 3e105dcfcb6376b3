"""Bounded waits that say what they wait for."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

from .errors import CloudError

T = TypeVar("T")


def wait_until(check: Callable[[], T | None], *, what: str, where: str, timeout: float = 300.0,
               interval: float = 2.0, report: Callable[[str, str], None] | None = None) -> T:
    """Call ``check`` until it returns something other than None, at most ``timeout`` seconds.

    Progress is reported every ~15 seconds through ``report(where, message)``.
    """
    started = time.monotonic()
    last_report = started
    while True:
        result = check()
        if result is not None:
            return result
        now = time.monotonic()
        if now - started >= timeout:
            raise CloudError(f"timed out after {timeout:.0f}s waiting for {what}", where=where)
        if report and now - last_report >= 15:
            report(where, f"still waiting for {what} ({now - started:.0f}s)")
            last_report = now
        time.sleep(min(interval, max(0.0, timeout - (now - started))))
