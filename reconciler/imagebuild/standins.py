"""Small stand-ins for the runbook's Docker image files, for ``recon demo`` and tests.

``examples/docker.toml`` builds the Docker image from a kernel, a ramdisk and a root file system
file in ``examples/images/`` (image files are not committed). These are made of pseudo-random
bytes, the same for the same ``revision``, small enough to bundle into one part each; the
sandbox checks a bundle's cryptography and digests, not what the image boots.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: File name (as docker.toml names it, in images/) -> size in bytes.
FILES = {"docker-vmlinuz": 96 << 10, "docker-initrd.img": 160 << 10, "docker-rootfs.img": 1 << 20}
ROOTFS = "docker-rootfs.img"


def _bytes(label: str, size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def make_docker_standins(folder: Path, *, revision: int = 0) -> dict[str, Path]:
    """Write the three files into ``folder``; ``revision`` changes the root file system only."""
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for name, size in FILES.items():
        label = f"{name}:{revision}" if name == ROOTFS else name
        (folder / name).write_bytes(_bytes(label, size))
        made[name] = folder / name
    return made
