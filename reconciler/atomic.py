"""Files replaced whole: written beside the old one, synced, then renamed over it.

Used for the state, saved plans, the desired file's edits (``recon fmt``, ``recon import``) and the
caches beside it; a crash leaves either the old file or the new one, never half of either.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def write_atomic(path: Path, text: str | bytes, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed over it. A symbolic link at
    ``path`` is written through: its target is replaced, and the link stays."""
    path = path.resolve() if path.is_symlink() else path
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    data = text.encode("utf-8") if isinstance(text, str) else text
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
