"""What is installed of load-balancer image revisions, and the buckets they install into.

:class:`~reconciler.resources.lb_images.LbImages` installs a revision through the shared image
pipeline (:mod:`.image_pipeline`); this module holds what is particular to LB images and what
other commands read of them:

- the versions installed (:func:`installed_images`, as ``euca-install-load-balancer`` counts
  them) and the ones the load-balancer emi property names (:func:`enabled_images`);
- the ``loadbalancer-vN`` bucket a revision installs into (:func:`version_for`), marked with the
  revision's digest (:data:`~.image_pipeline.MARKER`).
"""

from __future__ import annotations

import re
from typing import Any

from .image_pipeline import REVISION_TAG, marked
from .properties import EMI_PROPERTIES
from .tags import OWNER, owner_from_tags

IMAGE_PREFIX = "eucalyptus-load-balancer-image"
DESCRIPTION = "Installed on %Y-%m-%d at %H:%M:%S %Z"    # euca-install-load-balancer's, in local time
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


def enabled_images(cloud, where: str) -> set[str]:
    """The image ids the load-balancer emi property (4.0 or 4.2+ name) names."""
    return {item.get("value") for item in cloud.properties_describe(list(EMI_PROPERTIES), where=where)
            if item.get("name") in EMI_PROPERTIES}


def registered(cloud, digest: str, where: str) -> dict[str, Any] | None:
    """An image already registered and tagged as this revision."""
    for item in installed_images(cloud, where):
        if item["digest"] == digest:
            return {k: item[k] for k in ("image_id", "version", "location", "digest")}
    return None


def version_for(cloud, digest: str, where: str, planned: int | None = None) -> int:
    """The bucket an interrupted install of this revision used, else the version the plan named
    if nothing has it, else one past every version (images and ``loadbalancer-vN`` buckets)."""
    buckets = [b["Name"] for b in cloud.call("s3", "list_buckets", where=where).get("Buckets", [])]
    versions = {int(m.group(1)): b for b in buckets if (m := re.match(r"^loadbalancer[-_]v(\d+)$", b))}
    installed = {item["version"] for item in installed_images(cloud, where) if item["version"]}
    for version, bucket in sorted(versions.items()):
        if version in installed:
            continue
        if marked(cloud, bucket, digest, where):
            return version
    if planned and planned not in versions and planned not in installed:
        return planned
    return max([0, *versions, *installed]) + 1
