"""Classic load balancers (``eulb-create-lb``, ``eulb-create-lb-listeners``, …).

Zones, listeners and instances are sets; a change adds and removes the difference
(a listener whose protocol or instance port changes is deleted and created again).
The health check and attributes are updated in place. Reading costs one paginated
DescribeLoadBalancers call, one DescribeTags per 20 load balancers (ownership tags), and
one DescribeLoadBalancerAttributes per load balancer whose block declares
``attributes`` (the ELB API has no batch form of that).

Instances are registered and deregistered against what the load balancer has at that moment,
new ones first. When the instances ``instances`` references are replaced (a rolling replacement
of ``docker_hosts``), the replacing kind hands over (:meth:`LoadBalancers.hand_over`): each batch
of new hosts is registered, then the old ones deregistered, before those are terminated, so the
load balancer's own update later in the apply finds nothing left to do.

Workers (:mod:`.lb_workers`): the live view also holds each load balancer's worker VMs (``workers``,
``worker_groups``, ``worker_versions`` and a summary of their launches, ``worker_image``,
``worker_instance_type``, ``worker_key_name``), read in a constant number of calls. The desired load
balancer refers to the file's emi, instance type and key name properties (``worker_*``), so it is
made after them: Eucalyptus gives a new load balancer workers only while the emi property names an
image. ``workers = "roll"`` (or ``[stack] lb_workers = "roll"``) makes the launch they say part of
what is compared (for a property the file leaves out, the group's launch configuration's value).
A worker that differs is then replaced through its group, each one a replacement of the plan; under
``workers = "report"`` (the default) the plan and drift only say so (:meth:`LoadBalancers.review`).
``--replace 'load_balancers.NAME[i-…]'`` replaces that worker the same way under either mode
(:meth:`LoadBalancers.requested`); ``--replace load_balancers.NAME`` replaces the load balancer whole.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..addresses import Address
from ..errors import CloudError, ConfigError, ReconError
from ..plan import Replacement
from ..schema import Field
from . import lb_workers
from .abilities import Importable, ReplacesInstances, ReplacesParts, Resumable, ServesInstances
from .base import Kind, LoadContext, Traits
from .elb_wire import api_listener, attributes_from_api, attributes_to_api, canonical_listener, listener_key
from .lb_workers import ATTRS as WORKER_ATTRS, LAUNCH_KEYS, LAUNCH_PROPERTIES
from .tags import OWNER, owner_from_tags, ownership_tags

LB_PROTOCOLS = ("HTTP", "HTTPS", "TCP", "SSL")
TAGS_BATCH = 20  # DescribeTags takes at most 20 load balancer names
TARGET_RE = re.compile(r"^(HTTP|HTTPS):\d{1,5}(/\S*)?$|^(TCP|SSL):\d{1,5}$")

LISTENER_FIELDS = {
    "lb_port": Field("integer", "Port the load balancer listens on.", required=True, minimum=1, maximum=65535,
                     references=False),
    "protocol": Field("string", "HTTP, HTTPS, TCP or SSL.", required=True, choices=LB_PROTOCOLS, references=False),
    "instance_port": Field("integer", "Port on the instances.", required=True, minimum=1, maximum=65535,
                           references=False),
    "instance_protocol": Field("string", "Protocol to the instances (default: like protocol).",
                               choices=LB_PROTOCOLS, references=False),
    "ssl_certificate_id": Field("string", "Server certificate ARN for HTTPS/SSL listeners."),
}
HEALTH_FIELDS = {
    "target": Field("string", 'What to check, e.g. "HTTP:80/" or "TCP:22".', required=True, references=False,
                    check=lambda v: None if TARGET_RE.match(v) else
                    'expected PROTOCOL:PORT[/PATH], e.g. "HTTP:80/index.html" or "TCP:22"'),
    "interval": Field("integer", "Seconds between checks.", required=True, minimum=5, maximum=300, references=False),
    "timeout": Field("integer", "Seconds a check may take.", required=True, minimum=2, maximum=60, references=False),
    "healthy_threshold": Field("integer", "Successes before healthy.", required=True, minimum=2, maximum=10,
                               references=False),
    "unhealthy_threshold": Field("integer", "Failures before unhealthy.", required=True, minimum=2, maximum=10,
                                 references=False),
}
ATTRIBUTE_FIELDS = {
    "cross_zone_load_balancing": Field("boolean", "Spread requests across zones.", references=False),
    "idle_timeout": Field("integer", "Connection idle timeout (seconds).", minimum=1, maximum=3600,
                          references=False),
    "connection_draining": Field("boolean", "Let in-flight requests finish on deregistration.", references=False),
    "connection_draining_timeout": Field("integer", "Seconds to drain.", minimum=1, maximum=3600, references=False),
}


WORKER_MODES = ("report", "roll")


class LoadBalancers(Kind, ServesInstances, ReplacesInstances, ReplacesParts, Resumable, Importable):
    name = "load_balancers"
    fields = {
        "zones": Field("list", "Availability zones.", required=True, items=Field("string")),
        "listeners": Field("list", "Listeners.", required=True, items=Field("table", fields=LISTENER_FIELDS)),
        "health_check": Field("table", "Health check.", fields=HEALTH_FIELDS, references=False),
        "instances": Field("list", "Registered instance ids (often a reference to docker_hosts).",
                           items=Field("string")),
        "attributes": Field("table", "Load balancer attributes.", fields=ATTRIBUTE_FIELDS, references=False),
        "scheme": Field("string", "internet-facing or internal (changing it replaces the load balancer).",
                        choices=("internet-facing", "internal"), references=False),
        "workers": Field("string", 'Its worker VMs on another image, instance type or key name than the properties '
                         'say: "report" them (the default, or [stack] lb_workers) or "roll" them, one at a time '
                         "through their auto-scaling group.", choices=WORKER_MODES, references=False),
    }
    outputs = {"name": "the load balancer's name", "dns_name": "its DNS name",
               "source_security_group": "the security group the cloud made for it",
               "zones": "its availability zones"}
    traits = Traits(
        computed=frozenset({"dns_name", "source_security_group"}),
        set_attrs=frozenset({"zones", "listeners", "instances"}),
        serves_instances=frozenset({"instances"}),
        owner_tags=True,
        replace_on=frozenset({"scheme"}),
        replaces_instances=frozenset(WORKER_ATTRS.values()),
    )

    def normalize(self, name: str, block: Mapping[str, Any], ctx: LoadContext) -> dict[str, Any]:
        where = f"load_balancers.{name}"
        if len(name) > 32 or not re.fullmatch(r"[A-Za-z0-9-]+", name) or name.startswith("-") or name.endswith("-"):
            raise ConfigError("a load balancer name is 1-32 letters, digits and inner hyphens", where=where)
        attrs = dict(block)
        if not block["listeners"]:
            raise ConfigError("a load balancer needs at least one listener", where=f"{where}.listeners")
        if not block["zones"]:
            raise ConfigError("a load balancer needs at least one zone", where=f"{where}.zones")
        listeners = [canonical_listener(item) for item in block["listeners"]]
        ports = [item["lb_port"] for item in listeners]
        duplicates = sorted({port for port in ports if ports.count(port) > 1})
        if duplicates:
            raise ConfigError(f"more than one listener on port {duplicates[0]}", where=f"{where}.listeners")
        attrs["listeners"] = listeners
        attrs.pop("workers", None)
        if block.get("workers", ctx.stack_table.get("lb_workers")) == "roll":
            attrs["workers"] = "roll"      # (absent: report, so a plain load balancer's attributes stay as they were)
        return self.finalize(name, attrs)

    def prepare_stack(self, name, attrs, prepared, base_dir):
        """The launch attributes the file's properties set, as references to them: the load balancer is
        made after them (Eucalyptus gives a new one workers only while the emi property names an image),
        and under ``workers = "roll"`` its workers are compared with them."""
        found = {}
        for key, names in LAUNCH_PROPERTIES.items():
            for prop in names:
                value = prepared.get(Address("properties", prop), {}).get("value")
                if value is not None and "${load_balancers." not in str(value):
                    found[WORKER_ATTRS[key]] = f"${{properties.{prop}.value}}"
        return {**attrs, **found}

    def finalize(self, name, attrs):
        attrs = dict(attrs)
        for key in ("zones", "instances"):
            if isinstance(attrs.get(key), list):
                attrs[key] = sorted(set(attrs[key]))
        if isinstance(attrs.get("listeners"), list):
            attrs["listeners"] = sorted(attrs["listeners"], key=listener_key)
        return attrs

    def compare_view(self, name, desired, live, prior):
        want, have = super().compare_view(name, desired, live, prior)
        want = dict(want)
        if "attributes" in want:  # only the attributes the file names are managed
            have["attributes"] = {k: v for k, v in live.get("attributes", {}).items() if k in want["attributes"]}
        for attr in ("workers", *WORKER_ATTRS.values()):
            want.pop(attr, None)
            have.pop(attr, None)
        launch = lb_workers.wanted_launch(desired, live) if desired.get("workers") == "roll" else None
        if launch and live.get("workers"):
            for key in LAUNCH_KEYS:
                want[WORKER_ATTRS[key]], have[WORKER_ATTRS[key]] = launch[key], live[WORKER_ATTRS[key]]
        return want, have

    def display_view(self, name, attrs):
        return {k: v for k, v in self._managed(attrs).items() if k != "workers"}

    def state_attrs(self, name, attrs, live, prior):
        return super().state_attrs(name, self._managed(attrs), live, prior)

    @staticmethod
    def _managed(attrs: Mapping[str, Any]) -> dict[str, Any]:
        """The attributes recon converges: the launch properties' only under ``workers = "roll"``."""
        roll = attrs.get("workers") == "roll"
        return {k: v for k, v in attrs.items() if roll or k not in WORKER_ATTRS.values()}

    def replacements(self, name, want, live):
        """Each worker that differs from the launch ``want`` says (or one not known yet): replaced through its group."""
        launch = {key: want[attr] for key, attr in WORKER_ATTRS.items() if attr in want}
        return [Replacement(lb_workers.part_label(name, worker["id"]), (worker["id"],))
                for worker in lb_workers.stale(live, launch)]

    def requested(self, name, part, live):
        """``--replace load_balancers.NAME[i-…]``: that worker, replaced through its group whatever it
        runs and under either ``workers`` mode; ``load_balancers.NAME``: the load balancer whole (None)."""
        if part is None:
            return None
        worker = lb_workers.named_worker(part, live)
        return [Replacement(lb_workers.part_label(name, worker["id"]), (worker["id"],))]

    def resume_reason(self, name, progress):
        return f"resumes the worker roll an interrupted apply began (it had terminated {progress.get('terminating')})"

    def review(self, plan, live):
        """Notes on load balancers whose workers differ from the launch in force (see lb_review)."""
        from .lb_review import workers_review

        workers_review(plan, live)

    def output(self, name, attrs, attr):
        return attrs.get(attr, name if attr == "name" else None)

    def read(self, ctx, wanted):
        descriptions = ctx.cloud.paginate("elb", "describe_load_balancers", "LoadBalancerDescriptions",
                                      where="load_balancers")
        live: dict[str, dict[str, Any]] = {}
        for lb in descriptions:
            check = lb.get("HealthCheck") or {}
            live[lb["LoadBalancerName"]] = {
                "zones": sorted(lb.get("AvailabilityZones", [])),
                "listeners": sorted((canonical_listener({
                    "lb_port": d["Listener"]["LoadBalancerPort"], "protocol": d["Listener"]["Protocol"],
                    "instance_port": d["Listener"]["InstancePort"],
                    "instance_protocol": d["Listener"].get("InstanceProtocol"),
                    "ssl_certificate_id": d["Listener"].get("SSLCertificateId"),
                }) for d in lb.get("ListenerDescriptions", [])), key=listener_key),
                "health_check": {
                    "target": check.get("Target"), "interval": check.get("Interval"),
                    "timeout": check.get("Timeout"), "healthy_threshold": check.get("HealthyThreshold"),
                    "unhealthy_threshold": check.get("UnhealthyThreshold"),
                },
                "instances": sorted(i["InstanceId"] for i in lb.get("Instances", [])),
                "scheme": lb.get("Scheme", "internet-facing"),
                "dns_name": lb.get("DNSName"),
                "source_security_group": (lb.get("SourceSecurityGroup") or {}).get("GroupName"),
            }
        names = sorted(live)
        for start in range(0, len(names), TAGS_BATCH):
            reply = ctx.cloud.call("elb", "describe_tags", where="load_balancers",
                                   LoadBalancerNames=names[start:start + TAGS_BATCH])
            for item in reply.get("TagDescriptions", []):
                if item.get("LoadBalancerName") in live:
                    live[item["LoadBalancerName"]][OWNER] = owner_from_tags(item.get("Tags"))
        groups = lb_workers.read_workers(ctx.cloud, {lb: (attrs["source_security_group"], attrs["zones"])
                                                     for lb, attrs in live.items()}, "load_balancers") if live else {}
        for lb_name, attrs in live.items():
            attrs.update(lb_workers.live_view(groups.get(lb_name)))
        for lb_name, desired in wanted.items():
            if lb_name in live and desired and "attributes" in desired:
                reply = ctx.cloud.call("elb", "describe_load_balancer_attributes", where=f"load_balancers.{lb_name}",
                                   LoadBalancerName=lb_name)
                # only those the file names are managed (so too where a reference is not known yet and
                # the planner compares the file's view itself)
                live[lb_name]["attributes"] = {k: v for k, v in attributes_from_api(reply).items()
                                               if k in (desired["attributes"] or {})}
        return live

    def import_block(self, ctx, name, cloud_id, options):
        where = f"load_balancers.{name}"
        if cloud_id != name:
            raise ReconError("a load balancer's block name is its name in the cloud", where=where,
                             hint=f"import it as load_balancers.{cloud_id}")
        live = self.read(ctx, {cloud_id: None}).get(cloud_id)
        if live is None:
            raise ReconError(f"no load balancer {cloud_id!r} in the cloud", where=where)
        block: dict[str, Any] = {"zones": live["zones"], "listeners": live["listeners"]}
        if live["health_check"].get("target"):
            block["health_check"] = live["health_check"]
        if live["instances"]:
            block["instances"] = live["instances"]
        if live["scheme"] != "internet-facing":
            block["scheme"] = live["scheme"]
        return block, cloud_id

    def create(self, ctx, name, attrs):
        where = f"load_balancers.{name}"
        params: dict[str, Any] = {"LoadBalancerName": name, "AvailabilityZones": attrs["zones"],
                                  "Listeners": [api_listener(item) for item in attrs["listeners"]],
                                  "Tags": ownership_tags(ctx.stack, where)}
        if "scheme" in attrs:
            params["Scheme"] = attrs["scheme"]
        ctx.cloud.call("elb", "create_load_balancer", where=where, done_if_retried=("DuplicateLoadBalancerName",),
                       **params)
        self._configure(ctx, name, attrs, set(attrs) - {"zones", "listeners", "scheme"}, {})
        return self._live(ctx, name)

    def update(self, ctx, name, before, after, changed):
        tops = {path.split(".")[0] for path in changed}
        self._configure(ctx, name, after, tops, before)
        live = self._live(ctx, name)
        stale = bool(tops & set(WORKER_ATTRS.values()))
        renew = lb_workers.labelled_ids(name, ctx.renew)
        if stale or renew:
            self._roll(ctx, name, after, live, stale, renew)
        return live

    def _roll(self, ctx, name: str, after: Mapping[str, Any], live: Mapping[str, Any], stale: bool,
              renew: frozenset[str]) -> None:
        """Replace the workers ``--replace`` names (``renew``) and, if ``stale``, those that differ from
        the launch the properties in force say (see lb_workers)."""
        where = f"load_balancers.{name}"
        groups = lb_workers.group_names(name, live.get("source_security_group"), after["zones"])
        if not groups:
            raise CloudError("cannot tell the load balancer's auto-scaling groups from its security group "
                             f"{live.get('source_security_group')!r}", where=where)
        want = {key: after[attr] or None for key, attr in WORKER_ATTRS.items() if attr in after} if stale else None
        lb_workers.roll(ctx, name, groups, where, want=want, renew=renew)

    def _configure(self, ctx, name: str, after: Mapping[str, Any], changed: set[str], before: Mapping[str, Any]):
        where = f"load_balancers.{name}"
        call = ctx.cloud.call
        if "zones" in changed:
            add = sorted(set(after["zones"]) - set(before.get("zones", [])))
            remove = sorted(set(before.get("zones", [])) - set(after["zones"]))
            if add:
                call("elb", "enable_availability_zones_for_load_balancer", where=where,
                     LoadBalancerName=name, AvailabilityZones=add)
            if remove:
                call("elb", "disable_availability_zones_for_load_balancer", where=where,
                     LoadBalancerName=name, AvailabilityZones=remove)
        if "listeners" in changed:
            old = {listener_key(item): item for item in before.get("listeners", [])}
            new = {listener_key(item): item for item in after["listeners"]}
            stale = [item for key, item in old.items() if new.get(key) != item]
            fresh = [item for key, item in new.items() if old.get(key) != item]
            if stale:
                call("elb", "delete_load_balancer_listeners", where=where, LoadBalancerName=name,
                     LoadBalancerPorts=sorted({item["lb_port"] for item in stale}))
            if fresh:
                call("elb", "create_load_balancer_listeners", where=where, LoadBalancerName=name,
                     Listeners=[api_listener(item) for item in fresh])
        if "health_check" in changed and after.get("health_check"):
            check = after["health_check"]
            call("elb", "configure_health_check", where=where, LoadBalancerName=name, HealthCheck={
                "Target": check["target"], "Interval": check["interval"], "Timeout": check["timeout"],
                "HealthyThreshold": check["healthy_threshold"], "UnhealthyThreshold": check["unhealthy_threshold"]})
        if "instances" in changed:
            # against what is registered now: a hand-over may have moved them since the plan read
            registered = self._registered(ctx, name)
            wanted = set(after.get("instances", []))
            self._register(ctx, name, sorted(wanted - registered), sorted(registered - wanted))
        if "attributes" in changed and after.get("attributes"):
            call("elb", "modify_load_balancer_attributes", where=where, LoadBalancerName=name,
                 LoadBalancerAttributes=attributes_to_api(after["attributes"]))

    def hand_over(self, ctx, name, attrs, add, remove):
        registered = self._registered(ctx, name, missing_ok=True)
        if registered is None:
            return  # made later in this apply, with the new instances
        ctx.report(f"load_balancers.{name}", f"registering {', '.join(add) or 'nothing'}; "
                                             f"deregistering {', '.join(remove) or 'nothing'}")
        self._register(ctx, name, sorted(set(add) - registered), sorted(set(remove) & registered))

    def _registered(self, ctx, name: str, *, missing_ok: bool = False) -> set[str] | None:
        """The instances registered with the load balancer now (None: it does not exist, if ``missing_ok``).

        An unknown name is an error on AWS and moto (LoadBalancerNotFound); Eucalyptus 4.0 filters
        the names it is given and answers with no load balancer.
        """
        where = f"load_balancers.{name}"
        reply = ctx.cloud.call("elb", "describe_load_balancers", where=where, LoadBalancerNames=[name],
                               ignore_codes=("LoadBalancerNotFound", "AccessPointNotFound") if missing_ok else ())
        found = (reply or {}).get("LoadBalancerDescriptions") or []
        if not found and not missing_ok:
            raise CloudError(f"load balancer {name!r} is gone from the cloud", where=where)
        return {i["InstanceId"] for lb in found for i in lb.get("Instances", [])} if found else None

    def _register(self, ctx, name: str, add: list[str], remove: list[str]) -> None:
        """Register ``add`` first, then deregister ``remove``: the load balancer keeps serving throughout."""
        where = f"load_balancers.{name}"
        if add:
            ctx.cloud.call("elb", "register_instances_with_load_balancer", where=where, LoadBalancerName=name,
                           Instances=[{"InstanceId": i} for i in add])
        if remove:
            ctx.cloud.call("elb", "deregister_instances_from_load_balancer", where=where, LoadBalancerName=name,
                           Instances=[{"InstanceId": i} for i in remove])

    def _live(self, ctx, name: str) -> dict[str, Any]:
        reply = ctx.cloud.call("elb", "describe_load_balancers", where=f"load_balancers.{name}",
                               LoadBalancerNames=[name])
        lb = reply["LoadBalancerDescriptions"][0]
        return {"dns_name": lb.get("DNSName"),
                "source_security_group": (lb.get("SourceSecurityGroup") or {}).get("GroupName")}

    def delete(self, ctx, name, before, prior):
        ctx.cloud.call("elb", "delete_load_balancer", where=f"load_balancers.{name}", LoadBalancerName=name,
                       done_if_retried=("LoadBalancerNotFound",))


KIND = LoadBalancers()
