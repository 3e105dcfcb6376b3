"""The worker VMs of load balancers: how recon reads them and replaces the stale ones.

Eucalyptus runs each load balancer's HAProxy on VMs of auto-scaling groups in its own account,
launched from the launch configuration the emi, instance type and key name properties made
(DESIGN §11): 4.0 one group ``asg-euca-internal-elb-ACCOUNT-LBNAME`` over all the zones, 4.2 one
``euca-internal-elb-ACCOUNT-LBNAME-ZONE`` per zone; ACCOUNT is read from the security group the cloud
made for the load balancer (``euca-internal-ACCOUNT-LBNAME``). Changing one of those properties
swaps every group's launch configuration and leaves the running VMs alone: they keep serving with
the old image until the group replaces them.

Reading (:func:`read_workers`) costs a constant number of calls however many load balancers there
are: the groups, the launch configurations and the instances once each (paginated; the instances
200 a call), and the installed LB images once (for the ``vN`` of each worker's image); none at all
without a load balancer. A worker is a VM the group lists that is not terminated (``PRESENT``).

Replacing (:func:`roll`): while a worker differs from the launch the properties in force say, or
``--replace 'load_balancers.NAME[i-…]'`` names it (a plan's part label, :func:`part_label`; under
either ``workers`` mode, whatever it runs), the load balancer's groups are first waited for until
they are full (desired capacity, every VM in service and running; a requested worker out of service
is excused, and replaced first), then one such worker is terminated through its group without
decrementing its capacity, so the group launches its replacement from the current launch
configuration, and the groups are waited for until they are full again. So at most one worker is
out of service at a time (never fewer than N-1 of N), and a group whose configuration still
launches the old image is refused before a stale worker is terminated. The worker about to be
terminated is checkpointed in state first; a re-apply after an interruption finds the group
refilling and waits for it before going on; a terminated worker is gone from its group, so neither
it nor another in its place is terminated again (and ``--replace`` of its id is refused). A killed
roll ends with exactly the group's capacity of workers, all on the current configuration.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..errors import CloudError
from ..waits import wait_until
from .lb_install import installed_images
from .properties import EMI_PROPERTIES, KEYNAME_PROPERTIES

SECURITY_GROUP_PREFIX = "euca-internal-"
LAUNCH_PROPERTIES = {
    "image": EMI_PROPERTIES,
    "instance_type": ("loadbalancing.loadbalancer_instance_type", "services.loadbalancing.worker.instance_type"),
    "key_name": KEYNAME_PROPERTIES,
}
LAUNCH_KEYS = tuple(LAUNCH_PROPERTIES)
#: The load balancer's attribute that holds each desired launch attribute (and its workers' summary).
ATTRS = {key: f"worker_{key}" for key in LAUNCH_KEYS}
PRESENT = ("pending", "running", "stopping", "stopped")
MAX_RECORDS = 100              # the most DescribeAutoScalingGroups / DescribeLaunchConfigurations give a page
FILTER_VALUES = 200            # the most values EC2 takes in one filter
WORKER_WAIT = 900.0            # seconds for a group to be full again


@dataclass(frozen=True)
class Worker:
    """One VM of a load balancer's group."""

    id: str
    image: str | None
    instance_type: str | None
    key_name: str | None
    state: str            # EC2's: pending, running, …
    lifecycle: str        # the group's: Pending, InService, Terminating, …
    zone: str | None
    version: int | None   # the N of the LB image it runs, if it is one

    @property
    def serving(self) -> bool:
        return self.state == "running" and self.lifecycle == "InService"

    @property
    def leaving(self) -> bool:
        """Its group is taking it away (terminating or detaching it)."""
        return self.lifecycle.startswith(("Terminat", "Detach"))

    def launch(self) -> dict[str, Any]:
        return {"image": self.image, "instance_type": self.instance_type, "key_name": self.key_name}

    def view(self) -> dict[str, Any]:
        return {"id": self.id, **self.launch(), "state": self.state, "lifecycle": self.lifecycle,
                "zone": self.zone, "version": self.version}

    def differs(self, want: Mapping[str, Any]) -> list[str]:
        """The launch attributes in which it differs from ``want`` (one not known yet differs)."""
        return [key for key in LAUNCH_KEYS if key in want and want[key] != getattr(self, key)]


