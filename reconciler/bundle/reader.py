"""Reading a bundle back: the image bytes, decrypted with the cloud's key or the user's key.

``read_manifest`` parses ``PREFIX.manifest.xml``; ``bundle_key`` recovers the AES key and IV with
either private key (the ``user_*`` copies, then the ``ec2_*`` ones); ``iter_image`` (also used by
the sandbox's RegisterImage check) streams the parts through ``fetch(filename)``, checks each
part's SHA1, decrypts, gunzips (refusing anything but exactly one gzip member), checks the tar
stream's SHA1 against the image digest and yields the image's bytes. Memory use is bounded by one
part.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .. import gunzip
from ..errors import ReconError
from .writer import BundleKey

CHUNK = 1 << 20
Fetch = Callable[[str], bytes]
Parts = Sequence[tuple[str, str]]     # (filename, sha1 hex) in index order


class BundleError(ReconError):
    """A bundle is missing something or does not check out."""


@dataclass(frozen=True)
class Manifest:
    """The fields of a bundle manifest that reading the image needs."""

    name: str
    image_type: str
    digest: str
    size: int
    encrypted: dict[str, str]             # ec2_encrypted_key, user_encrypted_key, ec2_encrypted_iv, user_encrypted_iv
    parts: tuple[tuple[str, str], ...]    # (filename, sha1) in index order


def read_manifest(data: bytes) -> Manifest:
    """Parse a manifest document."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise BundleError(f"the manifest is not well-formed XML: {err}") from None
    image = root.find("image")
    if root.tag != "manifest" or image is None:
        raise BundleError("not a bundle manifest (no <manifest><image>)")

    def text(element: ET.Element, path: str) -> str:
        found = element.findtext(path)
        if not found or not found.strip():
            raise BundleError(f"the manifest has no {path}")
        return found.strip()

    parts = sorted(image.findall("parts/part"), key=lambda part: int(part.get("index", "-1")))
    if [int(part.get("index", "-1")) for part in parts] != list(range(len(parts))) or not parts:
        raise BundleError("the manifest's parts are not indexed 0..N-1")
    return Manifest(
        name=text(image, "name"), image_type=text(image, "type"), digest=text(image, "digest").lower(),
        size=int(text(image, "size")),
        encrypted={name: image.findtext(name, "").strip() for name in (
            "ec2_encrypted_key", "user_encrypted_key", "ec2_encrypted_iv", "user_encrypted_iv")},
        parts=tuple((text(part, "filename"), text(part, "digest").lower()) for part in parts),
    )


def _decrypt(private_key: rsa.RSAPrivateKey, hex_value: str) -> bytes | None:
    try:
        raw = bytes.fromhex(private_key.decrypt(bytes.fromhex(hex_value), rsa_padding.PKCS1v15()).decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    return raw if len(raw) == 16 else None


def bundle_key(manifest: Manifest, private_key: rsa.RSAPrivateKey) -> BundleKey:
    """The AES key and IV, with the user's private key or the cloud's."""
    for owner in ("user", "ec2"):
        key = _decrypt(private_key, manifest.encrypted[f"{owner}_encrypted_key"])
        iv = _decrypt(private_key, manifest.encrypted[f"{owner}_encrypted_iv"])
        if key is not None and iv is not None:
            return BundleKey(key, iv)
    raise BundleError("the bundle's key decrypts with neither the user's nor the cloud's copy for this private key")


def _inflate(member: Any, data: bytes, digest: "hashlib._Hash") -> Iterator[bytes]:
    """Decompress ``data`` at most CHUNK bytes at a time (a part of zeros inflates a thousandfold)."""
    while data:
        out = member.decompress(data, CHUNK)
        data = member.unconsumed_tail
        digest.update(out)
        yield out


def _tar_stream(parts: Parts, key: BundleKey, fetch: Fetch, digest: "hashlib._Hash") -> Iterator[bytes]:
    """The uncompressed tar stream, hashed into ``digest`` as it goes."""
    decryptor = Cipher(algorithms.AES(key.key), modes.CBC(key.iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    member = gunzip.member_reader()
    try:
        for filename, sha1 in parts:
            body = fetch(filename)
            if hashlib.sha1(body).hexdigest() != sha1:
                raise BundleError(f"part {filename} does not match its SHA1 digest")
            yield from _inflate(member, unpadder.update(decryptor.update(body)), digest)
        yield from _inflate(member, unpadder.update(decryptor.finalize()) + unpadder.finalize(), digest)
    except ValueError:
        raise BundleError("the bundle does not decrypt with this key (bad padding)") from None
    except gunzip.ERRORS as err:
        raise BundleError(f"the bundle does not decompress: {err}") from None
    if not member.eof:
        raise BundleError("the bundle's gzip stream is truncated")
    if member.unused_data:
        raise BundleError("the bundle holds data after its gzip member (more than one member?)")


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte strings."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks, self.pending, self.offset = chunks, b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while self.offset == len(self.pending):
            chunk = next(self.chunks, None)
            if chunk is None:
                return 0
            self.pending, self.offset = chunk, 0
        count = min(len(buffer), len(self.pending) - self.offset)
        buffer[:count] = memoryview(self.pending)[self.offset:self.offset + count]
        self.offset += count
        return count


def iter_image(parts: Parts, image_digest: str, key: BundleKey, fetch: Fetch) -> Iterator[bytes]:
    """The image's bytes from ``parts`` ((filename, sha1) in order); raises BundleError (after the
    last chunk, for the image digest, the SHA1 of the tar stream) if anything is off."""
    digest = hashlib.sha1()
    stream = io.BufferedReader(_ChunkReader(_tar_stream(parts, key, fetch, digest)), CHUNK)
    found = False
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if not member.isreg() or found:
                raise BundleError(f"the bundle's tar holds more than one regular file ({member.name!r})")
            found = True
            reader = tar.extractfile(member)
            assert reader is not None
            while chunk := reader.read(CHUNK):
                yield chunk
    while stream.read(CHUNK):        # the end-of-archive and record padding count in the digest
        pass
    if not found:
        raise BundleError("the bundle's tar holds no image")
    if digest.hexdigest() != image_digest:
        raise BundleError("the bundle's tar stream does not match the manifest's image digest")


def extract_image(manifest_path: Path, private_key: rsa.RSAPrivateKey, dest: Path) -> Path:
    """Write the image of the bundle whose manifest (and parts, beside it) is ``manifest_path`` to ``dest``."""
    manifest_path = Path(manifest_path)
    manifest = read_manifest(manifest_path.read_bytes())

    def fetch(filename: str) -> bytes:
        if "/" in filename or filename in ("", ".", ".."):
            raise BundleError(f"part file name {filename!r} is not a plain name")
        try:
            return (manifest_path.parent / filename).read_bytes()
        except FileNotFoundError:
            raise BundleError(f"part {filename} not found") from None

    with open(dest, "wb") as out:
        for chunk in iter_image(manifest.parts, manifest.digest, bundle_key(manifest, private_key), fetch):
            out.write(chunk)
    return Path(dest)
