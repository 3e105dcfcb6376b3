"""The base image input: a ``.tgz`` holding one ``.img`` (as the Eucalyptus package ships it) or a bare image.

``prepare_base_image`` checks the declared sha256 of the source file, then streams the raw image
into a private temporary folder next to the destination and renames it into place, so nothing is
written anywhere else and a failure leaves no partial file. Archives are read as a forward-only
stream: no member is ever extracted by its own name, and links, devices, absolute or ``..`` paths
and a second image are refused. Memory use is bounded by one chunk, and time by the image's size:
an image (or an archive member's declared size) over ``max_size`` is refused before a byte of it
is read, so a small archive declaring a huge sparse member cannot keep recon busy.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .. import gunzip
from ..errors import ConfigError, shown

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
#: The largest raw image recon unpacks unless a block says otherwise (the shipped LB image is 2 GiB).
MAX_IMAGE_BYTES = 8 << 30


@dataclass(frozen=True)
class BaseImage:
    """The raw base image, where ``prepare_base_image`` put it."""

    path: Path
    member: str          # the archive member it came from, or the source file's name
    sha256: str          # of the raw image bytes
    size: int


def file_sha256(path: Path) -> str:
    """Streaming sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_source_file(base_dir: Path, relative: str, what: str, where: str) -> None:
    """At load: ``relative`` (to the desired file's folder) names a regular file; ``what`` it is, in words."""
    source = base_dir / relative
    try:
        found = "file" if source.is_file() else "other" if source.exists() else None
    except OSError as exc:   # a name too long for the file system
        raise ConfigError(f"{what} {relative[:80]!r}: {exc.strerror}", where=where)
    if found != "file":
        problem = "is not a file" if found else f"not found (looked in {base_dir})"
        raise ConfigError(f"{what} {relative!r} {problem}", where=where)


def _check_source(source: Path, sha256: str | None, where: str) -> None:
    if not source.exists():
        raise ConfigError(f"{source} not found", where=where)
    if not source.is_file():
        raise ConfigError(f"{source} is not a regular file", where=where)
    if source.stat().st_size == 0:
        raise ConfigError(f"{source} is empty", where=where)
    if sha256 is None:
        return
    expected = sha256.strip().lower()
    if not SHA256_RE.match(expected):
        raise ConfigError(f"source_sha256 {sha256!r} is not 64 hex digits", where=where)
    actual = file_sha256(source)
    if actual != expected:
        raise ConfigError(f"{source} has sha256 {actual}, not the declared {expected}", where=where,
                          hint="a wrong or changed file; fix source_sha256 only if the new file is trusted")


def _copy(reader: BinaryIO, out: BinaryIO) -> tuple[str, int]:
    """Copy ``reader`` to ``out``, leaving holes for all-zero chunks; (sha256, size)."""
    digest = hashlib.sha256()
    zeros = bytes(CHUNK)
    size = 0
    while chunk := reader.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if chunk == zeros[:len(chunk)]:
            out.seek(len(chunk), os.SEEK_CUR)
        else:
            out.write(chunk)
    out.truncate(size)
    return digest.hexdigest(), size


def _member_problem(member: tarfile.TarInfo) -> str | None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or member.name.startswith("/"):
        return "has an absolute path"
    if ".." in name.parts:
        return "climbs out of the archive with '..'"
    if member.issym() or member.islnk():
        return f"is a {'symbolic' if member.issym() else 'hard'} link (to {shown(member.linkname)})"
    if member.ischr() or member.isblk() or member.isfifo():
        return "is a device or FIFO"
    if not (member.isreg() or member.isdir()):
        return f"has an unsupported member type {member.type!r}"
    return None


def _too_big(what: str, size: int, max_size: int, where: str) -> ConfigError:
    return ConfigError(f"{what} is {size} bytes, over the largest image recon unpacks ({max_size} bytes)",
                       where=where, hint="if the image is really this big, raise max_image_mib in the block")


def _extract_image(source: Path, out: BinaryIO, where: str, max_size: int) -> tuple[str, str, int]:
    """Stream the single ``.img`` member of a gzipped tar into ``out``; (member, sha256, size)."""
    found: tuple[str, str, int] | None = None
    try:
        with open(source, "rb") as raw, gunzip.open_reader(raw) as gz:
            with tarfile.open(fileobj=gz, mode="r|", bufsize=CHUNK) as tar:   # 10 KiB reads by default
                for member in tar:
                    problem = _member_problem(member)
                    if problem:
                        raise ConfigError(f"{source.name}: member {shown(member.name)} {problem}", where=where,
                                          hint="the archive is refused whole")
                    if member.size > max_size:   # the header's word, before anything is read
                        raise _too_big(f"{source.name}: member {shown(member.name)}", member.size, max_size, where)
                    if not (member.isreg() and member.name.endswith(".img")):
                        continue
                    if found is not None:
                        raise ConfigError(f"{source.name} holds more than one image: {shown(found[0])} and "
                                          f"{shown(member.name)}", where=where)
                    reader = tar.extractfile(member)
                    assert reader is not None
                    digest, size = _copy(reader, out)
                    if size != member.size:
                        raise ConfigError(f"{source.name}: member {shown(member.name)} is truncated", where=where)
                    found = (member.name, digest, size)
            while gz.read(CHUNK):   # to the end, so that the gzip trailer's CRC and length are checked
                pass
    except (*gunzip.ERRORS, tarfile.TarError) as err:
        raise ConfigError(f"{source.name} is truncated or corrupt: {err}", where=where,
                          hint="download it again and check its sha256") from None
    if found is None:
        raise ConfigError(f"{source.name} holds no .img file", where=where)
    return found


def prepare_base_image(source: Path, dest: Path, *, sha256: str | None = None,
                       where: str = "source", max_size: int = MAX_IMAGE_BYTES) -> BaseImage:
    """Check ``source`` against ``sha256`` and put its raw image at ``dest`` (replaced atomically)."""
    source = Path(source)
    _check_source(source, sha256, where)
    with open(source, "rb") as f:
        archived = f.read(2) == GZIP_MAGIC
    dest.parent.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix=".recon-base-", dir=dest.parent))
    try:
        staged = private / "image.img"
        with open(staged, "wb") as out:
            if archived:
                member, digest, size = _extract_image(source, out, where, max_size)
            else:
                if source.stat().st_size > max_size:
                    raise _too_big(source.name, source.stat().st_size, max_size, where)
                with open(source, "rb") as reader:
                    digest, size = _copy(reader, out)
                member = source.name
        os.replace(staged, dest)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return BaseImage(path=dest, member=member, sha256=digest, size=size)
