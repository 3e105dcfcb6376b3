"""A cloud "as installed": the load-balancer image its administrator installed with the cloud.

A Eucalyptus cloud has no load-balancer image until its administrator installs one, once, with
the cloud: ``euca-install-load-balancer --install-default`` (eucalyptus/load-balancer-image), run
with the cloud administrator's credentials (its epilog: "you MUST have cloud administrator
credentials sourced"), that is as the admin of the cloud's own ``eucalyptus`` account -- the
sandbox's account. Without it, the cloud refuses every CreateLoadBalancer (``workers.Workers.admit``).

``install_default`` does what that installer does, on a fresh cloud (so the version is 1):

* unpacks the package's tarball (the ``.img`` alone; here the small stand-in image of the
  runbook's servo 1.0.4 that ``recon init --example lb-image`` also writes);
* ``euca-bundle-and-upload-image -b loadbalancer-v1 -i IMAGE.img -r x86_64``: parts and manifest,
  named after the image file, uploaded with euca2ools' canned ACL ``aws-exec-read``;
* ``euca-register loadbalancer-v1/IMAGE.img.manifest.xml --name eucalyptus-load-balancer-image-v1
  -d 'Installed on %Y-%m-%d at %H:%M:%S %Z' --virtualization-type hvm`` (local time);
* ``euca-modify-property -p loadbalancing.loadbalancer_emi=EMI`` (4.2+: the worker image property).

It goes through the sandbox's own checks: the bundle is verified as at RegisterImage and the
property set through its change listener.
"""

from __future__ import annotations

import time
from pathlib import Path

from cryptography import x509

from .. import scratch
from .credentials import CLOUD_CERT, Credentials

VERSION = 1
BUCKET = f"loadbalancer-v{VERSION}"
IMAGE_NAME = f"eucalyptus-load-balancer-image-v{VERSION}"
IMAGE_FILE = "eucalyptus-load-balancer-image.img"
DESCRIPTION = "Installed on %Y-%m-%d at %H:%M:%S %Z"
BUNDLE_ACL = "aws-exec-read"


#: The installer's image, made ahead (``make_image_ahead``); None unless so made.
_image_ahead: Path | None = None


def make_image_ahead(directory: Path) -> None:
    """Make the installer's image now, in ``directory`` (which must outlive this process's sandboxes),
    for the installed sandboxes this process starts later: the same reason and caller as
    ``credentials.make_keys_ahead`` (about 0.1 s of each start, most of it debugfs)."""
    from ..imagebuild.testimage import RUNBOOK_SERVO, make_test_image

    global _image_ahead
    _image_ahead = make_test_image(Path(directory) / IMAGE_FILE, servo_version=RUNBOOK_SERVO)


def install_default(ec2, properties, credentials: Credentials, *, emi_property: str) -> str:
    """Install the default load-balancer image as the admin of ``credentials``' account and enable
    it; returns its emi. ``ec2`` is the sandbox's ``EC2Service``, ``properties`` its ``PropertyStore``."""
    from moto.s3.models import get_canned_acl

    from ..bundle.manifest import MachineConfiguration, manifest_name, manifest_xml
    from ..bundle.writer import BundleKey, bundle_image
    from ..imagebuild.testimage import RUNBOOK_SERVO, make_test_image
    from .services import ec2_backend, s3_backend
    from .zones import MOTO_REGION

    account, keys = credentials.account_id, credentials.keys
    storage = s3_backend(account)
    storage.create_bucket(BUCKET, MOTO_REGION)

    def upload(name: str, body: bytes) -> None:
        storage.put_object(BUCKET, name, body)
        storage.put_object_acl(BUCKET, name, get_canned_acl(BUNDLE_ACL))

    with scratch.directory("lb-installed-") as work:
        image = _image_ahead or make_test_image(Path(work) / IMAGE_FILE, servo_version=RUNBOOK_SERVO)
        bundle = bundle_image(image, IMAGE_FILE, BundleKey.random(), lambda part, data: upload(part.filename, data))
    cloud_cert = x509.load_pem_x509_certificate((credentials.directory / CLOUD_CERT).read_bytes())
    manifest = manifest_name(IMAGE_FILE)
    upload(manifest, manifest_xml(bundle, account_id=account, cloud_cert=cloud_cert, user_cert=keys.user_cert,
                                  user_key=keys.user_key, machine=MachineConfiguration(architecture="x86_64")))
    ec2.check_bundle(account, BUCKET, manifest)
    registered = ec2_backend(account).register_image(name=IMAGE_NAME, description=time.strftime(DESCRIPTION))
    emi = ec2.record_image(registered, "machine", kernel=None, ramdisk=None, location=f"{BUCKET}/{manifest}",
                           virtualization="hvm")
    properties.modify(emi_property, emi)
    return emi