@dataclass(frozen=True)
class Group:
    """A load balancer's auto-scaling group as one read saw it."""

    name: str
    capacity: int
    launch: dict[str, Any] | None       # its launch configuration's image, type and key (None: not found)
    workers: tuple[Worker, ...]
    #: The version of each installed LB image (image id -> N), as the read found them.
    versions: Mapping[str, int | None]

    def full(self, excused: frozenset[str] = frozenset()) -> bool:
        """Its capacity of workers, every one running and in service but those of ``excused`` (sick ones
        ``--replace`` names) that the group is not taking away already."""
        return len(self.workers) >= self.capacity and all(
            w.serving or (w.id in excused and not w.leaving) for w in self.workers)

    def view(self) -> dict[str, Any]:
        return {"name": self.name, "capacity": self.capacity, "launch": self.launch}


def group_names(lb_name: str, security_group: str | None, zones: Iterable[str]) -> list[str]:
    """The names a load balancer's groups may have (4.0's, then 4.2's per zone), the account read from
    the security group the cloud made for it; none if that group does not say."""
    suffix = f"-{lb_name}"
    if not security_group or not security_group.startswith(SECURITY_GROUP_PREFIX) or \
            not security_group.endswith(suffix):
        return []
    account = security_group[len(SECURITY_GROUP_PREFIX):-len(suffix)]
    if not account.isdigit():
        return []
    return [f"asg-euca-internal-elb-{account}-{lb_name}", *(f"euca-internal-elb-{account}-{lb_name}-{zone}"
                                                            for zone in sorted(zones))]


def _key(value: str | None) -> str | None:
    return value or None      # no key pair: the API leaves it out or gives ""


def _launch(config: Mapping[str, Any]) -> dict[str, Any]:
    return {"image": config.get("ImageId"), "instance_type": config.get("InstanceType"),
            "key_name": _key(config.get("KeyName"))}


def _groups(cloud, where: str, names: list[str], *, versions: bool = True) -> list[Group]:
    """The groups named (those that exist), with their launch configurations and VMs: three calls, and
    one more for the versions of the LB images (unless not ``versions``); all but the first at once."""
    if not names:
        return []
    found = cloud.paginate("autoscaling", "describe_auto_scaling_groups", "AutoScalingGroups", where=where,
                           AutoScalingGroupNames=names, MaxRecords=MAX_RECORDS)
    if not found:
        return []
    ids = sorted({i["InstanceId"] for g in found for i in g.get("Instances", [])})

    def read_configs() -> dict[str, dict[str, Any]]:
        # every configuration, rather than by name (the API takes 50 names a call): the cloud's account
        # holds little else, and a page has 100
        return {c["LaunchConfigurationName"]: _launch(c) for c in cloud.paginate(
            "autoscaling", "describe_launch_configurations", "LaunchConfigurations", where=where,
            MaxRecords=MAX_RECORDS)}

    def read_instances() -> dict[str, Mapping[str, Any]]:
        return {i["InstanceId"]: i for start in range(0, len(ids), FILTER_VALUES) for i in cloud.paginate(
            "ec2", "describe_instances", "Reservations[].Instances[]", where=where,
            Filters=[{"Name": "instance-id", "Values": ids[start:start + FILTER_VALUES]}])}

    def read_installed() -> dict[str, int | None]:
        return {item["image_id"]: item["version"] for item in installed_images(cloud, where)} \
            if ids and versions else {}

    # the three depend on the groups alone: read together, one round trip after the groups'
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="recon-read-workers") as pool:
        reads = pool.submit(read_configs), pool.submit(read_instances), pool.submit(read_installed)
    configs, instances, installed = (read.result() for read in reads)
    out = []
    for group in found:
        workers = []
        for member in group.get("Instances", []):
            item = instances.get(member["InstanceId"])
            state = ((item or {}).get("State") or {}).get("Name", "terminated")
            if item is None or state not in PRESENT:
                continue
            workers.append(Worker(id=item["InstanceId"], image=item.get("ImageId"),
                                  instance_type=item.get("InstanceType"), key_name=_key(item.get("KeyName")),
                                  state=state, lifecycle=member.get("LifecycleState", "Pending"),
                                  zone=member.get("AvailabilityZone"), version=installed.get(item.get("ImageId"))))
        out.append(Group(group["AutoScalingGroupName"], int(group.get("DesiredCapacity", 0)),
                         configs.get(group.get("LaunchConfigurationName")), tuple(sorted(workers, key=lambda w: w.id)),
                         installed))
    return out


