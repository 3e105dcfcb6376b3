"""Checking an uploaded instance-store bundle the way the cloud does at RegisterImage (DESIGN §6, §7).

``verify_bundle`` reads ``PREFIX.manifest.xml`` and its parts through a ``fetch(key)`` callable and
checks, in order: the manifest parses; its signature verifies with the user's certificate over the
exact bytes of ``<machine_configuration>`` followed by ``<image>`` as they appear in the file; the
AES key and IV decrypt with the cloud's private key (and, when given, agree with the user-encrypted
copies); every part is there with its SHA1 digest; and the decrypted stream is one gzip member whose
tar stream hashes to the image digest (``reconciler.bundle.reader`` does this part). Memory use is
bounded by one part.

The caller's ``fetch`` reads the objects as the cloud does: ``require_cloud_read`` refuses one
whose ACL grants the cloud nothing (``acls.cloud_can_read``), in the words Eucalyptus uses when it
cannot read a manifest. Like Eucalyptus (``ImageManifests``, which parses the manifest with a DOM
parser and cuts the signed text out by ``indexOf``, and euca2ools' unbundlers, which take the tar's
first member whatever its name), the check requires no XML declaration and no tar member name.
"""

from __future__ import annotations

import posixpath
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric import rsa

from ..bundle.reader import BundleError as ReaderError
from ..bundle.reader import iter_image
from ..bundle.writer import BundleKey
from .acls import cloud_can_read

Fetch = Callable[[str], "bytes | None"]

_MACHINE_CONFIGURATION = re.compile(rb"<machine_configuration\b[^>]*?(?:/>|>.*?</machine_configuration>)", re.S)
_IMAGE = re.compile(rb"<image\b[^>]*?(?:/>|>.*?</image>)", re.S)


class BundleError(Exception):
    """The bundle named by an ImageLocation is missing or does not check out."""


@dataclass(frozen=True)
class BundleInfo:
    name: str
    image_type: str            # machine | kernel | ramdisk
    architecture: str | None
    kernel_id: str | None
    ramdisk_id: str | None
    size: int | None
    parts: int


def require_cloud_read(acl, bucket: str, name: str, *, manifest_key: str) -> None:
    """Refuse the bundle if the cloud may not read ``bucket/name`` (moto's ``FakeAcl`` ``acl``)."""
    if not cloud_can_read(acl):
        what = "manifest file" if name == manifest_key else "bundle part"
        raise BundleError(f"Failed to read {what}: {bucket}/{name} (its ACL does not let the cloud read it; "
                          "upload the bundle with the canned ACL aws-exec-read)")


def split_location(location: str) -> tuple[str, str]:
    """``bucket/prefix.manifest.xml`` -> (bucket, key)."""
    location = location.strip().lstrip("/")
    bucket, _, key = location.partition("/")
    if not bucket or not key:
        raise BundleError(f"image location {location!r} is not of the form BUCKET/PREFIX.manifest.xml")
    return bucket, key


def _text(element: ET.Element | None, path: str) -> str | None:
    if element is None:
        return None
    found = element.find(path)
    if found is None or found.text is None:
        return None
    text = found.text.strip()
    return text or None


def _hex(value: str | None, what: str) -> bytes:
    if not value:
        raise BundleError(f"manifest has no {what}")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise BundleError(f"manifest {what} is not hex") from None


