"""Small load-balancer base images made without root, for tests and ``recon demo``.

Each is laid out like the shipped image (DESIGN §6, the load-balancer-image kickstart): a raw disk
with an MBR whose partition 1 starts at sector 2048 and holds an ext3 root file system. It carries
what recon reads from a real one, as the servo's RPM installs it: the HAProxy template of the
servo release asked for, ``503.http`` from servo 1.2 on, the folder ``/etc/load-balancer-servo``
and its files owned by the ``servo`` user (uid and gid 500, the first a CentOS 6 ``useradd``
hands out, named in the image's ``/etc/passwd`` and ``/etc/group``), and the package metadata
that says the release (see ``servo``).

The templates are the ones each servo release shipped in ``scripts/haproxy_template.conf``:

- ``TEMPLATE_2014`` (1.0.4, the image of the runbook): deprecated ``contimeout`` / ``clitimeout`` /
  ``srvtimeout`` and ``option http-server-close``;
- ``TEMPLATE_1_1`` (1.1): ``timeout connect|client|server``; the servo now writes the listener
  timeouts itself;
- ``TEMPLATE_1_2`` (1.2 and later): also ``errorfile 503``, then a line holding one space.

``pack_tgz`` wraps an image the way the package's tarball does: the ``.img`` alone.
"""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import tarfile
from pathlib import Path
from typing import Mapping

from .. import scratch
from ..errors import ReconError
from .disk import SECTOR, ExtFileSystem, find_tool
from .servo import CONF_ROOT, ERROR_FILE, TEMPLATE_PATH, egg_info_path, parse_version, pkg_info

PARTITION_START = 2048                      # sectors, as in the shipped image
SERVO_UID = SERVO_GID = 500
RUNBOOK_SERVO = "1.0.4"

_GLOBAL = """\
#template
global
 maxconn 100000
 ulimit-n 655360
 pidfile /var/run/haproxy.pid

#drop privileges after port binding
 user servo
 group servo

defaults
"""
TEMPLATE_2014 = _GLOBAL + """\
 contimeout      1000
 clitimeout      10000
 srvtimeout      10000
 option http-server-close # affects KA on/off
"""
TEMPLATE_1_1 = _GLOBAL + """\
 timeout connect     5s
 timeout client      1m
 timeout server      1m
"""
TEMPLATE_1_2 = TEMPLATE_1_1 + f" errorfile 503 {ERROR_FILE}\n \n"
ERROR_503 = b"HTTP/1.1 503 Service Unavailable\nContent-Length: 0\nConnection: close\n"

#: A servo release of each template generation, oldest first.
GENERATIONS = ("1.0.4", "1.1.0", "1.2.0")


def shipped_template(servo_version: str) -> str:
    """The template the servo release ``servo_version`` ships."""
    release = parse_version(servo_version)
    if release < (1, 1):
        return TEMPLATE_2014
    return TEMPLATE_1_1 if release < (1, 2) else TEMPLATE_1_2


def mbr_sector(start: int, sectors: int, *, partition_type: int = 0x83) -> bytes:
    """A 512-byte MBR with one bootable primary partition (CHS fields set to 'use LBA')."""
    entry = bytes([0x80, 0xFE, 0xFF, 0xFF, partition_type, 0xFE, 0xFF, 0xFF]) + struct.pack("<II", start, sectors)
    return bytes(446) + entry + bytes(48) + b"\x55\xaa"


def _servo_files(servo_version: str | None, template: str | None) -> dict[str, tuple[bytes, int]]:
    """Path -> (contents, owner uid) of what the servo's package puts in the image."""
    version = servo_version or RUNBOOK_SERVO
    files = {TEMPLATE_PATH: ((shipped_template(version) if template is None else template).encode(), SERVO_UID)}
    if parse_version(version) >= (1, 2):
        files[ERROR_FILE] = (ERROR_503, SERVO_UID)
    files["/etc/passwd"] = (b"root:x:0:0:root:/root:/bin/bash\n"
                            b"servo:x:500:500::/var/lib/load-balancer-servo:/sbin/nologin\n", 0)
    files["/etc/group"] = (b"root:x:0:\nservo:x:500:\n", 0)
    if servo_version is not None:
        files[egg_info_path(servo_version)] = (pkg_info(servo_version).encode(), 0)
    return files


def make_test_image(path: Path, *, servo_version: str | None = RUNBOOK_SERVO, fs_mib: int = 8,
                    template: str | None = None, files: Mapping[str, bytes] | None = None) -> Path:
    """Write a base LB image of servo ``servo_version`` to ``path``.

    ``template`` replaces the release's template; ``files`` are more files (root's, mode 0644).
    With ``servo_version=None`` the image has the runbook's template but no package metadata
    (an image recon cannot tell the release of). Folders are mode 0755, files 0644.
    """
    contents = {name: (data, 0) for name, data in (files or {}).items()}
    contents = {**_servo_files(servo_version, template), **contents}
    offset = PARTITION_START * SECTOR
    with scratch.directory("testimage-") as tmp:
        root = Path(tmp)
        for name, (data, _uid) in contents.items():
            target = root / name.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        path.unlink(missing_ok=True)
        done = subprocess.run(
            [find_tool("mkfs.ext4", "e2fsprogs"), "-q", "-F", "-t", "ext3", "-L", "rootfs",
             "-E", f"offset={offset},root_owner=0:0", "-d", str(root), str(path), f"{fs_mib}M"],
            capture_output=True, timeout=120)
        if done.returncode != 0:
            raise ReconError(f"mkfs.ext4 failed: {done.stderr.decode(errors='replace').strip()}", where=str(path))
    with open(path, "r+b") as f:
        f.write(mbr_sector(PARTITION_START, fs_mib * 1024 * 1024 // SECTOR))
    folders = {str(p) for name in contents for p in Path(name).parents if str(p) != "/"}
    fs = ExtFileSystem(path, offset)
    for folder in sorted(folders):
        owner = SERVO_UID if folder == CONF_ROOT else 0
        fs.set_owner(folder, uid=owner, gid=owner, mode=0o755)
    for name, (_data, owner) in contents.items():
        fs.set_owner(name, uid=owner, gid=owner, mode=0o644)
    return path


def pack_tgz(image: Path, dest: Path) -> Path:
    """``dest``: a gzipped tar holding the image alone, by its file name, like the package's."""
    with open(dest, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
        member = tarfile.TarInfo(image.name)
        member.size, member.mode = os.path.getsize(image), 0o644
        with open(image, "rb") as f:
            tar.addfile(member, f)
    return dest