def read_workers(cloud, balancers: Mapping[str, tuple[str | None, Iterable[str]]], where: str
                 ) -> dict[str, list[Group]]:
    """The groups of each load balancer (name -> the security group the cloud made for it, its zones)
    that has any, in a constant number of calls."""
    owner = {name: lb for lb, (security_group, zones) in balancers.items()
             for name in group_names(lb, security_group, zones)}
    found: dict[str, list[Group]] = {}
    for group in _groups(cloud, where, sorted(owner)):
        if group.name in owner:
            found.setdefault(owner[group.name], []).append(group)
    return found


def all_groups(cloud, where: str) -> dict[str, list[Group]]:
    """The groups of every load balancer the account sees, by its name (``recon images``, retiring a revision)."""
    reply = cloud.paginate("elb", "describe_load_balancers", "LoadBalancerDescriptions", where=where)
    return read_workers(cloud, {lb["LoadBalancerName"]: ((lb.get("SourceSecurityGroup") or {}).get("GroupName"),
                                                         lb.get("AvailabilityZones") or []) for lb in reply}, where)


def holding(cloud, image: str, where: str) -> list[str]:
    """What still uses ``image``: the workers that run it and the launch configurations that name it."""
    found = []
    for lb, groups in sorted(all_groups(cloud, where).items()):
        for group in groups:
            found += [f"worker {w.id} of load balancer {lb}" for w in group.workers if w.image == image]
            if (group.launch or {}).get("image") == image:
                found.append(f"the launch configuration of {group.name}")
    return found


def summary(values: Iterable[Any]) -> Any:
    """One value if all agree, the sorted distinct values if not (workers mid-roll), None for none."""
    distinct = sorted({v for v in values}, key=lambda v: (v is None, str(v)))
    if not distinct:
        return None
    return distinct[0] if len(distinct) == 1 else distinct


def live_view(groups: list[Group] | None) -> dict[str, Any]:
    """What a load balancer's live attributes hold of its workers (None without a group)."""
    if not groups:
        return {"workers": None, "worker_groups": None, "worker_versions": None,
                **{attr: None for attr in ATTRS.values()}}
    workers = [w for group in groups for w in group.workers]
    return {"workers": [{**w.view(), "group": group.name} for group in groups for w in group.workers],
            "worker_groups": [group.view() for group in groups],
            "worker_versions": dict(groups[0].versions),
            **{ATTRS[key]: summary(getattr(w, key) for w in workers) for key in LAUNCH_KEYS}}


def group_launch(live: Mapping[str, Any]) -> dict[str, Any]:
    """The launch the load balancer's groups' configurations give (the first group's)."""
    return next((g["launch"] for g in live.get("worker_groups") or [] if g.get("launch")), {})


def wanted_launch(desired: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any] | None:
    """The launch the properties in force say: the file's (``worker_*`` attributes), else the groups'
    launch configuration's; None when the load balancer has no group."""
    if not live.get("worker_groups"):
        return None
    config = group_launch(live)
    return {key: (desired[ATTRS[key]] or None) if ATTRS[key] in desired else config.get(key) for key in LAUNCH_KEYS}


