"""``PREFIX.manifest.xml`` of an instance-store bundle, exactly as DESIGN §6 describes it.

The bytes are laid out as euca2ools 3 (``BundleManifest.dump_to_str``) writes them: lxml's XML
declaration ``<?xml version='1.0' encoding='ASCII'?>`` and a newline, then the document on one line
in euca2ools' element order, ASCII with character references, no trailing newline. The signature
is RSA-SHA1 (PKCS#1 v1.5) by the user's private key over the bytes of
``<machine_configuration>…</machine_configuration>`` followed by ``<image>…</image>`` exactly as
they appear in the file. The AES key and IV, as hex text, are RSA PKCS#1 v1.5 encrypted for the
cloud certificate (``ec2_*``) and the user certificate (``user_*``) and hex-encoded. PKCS#1 v1.5
encryption is randomized, so two manifests of the same bundle differ in those four fields (and so
in the signature) while the parts are identical.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from xml.sax.saxutils import escape, quoteattr

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .. import __version__
from ..errors import ReconError
from .writer import Bundle

MANIFEST_VERSION = "2007-10-10"
XML_DECLARATION = b"<?xml version='1.0' encoding='ASCII'?>\n"    # lxml.etree.tostring(xml_declaration=True)
IMAGE_TYPES = ("machine", "kernel", "ramdisk")
ACCOUNT_RE = re.compile(r"^[0-9A-Za-z]{1,64}$")


@dataclass(frozen=True)
class MachineConfiguration:
    """The manifest's ``machine_configuration``; ``block_device_mapping`` maps virtual names to devices."""

    architecture: str = "x86_64"
    kernel_id: str | None = None
    ramdisk_id: str | None = None
    block_device_mapping: Mapping[str, str] = field(default_factory=dict)


def _element(tag: str, text: str | int, **attributes: str) -> str:
    attrs = "".join(f" {name}={quoteattr(value)}" for name, value in attributes.items())
    return f"<{tag}{attrs}>{escape(str(text))}</{tag}>"


def _ascii(text: str) -> bytes:
    """``text`` as the declaration says: ASCII, anything else as a character reference (as lxml does)."""
    return text.encode("ascii", "xmlcharrefreplace")


def _machine_configuration(machine: MachineConfiguration) -> str:
    inner = _element("architecture", machine.architecture)
    if machine.block_device_mapping:
        mappings = "".join(f"<mapping>{_element('virtual', virtual)}{_element('device', device)}</mapping>"
                           for virtual, device in sorted(machine.block_device_mapping.items()))
        inner += f"<block_device_mapping>{mappings}</block_device_mapping>"
    if machine.kernel_id:
        inner += _element("kernel_id", machine.kernel_id)
    if machine.ramdisk_id:
        inner += _element("ramdisk_id", machine.ramdisk_id)
    return f"<machine_configuration>{inner}</machine_configuration>"


def _encrypt_hex(cert: x509.Certificate, value: bytes) -> str:
    """``value`` as hex text, RSA PKCS#1 v1.5 encrypted for ``cert``, hex-encoded."""
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise ReconError("bundle certificates must hold RSA keys")
    return public.encrypt(value.hex().encode(), padding.PKCS1v15()).hex()


def _image(bundle: Bundle, account_id: str, image_type: str, cloud_cert: x509.Certificate,
           user_cert: x509.Certificate) -> str:
    parts = "".join(
        f'<part index="{part.index}">{_element("filename", part.filename)}'
        f'{_element("digest", part.sha1, algorithm="SHA1")}</part>' for part in bundle.parts)
    return (
        "<image>"
        + _element("name", bundle.prefix)
        + _element("user", account_id)
        + _element("type", image_type)
        + _element("digest", bundle.digest, algorithm="SHA1")
        + _element("size", bundle.image_size)
        + _element("bundled_size", bundle.bundled_size)
        + _element("ec2_encrypted_key", _encrypt_hex(cloud_cert, bundle.key.key), algorithm="AES-128-CBC")
        + _element("user_encrypted_key", _encrypt_hex(user_cert, bundle.key.key), algorithm="AES-128-CBC")
        + _element("ec2_encrypted_iv", _encrypt_hex(cloud_cert, bundle.key.iv))
        + _element("user_encrypted_iv", _encrypt_hex(user_cert, bundle.key.iv))
        + f'<parts count="{len(bundle.parts)}">{parts}</parts>'
        + "</image>"
    )


def manifest_xml(bundle: Bundle, *, account_id: str, cloud_cert: x509.Certificate, user_cert: x509.Certificate,
                 user_key: rsa.RSAPrivateKey, machine: MachineConfiguration = MachineConfiguration(),
                 image_type: str = "machine") -> bytes:
    """The signed manifest document of ``bundle``."""
    if image_type not in IMAGE_TYPES:
        raise ReconError(f"image type {image_type!r} is not one of {', '.join(IMAGE_TYPES)}")
    if not ACCOUNT_RE.match(account_id):
        raise ReconError(f"account id {account_id!r} is not an account number")
    signed = _ascii(_machine_configuration(machine) + _image(bundle, account_id, image_type, cloud_cert, user_cert))
    signature = user_key.sign(signed, padding.PKCS1v15(), hashes.SHA1()).hex()
    bundler = _element("name", "recon") + _element("version", __version__) + _element("release", "0")
    return (XML_DECLARATION + _ascii(f"<manifest>{_element('version', MANIFEST_VERSION)}<bundler>{bundler}</bundler>")
            + signed + _ascii(f"{_element('signature', signature)}</manifest>"))


def manifest_name(prefix: str) -> str:
    return f"{prefix}.manifest.xml"


def write_manifest(bundle: Bundle, directory: Path, **signing) -> Path:
    """Write ``PREFIX.manifest.xml`` into ``directory``; ``signing`` as for ``manifest_xml``."""
    path = Path(directory) / manifest_name(bundle.prefix)
    path.write_bytes(manifest_xml(bundle, **signing))
    return path
