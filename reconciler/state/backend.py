"""The contract every state backend keeps (:class:`~reconciler.state.local.LocalBackend`,
:class:`~reconciler.state.s3.S3Backend`, and :class:`~reconciler.state.s3.Unlocked` around either).

The engine, the importer and the CLI use a backend only through these methods;
``tests/test_backend_contract.py`` runs one suite against every backend.
"""

from __future__ import annotations

from typing import ContextManager, Protocol, runtime_checkable

from .lock import LockInfo
from .model import State


@runtime_checkable
class Backend(Protocol):
    def describe(self) -> str:
        """Where the state is kept (a path, ``s3://bucket/key``): the ``where`` of this backend's errors."""

    def read(self) -> State:
        """The state kept there; an empty :class:`State` of the stack if there is none yet.

        StateError if what is there cannot be used: damaged, of another stack, or (remote state)
        older than the one this checkout last saw.
        """

    def write(self, state: State) -> None:
        """Save ``state`` with its serial one higher (set on ``state`` too), keeping the previous
        state as a backup. StateError (LockLost for a lock this run lost) if it cannot be saved;
        ``state.serial`` is then as it was."""

    def lock(self, operation: str) -> ContextManager[LockInfo | None]:
        """Hold the state lock for ``operation`` while the context runs, and release it on leaving,
        however the context is left; yields the lock as taken (None when running unlocked).

        LockError naming the holder (its ``describe()``, with its lock id) if another run holds it,
        once the backend's lock timeout has passed.
        """

    def lock_after_exit(self) -> str:
        """What becomes of the lock when recon exits without releasing it (a phrase for the user)."""

    def check_held(self, operation: str) -> None:
        """Return if this run still holds its lock (or holds none); LockLost, naming ``operation``
        as what was stopped before, once it lost it. Called before each state write and cloud change."""

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Remove a lock its holder left behind, if ``lock_id`` is its id; the holder it named.

        LockError, and the lock stays, if the state is not locked or ``lock_id`` does not match
        (and for local state, while the holder still runs).
        """
