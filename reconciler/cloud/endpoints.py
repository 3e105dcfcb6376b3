"""Where each service lives on a Eucalyptus front end, per Eucalyptus version.

The service URL paths changed between versions (3.x called EC2 ``Eucalyptus`` and S3 ``Walrus``;
DescribeProperties moved twice); :func:`~reconciler.cloud.settings.resolve_settings` derives the
URLs from these paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SERVICES = ("ec2", "s3", "elb", "autoscaling", "properties")
"""The services recon talks to, by botocore service name."""

# The [cloud] key (and Endpoints field) that holds each service's URL.
_SERVICE_KEY = {
    "ec2": "compute",
    "s3": "objectstorage",
    "elb": "loadbalancing",
    "autoscaling": "autoscaling",
    "properties": "properties",
}


@dataclass(frozen=True)
class Endpoints:
    """Service URLs; ``None`` means botocore's default (plain AWS)."""

    compute: str | None = None
    objectstorage: str | None = None
    loadbalancing: str | None = None
    autoscaling: str | None = None
    """Auto Scaling: the groups Eucalyptus runs each load balancer's worker VMs in."""
    properties: str | None = None
    """ModifyPropertyValue (always ``/services/Properties`` on a Eucalyptus front end)."""
    properties_describe: str | None = None
    """DescribeProperties: ``/services/Empyrean`` on 4.0/4.1, ``/services/Configuration``
    on 3.x, ``/services/Properties`` on 4.2+."""

    def for_service(self, service: str) -> str | None:
        """The URL of one of :data:`SERVICES` (``properties`` = the modify URL)."""
        try:
            return getattr(self, _SERVICE_KEY[service])
        except KeyError:
            raise ValueError(f"unknown service {service!r}; known: {', '.join(SERVICES)}") from None


_VERSION_RE = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.\d+)*$")


def parse_version(version: str) -> tuple[int, int]:
    """``"4.2"`` → ``(4, 2)``. Known: 3.x, 4.0–4.4, 5.x. Raises ``ValueError`` otherwise."""
    match = _VERSION_RE.match(str(version).strip())
    if not match:
        raise ValueError(f"not a version: {version!r}")
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    if major in (3, 5) or (major == 4 and minor <= 4):
        return major, minor
    raise ValueError(f"unknown Eucalyptus version {version!r}")


def describe_path(version: str) -> str:
    """The path DescribeProperties is served at on a front end of this Eucalyptus version."""
    major, minor = parse_version(version)
    if major < 4:
        return "/services/Configuration"
    if (major, minor) < (4, 2):
        return "/services/Empyrean"
    return "/services/Properties"


def service_paths(version: str) -> dict[str, str]:
    """Front-end paths per ``[cloud]`` service key for this version."""
    major, _ = parse_version(version)
    if major < 4:  # 3.x: EC2 was "Eucalyptus", S3 was Walrus
        compute, objectstorage = "/services/Eucalyptus", "/services/Walrus"
    else:
        compute, objectstorage = "/services/compute", "/services/objectstorage"
    return {
        "compute": compute,
        "objectstorage": objectstorage,
        "loadbalancing": "/services/LoadBalancing",
        "autoscaling": "/services/AutoScaling",
        "properties": "/services/Properties",
        "properties_describe": describe_path(version),
    }

