"""Files inside a raw disk image, without root: the MBR, then e2fsprogs on ``image?offset=BYTES``.

``find_partition`` reads the partition table; ``ExtFileSystem`` runs ``debugfs`` (read, stat, write
back with owner, mode and extended attributes kept) and ``e2fsck -fn`` on the file system that a
partition holds (or a partition image: :meth:`ExtFileSystem.of_image`). debugfs reports most
failures on stderr with exit status 0, so every call treats any stderr line past its version
banner as a failure, and writes are read back and compared.

Edits are byte-repeatable: each writing debugfs run starts with ``set_current_time`` (e2fsprogs'
``fs->now``), which gives every inode time it sets (atime, ctime, mtime, crtime, dtime of a
removed file) and the superblock's write time; debugfs picks inodes and blocks first-free, sets
no inode generation, and keeps the file system's UUID and directory hash seed (and so every
checksum), so the same edits of the same image give the same bytes (checked with e2fsprogs 1.47).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .. import scratch
from ..errors import ReconError

SECTOR = 512
MBR_SIGNATURE = b"\x55\xaa"
EXTENDED_TYPES = frozenset({0x05, 0x0F, 0x85})
GPT_PROTECTIVE = 0xEE
SAFE_PATH = re.compile(r"^/[A-Za-z0-9._+@/-]*$")
XATTR_LINE = re.compile(r"^\s+(\S+) \((\d+)\)", re.M)


@dataclass(frozen=True)
class Partition:
    """One primary MBR partition entry."""

    number: int          # 1..4
    type: int            # 0x83 Linux, ...
    bootable: bool
    start: int           # first sector (LBA)
    sectors: int

    @property
    def offset(self) -> int:
        return self.start * SECTOR

    @property
    def size(self) -> int:
        return self.sectors * SECTOR


@dataclass(frozen=True)
class FileInfo:
    """What ``debugfs stat`` says about one inode."""

    path: str
    type: str            # regular, directory, symlink, ...
    mode: int            # permission bits, e.g. 0o644
    uid: int
    gid: int
    size: int
    links: int
    mtime: int


def parse_mbr(sector: bytes, *, where: str = "disk image") -> list[Partition]:
    """The used primary partitions of a 512-byte MBR sector."""
    if len(sector) < SECTOR:
        raise ReconError(f"is {len(sector)} bytes, shorter than one {SECTOR}-byte sector", where=where)
    if sector[510:512] != MBR_SIGNATURE:
        raise ReconError("has no MBR partition table (no 0x55AA signature in sector 0)", where=where,
                         hint="the load-balancer image is a raw disk with an MBR; is this the right file?")
    partitions = []
    for index in range(4):
        entry = sector[446 + 16 * index: 462 + 16 * index]
        status, kind = entry[0], entry[4]
        start, sectors = struct.unpack("<II", entry[8:16])
        if kind == 0 or sectors == 0:
            continue
        if status not in (0x00, 0x80):
            raise ReconError(f"partition {index + 1} has an invalid status byte 0x{status:02x}", where=where)
        if kind == GPT_PROTECTIVE:
            raise ReconError("has a GPT partition table, not an MBR", where=where)
        partitions.append(Partition(index + 1, kind, status == 0x80, start, sectors))
    return partitions


def find_partition(image: Path, number: int = 1) -> Partition:
    """Partition ``number`` (1-4) of ``image``, checked to lie inside the file."""
    where = str(image)
    try:
        with open(image, "rb") as f:
            sector = f.read(SECTOR)
            image_size = os.fstat(f.fileno()).st_size
    except OSError as err:
        raise ReconError(f"cannot read the image: {err.strerror}", where=where) from None
    for partition in parse_mbr(sector, where=where):
        if partition.number != number:
            continue
        if partition.type in EXTENDED_TYPES:
            raise ReconError(f"partition {number} is an extended partition, not a file system", where=where)
        if partition.offset + partition.size > image_size:
            raise ReconError(f"partition {number} ends at byte {partition.offset + partition.size}, past the "
                             f"end of the {image_size}-byte image", where=where, hint="is the image truncated?")
        return partition
    raise ReconError(f"has no partition {number}", where=where)


def which(name: str) -> str | None:
    """Path of a system program on PATH or in the sbin folders (often missing from a user's PATH)."""
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if os.access(p, os.X_OK)), None)


def find_tool(name: str, package: str) -> str:
    """Path of a system program that recon cannot do without."""
    found = which(name)
    if found is None:
        raise ReconError(f"{name} is not installed", hint=f"install the {package} package")
    return found


