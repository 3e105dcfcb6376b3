"""Docker hosts: ``count`` instances of one image, started with a cloud-init document
(``euca-run-instances -k KEY -t TYPE -z ZONE --user-data-file cloud-init-docker.yaml IMAGE``).

The hosts are an instance set (:mod:`.instance_set`): instance ``i`` is tagged
``docker_hosts.NAME[i]``, launched once per index and generation (a ClientToken), and a change of
image, kernel, ramdisk, type, key, zone, security groups or user data replaces the hosts
create-before-destroy, ``max_unavailable`` indexes at a time (default 1), each batch handed over
to the load balancers that serve ``instance_ids`` before the old hosts are terminated. So at least
``count`` hosts run, and are registered, throughout; ``count`` adds or terminates the highest
indexes. Tags are changed in place.

User data is sensitive: the desired attributes, plans, state and errors hold only its sha256;
the document is read again from the file when instances are launched.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any, Mapping

from ..errors import ConfigError, PlanError, ReconError
from ..schema import Field
from ..redact import remember
from .abilities import Importable, NamesOthers, ReplacesInstances, ReplacesParts
from .base import CloudContext, ImportOption, Kind, LoadContext, NameUse, Traits
from .instance_roll import LAUNCH_ATTRS, OWN_TAGS, Instance, Launch
from .instance_set import InstanceSet
from .tags import user_tags_problem

MAX_USER_DATA = 16 << 10       # the EC2 limit on user data
HOSTS = InstanceSet("docker_hosts", noun="host")


def _id_check(prefixes: tuple[str, ...]):
    pattern = re.compile(rf"^({'|'.join(prefixes)})-[0-9a-fA-F]{{8,17}}$")
    return lambda value: None if pattern.match(value) else f"expected an image id like {prefixes[0]}-0123abcd"


def _tags_check(tags: Mapping[str, str]) -> str | None:
    return user_tags_problem(tags, len(OWN_TAGS))


def check_cloud_config(data: bytes, where: str) -> None:
    """A cloud-config document: UTF-8, first line ``#cloud-config``, a YAML mapping.

    Errors give a line and column, never the document's text (it may hold secrets).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("the cloud-init file is not UTF-8 text", where=where) from None
    if text.lstrip("\ufeff").split("\n", 1)[0].rstrip() != "#cloud-config":
        raise ConfigError("a cloud-config document starts with the line #cloud-config", where=where)
    import yaml  # only where a block has a cloud-init file

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"the cloud-init file is not valid YAML{at}", where=where) from None
    if document is not None and not isinstance(document, dict):
        raise ConfigError("a cloud-config document is a YAML mapping (key: value lines)", where=where)


def imported_block(spec: Mapping[str, Any], hosts: list[Instance], cloud_init: str | None) -> dict[str, Any]:
    """The file's block for imported ``hosts`` launched with ``spec``: the tags they all have."""
    block = {key: value for key, value in spec.items() if value not in (None, [])}
    block["count"] = len(hosts)
    if cloud_init:
        block["cloud_init"] = cloud_init
    common = set.intersection(*(set(h.tags.items()) for h in hosts))
    if common:
        block["tags"] = dict(sorted(common))
    return block


