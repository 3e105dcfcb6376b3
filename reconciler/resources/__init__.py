"""The resource kinds, by the table name they have in the desired-state file."""

from __future__ import annotations

from . import docker_hosts, images, keypairs, lb_images, load_balancers, properties, security_groups
from .base import Kind

KINDS: dict[str, Kind] = {
    module.KIND.name: module.KIND
    for module in (lb_images, properties, keypairs, security_groups, load_balancers, images, docker_hosts)
}
