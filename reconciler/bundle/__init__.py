"""Instance-store bundles (DESIGN §6): ``writer`` streams the parts, ``manifest`` signs the manifest,
``reader`` decrypts a bundle back to its image. ``write_bundle`` does the first two into a folder."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from .manifest import MachineConfiguration, write_manifest
from .writer import Bundle, BundleKey, DirectorySink, bundle_image


def write_bundle(image: Path, out_dir: Path, prefix: str, *, key: BundleKey, account_id: str,
                 cloud_cert: x509.Certificate, user_cert: x509.Certificate, user_key: rsa.RSAPrivateKey,
                 machine: MachineConfiguration = MachineConfiguration(), image_type: str = "machine") -> Bundle:
    """Bundle ``image`` into ``out_dir``: ``PREFIX.part.NN`` files, then ``PREFIX.manifest.xml``."""
    bundle = bundle_image(image, prefix, key, DirectorySink(out_dir))
    write_manifest(bundle, out_dir, account_id=account_id, cloud_cert=cloud_cert, user_cert=user_cert,
                   user_key=user_key, machine=machine, image_type=image_type)
    return bundle