def _decrypt_hex(key: rsa.RSAPrivateKey, value: str | None, what: str, size: int) -> bytes:
    try:
        plain = key.decrypt(_hex(value, what), rsa_padding.PKCS1v15())
    except ValueError:
        raise BundleError(f"{what} does not decrypt with the intended private key") from None
    try:
        raw = bytes.fromhex(plain.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise BundleError(f"decrypted {what} is not hex text") from None
    if len(raw) != size:
        raise BundleError(f"decrypted {what} is {len(raw)} bytes, expected {size}")
    return raw


def verify_bundle(
    manifest_key: str,
    fetch: Fetch,
    *,
    cloud_key: rsa.RSAPrivateKey,
    user_cert: x509.Certificate,
    user_key: rsa.RSAPrivateKey | None = None,
) -> BundleInfo:
    """Check the bundle whose manifest is ``manifest_key`` (a key in the bundle's bucket)."""
    data = fetch(manifest_key)
    if data is None:
        raise BundleError(f"manifest {manifest_key} not found")
    root, image = _parse_manifest(manifest_key, data)
    _check_signature(root, data, cloud_key, user_cert)
    key, iv = _bundle_key(image, cloud_key, user_key)
    digest = _text(image, "digest")
    if not digest:
        raise BundleError("manifest has no image digest")
    listed = _listed_parts(image)
    directory = posixpath.dirname(manifest_key)

    def fetch_part(filename: str) -> bytes:
        body = fetch(posixpath.join(directory, filename) if directory else filename)
        if body is None:
            raise BundleError(f"bundle part {filename} not found")
        return body

    try:  # each part's SHA1, the padding, one whole gzip member, the image digest; memory bounded
        for _chunk in iter_image(listed, digest.lower(), BundleKey(key, iv), fetch_part):
            pass
    except ReaderError as err:
        raise BundleError(err.message) from None

    size_text = _text(image, "size")
    mc_el = root.find("machine_configuration")
    return BundleInfo(
        name=_text(image, "name") or "",
        image_type=(_text(image, "type") or "machine").lower(),
        architecture=_text(mc_el, "architecture"),
        kernel_id=_text(mc_el, "kernel_id"),
        ramdisk_id=_text(mc_el, "ramdisk_id"),
        size=int(size_text) if size_text and size_text.isdigit() else None,
        parts=len(listed),
    )


def _parse_manifest(manifest_key: str, data: bytes) -> tuple[ET.Element, ET.Element]:
    """The manifest's root and its ``<image>``, or why it is no manifest."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise BundleError(f"manifest {manifest_key} is not well-formed XML: {err}") from None
    if root.tag != "manifest":
        raise BundleError(f"{manifest_key} is not a bundle manifest (root element <{root.tag}>)")
    image = root.find("image")
    if image is None:
        raise BundleError("manifest has no <image> element")
    return root, image


def _check_signature(root: ET.Element, data: bytes, cloud_key: rsa.RSAPrivateKey,
                     user_cert: x509.Certificate) -> None:
    """The signature over ``<machine_configuration><image>``, as written, by the user's key or, as
    Eucalyptus also accepts (ImageManifests.checkManifestSignature), by the cloud's own."""
    mc = _MACHINE_CONFIGURATION.search(data)
    im = _IMAGE.search(data)
    if mc is None or im is None:
        raise BundleError("manifest lacks <machine_configuration> or <image>")
    signature = _hex(_text(root, "signature"), "signature")
    signed = mc.group(0) + im.group(0)

    def signed_by(public_key) -> bool:
        try:
            public_key.verify(signature, signed, rsa_padding.PKCS1v15(), hashes.SHA1())
        except InvalidSignature:
            return False
        return True

    if not (signed_by(user_cert.public_key()) or signed_by(cloud_key.public_key())):
        raise BundleError("manifest signature does not verify with the user's or the cloud's certificate")


def _bundle_key(image: ET.Element, cloud_key: rsa.RSAPrivateKey,
                user_key: rsa.RSAPrivateKey | None) -> tuple[bytes, bytes]:
    """The AES key and IV, for the cloud (and, when the user's copies are there, the same for the user)."""
    key = _decrypt_hex(cloud_key, _text(image, "ec2_encrypted_key"), "ec2_encrypted_key", 16)
    iv = _decrypt_hex(cloud_key, _text(image, "ec2_encrypted_iv"), "ec2_encrypted_iv", 16)
    if user_key is not None and _text(image, "user_encrypted_key"):
        if _decrypt_hex(user_key, _text(image, "user_encrypted_key"), "user_encrypted_key", 16) != key:
            raise BundleError("user_encrypted_key and ec2_encrypted_key differ")
        if _text(image, "user_encrypted_iv") and \
                _decrypt_hex(user_key, _text(image, "user_encrypted_iv"), "user_encrypted_iv", 16) != iv:
            raise BundleError("user_encrypted_iv and ec2_encrypted_iv differ")
    return key, iv


def _listed_parts(image: ET.Element) -> list[tuple[str, str]]:
    """(file name, SHA-1) of each part, in index order: present, counted, numbered 0..N-1."""
    parts_el = image.find("parts")
    parts = [] if parts_el is None else parts_el.findall("part")
    if not parts:
        raise BundleError("manifest lists no parts")
    if parts_el is not None and parts_el.get("count") and parts_el.get("count") != str(len(parts)):
        raise BundleError(f"manifest says {parts_el.get('count')} parts but lists {len(parts)}")
    try:
        parts.sort(key=lambda p: int(p.get("index", "")))
    except ValueError:
        raise BundleError("a manifest part has no numeric index") from None
    if [int(p.get("index")) for p in parts] != list(range(len(parts))):
        raise BundleError("manifest part indexes are not 0..N-1")
    listed = []
    for part in parts:
        filename = _text(part, "filename")
        if not filename or "/" in filename:
            raise BundleError(f"part {part.get('index')} has no usable filename")
        listed.append((filename, (_text(part, "digest") or "").lower()))
    return listed