def stale(live: Mapping[str, Any], want: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The workers of a live view that differ from ``want``."""
    return [w for w in live.get("workers") or [] if any(key in want and want[key] != w[key] for key in LAUNCH_KEYS)]


def version_label(image: Any, version: int | None) -> str:
    return f"v{version}" if version else str(image)


def part_label(lb_name: str, worker_id: str) -> str:
    """``load_balancers.web[i-…]``: how a plan names a worker it replaces, as ``--replace`` names it."""
    return f"load_balancers.{lb_name}[{worker_id}]"


def labelled_ids(lb_name: str, labels: Iterable[str]) -> frozenset[str]:
    """The worker ids of the labels (:func:`part_label`) of a load balancer's parts."""
    prefix = f"load_balancers.{lb_name}["
    return frozenset(label[len(prefix):-1] for label in labels if label.startswith(prefix) and label.endswith("]"))


def named_worker(part: str, live: Mapping[str, Any]) -> dict[str, Any]:
    """The worker of a live view whose instance id is ``part``; ValueError listing its workers if none is."""
    found = live.get("workers") or []
    for worker in found:
        if worker["id"] == part:
            return worker
    listed = ", ".join(f"{w['id']} ({w['state']}, {w['lifecycle']}, {version_label(w['image'], w.get('version'))})"
                       for w in found)
    raise ValueError(f"no worker {part} (its workers: {listed})" if listed else
                     f"no worker {part} (it has no workers now)")


# --- replacing -----------------------------------------------------------------------------------

def _wait_full(ctx, names: list[str], where: str, excused: frozenset[str] = frozenset()) -> list[Group]:
    """The groups once each is full (but for the workers ``excused``, see :meth:`Group.full`).

    A terminated worker leaves service in the call that terminates it (4.0 ``ActivityManager``
    moves it from InService to Terminating before it replies), so a full group after a terminate
    holds its replacement, running and in service; and a worker an interrupted apply checkpointed
    that is still in service was never terminated (the apply stopped before the call)."""
    def look() -> list[Group] | None:
        groups = _groups(ctx.cloud, where, names, versions=False)
        if not groups:
            raise CloudError(f"the load balancer's auto-scaling group ({', '.join(names)}) is gone", where=where)
        return groups if all(g.full(excused) for g in groups) else None

    return wait_until(look, what="every worker running and in service", where=where, timeout=WORKER_WAIT,
                      report=ctx.report, stop=ctx.stop)


def _due(groups: list[Group], want: Mapping[str, Any] | None, renew: frozenset[str]) -> list[tuple[Group, Worker, str]]:
    """The workers to replace, each with its group and why: those ``renew`` names (first those out of
    service: terminating one of them takes no worker out of service, while the others are excused from
    the groups' being full), then (given ``want``) those that differ from it (each group's launch
    configuration for the attributes it leaves out)."""
    due = sorted(((g, w, "requested") for g in groups for w in g.workers if w.id in renew and not w.leaving),
                 key=lambda item: item[1].serving)
    if want is not None:
        due += [(g, w, "stale") for g in groups for w in g.workers if w.id not in renew and not w.leaving and
                w.differs({**{k: (g.launch or {}).get(k) for k in LAUNCH_KEYS}, **want})]
    return due


def _check_launch(group: Group, want: Mapping[str, Any], where: str) -> None:
    """Refuse to replace workers of a group whose configuration would launch stale ones too."""
    launch = group.launch or {}
    wrong = [key for key in want if launch.get(key) != want[key]]
    if wrong:
        raise CloudError(f"{group.name} still launches {', '.join(f'{k} {launch.get(k)}' for k in wrong)} "
                         f"(the file says {', '.join(str(want[k]) for k in wrong)}): its replacements would "
                         "be stale too", where=where,
                         hint="Eucalyptus swaps the launch configuration when the emi, instance type or key "
                              "name property changes; set the property (or check its value) and apply again")


def roll(ctx, lb_name: str, names: list[str], where: str, *, want: Mapping[str, Any] | None = None,
         renew: frozenset[str] = frozenset()) -> None:
    """Replace, one at a time, the workers of the groups ``names`` that ``renew`` names (instance ids,
    ``--replace``) and, given ``want`` (the file's launch attributes), those that differ from it.

    A worker is checkpointed before the call that terminates it. Once terminated, it is gone from its
    group: a re-apply after an interruption finds its replacement (or the group refilling, and waits)
    and never terminates it, nor another in its place, again."""
    resumed = ((ctx.resumed(where) or {}).get("attrs") or {}).get("terminating")
    if resumed:
        ctx.report(where, f"an interrupted apply was replacing worker {resumed}: waiting until every worker "
                          "runs and is in service")
    replaced: set[str] = set()
    groups = _wait_full(ctx, names, where, renew)
    present = {w.id for g in groups for w in g.workers}
    for gone in sorted(renew - present):
        ctx.report(where, f"worker {gone} is no longer in the load balancer's groups: nothing to replace")
    while True:
        due = _due(groups, want, renew)
        if not due:
            return
        group, victim, why = due[0]
        if want is not None:
            _check_launch(group, want, where)
        if victim.id in replaced:
            raise CloudError(f"worker {victim.id} is still in service in {group.name} after it was terminated",
                             where=where)
        replaced.add(victim.id)
        ctx.stop.check(where, f"before replacing worker {victim.id}")
        ctx.checkpoint(where, lb_name, {"terminating": victim.id})
        ctx.report(where, f"replacing worker {victim.id} ({version_label(victim.image, victim.version)}, "
                          f"{why}; {len(due)} to replace) through {group.name}")
        ctx.cloud.call("autoscaling", "terminate_instance_in_auto_scaling_group", where=where,
                       InstanceId=victim.id, ShouldDecrementDesiredCapacity=False,
                       done_if_retried=("ValidationError",))
        groups = _wait_full(ctx, names, where, renew - replaced)
