"""What this checkout last saw of a remote state, so that an older state put in its place is refused.

A remote state object can be replaced behind recon's back: an old backup copied over it, another
stack's state, the object deleted. Applying from it would make again what the newer state knew
about. So recon keeps, beside the desired file, the lineage and serial it last read or wrote for
each remote state (``.recon-cache/state/<stack>.json``, ignored by git), and refuses a state of
another lineage, an older serial, or none at all where it last saw one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import StateError
from ..atomic import write_atomic
from .model import State

CACHE_DIR = ".recon-cache/state"   # beside the desired file


@dataclass
class Seen:
    """The record for one remote state: ``location`` names it (``s3://bucket/key``)."""

    path: Path
    location: str
    warn: Callable[[str], None]

    @classmethod
    def beside(cls, base_dir: Path, stack: str, location: str, warn: Callable[[str], None]) -> "Seen":
        return cls(base_dir / CACHE_DIR / f"{stack}.json", location, warn)

    def _last(self) -> tuple[str, int] | None:
        """(lineage, serial) last seen at :attr:`location`; None if never (or the record is unreadable)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("location") != self.location:
                return None
            return str(data["lineage"]), int(data["serial"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def check(self, state: State | None) -> None:
        """StateError if ``state`` (None: there is no state object) is older than the one last seen."""
        last = self._last()
        if last is None:
            return
        lineage, serial = last
        if state is None:
            found = "there is no state object"
        elif state.lineage != lineage:
            found = f"the state object is another state (lineage {state.lineage}, serial {state.serial})"
        elif state.serial < serial:
            found = f"the state object holds serial {state.serial}, older than serial {serial}"
        else:
            return
        raise StateError(
            f"{found}, but this checkout last saw serial {serial} of lineage {lineage} there: "
            "an older or other state was put in its place (an old backup copied over it?), and applying "
            "from it would make again what the newer state holds", where=self.location,
            hint=f"put the newest state back (each write keeps the previous one as KEY.backup.SERIAL); if "
                 f"this state is the one you mean to use, remove {self.path} (what this checkout last saw) "
                 "and run again")

    def record(self, state: State) -> None:
        """Remember ``state``'s lineage and serial (a warning, not a failure, if it cannot be written)."""
        if self._last() == (state.lineage, state.serial):
            return
        text = json.dumps({"location": self.location, "lineage": state.lineage, "serial": state.serial})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, text + "\n")
        except OSError as exc:
            self.warn(f"cannot record the state serial this checkout saw in {self.path}: "
                      f"{exc.strerror or exc} (an older state put in place of {self.location} would not be noticed)")
