"""The sha256 of source files, remembered between plans so that an unchanged file is not read again.

The cache is one small JSON file, ``.recon-cache/sha256.json`` beside the desired file (where the
LB image cache is). An entry is trusted only for the file it was made of, as it was then: its
resolved path, size, modification time (ns), inode and device must all be what ``stat`` says now.
A damaged or unreadable cache is ignored (the files are hashed again), and one that cannot be
written costs only time. A file whose modification time is within ``RACY_NS`` of the moment it was
hashed is not remembered: it could change again within the same clock tick, keeping its time and
size. Apply never relies on the cache: it hashes what it bundles and compares.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from .source import SHA256_RE, file_sha256

CACHE_FILE = ".recon-cache/sha256.json"
FORMAT = 1
RACY_NS = 2_000_000_000
MAX_ENTRIES = 256


def _key(path: Path) -> list[Any]:
    info = os.stat(path)
    return [info.st_size, info.st_mtime_ns, info.st_ino, info.st_dev]


def _load(cache: Path) -> dict[str, Any]:
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("files"), dict):
        return {}
    return data["files"]


def _valid(entry: Any, key: list[Any]) -> str | None:
    if isinstance(entry, dict) and entry.get("key") == key and isinstance(entry.get("sha256"), str) \
            and SHA256_RE.match(entry["sha256"]):
        return entry["sha256"]
    return None


def _save(cache: Path, files: dict[str, Any]) -> None:
    kept = dict(list(files.items())[-MAX_ENTRIES:])
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, json.dumps({"format": FORMAT, "files": kept}, sort_keys=True), mode=0o644)
    except OSError:   # a read-only checkout plans all the same, only slower
        pass


def cached_sha256(path: Path, base_dir: Path) -> str:
    """The sha256 of the file at ``path``: remembered (``base_dir``'s cache) while it is unchanged."""
    resolved = Path(path).resolve()
    cache = Path(base_dir) / CACHE_FILE
    key = _key(resolved)
    files = _load(cache)
    found = _valid(files.get(str(resolved)), key)
    if found:
        return found
    started = time.time_ns()
    digest = file_sha256(resolved)
    if _key(resolved) == key and key[1] < started - RACY_NS:
        files.pop(str(resolved), None)
        files[str(resolved)] = {"key": key, "sha256": digest}
        _save(cache, files)
    return digest


def forget(path: Path, base_dir: Path) -> None:
    """Drop what the cache says of ``path`` (apply found the file is not what the plan hashed)."""
    cache = Path(base_dir) / CACHE_FILE
    files = _load(cache)
    if files.pop(str(Path(path).resolve()), None) is not None:
        _save(cache, files)