class DockerHosts(Kind, NamesOthers, ReplacesInstances, ReplacesParts, Importable):
    name = "docker_hosts"
    fields = {
        "image": Field("string", "Machine image: an id (emi-…) or a reference such as ${images.docker.id}.",
                       required=True, check=_id_check(("emi", "ami"))),
        "kernel_id": Field("string", "Kernel image (eki-…); default: the image's.", check=_id_check(("eki", "aki"))),
        "ramdisk_id": Field("string", "Ramdisk image (eri-…); default: the image's.", check=_id_check(("eri", "ari"))),
        "instance_type": Field("string", "Instance type, e.g. m1.medium.", required=True),
        "key_name": Field("string", "Key pair: one in the cloud, or one of this file's (by name or reference)."),
        "zone": Field("string", "Availability zone."),
        "security_groups": Field("list", "Security group names.", items=Field("string")),
        "count": Field("integer", "How many hosts (default 1).", minimum=0, maximum=1000, references=False),
        "cloud_init": Field("string", "cloud-config file, relative to this file: sent as user data, never shown.",
                            references=False),
        "tags": Field("map", "More tags for every host.", items=Field("string", references=False),
                      references=False, check=_tags_check),
        "max_unavailable": Field("integer", "Indexes replaced at once when the hosts are replaced (default 1); "
                                 "each batch joins the load balancers before the old hosts leave them.",
                                 minimum=1, references=False),
    }
    outputs = {"instance_ids": "the hosts' instance ids, by index", "private_ips": "their private addresses, by index"}
    traits = Traits(
        computed=frozenset({"instance_ids", "private_ips"}),
        set_attrs=frozenset({"security_groups"}),
        owner_tags=True,
        replaces_instances=frozenset(LAUNCH_ATTRS),
        create_before_destroy=True,   # a batch's new hosts run before its old ones are terminated
        recompute_on=frozenset({*LAUNCH_ATTRS, "count", "indexes"}),
        needs_live=frozenset({"keypairs", "security_groups"}),
    )

    # --- desired side -------------------------------------------------------------------
    def normalize(self, name: str, block: Mapping[str, Any], ctx: LoadContext) -> dict[str, Any]:
        attrs = {"count": 1, "max_unavailable": 1, **block, "user_data_sha256": None}
        if "cloud_init" in block:  # only its digest is kept: the document is read again at launch
            where = f"docker_hosts.{name}.cloud_init"
            data = ctx.read_companion(block["cloud_init"], where, limit=MAX_USER_DATA)
            remember(data)
            check_cloud_config(data, where)
            attrs["user_data_sha256"] = hashlib.sha256(data).hexdigest()
        return self.finalize(name, attrs)

    def finalize(self, name, attrs):
        if isinstance(attrs.get("security_groups"), list):
            return {**attrs, "security_groups": sorted(set(attrs["security_groups"]))}
        return attrs

    def named(self, name, attrs):
        uses = [NameUse(key, ("images",), attrs[key]) for key in ("image", "kernel_id", "ramdisk_id")
                if isinstance(attrs.get(key), str)]
        if isinstance(attrs.get("key_name"), str) and attrs["key_name"]:
            uses.append(NameUse("key_name", ("keypairs",), attrs["key_name"], required=True))
        groups = attrs.get("security_groups")
        if isinstance(groups, list):  # (not a whole reference to a list)
            uses += [NameUse("security_groups", ("security_groups",), group, required=True) for group in groups]
        return uses

    # --- comparison ---------------------------------------------------------------------
    def compare_view(self, name, desired, live, prior):
        return HOSTS.compare_view(desired, live, prior)

    def replacements(self, name, want, live):
        """Each index kept by ``count`` whose hosts do not match the launch attributes: one new host,
        launched before the old ones are terminated."""
        return HOSTS.replacements(name, want, live)

    def requested(self, name, part, live):
        """``--replace docker_hosts.NAME[i]``: the host at index ``i``; ``docker_hosts.NAME``: every host."""
        return HOSTS.requested(name, part, live)

    def display_view(self, name, attrs):
        return {key: value for key, value in attrs.items() if value is not None}

    # --- cloud side ---------------------------------------------------------------------
    def read(self, ctx, wanted):
        return HOSTS.read(ctx, wanted)

    def create(self, ctx, name, attrs):
        return HOSTS.converge(ctx, name, attrs, self._launch(ctx, name, attrs), remove_tags=set())

    def update(self, ctx, name, before, after, changed):
        return HOSTS.converge(ctx, name, after, self._launch(ctx, name, after),
                              remove_tags=set(before.get("tags", {})) - set(after.get("tags", {})))

    def delete(self, ctx, name, before, prior):
        HOSTS.delete(ctx, name)

    import_options = {"cloud_init": ImportOption("--cloud-init",
                                                 "the cloud-config file the instances were launched with.")}
    import_ids = "instance ids, comma-separated"

    def import_block(self, ctx, name, cloud_id, options):
        """Hosts launched by hand (``i-1,i-2``, indexes in that order) become ``docker_hosts.NAME``:
        they are tagged as recon tags its own hosts, and their user data must be ``--cloud-init FILE``."""
        hosts, spec = HOSTS.importable(ctx, name, cloud_id)
        digest, relative = self._imported_user_data(ctx, f"docker_hosts.{name}", [h.id for h in hosts],
                                                    options.get("cloud_init"))
        HOSTS.adopt(ctx, name, hosts, digest)
        return imported_block(spec, hosts, relative), name

    def _imported_user_data(self, ctx, where: str, ids: list[str], relative: str | None):
        """The user data every instance has must be the given cloud-init file's (digest, path)."""
        data = None
        if relative:
            data = LoadContext(ctx.base_dir, "import", ctx.stack).read_companion(relative, where, limit=MAX_USER_DATA)
            check_cloud_config(data, f"{where}.cloud_init")
        for instance_id in ids:
            reply = ctx.cloud.call("ec2", "describe_instance_attribute", where=where, InstanceId=instance_id,
                                   Attribute="userData")
            encoded = (reply.get("UserData") or {}).get("Value")
            live = base64.b64decode(encoded) if encoded else None
            if live != data:
                raise ReconError(f"{instance_id}'s user data is not "
                                 + (f"{relative!r}" if relative else "empty: give it with --cloud-init FILE"),
                                 where=where)
        return (hashlib.sha256(data).hexdigest() if data else None), relative

    # --- launching ------------------------------------------------------------------------
    def _launch(self, ctx: CloudContext, name: str, want: Mapping[str, Any]) -> Launch:
        """What each host is launched with: the launch fields, and the cloud-init document as user data."""
        params: dict[str, Any] = {"ImageId": want["image"], "InstanceType": want["instance_type"]}
        for key, param in (("kernel_id", "KernelId"), ("ramdisk_id", "RamdiskId"), ("key_name", "KeyName")):
            if want.get(key):
                params[param] = want[key]
        if want.get("zone"):
            params["Placement"] = {"AvailabilityZone": want["zone"]}
        if want.get("security_groups"):
            params["SecurityGroups"] = list(want["security_groups"])
        return Launch(params, self._user_data(ctx, want, f"docker_hosts.{name}"), want.get("user_data_sha256"))

    def _user_data(self, ctx: CloudContext, want: Mapping[str, Any], address: str) -> str | None:
        """The cloud-init document, read again now; it must be the one the plan saw."""
        if not want.get("cloud_init"):
            return None
        where = f"{address}.cloud_init"
        try:
            data = (ctx.base_dir / want["cloud_init"]).read_bytes()
        except OSError as exc:
            raise PlanError(f"cannot read {want['cloud_init']!r}: {exc.strerror or exc}", where=where) from None
        remember(data)
        if hashlib.sha256(data).hexdigest() != want["user_data_sha256"]:
            raise PlanError(f"{want['cloud_init']!r} changed since it was planned; plan again", where=where)
        return data.decode("utf-8")


KIND = DockerHosts()
