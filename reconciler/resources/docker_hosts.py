"""Docker hosts: ``count`` instances of one image, started with a cloud-init document
(``euca-run-instances -k KEY -t TYPE -z ZONE --user-data-file cloud-init-docker.yaml IMAGE``).

Ownership and finding. Instance ``i`` of ``[docker_hosts.NAME]`` carries, from its launch
(TagSpecifications), the tags ``recon:stack`` and ``recon:address`` = ``docker_hosts.NAME[i]``,
plus ``recon:generation`` and ``recon:user-data-sha256``. recon finds the hosts by those tags --
one paginated DescribeInstances filtered on the stack tag for the whole kind -- so a lost state
file loses nothing, and recon never touches an instance without its tags.

Launching. One RunInstances per index, with ClientToken = sha256 of stack, address, index,
generation and a digest of every launch parameter. A retried or repeated call therefore gets the
instance the first one made, never a second one; a token whose instance is gone (terminated
behind recon's back) gets a new generation. The apply then waits, bounded and with progress
reports, until every new instance runs, and records the ids and private addresses.

Changes. ``count`` adds or terminates the highest indexes; the survivors keep theirs. A change
of image, kernel, ramdisk, type, key, zone, security groups or user data replaces the instances
create-before-destroy, ``max_unavailable`` indexes at a time (default 1). For each batch: the new
instances are launched and run; every resource of the file that serves this block's
``instance_ids`` (a load balancer's ``instances``) registers them and then deregisters the old
ones (:meth:`Kind.hand_over`, through the applier); only then are the old ones terminated. So at
least ``count`` hosts run, and are registered, throughout. Hosts terminated for ``count`` are
deregistered first the same way. Tags are changed in place.

An apply stopped or killed mid-roll leaves tagged hosts only: the next apply finds an index with
a new host and an old one, hands over to the new one and terminates the old (no launch).

User data is sensitive: the desired attributes, plans, state and errors hold only its sha256;
the document is read again from the file when instances are launched.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import yaml

from ..addresses import Address, Reference
from ..errors import CloudError, ConfigError, PlanError, ReconError
from ..schema import Field
from ..waits import wait_until
from ..plan import Replacement
from ..redact import remember
from .abilities import Importable, NamesOthers, ReplacesInstances
from .base import CloudContext, Kind, LoadContext, NameUse, Traits
from .tags import ADDRESS_TAG, OWNER, STACK_TAG, ownership_tags, user_tags_problem

GENERATION_TAG = "recon:generation"
USER_DATA_TAG = "recon:user-data-sha256"
OWN_TAGS = (STACK_TAG, ADDRESS_TAG, GENERATION_TAG, USER_DATA_TAG)   # on every host recon launches
#: What an instance is launched with: a change of any of these replaces it.
LAUNCH_ATTRS = ("image", "kernel_id", "ramdisk_id", "instance_type", "key_name", "zone", "security_groups",
                "user_data_sha256")
PRESENT = ("pending", "running", "stopping", "stopped")
GONE = ("shutting-down", "terminated")
INSTANCE_WAIT = 900.0          # seconds for new instances to run
MAX_USER_DATA = 16 << 10       # the EC2 limit on user data
MAX_GENERATIONS = 8            # new tokens tried for one index when earlier ones' instances are gone
_ADDRESS_RE = re.compile(r"^docker_hosts\.(.+)\[(\d+)\]$")


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
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"the cloud-init file is not valid YAML{at}", where=where) from None
    if document is not None and not isinstance(document, dict):
        raise ConfigError("a cloud-config document is a YAML mapping (key: value lines)", where=where)


def _summary(values: Iterable[Any]) -> Any:
    """One value if all agree, else the sorted distinct values (hosts mid-replacement)."""
    distinct = {json.dumps(v, sort_keys=True): v for v in values}
    if len(distinct) == 1:
        return next(iter(distinct.values()))
    return [distinct[key] for key in sorted(distinct)]


@dataclass(frozen=True)
class Host:
    """One instance recon launched, as DescribeInstances shows it."""

    id: str
    name: str            # the block's name
    index: int
    generation: int
    state: str
    private_ip: str | None
    launch: dict[str, Any]
    tags: dict[str, str]  # the user's tags (not recon's)

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> "Host | None":
        tags = {t["Key"]: t.get("Value", "") for t in item.get("Tags", [])}
        match = _ADDRESS_RE.match(tags.get(ADDRESS_TAG, ""))
        if match is None:
            return None
        groups = item.get("SecurityGroups") or next(iter(item.get("NetworkInterfaces") or []), {}).get("Groups", [])
        generation = tags.get(GENERATION_TAG, "0")
        return cls(
            id=item["InstanceId"], name=match.group(1), index=int(match.group(2)),
            generation=int(generation) if generation.isdigit() else 0,
            state=(item.get("State") or {}).get("Name", "pending"), private_ip=item.get("PrivateIpAddress"),
            launch={
                "image": item.get("ImageId"), "kernel_id": item.get("KernelId"), "ramdisk_id": item.get("RamdiskId"),
                "instance_type": item.get("InstanceType"), "key_name": item.get("KeyName"),
                "zone": (item.get("Placement") or {}).get("AvailabilityZone"),
                "security_groups": sorted(g["GroupName"] for g in groups if g.get("GroupName")),
                "user_data_sha256": tags.get(USER_DATA_TAG),
            },
            tags={k: v for k, v in tags.items() if not k.startswith(("recon:", "aws:"))},
        )

    @property
    def present(self) -> bool:
        return self.state in PRESENT

    def matches(self, spec: Mapping[str, Any]) -> bool:
        return all(self.launch.get(key) == value for key, value in spec.items())


def launch_spec(desired: Mapping[str, Any]) -> dict[str, Any]:
    """The launch attributes the file manages (those it leaves out are the cloud's choice)."""
    return {key: desired[key] for key in LAUNCH_ATTRS if key in desired}


def by_index(hosts: Iterable[Host]) -> dict[int, list[Host]]:
    """``hosts`` grouped by their index in the block."""
    slots: dict[int, list[Host]] = {}
    for host in hosts:
        slots.setdefault(host.index, []).append(host)
    return slots


def imported_block(spec: Mapping[str, Any], hosts: list[Host], cloud_init: str | None) -> dict[str, Any]:
    """The file's block for imported ``hosts`` launched with ``spec``: the tags they all have."""
    block = {key: value for key, value in spec.items() if value not in (None, [])}
    block["count"] = len(hosts)
    if cloud_init:
        block["cloud_init"] = cloud_init
    common = set.intersection(*(set(h.tags.items()) for h in hosts))
    if common:
        block["tags"] = dict(sorted(common))
    return block


def client_token(stack: str, address: str, index: int, generation: int, params: Mapping[str, Any]) -> str:
    """The RunInstances ClientToken: the same launch of the same index always gets the same one."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
    return hashlib.sha256(f"{stack}/{address}/{index}/{generation}/{digest}".encode()).hexdigest()


class DockerHosts(Kind, NamesOthers, ReplacesInstances, Importable):
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
        want = {**launch_spec(desired), "count": desired["count"], "indexes": list(range(desired["count"]))}
        have = {"count": live["count"], "indexes": live["indexes"]}
        for key in launch_spec(desired):
            have[key] = live[key] if live["count"] else want[key]
        managed = set(desired.get("tags", {})) | set((prior or {}).get("tags", {}))
        if managed:
            want["tags"] = desired.get("tags", {})
            have["tags"] = {k: v for k, v in live.get("tags", {}).items() if k in managed}
        return want, have

    def replacements(self, name, want, live):
        """Each index kept by ``count`` whose hosts do not match the launch attributes: one new host,
        launched before the old ones are terminated."""
        spec = {key: want[key] for key in LAUNCH_ATTRS if key in want}
        # the live view lists each host's launch attributes; without them, the summary stands for each
        launches = live.get("launches") or [{key: live.get(key) for key in LAUNCH_ATTRS}] * len(live["indexes"])
        stale: dict[int, list[str]] = {}
        good: set[int] = set()
        for index, instance_id, launch in zip(live["indexes"], live["instance_ids"], launches):
            if index >= want["count"]:
                continue
            if all(launch.get(key) == value for key, value in spec.items()):
                good.add(index)
            else:
                stale.setdefault(index, []).append(instance_id)
        return [Replacement(f"docker_hosts.{name}[{index}]", tuple(ids))
                for index, ids in sorted(stale.items()) if index not in good]

    def display_view(self, name, attrs):
        return {key: value for key, value in attrs.items() if value is not None}

    # --- cloud side ---------------------------------------------------------------------
    def _hosts(self, ctx: CloudContext, where: str) -> list[Host]:
        """Every instance of the stack recon launched (terminated ones too), in one paginated call."""
        items = ctx.cloud.paginate("ec2", "describe_instances", "Reservations[].Instances[]", where=where,
                                   Filters=[{"Name": f"tag:{STACK_TAG}", "Values": [ctx.stack]}])
        return [host for host in map(Host.from_api, items) if host is not None]

    def read(self, ctx, wanted):
        by_name: dict[str, list[Host]] = {}
        for host in self._hosts(ctx, "docker_hosts"):
            if host.present:
                by_name.setdefault(host.name, []).append(host)
        live = {name: {**self._view(hosts), OWNER: {"stack": ctx.stack, "address": f"docker_hosts.{name}"}}
                for name, hosts in by_name.items()}
        for name, attrs in wanted.items():  # nothing to find is what count = 0 asks for
            if attrs is not None and attrs.get("count") == 0 and name not in live:
                live[name] = self._view([])
        return live

    @staticmethod
    def _view(hosts: list[Host]) -> dict[str, Any]:
        hosts = sorted(hosts, key=lambda h: (h.index, h.generation))
        view: dict[str, Any] = {"count": len(hosts), "indexes": [h.index for h in hosts],
                                "instance_ids": [h.id for h in hosts], "private_ips": [h.private_ip for h in hosts],
                                "launches": [h.launch for h in hosts]}
        for key in LAUNCH_ATTRS:
            view[key] = _summary(h.launch[key] for h in hosts) if hosts else None
        common = set.intersection(*(set(h.tags.items()) for h in hosts)) if hosts else set()
        view["tags"] = dict(sorted(common))
        return view

    def create(self, ctx, name, attrs):
        return self._converge(ctx, name, attrs, remove_tags=set())

    def update(self, ctx, name, before, after, changed):
        return self._converge(ctx, name, after, remove_tags=set(before.get("tags", {})) - set(after.get("tags", {})))

    def delete(self, ctx, name, before, prior):
        address = f"docker_hosts.{name}"
        self._terminate(ctx, address, [h for h in self._hosts(ctx, address) if h.name == name and h.present],
                        "removed from the file")

    def import_block(self, ctx, name, cloud_id, options):
        """Hosts launched by hand (``i-1,i-2``, indexes in that order) become ``docker_hosts.NAME``:
        they are tagged as recon tags its own hosts, and their user data must be ``--cloud-init FILE``."""
        where = f"docker_hosts.{name}"
        ids = [i for i in cloud_id.split(",") if i]
        hosts = self._importable(ctx, where, ids, cloud_id)
        spec = {key: hosts[0].launch[key] for key in LAUNCH_ATTRS if key != "user_data_sha256"}
        differing = sorted(k for k in spec for h in hosts if h.launch[k] != spec[k])
        if differing:
            raise ReconError(f"the instances differ in {differing[0]}: import them as separate blocks", where=where)
        digest, relative = self._imported_user_data(ctx, where, ids, options.get("cloud_init"))
        for index, instance_id in enumerate(ids):
            tags = ownership_tags(ctx.stack, f"{where}[{index}]") + [{"Key": GENERATION_TAG, "Value": "1"}]
            if digest:
                tags.append({"Key": USER_DATA_TAG, "Value": digest})
            ctx.cloud.call("ec2", "create_tags", where=where, Resources=[instance_id], Tags=tags)
        return imported_block(spec, hosts, relative), name

    def _importable(self, ctx, where: str, ids: list[str], cloud_id: str) -> list[Host]:
        """The hosts ``ids`` would be, by index: each must be present and not recon's yet."""
        items = ctx.cloud.paginate("ec2", "describe_instances", "Reservations[].Instances[]", where=where,
                                   InstanceIds=ids)
        by_id = {item["InstanceId"]: item for item in items if (item.get("State") or {}).get("Name") in PRESENT}
        missing = [i for i in ids if i not in by_id]
        if missing or not ids:
            raise ReconError(f"no running instance {missing[0] if missing else cloud_id!r}", where=where)
        for item in by_id.values():
            if any(t["Key"] == ADDRESS_TAG for t in item.get("Tags", [])):
                raise ReconError(f"{item['InstanceId']} is recon's already", where=where)
        return [Host.from_api({**by_id[i], "Tags": [{"Key": ADDRESS_TAG, "Value": f"{where}[{n}]"},
                                                     *by_id[i].get("Tags", [])]}) for n, i in enumerate(ids)]

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

    # --- converging -----------------------------------------------------------------------
    def _converge(self, ctx: CloudContext, name: str, want: Mapping[str, Any], remove_tags: set[str]) -> dict:
        """Make the hosts of ``name`` what ``want`` says; returns their ids and addresses by index."""
        address = f"docker_hosts.{name}"
        user_data = self._user_data(ctx, want, address)
        count = want["count"]
        seen = [h for h in self._hosts(ctx, address) if h.name == name]
        slots = by_index(h for h in seen if h.present)
        kept = self._keep(ctx, name, slots, launch_spec(want), count)

        # Tags in place, on the hosts that stay.
        self._retag(ctx, address, list(kept.values()), want.get("tags", {}), remove_tags)

        # Indexes with no host at all: launch them (nothing running is lost).
        missing = [i for i in range(count) if i not in slots]
        kept.update(self._launch(ctx, address, want, user_data, missing, seen))

        stale = [i for i in range(count) if i in slots and i not in kept]
        kept.update(self._replace(ctx, name, want, user_data, {i: slots[i] for i in stale}, seen))

        hosts = self._started(ctx, address, [kept[i] for i in range(count)])
        return {"instance_ids": [h.id for h in hosts], "private_ips": [h.private_ip for h in hosts]}

    def _started(self, ctx: CloudContext, address: str, hosts: list[Host]) -> list[Host]:
        """``hosts``, each pending one as it is once it runs."""
        waiting = [h.id for h in hosts if h.state == "pending"]
        if not waiting:
            return hosts
        running = {h.id: h for h in self._wait_running(ctx, address, waiting)}
        return [running.get(h.id, h) for h in hosts]

    def _keep(self, ctx: CloudContext, name: str, slots: dict[int, list[Host]], spec: dict[str, Any],
              count: int) -> dict[int, Host]:
        """The newest host that matches ``spec`` at each index below ``count``; the others there,
        and every host at an index beyond it, are retired (highest indexes first)."""
        kept: dict[int, Host] = {}
        duplicates: list[Host] = []
        for index in range(count):
            good = sorted((h for h in slots.get(index, []) if h.matches(spec)), key=lambda h: (h.generation, h.id))
            if good:
                kept[index] = good[-1]
                duplicates += [h for h in slots[index] if h is not good[-1]]
        beyond = [h for index in sorted(slots, reverse=True) if index >= count for h in slots[index]]
        self._swap(ctx, name, [], beyond, f"beyond count {count}")
        # (an earlier apply stopped mid-roll: the newer host takes over, as in a batch of _replace)
        renewed = sorted({h.index for h in duplicates})
        kept.update(zip(renewed, self._swap(ctx, name, [kept[i] for i in renewed], duplicates,
                                            "a newer host has this index")))
        return kept

    def _replace(self, ctx: CloudContext, name: str, want: Mapping[str, Any], user_data: str | None,
                 stale: dict[int, list[Host]], seen: list[Host]) -> dict[int, Host]:
        """Replace the hosts of the ``stale`` indexes, create before destroy, a batch at a time."""
        address = f"docker_hosts.{name}"
        indexes = list(stale)
        width = want.get("max_unavailable", 1)
        replaced: dict[int, Host] = {}
        for start in range(0, len(indexes), width):
            batch = indexes[start:start + width]
            launched = self._launch(ctx, address, want, user_data, batch, seen)
            self._swap(ctx, name, list(launched.values()), [h for i in batch for h in stale[i]], "replaced")
            replaced.update(launched)
        return replaced

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

    def _launch_params(self, ctx: CloudContext, address: str, want: Mapping[str, Any], index: int,
                       generation: int) -> dict[str, Any]:
        tags = ownership_tags(ctx.stack, f"{address}[{index}]") + [{"Key": GENERATION_TAG, "Value": str(generation)}]
        if want.get("user_data_sha256"):
            tags.append({"Key": USER_DATA_TAG, "Value": want["user_data_sha256"]})
        tags += [{"Key": k, "Value": v} for k, v in sorted(want.get("tags", {}).items())]
        params: dict[str, Any] = {"ImageId": want["image"], "MinCount": 1, "MaxCount": 1,
                                  "InstanceType": want["instance_type"],
                                  "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}]}
        for key, param in (("kernel_id", "KernelId"), ("ramdisk_id", "RamdiskId"), ("key_name", "KeyName")):
            if want.get(key):
                params[param] = want[key]
        if want.get("zone"):
            params["Placement"] = {"AvailabilityZone": want["zone"]}
        if want.get("security_groups"):
            params["SecurityGroups"] = list(want["security_groups"])
        return params

    def _launch(self, ctx: CloudContext, address: str, want: Mapping[str, Any], user_data: str | None,
                indexes: list[int], seen: list[Host]) -> dict[int, Host]:
        """Launch one instance per index and wait until they all run."""
        if not indexes:
            return {}
        ids: dict[int, str] = {}
        for index in indexes:
            ctx.stop.check(f"{address}[{index}]", f"before launching [{index}]")
            generation = max((h.generation + 1 for h in seen if h.index == index), default=0)
            for _ in range(MAX_GENERATIONS):
                params = self._launch_params(ctx, address, want, index, generation)
                token = client_token(ctx.stack, address, index, generation,
                                     {**params, "UserData": want.get("user_data_sha256")})
                ctx.report(address, f"launching [{index}] (generation {generation})")
                reply = ctx.cloud.call("ec2", "run_instances", where=f"{address}[{index}]", ClientToken=token,
                                       **params, **({"UserData": user_data} if user_data is not None else {}))
                instance = reply["Instances"][0]
                if (instance.get("State") or {}).get("Name") not in GONE:
                    ids[index] = instance["InstanceId"]
                    break
                generation += 1  # that token's instance was terminated since: a new launch needs a new token
            else:
                raise CloudError(f"{MAX_GENERATIONS} launches in a row came back terminated", where=f"{address}[{index}]")
        running = {h.id: h for h in self._wait_running(ctx, address, list(ids.values()))}
        for index, instance_id in ids.items():
            ctx.report(address, f"[{index}] {instance_id} running ({running[instance_id].private_ip})")
        return {index: running[instance_id] for index, instance_id in ids.items()}

    def _wait_running(self, ctx: CloudContext, address: str, ids: list[str]) -> list[Host]:
        def look() -> list[Host] | None:
            # Paginated: a cloud may page even a reply for given ids (moto does, 100 reservations
            # a page), and a launch of more hosts than one page would otherwise wait forever.
            # NotFound (not visible yet right after RunInstances) reads as nothing found.
            items = ctx.cloud.paginate("ec2", "describe_instances", "Reservations[].Instances[]", where=address,
                                       InstanceIds=ids, ignore_codes=("InvalidInstanceID.NotFound",))
            hosts = [h for h in map(Host.from_api, items) if h is not None]
            for host in hosts:
                if host.state in GONE:
                    raise CloudError(f"instance {host.id} ([{host.index}]) went {host.state} while starting",
                                     where=address)
            return hosts if len(hosts) == len(ids) and all(h.state == "running" for h in hosts) else None

        return wait_until(look, what=f"{len(ids)} instance(s) to run ({', '.join(ids)})", where=address,
                          timeout=INSTANCE_WAIT, report=ctx.report, stop=ctx.stop)

    def _swap(self, ctx: CloudContext, name: str, new: list[Host], old: list[Host], why: str) -> list[Host]:
        """Retire ``old`` for ``new``: once ``new`` run, every resource serving this block's
        instances (its load balancers) takes them and lets ``old`` go; then ``old`` are terminated.
        Returns ``new`` as they run."""
        address = f"docker_hosts.{name}"
        pending = [h.id for h in new if h.state != "running"]
        if pending:
            running = {h.id: h for h in self._wait_running(ctx, address, pending)}
            new = [running.get(h.id, h) for h in new]
        if old:
            ctx.hand_over(Reference(Address(self.name, name), "instance_ids"), [h.id for h in new],
                          [h.id for h in old])
            self._terminate(ctx, address, old, why)
        return new

    def _terminate(self, ctx: CloudContext, address: str, hosts: list[Host], why: str) -> None:
        if not hosts:
            return
        for host in hosts:
            ctx.report(address, f"terminating [{host.index}] {host.id} ({why})")
        ctx.cloud.call("ec2", "terminate_instances", where=address, InstanceIds=[h.id for h in hosts],
                       ignore_codes=("InvalidInstanceID.NotFound",))

    def _retag(self, ctx: CloudContext, address: str, hosts: list[Host], tags: Mapping[str, str],
               remove: set[str]) -> None:
        stale = [h.id for h in hosts if any(h.tags.get(k) != v for k, v in tags.items())]
        if stale:
            ctx.cloud.call("ec2", "create_tags", where=address, Resources=stale,
                           Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())])
        tagged = [h.id for h in hosts if remove & set(h.tags)]
        if tagged:
            ctx.cloud.call("ec2", "delete_tags", where=address, Resources=tagged,
                           Tags=[{"Key": k} for k in sorted(remove)])


KIND = DockerHosts()
