"""Instance sets: a block that stands for ``count`` like EC2 instances, each at an index, replaced
a batch at a time when what they are launched with changes.

Using it. A kind whose block is a set of instances (``docker_hosts`` today; a plain ``instances``
kind or a load balancer's worker VMs tomorrow) makes one :class:`InstanceSet` and passes its
hooks through to it; it keeps only its own fields and how they become a launch::

    WORKERS = InstanceSet("workers", noun="worker")

    class Workers(Kind):
        name = "workers"
        outputs = {"instance_ids": "…", "private_ips": "…"}

        def compare_view(self, name, desired, live, prior):
            return WORKERS.compare_view(desired, live, prior)

        def replacements(self, name, want, live):
            return WORKERS.replacements(name, want, live)

        def read(self, ctx, wanted):
            return WORKERS.read(ctx, wanted)

        def create(self, ctx, name, attrs):
            launch = Launch({"ImageId": attrs["image"], "InstanceType": attrs["instance_type"]})
            return WORKERS.converge(ctx, name, attrs, launch, remove_tags=set())

        # update: the same converge, removing the tags only ``before`` had; delete: WORKERS.delete

Its flags (traits) tell the planner the rest: the launch attributes replace instances (not the
resource), create before destroy, and the launch attributes, ``count`` and ``indexes`` give new
outputs; resources that serve instances (load balancers) may reference its ``instance_ids``.

The set reads, in the desired attributes: ``count`` (always there: the kind's ``normalize`` gives
the default); ``max_unavailable`` (indexes replaced at once, default 1); ``tags`` (the user's, on
every instance); and the ``launch_attrs`` (compared with what each instance was launched with: a
difference replaces it). The kind gives it a :class:`Launch`: the RunInstances parameters its
fields make, and the user data. The set's live view (:meth:`InstanceSet.view`) has ``count``,
``indexes``, ``instance_ids``, ``private_ips``, ``launches``, ``tags`` and one summary per launch
attribute; :meth:`InstanceSet.converge` returns the outputs ``instance_ids`` and ``private_ips``
by index.

Converging (:func:`roll` decides, from the instances present, what :meth:`InstanceSet.converge`
does, in this order): instances beyond ``count`` are retired, highest indexes first; an index
with a matching instance and older ones (an apply stopped mid-roll) keeps the newest; tags are
changed in place; indexes with no instance are launched; indexes whose instances all differ, and
those ``--replace`` names (``ctx.renew``), are replaced ``max_unavailable`` at a time (:func:`batches`). Every retirement is a hand-over: the new
instances run, every resource that serves the set's ``instance_ids`` (a load balancer) registers
them and deregisters the old ones (``ctx.hand_over``), and only then are the old ones terminated.
A stop request (``ctx.stop``) is honoured before each launch and during each wait, so a stopped
apply leaves tagged instances only, which the next one finds and finishes.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, TypeVar

from ..addresses import Address, Reference
from ..errors import CloudError, ReconError
from ..plan import Replacement
from ..waits import wait_until
from .base import CloudContext
from .instance_roll import (GONE, LAUNCH_ATTRS, PRESENT, Instance, Launch, batches, next_generation, own_tags, roll,
                            run_request)
from .tags import ADDRESS_TAG, OWNER, STACK_TAG

INSTANCE_WAIT = 900.0          # seconds for new instances to run
GROUP_TAG = "aws:autoscaling:groupName"   # on the VMs of an auto-scaling group (load balancers' workers)
MAX_GENERATIONS = 8            # new tokens tried for one index when earlier ones' instances are gone
LAUNCHES_AT_ONCE = 8           # RunInstances calls of one block in flight together

T = TypeVar("T")


def _summary(values: Iterable[Any]) -> Any:
    """One value if all agree, else the sorted distinct values (instances mid-replacement)."""
    values = list(values)
    if values and all(type(v) is type(values[0]) and v == values[0] for v in values):   # the usual case, cheaply
        return values[0]
    distinct = {json.dumps(v, sort_keys=True): v for v in values}
    if len(distinct) == 1:
        return next(iter(distinct.values()))
    return [distinct[key] for key in sorted(distinct)]


def each_at_once(work: Callable[[int], T], items: list[int], at_once: int) -> dict[int, T]:
    """``work(item)`` for each of ``items``, up to ``at_once`` at a time; the results by item, in the
    order of ``items``. After a failure (a stop request too) no other item starts; the failure is
    raised once those already started have finished."""
    failed = threading.Event()

    def guarded(item: int) -> T | None:
        if failed.is_set():
            return None
        try:
            return work(item)
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(max_workers=max(1, min(at_once, len(items))), thread_name_prefix="recon-launch") as pool:
        futures = {item: pool.submit(guarded, item) for item in items}
    for future in futures.values():
        if future.exception() is not None:
            raise future.exception()
    return {item: future.result() for item, future in futures.items()}  # type: ignore[misc]


@dataclass(frozen=True)
class InstanceSet:
    """The instances of a kind's blocks: ``KIND.NAME[i]`` for ``i`` below ``count``."""

    #: The kind's table name: the addresses' first part.
    kind: str
    #: What an instance is called in messages ("host").
    noun: str = "instance"
    #: The launch attributes (of :data:`LAUNCH_ATTRS`) the kind's blocks set: a change replaces the instances.
    launch_attrs: tuple[str, ...] = LAUNCH_ATTRS

    def address(self, name: str) -> str:
        return f"{self.kind}.{name}"

    def spec(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        """The launch attributes the file manages (those it leaves out are the cloud's choice)."""
        return {key: desired[key] for key in self.launch_attrs if key in desired}

    # --- comparison ---------------------------------------------------------------------
    def view(self, instances: list[Instance]) -> dict[str, Any]:
        """The live attributes of one block's present ``instances``."""
        instances = sorted(instances, key=lambda i: (i.index, i.generation))
        view: dict[str, Any] = {"count": len(instances), "indexes": [i.index for i in instances],
                                "instance_ids": [i.id for i in instances],
                                "private_ips": [i.private_ip for i in instances],
                                "launches": [i.launch for i in instances]}
        for key in self.launch_attrs:
            view[key] = _summary(i.launch[key] for i in instances) if instances else None
        common = set.intersection(*(set(i.tags.items()) for i in instances)) if instances else set()
        view["tags"] = dict(sorted(common))
        return view

    def compare_view(self, desired: Mapping[str, Any], live: Mapping[str, Any],
                     prior: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Desired and live as the diff sees them: count, indexes, launch and the managed tags."""
        want = {**self.spec(desired), "count": desired["count"], "indexes": list(range(desired["count"]))}
        have = {"count": live["count"], "indexes": live["indexes"]}
        for key in self.spec(desired):
            have[key] = live[key] if live["count"] else want[key]
        managed = set(desired.get("tags", {})) | set((prior or {}).get("tags", {}))
        if managed:
            want["tags"] = desired.get("tags", {})
            have["tags"] = {k: v for k, v in live.get("tags", {}).items() if k in managed}
        return want, have

    def replacements(self, name: str, want: Mapping[str, Any], live: Mapping[str, Any]) -> list[Replacement]:
        """Each index kept by ``count`` whose instances do not match the launch attributes: one new
        instance, launched before the old ones are terminated."""
        spec = self.spec(want)
        # the live view lists each instance's launch; without it, the summary stands for each
        launches = live.get("launches") or [{key: live.get(key) for key in self.launch_attrs}] * len(live["indexes"])
        stale: dict[int, list[str]] = {}
        good: set[int] = set()
        for index, instance_id, launch in zip(live["indexes"], live["instance_ids"], launches):
            if index >= want["count"]:
                continue
            if all(launch.get(key) == value for key, value in spec.items()):
                good.add(index)
            else:
                stale.setdefault(index, []).append(instance_id)
        return [Replacement(f"{self.address(name)}[{index}]", tuple(ids))
                for index, ids in sorted(stale.items()) if index not in good]

    def requested(self, name: str, part: str | None, live: Mapping[str, Any]) -> list[Replacement]:
        """The instances at index ``part`` (all of them: None), launched again although they match."""
        present: dict[int, list[str]] = {}
        for index, instance_id in zip(live["indexes"], live["instance_ids"]):
            present.setdefault(index, []).append(instance_id)
        if part is None:
            indexes = sorted(present)
        elif part.isdigit() and int(part) in present:
            indexes = [int(part)]
        else:
            running = ", ".join(f"[{i}]" for i in sorted(present)) or "none"
            raise ValueError(f"no {self.noun} [{part}] runs (the indexes of its {self.noun}s: {running})")
        return [Replacement(f"{self.address(name)}[{index}]", tuple(present[index])) for index in indexes]

    # --- cloud side ---------------------------------------------------------------------
    def instances(self, ctx: CloudContext, where: str) -> list[Instance]:
        """Every instance of the stack's sets of this kind (terminated ones too), in one paginated call."""
        items = ctx.cloud.paginate("ec2", "describe_instances", "Reservations[].Instances[]", where=where, slim=True,
                                   Filters=[{"Name": f"tag:{STACK_TAG}", "Values": [ctx.stack]}])
        return [i for i in (Instance.from_api(item, self.kind) for item in items) if i is not None]

    def read(self, ctx: CloudContext, wanted: Mapping[str, Mapping[str, Any] | None]) -> dict[str, dict[str, Any]]:
        """The live view of every block with present instances, and of the wanted ones with ``count`` 0."""
        by_name: dict[str, list[Instance]] = {}
        for instance in self.instances(ctx, self.kind):
            if instance.present:
                by_name.setdefault(instance.name, []).append(instance)
        live = {name: {**self.view(found), OWNER: {"stack": ctx.stack, "address": self.address(name)}}
                for name, found in by_name.items()}
        for name, attrs in wanted.items():  # nothing to find is what count = 0 asks for
            if attrs is not None and attrs.get("count") == 0 and name not in live:
                live[name] = self.view([])
        return live

    def delete(self, ctx: CloudContext, name: str) -> None:
        address = self.address(name)
        self._terminate(ctx, address, [i for i in self.instances(ctx, address) if i.name == name and i.present],
                        "removed from the file")

    def converge(self, ctx: CloudContext, name: str, want: Mapping[str, Any], launch: Launch,
                 remove_tags: set[str]) -> dict[str, Any]:
        """Make the instances of ``name`` what ``want`` says, launching with ``launch``; returns their
        ids and addresses by index."""
        address = self.address(name)
        count = want["count"]
        seen = [i for i in self.instances(ctx, address) if i.name == name]
        renew = {index for index in range(count) if f"{address}[{index}]" in ctx.renew}
        plan = roll((i for i in seen if i.present), self.spec(want), count, renew)
        kept = dict(plan.kept)
        self._swap(ctx, name, [], plan.beyond, f"beyond count {count}")
        # (an earlier apply stopped mid-roll: the newer instance takes over, as in a batch below)
        kept.update(zip(plan.renewed, self._swap(ctx, name, [kept[i] for i in plan.renewed], plan.duplicates,
                                                 f"a newer {self.noun} has this index")))
        self._retag(ctx, address, list(kept.values()), want.get("tags", {}), remove_tags)
        # Indexes with no instance at all: launch them (nothing running is lost).
        kept.update(self._launch(ctx, name, want, launch, plan.missing, seen))
        for batch in batches(list(plan.stale), want.get("max_unavailable", 1)):
            launched = self._launch(ctx, name, want, launch, batch, seen)
            self._swap(ctx, name, list(launched.values()), [i for index in batch for i in plan.stale[index]],
                       "replaced")
            kept.update(launched)
        started = self._started(ctx, address, [kept[i] for i in range(count)])
        return {"instance_ids": [i.id for i in started], "private_ips": [i.private_ip for i in started]}

    def _run(self, ctx: CloudContext, name: str, want: Mapping[str, Any], launch: Launch, index: int,
             generation: int) -> str:
        """One RunInstances for ``index``; the id of the instance it made (or had made)."""
        address = self.address(name)
        for _ in range(MAX_GENERATIONS):
            request = run_request(ctx.stack, address, index, generation, launch, want.get("tags", {}))
            ctx.report(address, f"launching [{index}] (generation {generation})")
            instance = ctx.cloud.call("ec2", "run_instances", where=f"{address}[{index}]", **request)["Instances"][0]
            if (instance.get("State") or {}).get("Name") not in GONE:
                return instance["InstanceId"]
            generation += 1  # that token's instance was terminated since: a new launch needs a new token
        raise CloudError(f"{MAX_GENERATIONS} launches in a row came back terminated", where=f"{address}[{index}]")

    def _launch(self, ctx: CloudContext, name: str, want: Mapping[str, Any], launch: Launch,
                indexes: list[int], seen: list[Instance]) -> dict[int, Instance]:
        """Launch one instance per index, up to :data:`LAUNCHES_AT_ONCE` at a time (each has its own
        client token: exactly once however they interleave), and wait until they all run."""
        if not indexes:
            return {}
        address = self.address(name)

        def launch_one(index: int) -> str:
            ctx.stop.check(f"{address}[{index}]", f"before launching [{index}]")
            return self._run(ctx, name, want, launch, index, next_generation(seen, index))

        ids = each_at_once(launch_one, indexes, LAUNCHES_AT_ONCE)
        running = {i.id: i for i in self._wait_running(ctx, address, list(ids.values()))}
        for index, instance_id in ids.items():
            ctx.report(address, f"[{index}] {instance_id} running ({running[instance_id].private_ip})")
        return {index: running[instance_id] for index, instance_id in ids.items()}

    def _started(self, ctx: CloudContext, address: str, instances: list[Instance]) -> list[Instance]:
        """``instances``, each pending one as it is once it runs."""
        waiting = [i.id for i in instances if i.state == "pending"]
        if not waiting:
            return instances
        running = {i.id: i for i in self._wait_running(ctx, address, waiting)}
        return [running.get(i.id, i) for i in instances]

    def _wait_running(self, ctx: CloudContext, address: str, ids: list[str]) -> list[Instance]:
        def look() -> list[Instance] | None:
            # Paginated: AWS may page even a reply for given ids (Eucalyptus 4.x answers in one),
            # and a launch of more instances than one page would otherwise wait forever.
            # NotFound (not visible yet right after RunInstances) reads as nothing found.
            items = ctx.cloud.paginate("ec2", "describe_instances", "Reservations[].Instances[]", where=address,
                                       slim=True, InstanceIds=ids, ignore_codes=("InvalidInstanceID.NotFound",))
            found = [i for i in (Instance.from_api(item, self.kind) for item in items) if i is not None]
            for instance in found:
                if instance.state in GONE:
                    raise CloudError(f"instance {instance.id} ([{instance.index}]) went {instance.state} while starting",
                                     where=address)
            return found if len(found) == len(ids) and all(i.state == "running" for i in found) else None

        return wait_until(look, what=f"{len(ids)} instance(s) to run ({', '.join(ids)})", where=address,
                          timeout=INSTANCE_WAIT, report=ctx.report, stop=ctx.stop)

    def _swap(self, ctx: CloudContext, name: str, new: list[Instance], old: list[Instance],
              why: str) -> list[Instance]:
        """Retire ``old`` for ``new``: once ``new`` run, every resource serving this block's
        instances (its load balancers) takes them and lets ``old`` go; then ``old`` are terminated.
        Returns ``new`` as they run."""
        address = self.address(name)
        pending = [i.id for i in new if i.state != "running"]
        if pending:
            running = {i.id: i for i in self._wait_running(ctx, address, pending)}
            new = [running.get(i.id, i) for i in new]
        if old:
            ctx.hand_over(Reference(Address(self.kind, name), "instance_ids"), [i.id for i in new],
                          [i.id for i in old])
            self._terminate(ctx, address, old, why)
        return new

    def _terminate(self, ctx: CloudContext, address: str, instances: list[Instance], why: str) -> None:
        if not instances:
            return
        for instance in instances:
            ctx.report(address, f"terminating [{instance.index}] {instance.id} ({why})")
        ctx.cloud.call("ec2", "terminate_instances", where=address, InstanceIds=[i.id for i in instances],
                       ignore_codes=("InvalidInstanceID.NotFound",))

    def _retag(self, ctx: CloudContext, address: str, instances: list[Instance], tags: Mapping[str, str],
               remove: set[str]) -> None:
        stale = [i.id for i in instances if any(i.tags.get(k) != v for k, v in tags.items())]
        if stale:
            ctx.cloud.call("ec2", "create_tags", where=address, Resources=stale,
                           Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())])
        tagged = [i.id for i in instances if remove & set(i.tags)]
        if tagged:
            ctx.cloud.call("ec2", "delete_tags", where=address, Resources=tagged,
                           Tags=[{"Key": k} for k in sorted(remove)])

    # --- import -------------------------------------------------------------------------
    def importable(self, ctx: CloudContext, name: str, cloud_id: str) -> tuple[list[Instance], dict[str, Any]]:
        """The instances ``cloud_id`` lists (``i-1,i-2``: indexes in that order) would be, and the
        launch they share (user data aside)."""
        where = self.address(name)
        found = self._unowned(ctx, where, [i for i in cloud_id.split(",") if i], cloud_id)
        spec = {key: found[0].launch[key] for key in self.launch_attrs if key != "user_data_sha256"}
        differing = sorted(k for k in spec for i in found if i.launch[k] != spec[k])
        if differing:
            raise ReconError(f"the instances differ in {differing[0]}: import them as separate blocks", where=where)
        return found, spec

    def _unowned(self, ctx: CloudContext, where: str, ids: list[str], cloud_id: str) -> list[Instance]:
        """The instances ``ids`` would be, by index: each must be present and not recon's yet."""
        items = ctx.cloud.paginate("ec2", "describe_instances", "Reservations[].Instances[]", where=where,
                                   InstanceIds=ids)
        by_id = {item["InstanceId"]: item for item in items if (item.get("State") or {}).get("Name") in PRESENT}
        missing = [i for i in ids if i not in by_id]
        if missing or not ids:
            raise ReconError(f"no running instance {missing[0] if missing else cloud_id!r}", where=where)
        for item in by_id.values():
            tags = {t["Key"]: t.get("Value", "") for t in item.get("Tags", [])}
            if ADDRESS_TAG in tags:
                raise ReconError(f"{item['InstanceId']} is recon's already", where=where)
            if GROUP_TAG in tags:    # a load balancer's worker VM, say: its group replaces it, not recon
                raise ReconError(f"{item['InstanceId']} is a VM of auto-scaling group {tags[GROUP_TAG]}, which "
                                 "launches and replaces it", where=where)
        return [Instance.from_api({**by_id[i], "Tags": [{"Key": ADDRESS_TAG, "Value": f"{where}[{n}]"},
                                                        *by_id[i].get("Tags", [])]}, self.kind)
                for n, i in enumerate(ids)]

    def adopt(self, ctx: CloudContext, name: str, instances: list[Instance], user_data_sha256: str | None) -> None:
        """Tag ``instances`` as indexes 0, 1, … of the set (generation 1), as recon tags what it launches."""
        where = self.address(name)
        for index, instance in enumerate(instances):
            ctx.cloud.call("ec2", "create_tags", where=where, Resources=[instance.id],
                           Tags=own_tags(ctx.stack, f"{where}[{index}]", 1, user_data_sha256))
