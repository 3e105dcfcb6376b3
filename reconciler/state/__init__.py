"""State: the model, and the backends that keep it (a local file, or an object in the cloud's S3)."""

from __future__ import annotations

from typing import Callable

from .backend import Backend
from .local import LocalBackend
from .s3 import S3Backend, Unlocked


def backend_for(stack, cloud: Callable, warn: Callable[[str], None], lock_timeout: float = 0.0) -> Backend:
    """The backend the stack's [state] table names; ``cloud()`` gives the connection for s3.
    ``lock_timeout``: seconds to wait for a lock another run holds."""
    table = stack.state
    if table.get("backend", "local") == "s3":
        return S3Backend(cloud(), table["bucket"], table.get("key", f"recon/{stack.name}.json"), stack.name,
                         lease_seconds=float(table.get("lease_seconds", 60)), lock_timeout=lock_timeout, warn=warn,
                         base_dir=stack.base_dir)
    return LocalBackend(stack.base_dir / table.get("path", "state"), stack.name, lock_timeout=lock_timeout,
                        warn=warn)
