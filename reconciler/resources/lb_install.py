"""Installing load-balancer image revisions in the cloud: what is installed, buckets, registering.

:class:`~reconciler.resources.lb_images.LbImages` installs a revision in checkpointed steps;
this module holds the cloud side of those steps and what other commands read of it:

- the versions installed (:func:`installed_images`, as ``euca-install-load-balancer`` counts
  them) and the ones the load-balancer emi property names (:func:`enabled_images`);
- the ``loadbalancer-vN`` bucket a revision installs into (:func:`version_for`,
  :func:`claimable`), marked with the revision's digest (:data:`MARKER`);
- the bundle's signing keys from a sourced eucarc (:func:`signing_keys`), the upload of its
  parts (:func:`upload_parts`), and registering it exactly once (:func:`register`).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Mapping

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..bundle.manifest import MachineConfiguration, manifest_xml
from ..bundle.upload import PartUploader
from ..bundle.writer import BundleKey, bundle_image
from ..errors import CloudError, ConfigError
from ..imagebuild.build import Revision
from .base import CloudContext
from .properties import EMI_PROPERTIES
from .tags import OWNER, owner_from_tags

IMAGE_PREFIX = "eucalyptus-load-balancer-image"
DESCRIPTION = "Installed on %Y-%m-%d at %H:%M:%S %Z"    # euca-install-load-balancer's, in local time
REVISION_TAG = "recon:revision"
#: The object in a ``loadbalancer-vN`` bucket that says which revision recon installs there.
MARKER = "recon-revision"
LOCATION_RE = re.compile(r"^loadbalancer[-_]v(\d+)/")


def version_of(location: str) -> int | None:
    """The N of a ``loadbalancer-vN/…`` location (or bucket name followed by ``/``), else None."""
    match = LOCATION_RE.match(location or "")
    return int(match.group(1)) if match else None


def installed_images(cloud, where: str, *, own: bool = False) -> list[dict[str, Any]]:
    """The installed LB image versions (recon's, hand-installed, and those of other accounts the account
    can see, as ``euca-install-load-balancer`` counts them; ``own``: the account's only), one
    DescribeImages call. An image whose location has no ``loadbalancer-vN`` bucket is version None."""
    reply = cloud.call("ec2", "describe_images", where=where, **({"Owners": ["self"]} if own else {}))
    found = []
    for image in reply.get("Images", []):
        location = image.get("ImageLocation", "")
        if IMAGE_PREFIX not in location and not image.get("Name", "").startswith(IMAGE_PREFIX):
            continue
        tags = image.get("Tags") or []
        found.append({
            "image_id": image["ImageId"], "version": version_of(location), "location": location,
            "name": image.get("Name", ""), "description": image.get("Description"),
            "digest": {t["Key"]: t["Value"] for t in tags}.get(REVISION_TAG), OWNER: owner_from_tags(tags),
        })
    return sorted(found, key=lambda item: (item["version"] or 0, item["image_id"]))


def own_image(cloud, name: str, location: str, where: str) -> str | None:
    """The id of the account's image called ``name`` registered from ``location``, if there is one."""
    reply = cloud.call("ec2", "describe_images", where=where, Owners=["self"],
                       Filters=[{"Name": "name", "Values": [name]}])
    for image in reply.get("Images", []):
        if image.get("Name") == name and image.get("ImageLocation") == location:
            return image["ImageId"]
    return None


def enabled_images(cloud, where: str) -> set[str]:
    """The image ids the load-balancer emi property (4.0 or 4.2+ name) names."""
    return {item.get("value") for item in cloud.properties_describe(list(EMI_PROPERTIES), where=where)
            if item.get("name") in EMI_PROPERTIES}


def signing_keys(env: Mapping[str, str], where: str) -> dict[str, Any]:
    """The certificates and key a bundle is made with, from a sourced eucarc."""
    paths = {}
    for variable in ("EC2_CERT", "EC2_PRIVATE_KEY", "EUCALYPTUS_CERT"):
        if not env.get(variable):
            raise ConfigError(f"installing a load-balancer image needs {variable} (the user certificate, its key and "
                              "the cloud certificate)", where=where, hint="source the cloud's eucarc")
        paths[variable] = Path(env[variable])
    account = env.get("EC2_USER_ID") or env.get("EC2_ACCOUNT_NUMBER")
    if not account:
        raise ConfigError("installing a load-balancer image needs EC2_USER_ID (the account number)", where=where,
                          hint="source the cloud's eucarc")
    try:
        user_cert = x509.load_pem_x509_certificate(paths["EC2_CERT"].read_bytes())
        cloud_cert = x509.load_pem_x509_certificate(paths["EUCALYPTUS_CERT"].read_bytes())
        user_key = serialization.load_pem_private_key(paths["EC2_PRIVATE_KEY"].read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read the bundling certificates or key: {type(exc).__name__}", where=where)
    return {"account_id": account, "user_cert": user_cert, "cloud_cert": cloud_cert, "user_key": user_key}


def upload_parts(ctx: CloudContext, revision: Revision, bucket: str, signing: Mapping[str, Any],
                 where: str) -> tuple[PartUploader, bytes]:
    """Upload the parts the bucket lacks; the uploader and the signed manifest, to be put last."""
    cloud = ctx.cloud
    stored = {o["Key"]: o.get("ETag", "").strip('"')
              for o in cloud.paginate("s3", "list_objects_v2", "Contents", where=where, Bucket=bucket) or []}
    ctx.report(where, f"bundling and uploading to {bucket} ({revision.image.stat().st_size >> 20} MiB image)")
    uploader = PartUploader(cloud, bucket, stored, where=where, progress=lambda sent, skipped, size:
                            ctx.report(where, f"uploaded {sent} parts ({size >> 20} MiB; {skipped} "
                                              "already there)") if sent % 10 == 0 else None,
                            stop=ctx.stop)
    key = BundleKey.derive(signing["user_key"], revision.digest)
    try:
        bundle = bundle_image(revision.image, IMAGE_PREFIX, key, uploader)
    finally:
        uploader.close()
    manifest = manifest_xml(bundle, account_id=signing["account_id"], cloud_cert=signing["cloud_cert"],
                            user_cert=signing["user_cert"], user_key=signing["user_key"],
                            machine=MachineConfiguration(architecture="x86_64"))
    ctx.report(where, f"{len(bundle.parts)} parts in {bucket} ({uploader.skipped} were already there)")
    return uploader, manifest


def register(cloud, version: int, location: str, where: str) -> str:
    """Register the bundle at ``location`` once: an image an earlier attempt registered from it under
    the name (its reply lost, or recon killed before tagging it) is that image, not a reason for a
    second one. The cloud refuses a name already in use (InvalidAMIName.Duplicate)."""
    name = f"{IMAGE_PREFIX}-v{version}"
    found = own_image(cloud, name, location, where)
    if found:
        return found
    # as euca-install-load-balancer registers it: hvm (no kernel needed), described in local time
    reply = cloud.call("ec2", "register_image", where=where, ImageLocation=location, Name=name,
                       Description=time.strftime(DESCRIPTION), Architecture="x86_64", VirtualizationType="hvm",
                       done_if_retried=("InvalidAMIName.Duplicate",))
    if reply is not None:
        return reply["ImageId"]
    found = own_image(cloud, name, location, where)   # the lost attempt's
    if found is None:
        raise CloudError(f"RegisterImage: the name {name} is in use by an image not registered from {location}",
                         where=where, hint="`recon images` lists the installed versions")
    return found


def registered(cloud, digest: str, where: str) -> dict[str, Any] | None:
    """An image already registered and tagged as this revision."""
    for item in installed_images(cloud, where):
        if item["digest"] == digest:
            return {k: item[k] for k in ("image_id", "version", "location", "digest")}
    return None


def claimable(cloud, bucket: str, digest: str, where: str) -> bool:
    """Whether the bucket a checkpoint names is still this revision's to use: missing, empty (made
    right before the crash), or marked with this digest."""
    reply = cloud.call("s3", "list_objects_v2", where=where, Bucket=bucket, MaxKeys=1,
                       ignore_codes=("NoSuchBucket",))
    if reply is None or not reply.get("Contents"):
        return True
    marker = cloud.call("s3", "get_object", where=where, Bucket=bucket, Key=MARKER, ignore_codes=("NoSuchKey",))
    return marker is not None and marker["Body"].read().decode(errors="replace") == digest


def version_for(cloud, digest: str, where: str, planned: int | None = None) -> int:
    """The bucket an interrupted install of this revision used, else the version the plan named
    if nothing has it, else one past every version (images and ``loadbalancer-vN`` buckets)."""
    buckets = [b["Name"] for b in cloud.call("s3", "list_buckets", where=where).get("Buckets", [])]
    versions = {int(m.group(1)): b for b in buckets if (m := re.match(r"^loadbalancer[-_]v(\d+)$", b))}
    installed = {item["version"] for item in installed_images(cloud, where) if item["version"]}
    for version, bucket in sorted(versions.items()):
        if version in installed:
            continue
        marker = cloud.call("s3", "get_object", where=where, Bucket=bucket, Key=MARKER,
                            ignore_codes=("NoSuchKey",))
        if marker is not None and marker["Body"].read().decode(errors="replace") == digest:
            return version
    if planned and planned not in versions and planned not in installed:
        return planned
    return max([0, *versions, *installed]) + 1
