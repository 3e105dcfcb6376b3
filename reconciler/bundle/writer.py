"""Streaming instance-store bundler: tar → SHA1 → gzip → AES-128-CBC → 10 MiB parts (DESIGN §6).

One pass over the image with bounded memory. The tar stream is one member, the image, with the
header euca2ools' ``tarfile.TarInfo(prefix)`` makes: named after the bundle's prefix (which is also the
manifest's image name), mode 0644, uid/gid 0, mtime 0, GNU format. It is cut into 1 MiB blocks; the
main thread hashes each block (SHA1: the image digest; CRC-32: the gzip trailer) while a thread pool
deflates the blocks in parallel the way pigz does: each block is a raw deflate stream primed with the
previous block's last 32 KiB as its dictionary and ended with a sync flush, so the concatenation,
after one gzip header and before an empty final block and the trailer, is ONE standard gzip member
that gzip and pigz read. A block whose samples do not shrink (random bytes, compressed packages)
is stored (deflate level 0) rather than searched for matches in vain. At most
``2 × workers + 1`` blocks are in flight. The compressed stream is encrypted (AES-128-CBC, PKCS#7
padding) and cut into parts of ``PART_SIZE`` handed, in order, to a sink: ``DirectorySink`` writes
``PREFIX.part.NN`` files; an uploader can pass its own callable instead.

Sparse images go at disk speed: only the image's data ranges are read (``SEEK_DATA`` /
``SEEK_HOLE``); a block of zeros (a hole, or data that is all zeros) is hashed but not deflated
again where the previous block also ended in zeros -- its deflated bytes are the same every time
-- and its CRC-32 is computed without reading it (:class:`_ZeroCrc`). The stream is byte for
byte what deflating every block read whole gives, and SHA-1, the manifest's digest, still covers
every byte of the tar stream.

The output is a pure function of the image, the key, the level and the block size (zlib is
deterministic, and the blocks do not depend on how threads are scheduled), so bundling the same
image with the same ``BundleKey`` gives byte-identical parts: a resumed upload can skip the parts
already stored with the right digest. ``BundleKey.derive`` makes such a key (see its docstring).
"""

from __future__ import annotations

import collections
import errno
import hashlib
import hmac
import os
import re
import struct
import tarfile
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..errors import ReconError

PART_SIZE = 10 * 1024 * 1024
BLOCK_SIZE = 1 << 20
WINDOW = 32 * 1024                     # deflate's window: the dictionary each block gets
GZIP_LEVEL = 6                         # gzip's default
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"   # no name, mtime 0, Unix: as `tar | gzip` writes
FINAL_BLOCK = b"\x03\x00"              # an empty final fixed-Huffman block
AES_BLOCK = 16
PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
KEY_LABEL = b"recon-bundle-key\0"
SAMPLE = 8 * 1024                     # bytes deflated to tell whether a block is incompressible
ZERO_BLOCK = bytes(BLOCK_SIZE)
ZERO_WINDOW = bytes(WINDOW)


@dataclass(frozen=True)
class BundleKey:
    """The AES-128 key and IV of one bundle (raw bytes; the manifest carries them as hex text)."""

    key: bytes = field(repr=False)
    iv: bytes = field(repr=False)

    @classmethod
    def derive(cls, user_key: rsa.RSAPrivateKey, content_id: str) -> "BundleKey":
        """Key and IV = HMAC-SHA256(user private key as PKCS#8 DER, "recon-bundle-key\\0" + content_id).

        Only the holder of the user key (or the cloud, through the manifest) can compute them, and the
        same content gives the same key, hence the same parts. ``content_id`` must identify the image
        bytes, e.g. the revision's content digest; bundling different bytes under one id would reuse
        a key and IV.
        """
        secret = user_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
        mac = hmac.new(secret, KEY_LABEL + content_id.encode(), hashlib.sha256).digest()
        return cls(mac[:16], mac[16:32])

    @classmethod
    def random(cls) -> "BundleKey":
        return cls(os.urandom(16), os.urandom(16))


@dataclass(frozen=True)
class BundlePart:
    """One part as written: its S3 key name, size, SHA1 (for the manifest) and MD5 (an S3 ETag)."""

    index: int
    filename: str
    size: int
    sha1: str
    md5: str


@dataclass(frozen=True)
class Bundle:
    """What the manifest needs to know about a bundled image."""

    prefix: str
    image_size: int
    digest: str                        # SHA1 of the uncompressed tar stream
    bundled_size: int
    parts: tuple[BundlePart, ...]
    key: BundleKey


PartSink = Callable[[BundlePart, bytes], None]


