"""Counting what a run sends: HTTP requests and retries per operation, and seconds per phase."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager


class CallStats:
    """Counts of HTTP requests sent and retried, and seconds per phase. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls = 0
        self._retries = 0
        self._operations: Counter[str] = Counter()
        self._phases: dict[str, float] = {}

    @property
    def calls(self) -> int:
        """HTTP requests actually sent (each retry attempt counts)."""
        with self._lock:
            return self._calls

    @property
    def retries(self) -> int:
        """Attempts that failed transiently and were retried."""
        with self._lock:
            return self._retries

    def record_call(self, operation: str) -> None:
        """One HTTP request of ``operation`` (``"ec2.DescribeKeyPairs"``) was sent."""
        with self._lock:
            self._calls += 1
            self._operations[operation] += 1

    def record_retry(self) -> None:
        with self._lock:
            self._retries += 1

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the wall-clock seconds spent inside the block to phase ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self._phases[name] = self._phases.get(name, 0.0) + elapsed

    def phases(self) -> dict[str, float]:
        with self._lock:
            return dict(self._phases)

    def by_operation(self) -> dict[str, int]:
        """HTTP requests per operation, ``{"ec2.DescribeKeyPairs": 1, ...}``, sorted by name."""
        with self._lock:
            return dict(sorted(self._operations.items()))

    def as_dict(self) -> dict:
        with self._lock:
            return {
                "calls": self._calls,
                "retries": self._retries,
                "phases": dict(self._phases),
                "operations": dict(sorted(self._operations.items())),
            }

    def __repr__(self) -> str:
        return f"CallStats(calls={self.calls}, retries={self.retries})"
