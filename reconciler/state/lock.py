"""Lock information shared by the state backends: who holds the state, for what, since when."""

from __future__ import annotations

import datetime
import getpass
import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, replace
from typing import Callable, TypeVar

from ..errors import LockError
from ..interrupts import Interrupted

T = TypeVar("T")


class LockLost(Interrupted):
    """This run no longer holds the state lock (its lease ran out, another run took it over):
    it must change nothing more, in the cloud or in the state."""

    exit_code = 1


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclass(frozen=True)
class LockInfo:
    id: str
    who: str
    operation: str
    created: str
    #: For leased locks (remote state): when the lease runs out unless renewed. ISO 8601.
    expires: str = ""

    @classmethod
    def new(cls, operation: str, lease_seconds: float | None = None) -> "LockInfo":
        try:
            user = getpass.getuser()
        except Exception:  # no user name in some containers
            user = str(os.getuid())
        who = f"{user}@{socket.gethostname()} (pid {os.getpid()})"
        info = cls(str(uuid.uuid4()), who, operation, now().isoformat(timespec="seconds"))
        return info.renewed(lease_seconds) if lease_seconds else info

    def renewed(self, lease_seconds: float) -> "LockInfo":
        expires = now() + datetime.timedelta(seconds=lease_seconds)
        return replace(self, expires=expires.isoformat(timespec="milliseconds"))

    def expired(self) -> bool:
        if not self.expires:
            return False
        try:
            return datetime.datetime.fromisoformat(self.expires) <= now()
        except ValueError:
            return True

    def describe(self) -> str:
        lease = f", lease until {self.expires}" if self.expires else ""
        return f"{self.who}, for {self.operation}, since {self.created}{lease} (lock id {self.id})"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> "LockInfo":
        try:
            data = json.loads(text)
            return cls(**{k: str(data[k]) for k in ("id", "who", "operation", "created")},
                       expires=str(data.get("expires", "")))
        except (ValueError, KeyError, TypeError):
            return cls.unreadable()

    @classmethod
    def unreadable(cls) -> "LockInfo":
        return cls("?", "unknown (unreadable lock)", "?", "?")


def wait_for_lock(attempt: Callable[[], T], timeout: float, waiting: Callable[[str], None], *,
                  interval: float) -> T:
    """``attempt()`` (which takes a lock, or raises LockError naming its holder), retried every
    ``interval`` seconds for up to ``timeout`` seconds (``--lock-timeout``; 0: fail at once)."""
    deadline = time.monotonic() + timeout
    told = False
    while True:
        try:
            return attempt()
        except LockError as refused:
            left = deadline - time.monotonic()
            if left <= 0:
                if told:
                    refused.message += f" (still held after waiting {timeout:g}s)"
                raise
            if not told:
                waiting(f"{refused.message}; waiting up to {timeout:g}s for it (--lock-timeout)")
                told = True
        time.sleep(min(interval, left))