class DirectorySink:
    """Writes each part as ``DIRECTORY/PREFIX.part.NN``."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def __call__(self, part: BundlePart, data: bytes) -> None:
        (self.directory / part.filename).write_bytes(data)


def tar_header(name: str, size: int) -> bytes:
    """The deterministic header of the bundle's single tar member."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = size, 0o644, 0, 0, 0, "", ""
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def data_ranges(fd: int, size: int) -> list[tuple[int, int]]:
    """The ``(start, end)`` byte ranges of ``fd`` that hold data; the rest are holes (read as zeros).

    From ``SEEK_DATA`` / ``SEEK_HOLE``; where the file system cannot say, the whole file is data."""
    ranges, position = [], 0
    try:
        while position < size:
            try:
                start = os.lseek(fd, position, os.SEEK_DATA)
            except OSError as err:
                if err.errno == errno.ENXIO:      # no data past ``position``: a hole to the end
                    break
                raise
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            if start < end:
                ranges.append((start, end))
            position = end
    except (OSError, AttributeError):
        return [(0, size)]
    return ranges


class _ImageReader:
    """Reads ranges of the image into blocks, reading only its data ranges (holes stay zero)."""

    def __init__(self, fd: int, size: int, where: str):
        self.fd, self.where = fd, where
        self.ranges = data_ranges(fd, size)
        self.next = 0                      # the first data range that may still overlap what is asked

    def is_hole(self, start: int, end: int) -> bool:
        """Whether the image bytes ``[start, end)`` lie in holes (asked in increasing order)."""
        while self.next < len(self.ranges) and self.ranges[self.next][1] <= start:
            self.next += 1
        return self.next == len(self.ranges) or self.ranges[self.next][0] >= end

    def read_into(self, view: memoryview, start: int) -> None:
        """Fill ``view`` (zeroed) with the image bytes from ``start``: the data ranges' only."""
        end = start + len(view)
        self.is_hole(start, end)
        for index in range(self.next, len(self.ranges)):
            data_start, data_end = self.ranges[index]
            if data_start >= end:
                break
            low, high = max(start, data_start), min(end, data_end)
            while low < high:
                count = os.preadv(self.fd, [view[low - start: high - start]], low)
                if not count:
                    raise ReconError(f"the image ended {end - low} bytes early: did it change while being "
                                     "bundled?", where=self.where)
                low += count


def _tar_blocks(reader: _ImageReader, header: bytes, size: int) -> Iterator[bytes | bytearray]:
    """The tar stream of one member (``header`` then the ``size`` image bytes) in BLOCK_SIZE blocks.

    A whole block of zeros is ``ZERO_BLOCK`` itself, and one that lies in the image's holes is that
    without a byte read."""
    end = _round_up(_round_up(len(header) + size, tarfile.BLOCKSIZE) + 2 * tarfile.BLOCKSIZE, tarfile.RECORDSIZE)
    data_start, data_end = len(header), len(header) + size       # where the image is in the stream
    for start in range(0, end, BLOCK_SIZE):
        stop = min(start + BLOCK_SIZE, end)
        low, high = max(start, data_start), min(stop, data_end)  # the image bytes in this block
        if stop - start == BLOCK_SIZE and start >= data_start and (low >= high or reader.is_hole(
                low - data_start, high - data_start)):
            yield ZERO_BLOCK
            continue
        block = bytearray(stop - start)
        if start < data_start:
            block[:data_start - start] = header[start:]
        if low < high:
            with memoryview(block) as view:
                reader.read_into(view[low - start: high - start], low - data_start)
        yield ZERO_BLOCK if block == ZERO_BLOCK else block


class _ZeroCrc:
    """CRC-32 after appending BLOCK_SIZE zero bytes, without reading them.

    Appending zeros maps the CRC register linearly (over GF(2)), so ``crc32(zeros, c) = L(c) ^
    crc32(zeros, 0)``; ``L``'s 32 columns come from zlib itself, once per bundle."""

    def __init__(self) -> None:
        self.base = zlib.crc32(ZERO_BLOCK)
        self.columns = [zlib.crc32(ZERO_BLOCK, 1 << bit) ^ self.base for bit in range(32)]

    def __call__(self, crc: int) -> int:
        out, bit = self.base, 0
        while crc:
            if crc & 1:
                out ^= self.columns[bit]
            crc >>= 1
            bit += 1
        return out


def _result(item: bytes | Future) -> bytes:
    return item if isinstance(item, bytes) else item.result()


def _incompressible(block: bytes | bytearray) -> bool:
    """Whether samples at the start and the middle of ``block`` do not shrink when deflated (random
    bytes, compressed packages): such a block is stored, not searched for matches in vain."""
    if len(block) < 2 * SAMPLE:
        return False
    middle = len(block) // 2
    return all(len(zlib.compress(bytes(block[start:start + SAMPLE]), 1, -zlib.MAX_WBITS)) >= SAMPLE * 0.98
               for start in (0, middle))


