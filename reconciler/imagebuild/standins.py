"""Small stand-ins for the runbook's Docker image files, for ``recon demo`` and tests.

``examples/docker.toml`` builds the Docker image from a kernel, a ramdisk and a root file system
file in ``examples/images/`` (image files are not committed). The kernel and ramdisk are made of
pseudo-random bytes; the root file system is a small ext4 partition image (as ``euca-bundle-image``
takes one), so that recon can write the block's ``files`` into it, holding ``/etc/os-release`` and
``/etc/recon-standin`` (which says the ``revision``). Each is the same, byte for byte, for the same
``revision``: mkfs is given a fixed UUID, directory hash seed and clock (``E2FSPROGS_FAKE_TIME``), and the
files are written with debugfs at a fixed time.
The sandbox checks a bundle's cryptography and digests, not what the image boots.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from ..errors import ReconError
from .disk import ExtFileSystem, find_tool

#: File name (as docker.toml names it, in images/) -> size in bytes.
FILES = {"docker-vmlinuz": 96 << 10, "docker-initrd.img": 160 << 10, "docker-rootfs.img": 2 << 20}
ROOTFS = "docker-rootfs.img"
STANDIN_UUID = "6b1f3c2e-0d4a-4c1e-9a55-3f0e8b7d2c11"
STANDIN_TIME = 1_372_636_800          # 2013-07-01, when the runbook's image was made
OS_RELEASE = b'NAME="Ubuntu"\nVERSION="13.04, Raring Ringtail"\nID=ubuntu\nVERSION_ID="13.04"\n'


def _bytes(label: str, size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def make_rootfs(path: Path, *, revision: int = 0, size: int = FILES[ROOTFS]) -> Path:
    """An ext4 partition image (no journal: it is small) of ``size`` bytes, the same for the same ``revision``."""
    path.unlink(missing_ok=True)
    done = subprocess.run(
        [find_tool("mkfs.ext4", "e2fsprogs"), "-q", "-F", "-t", "ext4", "-O", "^has_journal", "-L", "rootfs",
         "-U", STANDIN_UUID, "-E", f"hash_seed={STANDIN_UUID},root_owner=0:0", str(path), f"{size >> 10}k"],
        capture_output=True, timeout=120, env={**os.environ, "E2FSPROGS_FAKE_TIME": str(STANDIN_TIME)})
    if done.returncode != 0:
        raise ReconError(f"mkfs.ext4 failed: {done.stderr.decode(errors='replace').strip()}", where=str(path))
    fs = ExtFileSystem(path, 0)
    for name, data in (("/etc/os-release", OS_RELEASE),
                       ("/etc/recon-standin", f"stand-in root file system, revision {revision}\n".encode())):
        fs.put(name, data, uid=0, gid=0, mode=0o644, when=STANDIN_TIME)
    return path


def make_docker_standins(folder: Path, *, revision: int = 0) -> dict[str, Path]:
    """Write the three files into ``folder``; ``revision`` changes the root file system only."""
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for name, size in FILES.items():
        if name == ROOTFS:
            make_rootfs(folder / name, revision=revision, size=size)
        else:
            (folder / name).write_bytes(_bytes(name, size))
        made[name] = folder / name
    return made
