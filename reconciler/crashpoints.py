"""Test-only crash points: kill recon with SIGKILL right after a chosen cloud call returned.

Crash-safety tests need an apply that dies at an exact point -- after the cloud did something,
before recon recorded it -- with no chance to clean up. Two environment variables choose it:

- ``RECON_CRASH_AFTER=ec2.RunInstances`` (or ``ec2.RunInstances:N``): after the N-th (default
  first) successful call of that operation;
- ``RECON_CRASH_AFTER_MUTATIONS=K``: after the K-th successful call that changes something
  (any operation not named Describe*, List*, Get* or Head*).

Neither is set in normal use, and then :meth:`CrashPoints.after` does nothing.
"""

from __future__ import annotations

import os
import re
import signal
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping

from .errors import ConfigError

_READ_ONLY = ("Describe", "List", "Get", "Head")
_AFTER_RE = re.compile(r"^([a-z0-9]+\.[A-Za-z0-9]+)(?::(\d+))?$")


def is_mutating(api_name: str) -> bool:
    """Whether a call changes something: any operation not named Describe*, List*, Get* or Head*."""
    return not api_name.startswith(_READ_ONLY)


@dataclass
class CrashPoints:
    operation: str | None = None      # "ec2.RunInstances"
    nth_call: int = 0                 # crash after this many calls of ``operation``
    nth_mutation: int = 0             # crash after this many mutating calls (0: never)
    _counts: Counter = field(default_factory=Counter)
    _mutations: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "CrashPoints":
        points = cls()
        after = (env.get("RECON_CRASH_AFTER") or "").strip()
        if after:
            match = _AFTER_RE.match(after)
            if not match or match.group(2) == "0":
                raise ConfigError(f"{after!r} is not SERVICE.Operation[:N] (N from 1)",
                                  where="environment variable RECON_CRASH_AFTER")
            points.operation, points.nth_call = match.group(1), int(match.group(2) or 1)
        mutations = (env.get("RECON_CRASH_AFTER_MUTATIONS") or "").strip()
        if mutations:
            if not mutations.isdigit() or int(mutations) < 1:
                raise ConfigError(f"{mutations!r} is not a count from 1",
                                  where="environment variable RECON_CRASH_AFTER_MUTATIONS")
            points.nth_mutation = int(mutations)
        return points

    def after(self, service: str, api_name: str) -> None:
        """Record that ``service.api_name`` returned; SIGKILL this process at the chosen point."""
        if self.operation is None and not self.nth_mutation:
            return
        label = f"{service}.{api_name}"
        with self._lock:
            self._counts[label] += 1
            if is_mutating(api_name):
                self._mutations += 1
            hit = (label == self.operation and self._counts[label] == self.nth_call) or \
                (self.nth_mutation > 0 and self._mutations == self.nth_mutation)
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)
