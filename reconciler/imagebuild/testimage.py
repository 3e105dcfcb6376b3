"""A small load-balancer base image made without root, for tests and ``recon demo``.

The image is laid out like the shipped one (DESIGN §6): a raw disk with an MBR whose partition 1
starts at sector 2048 and holds an ext4 file system with the servo's HAProxy template, owned by
root with mode 0644. The template is written in the 2013 servo's style, deprecated timeouts
included. ``pack_tgz`` wraps an image the way the Eucalyptus package ships it.
"""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Mapping

from ..errors import ReconError
from .disk import SECTOR, ExtFileSystem, find_tool

PARTITION_START = 2048                      # sectors, as in the shipped image
TEMPLATE_PATH = "/etc/load-balancer-servo/haproxy_template.conf"
SERVO_TEMPLATE = """\
#template
global
 maxconn 100000
 ulimit-n 655360
 pidfile /var/run/load-balancer-servo/haproxy.pid
 user servo
 group servo
 daemon
 log /var/lib/load-balancer-servo/haproxy.sock local2 info
 stats socket /var/lib/load-balancer-servo/haproxy_stats.sock user servo group servo mode 600 level admin

defaults
 mode http
 log global
 option httplog
 option dontlognull
 option http-server-close # affects KA on/off
 option redispatch
 retries 3
 contimeout      1000
 clitimeout      10000
 srvtimeout      10000
"""


def mbr_sector(start: int, sectors: int, *, partition_type: int = 0x83) -> bytes:
    """A 512-byte MBR with one bootable primary partition (CHS fields set to 'use LBA')."""
    entry = bytes([0x80, 0xFE, 0xFF, 0xFF, partition_type, 0xFE, 0xFF, 0xFF]) + struct.pack("<II", start, sectors)
    return bytes(446) + entry + bytes(48) + b"\x55\xaa"


def make_test_image(path: Path, *, fs_mib: int = 8, template: str = SERVO_TEMPLATE,
                    files: Mapping[str, bytes] | None = None) -> Path:
    """Write a base LB image to ``path``: MBR + ext4 partition 1 holding the template and ``files``.

    Every file and folder is owned by root; files are mode 0644, folders 0755.
    """
    contents = {TEMPLATE_PATH: template.encode(), **(files or {})}
    offset = PARTITION_START * SECTOR
    with tempfile.TemporaryDirectory(prefix="recon-testimage-") as tmp:
        root = Path(tmp)
        for name, data in contents.items():
            target = root / name.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        path.unlink(missing_ok=True)
        done = subprocess.run(
            [find_tool("mkfs.ext4", "e2fsprogs"), "-q", "-F", "-t", "ext4", "-L", "rootfs",
             "-E", f"offset={offset},root_owner=0:0", "-d", str(root), str(path), f"{fs_mib}M"],
            capture_output=True, timeout=120)
        if done.returncode != 0:
            raise ReconError(f"mkfs.ext4 failed: {done.stderr.decode(errors='replace').strip()}", where=str(path))
        folders = {str(Path(name).parent) for name in contents}
        folders = {str(p) for name in folders for p in [Path(name), *Path(name).parents] if str(p) != "/"}
    with open(path, "r+b") as f:
        f.write(mbr_sector(PARTITION_START, fs_mib * 1024 * 1024 // SECTOR))
    fs = ExtFileSystem(path, offset)
    for folder in sorted(folders):
        fs.set_owner(folder, uid=0, gid=0, mode=0o755)
    for name in contents:
        fs.set_owner(name, uid=0, gid=0, mode=0o644)
    return path


def pack_tgz(image: Path, dest: Path, *, folder: str = "eucalyptus-load-balancer-image") -> Path:
    """``dest``: a gzipped tar holding ``folder/`` and ``folder/<image name>``, like the package's."""
    with open(dest, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
        directory = tarfile.TarInfo(folder)
        directory.type, directory.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(directory)
        member = tarfile.TarInfo(f"{folder}/{image.name}")
        member.size, member.mode = os.path.getsize(image), 0o644
        with open(image, "rb") as f:
            tar.addfile(member, f)
    return dest