def _deflate(block: bytes | bytearray, dictionary: bytes, level: int) -> bytes:
    """One block as raw deflate, primed with ``dictionary``, ending on a byte boundary (sync flush);
    stored blocks (level 0) where it is incompressible."""
    if _incompressible(block):
        level = 0
    extra = {"zdict": dictionary} if dictionary else {}
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY, **extra)
    return compressor.compress(block) + compressor.flush(zlib.Z_SYNC_FLUSH)


class _PartWriter:
    """Encrypts the compressed stream and cuts it into parts for the sink."""

    def __init__(self, key: BundleKey, prefix: str, sink: PartSink):
        self.encryptor = Cipher(algorithms.AES(key.key), modes.CBC(key.iv)).encryptor()
        self.prefix, self.sink = prefix, sink
        self.buffer = bytearray()
        self.parts: list[BundlePart] = []
        self.plain = 0

    def write(self, data: bytes) -> None:
        self.plain += len(data)
        self.buffer += self.encryptor.update(data)
        while len(self.buffer) >= PART_SIZE:
            self._emit(PART_SIZE)

    def close(self) -> tuple[BundlePart, ...]:
        pad = AES_BLOCK - self.plain % AES_BLOCK                # PKCS#7
        self.buffer += self.encryptor.update(bytes([pad]) * pad) + self.encryptor.finalize()
        while self.buffer:
            self._emit(min(PART_SIZE, len(self.buffer)))
        return tuple(self.parts)

    def _emit(self, size: int) -> None:
        with memoryview(self.buffer) as view:
            data = bytes(view[:size])
        del self.buffer[:size]
        index = len(self.parts)
        part = BundlePart(index, f"{self.prefix}.part.{index:02d}", size, hashlib.sha1(data).hexdigest(),
                          hashlib.md5(data, usedforsecurity=False).hexdigest())
        self.sink(part, data)
        self.parts.append(part)


def bundle_image(image: Path, prefix: str, key: BundleKey, sink: PartSink, *, level: int = GZIP_LEVEL,
                 workers: int | None = None, progress: Callable[[int, int], None] | None = None) -> Bundle:
    """Bundle ``image`` in one pass, handing each part to ``sink`` in order; ``progress(done, total)``.

    The tar member is named ``prefix``, as the manifest's ``<image><name>`` is: euca2ools names both
    after its ``--prefix`` (by default the image file's name)."""
    if not PREFIX_RE.match(prefix):
        raise ReconError(f"bundle prefix {prefix!r} must be letters, digits, '.', '_' and '-'")
    image = Path(image)
    workers = workers or min(os.cpu_count() or 1, 8)
    writer = _PartWriter(key, prefix, sink)
    sha1, crc, length = hashlib.sha1(), 0, 0
    zero_crc, zero_deflated = _ZeroCrc(), None
    with open(image, "rb", buffering=0) as f, \
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="recon-deflate") as pool:
        size = os.fstat(f.fileno()).st_size
        header = tar_header(prefix, size)
        writer.write(GZIP_HEADER)
        pending: collections.deque = collections.deque()      # deflated blocks (bytes) or their futures
        dictionary = b""
        for block in _tar_blocks(_ImageReader(f.fileno(), size, str(image)), header, size):
            sha1.update(block)
            length += len(block)
            if block is ZERO_BLOCK:
                crc = zero_crc(crc)
                if dictionary is ZERO_WINDOW:  # zeros after zeros: the same deflated bytes every time
                    zero_deflated = zero_deflated or _deflate(ZERO_BLOCK, ZERO_WINDOW, level)
                    pending.append(zero_deflated)
                else:
                    pending.append(pool.submit(_deflate, block, dictionary, level))
                dictionary = ZERO_WINDOW
            else:
                crc = zlib.crc32(block, crc)
                pending.append(pool.submit(_deflate, block, dictionary, level))
                dictionary = bytes(block[-WINDOW:])
                if dictionary == ZERO_WINDOW:
                    dictionary = ZERO_WINDOW
            while len(pending) > 2 * workers:
                writer.write(_result(pending.popleft()))
            if progress:
                progress(min(length, size), size)
        while pending:
            writer.write(_result(pending.popleft()))
    writer.write(FINAL_BLOCK + struct.pack("<II", crc, length & 0xFFFFFFFF))
    parts = writer.close()
    return Bundle(prefix=prefix, image_size=size, digest=sha1.hexdigest(),
                  bundled_size=sum(part.size for part in parts), parts=parts, key=key)