def _quote(path: str) -> str:
    """A local path as one debugfs argument."""
    if '"' in path or "\n" in path:
        raise ReconError(f"cannot pass the path {path!r} to debugfs")
    return f'"{path}"'


class ExtFileSystem:
    """The ext2/3/4 file system at byte ``offset`` of ``image``, handled with debugfs and e2fsck."""

    def __init__(self, image: Path, offset: int, *, label: str | None = None):
        """``label`` is what messages call the image (default: its path), e.g. the block it is made for."""
        if "?" in str(image):
            raise ReconError("an image path may not contain '?' (debugfs reads it as options)", where=str(image))
        self.image = Path(image)
        self.offset = offset
        self.device = f"{self.image}?offset={offset}"
        self.label = label or str(self.image)

    @classmethod
    def from_partition(cls, image: Path, number: int = 1, *, label: str | None = None) -> "ExtFileSystem":
        return cls(image, find_partition(image, number).offset, label=label)

    @classmethod
    def of_image(cls, image: Path, *, label: str | None = None) -> "ExtFileSystem":
        """The root file system of a raw image: partition 1 of a disk with an MBR, else the whole
        file (a partition image, as ``euca-bundle-image`` takes a root file system)."""
        try:
            with open(image, "rb") as f:
                sector = f.read(SECTOR)
        except OSError as err:
            raise ReconError(f"cannot read the image: {err.strerror}", where=label or str(image)) from None
        if len(sector) == SECTOR and sector[510:512] == MBR_SIGNATURE:
            return cls.from_partition(image, 1, label=label)
        return cls(image, 0, label=label)

    def _where(self, path: str | None = None) -> str:
        return f"{self.label}:{path}" if path else self.label

    def _debugfs(self, *, request: str | None = None, script: str | None = None, path: str | None = None,
                 writable: bool = False) -> bytes:
        command = [find_tool("debugfs", "e2fsprogs")]
        if writable:
            command.append("-w")
        with scratch.directory("debugfs-") as tmp:
            if script is not None:
                script_file = Path(tmp) / "commands"
                script_file.write_text(script)
                command += ["-f", str(script_file)]
            else:
                command += ["-R", request]
            done = subprocess.run(command + [self.device], capture_output=True, timeout=600)
        stderr = done.stderr.decode(errors="replace").replace(self.device, self.label).replace(str(self.image),
                                                                                            self.label)
        problems = [line for line in stderr.splitlines() if line.strip() and not line.startswith("debugfs ")]
        if done.returncode != 0 or problems:
            raise ReconError("debugfs failed: " + ("; ".join(problems) or f"exit status {done.returncode}"),
                             where=self._where(path))
        return done.stdout

    @staticmethod
    def _check_path(path: str) -> None:
        if not SAFE_PATH.match(path) or "/../" in path + "/" or "//" in path:
            raise ReconError(f"{path!r} is not a plain absolute path inside the image")

    def stat(self, path: str) -> FileInfo | None:
        """The inode at ``path``, or None where there is none."""
        self._check_path(path)
        try:
            text = self._debugfs(request=f"stat {path}", path=path).decode(errors="replace")
        except ReconError as err:
            if "File not found" in err.message:
                return None
            raise
        head = re.search(r"Type: (\S+)\s+Mode:\s+(\d+)", text)
        owner = re.search(r"User:\s+(\d+)\s+Group:\s+(\d+).*?Size: (\d+)", text)
        links = re.search(r"Links: (\d+)", text)
        mtime = re.search(r"mtime: 0x([0-9a-f]+)", text)
        if not (head and owner and links and mtime):
            raise ReconError("cannot read debugfs stat output", where=self._where(path))
        return FileInfo(path=path, type=head.group(1), mode=int(head.group(2), 8), uid=int(owner.group(1)),
                        gid=int(owner.group(2)), size=int(owner.group(3)), links=int(links.group(1)),
                        mtime=int(mtime.group(1), 16))

    def read(self, path: str) -> bytes:
        """The contents of the regular file at ``path``."""
        info = self.stat(path)
        if info is None:
            raise ReconError("no such file in the image", where=self._where(path))
        if info.type != "regular":
            raise ReconError(f"is a {info.type}, not a regular file", where=self._where(path))
        data = self._debugfs(request=f"cat {path}", path=path)
        if len(data) != info.size:
            raise ReconError(f"debugfs read {len(data)} of {info.size} bytes", where=self._where(path))
        return data

    def listdir(self, path: str) -> list[str]:
        """The names in the folder at ``path`` (without ``.`` and ``..``); [] where there is no such folder."""
        info = self.stat(path)
        if info is None or info.type != "directory":
            return []
        text = self._debugfs(request=f"ls -p {path}", path=path).decode(errors="replace")
        # one line per entry: /inode/mode/uid/gid/name/size/
        names = [line.split("/")[5] for line in text.splitlines() if line.count("/") >= 7]
        return [name for name in names if name not in (".", "..")]

    def _xattr_names(self, path: str) -> list[str]:
        return XATTR_LINE.findall(self._debugfs(request=f"ea_list {path}", path=path).decode(errors="replace"))

    def write(self, path: str, data: bytes, *, uid: int, gid: int, mode: int, when: int) -> None:
        """Create or replace the regular file ``path``; keep its extended attributes; times = ``when``.

        The parent folder must exist. ``when`` (seconds since the epoch) becomes the file system's
        clock for this change, so that the same change to the same image gives the same bytes.
        """
        self._check_path(path)
        old = self.stat(path)
        if old is not None and (old.type != "regular" or old.links != 1):
            raise ReconError(f"is a {old.type} with {old.links} links; recon replaces only plain files",
                             where=self._where(path))
        with scratch.directory("write-") as tmp:
            local = Path(tmp) / "contents"
            local.write_bytes(data)
            lines = [f"set_current_time @{when}"]
            xattrs = []
            if old is not None:
                for index, (name, _size) in enumerate(self._xattr_names(path)):
                    saved = Path(tmp) / f"xattr-{index}"
                    self._debugfs(request=f"ea_get -f {_quote(str(saved))} {path} {name}", path=path)
                    xattrs.append((name, saved))
                lines.append(f"rm {path}")
            lines += [f"write {_quote(str(local))} {path}",
                      f"sif {path} uid {uid}", f"sif {path} gid {gid}", f"sif {path} mode 0{0o100000 | mode:o}"]
            lines += [f"ea_set -f {_quote(str(saved))} {path} {name}" for name, saved in xattrs]
            self._debugfs(script="\n".join(lines) + "\n", path=path, writable=True)
        info = self.stat(path)
        if info is None or (info.uid, info.gid, info.mode) != (uid, gid, mode) or self.read(path) != data:
            raise ReconError("the file did not read back as written", where=self._where(path))

    def mkdir(self, path: str, *, uid: int, gid: int, mode: int, when: int) -> None:
        """Make the folder ``path`` (its parent must exist)."""
        self._check_path(path)
        script = (f"set_current_time @{when}\nmkdir {path}\n"
                  f"sif {path} uid {uid}\nsif {path} gid {gid}\nsif {path} mode 0{0o040000 | mode:o}\n")
        self._debugfs(script=script, path=path, writable=True)

    def put(self, path: str, data: bytes, *, uid: int, gid: int, mode: int, when: int) -> None:
        """Make ``path`` a regular file holding ``data`` (owner, mode as given), making its missing
        folders (root's, 0755); a file that holds ``data`` already is left as it is."""
        self._check_path(path)
        missing = []
        for folder in PurePosixPath(path).parents:
            if str(folder) == "/" or self.stat(str(folder)) is not None:
                break
            missing.append(str(folder))
        for folder in reversed(missing):
            self.mkdir(folder, uid=0, gid=0, mode=0o755, when=when)
        if not missing and self.stat(path) is not None and self.read(path) == data:
            return
        self.write(path, data, uid=uid, gid=gid, mode=mode, when=when)

    def set_owner(self, path: str, *, uid: int, gid: int, mode: int) -> None:
        """Set the owner and permission bits of an existing inode, keeping its type."""
        info = self.stat(path)
        if info is None:
            raise ReconError("no such file in the image", where=self._where(path))
        kind = {"regular": 0o100000, "directory": 0o040000, "symlink": 0o120000}.get(info.type)
        if kind is None:
            raise ReconError(f"is a {info.type}; recon sets owners of files, folders and links only",
                             where=self._where(path))
        script = f"sif {path} uid {uid}\nsif {path} gid {gid}\nsif {path} mode 0{kind | mode:o}\n"
        self._debugfs(script=script, path=path, writable=True)

    def fsck(self) -> None:
        """``e2fsck -fn``: raise unless the file system is clean."""
        done = subprocess.run([find_tool("e2fsck", "e2fsprogs"), "-fn", self.device], capture_output=True,
                              timeout=600, env={**os.environ, "E2FSCK_CONFIG": os.devnull})
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace").replace(self.device, self.label)
            output = output.replace(str(self.image), self.label).strip().splitlines()
            raise ReconError(f"e2fsck -fn found the file system not clean (exit status {done.returncode}): "
                             + " | ".join(output[-8:]), where=self._where())
