"""End to end: load balancers' worker VMs, read, reported, rolled onto the enabled LB image, and the
old revision retired only once no worker runs it -- every step checked with plain boto3 (Auto
Scaling and EC2) against the sandbox, which runs them as Eucalyptus does (DESIGN §11).

The story of the issue: v1 installed and enabled, a load balancer whose workers run it; v2
installed and enabled (Eucalyptus swaps the group's launch configuration, the workers stay on v1,
so v1 stays too); drift reports them; ``workers = "roll"`` replaces them one at a time (a thread
samples the group all through the apply: a worker always runs, v1 is deregistered only once none
runs it). Then: an apply SIGKILLed right after it terminated a worker, applied again, ends with
exactly zones x num_vm workers, all on the enabled version, and no VM outside the group; and
reading 50 load balancers' workers costs the calls reading one does (and none of those VMs is
taken for a leak or a host to import); and on 4.2 (one group per zone), with ``workers = "roll"``
from the start, one apply installs and enables v2, rolls every group onto it and retires v1.
"""

from __future__ import annotations

import re
import signal
import threading
from pathlib import Path

import pytest

from e2e import client, property_value, recon
from reconciler.imagebuild.testimage import make_test_image, pack_tgz

EMI = "loadbalancing.loadbalancer_emi"
NUM_VM = 2                      # one zone: two workers, so "never fewer than N-1" means something
ZONE = "ViciousLiesAndDangerousRumors"
WAIT = {"RECON_WAIT_INTERVAL": "0.05"}


def stack(timeout: str, workers: str | None = None) -> str:
    mode = f'workers = "{workers}"\n' if workers else ""
    return f'''[stack]
name = "workers"

[lb_images.lb]
source = "images/lb.tgz"

[lb_images.lb.haproxy.defaults]
"timeout connect" = "{timeout}"

[properties]
"{EMI}" = "${{lb_images.lb.image_id}}"
"loadbalancing.loadbalancer_num_vm" = {NUM_VM}

[load_balancers.web]
zones = ["{ZONE}"]
listeners = [{{ lb_port = 80, protocol = "HTTP", instance_port = 80 }}]
depends_on = ["properties.loadbalancing.loadbalancer_num_vm"]       # (made after the emi property anyway)
{mode}'''


def make_work(tmp_path: Path) -> Path:
    work = tmp_path / "repo"
    (work / "images").mkdir(parents=True)
    pack_tgz(make_test_image(tmp_path / "lb.img"), work / "images" / "lb.tgz")
    return work


def lb_images(env) -> dict[str, str]:
    """The registered LB images: image id by name (eucalyptus-load-balancer-image-vN)."""
    images = client(env, "ec2").describe_images(Owners=["self"])["Images"]
    return {i["Name"]: i["ImageId"] for i in images if i["Name"].startswith("eucalyptus-load-balancer-image")}


def group(env, autoscaling=None) -> dict:
    """The load balancer's auto-scaling group, as Auto Scaling describes it."""
    autoscaling = autoscaling or client(env, "autoscaling")
    groups = [g for g in autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]
              if re.fullmatch(r"asg-euca-internal-elb-\d+-web", g["AutoScalingGroupName"])]
    assert len(groups) == 1, groups
    return groups[0]


def workers(env, ec2=None, autoscaling=None) -> dict[str, str]:
    """The group's running VMs: image id by instance id (EC2's view)."""
    ec2 = ec2 or client(env, "ec2")
    ids = [i["InstanceId"] for i in group(env, autoscaling)["Instances"]]
    if not ids:
        return {}
    reply = ec2.describe_instances(InstanceIds=ids)
    return {i["InstanceId"]: i["ImageId"] for r in reply["Reservations"] for i in r["Instances"]
            if i["State"]["Name"] == "running"}


def lb_vms(env) -> dict[str, str]:
    """Every pending or running VM tagged as a load balancer's (Name=loadbalancer-resources): its group."""
    reply = client(env, "ec2").describe_instances(Filters=[{"Name": "tag:Name", "Values": ["loadbalancer-resources"]}])
    return {i["InstanceId"]: {t["Key"]: t["Value"] for t in i["Tags"]}.get("aws:autoscaling:groupName")
            for r in reply["Reservations"] for i in r["Instances"] if i["State"]["Name"] in ("pending", "running")}


def apply(env, work: Path, **extra):
    return recon({**env, **WAIT, **extra}, "apply", "--auto-approve", cwd=work)


def installed_v1_then_v2(env, work: Path) -> tuple[str, str, set[str]]:
    """v1 enabled and the load balancer made (its workers on v1), then v2 enabled under
    workers = "report": the v1 and v2 image ids, and the workers' ids (still on v1)."""
    (work / "recon.toml").write_text(stack("5s"))
    first = apply(env, work)
    assert first.code == 0, first.both
    v1 = lb_images(env)["eucalyptus-load-balancer-image-v1"]
    made = group(env)
    assert made["DesiredCapacity"] == NUM_VM and len(made["Instances"]) == NUM_VM
    on_v1 = workers(env)
    assert set(on_v1.values()) == {v1} and len(on_v1) == NUM_VM

    (work / "recon.toml").write_text(stack("7s"))
    second = apply(env, work)
    assert second.code == 0, second.both
    v2 = lb_images(env)["eucalyptus-load-balancer-image-v2"]
    assert property_value(env, EMI) == v2
    assert workers(env) == on_v1                  # Eucalyptus leaves running workers alone
    assert v1 in lb_images(env).values()          # ... and so v1 stays
    assert re.search(rf"Note: lb_images.lb: {v1} is kept \(deposed, not retired\): worker i-\w+ of "
                     r"load_balancers\.web, i-\w+ of load_balancers\.web run it", second.out), second.out
    return v1, v2, set(on_v1)


class Sampler(threading.Thread):
    """Samples the group's running workers and whether v1 is registered, until told to stop."""

    def __init__(self, env, v1: str):
        super().__init__(daemon=True)
        self.env, self.v1 = env, v1
        self.samples: list[tuple[dict[str, str], bool]] = []
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            ec2, autoscaling = client(self.env, "ec2"), client(self.env, "autoscaling")
            while True:
                last = self.done.is_set()
                running = workers(self.env, ec2, autoscaling)
                registered = bool(ec2.describe_images(Filters=[{"Name": "image-id", "Values": [self.v1]}])["Images"])
                self.samples.append((running, registered))
                if last:
                    return
        except BaseException as exc:  # reported by the test
            self.error = exc

    def finish(self) -> list[tuple[dict[str, str], bool]]:
        self.done.set()
        self.join()
        assert self.error is None, repr(self.error)
        return self.samples


@pytest.mark.slow
def test_report_then_roll_then_retire(sandbox, tmp_path: Path) -> None:
    env, work = sandbox.env, make_work(tmp_path)
    v1, v2, old = installed_v1_then_v2(env, work)

    drift = recon(env, "drift", cwd=work)
    assert drift.code == 2, drift.both
    assert re.search(r"! load_balancers\.web: 2 workers run v1, enabled is v2 \(i-\w+, i-\w+\)", drift.out), drift.out
    listing = recon(env, "images", cwd=work)
    assert re.search(rf"^\s+v1\s+{v1}\s", listing.out, re.M) and re.search(rf"^\*\s+v2\s+{v2}\s", listing.out, re.M)
    assert f"Worker VMs: {NUM_VM} on v1 (web), 0 on v2\n" in listing.out, listing.out
    effective = recon(env, "image", "effective", "web", cwd=work)
    assert effective.code == 0, effective.both
    assert effective.out.count("runs v1") == NUM_VM and "not a revision of this file" in effective.out

    (work / "recon.toml").write_text(stack("7s", workers="roll"))
    plan = recon(env, "plan", cwd=work)
    assert plan.code == 0, plan.both
    for worker in sorted(old):
        assert f"-/+ load_balancers.web[{worker}] (a new instance takes its place)" in plan.out, plan.out
    assert "- lb_images.lb (deposed" in plan.out and f"Plan: {NUM_VM} to add, 0 to change, {NUM_VM + 1} to destroy." \
        in plan.out, plan.out

    sampler = Sampler(env, v1)
    sampler.start()
    rolled = apply(env, work)
    samples = sampler.finish()
    assert rolled.code == 0, rolled.both
    assert len(samples) > 2
    for running, registered in samples:
        assert len(running) >= NUM_VM - 1 and running, (running, samples)     # a worker always runs
        if not registered:                                                     # v1 gone: none runs it
            assert v1 not in running.values(), (running, samples)
    assert samples[0][1] and not samples[-1][1]
    now = workers(env)
    assert len(now) == NUM_VM and not set(now) & old and set(now.values()) == {v2}
    assert group(env)["DesiredCapacity"] == NUM_VM
    assert "eucalyptus-load-balancer-image-v1" not in lb_images(env)
    assert set(lb_vms(env)) == set(now)
    effective = recon(env, "image", "effective", "load_balancers.web", cwd=work)
    assert effective.out.count("runs v2") == NUM_VM and "revision lb_images.lb" in effective.out, effective.both
    assert "frontend http-80" in effective.out
    assert recon(env, "plan", "--detailed-exitcode", cwd=work).code == 0
    assert recon(env, "drift", cwd=work).code == 0


@pytest.mark.slow
def test_a_roll_killed_after_a_terminate_is_finished_by_the_next_apply(sandbox, tmp_path: Path) -> None:
    env, work = sandbox.env, make_work(tmp_path)
    v1, v2, old = installed_v1_then_v2(env, work)
    (work / "recon.toml").write_text(stack("7s", workers="roll"))

    crashed = apply(env, work, RECON_CRASH_AFTER="autoscaling.TerminateInstanceInAutoScalingGroup")
    assert crashed.code == -signal.SIGKILL, crashed.both
    after_kill = workers(env)
    assert len(after_kill) == NUM_VM and len(set(after_kill) & old) == NUM_VM - 1   # one replaced, from v2
    assert sorted(after_kill.values()) == sorted([v1] * (NUM_VM - 1) + [v2])
    assert v1 in lb_images(env).values()

    again = apply(env, work)
    assert again.code == 0, again.both
    assert "resumes the worker roll an interrupted apply began" in again.out, again.out
    now = workers(env)
    assert len(now) == NUM_VM and set(now.values()) == {v2} and not set(now) & old
    assert group(env)["DesiredCapacity"] == NUM_VM
    assert set(lb_vms(env)) == set(now)           # no VM outside the group: nothing orphaned
    assert "eucalyptus-load-balancer-image-v1" not in lb_images(env)
    assert recon(env, "plan", "--detailed-exitcode", cwd=work).code == 0


@pytest.mark.slow
def test_replacing_every_v1_worker_under_report_retires_v1_after_them(sandbox, tmp_path: Path) -> None:
    """``--replace`` of each worker (``workers = "report"``): the plan replaces them, so nothing holds v1
    any more and the same plan retires it, after the workers left it."""
    env, work = sandbox.env, make_work(tmp_path)
    v1, v2, old = installed_v1_then_v2(env, work)
    asked = [arg for worker in sorted(old) for arg in ("--replace", f"load_balancers.web[{worker}]")]
    plan = recon(env, "plan", *asked, cwd=work)
    assert plan.code == 0, plan.both
    assert f"# load_balancers.web will have {NUM_VM} instance(s) replaced (requested)" in plan.out, plan.out
    assert all(f"-/+ load_balancers.web[{worker}] (a new instance takes its place)" in plan.out for worker in old)
    assert "- lb_images.lb (deposed" in plan.out and "is kept" not in plan.out, plan.out
    assert f"Plan: {NUM_VM} to add, 0 to change, {NUM_VM + 1} to destroy." in plan.out, plan.out

    done = recon({**env, **WAIT}, "apply", "--auto-approve", *asked, cwd=work)
    assert done.code == 0, done.both
    lines = done.err.splitlines()
    replacing = [n for n, line in enumerate(lines) if "replacing worker" in line]
    retired = next(n for n, line in enumerate(lines) if line.startswith("lb_images.lb: destroying"))
    assert len(replacing) == NUM_VM and replacing[-1] < retired, done.err
    now = workers(env)
    assert len(now) == NUM_VM and not set(now) & old and set(now.values()) == {v2}
    assert "eucalyptus-load-balancer-image-v1" not in lb_images(env) and v2 in lb_images(env).values()
    assert recon(env, "plan", "--detailed-exitcode", cwd=work).code == 0


def calls(run) -> dict[str, int]:
    return {op: int(n) for op, n in re.findall(r"^stats:\s+(\S+) (\d+)$", run.err, re.M)}


def test_reading_50_load_balancers_workers_costs_what_reading_one_does(sandbox, tmp_path: Path) -> None:
    env = sandbox.env
    ec2, elb = client(env, "ec2"), client(env, "elb")
    image = next(i["ImageId"] for i in ec2.describe_images()["Images"] if i["ImageId"].startswith("emi-"))
    client(env, "properties").modify_property_value(Name=EMI, Value=image)
    (tmp_path / "recon.toml").write_text('[stack]\nname = "reads"\n')

    def make(names):
        for name in names:
            elb.create_load_balancer(LoadBalancerName=name, AvailabilityZones=[ZONE], Listeners=[
                {"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}])

    def read() -> dict[str, int]:
        run = recon(env, "plan", "--stats", cwd=tmp_path)
        assert run.code == 0, run.both
        return calls(run)

    make(["lb0"])
    one = read()
    make([f"lb{n}" for n in range(1, 50)])
    assert len(lb_vms(env)) == 50
    fifty = read()
    assert one["autoscaling.DescribeAutoScalingGroups"] == one["autoscaling.DescribeLaunchConfigurations"] == 1
    # (the ELB's DescribeTags takes 20 load balancers a call: the only call that grows)
    assert {op: n for op, n in fifty.items() if op != "elb.DescribeTags"} == \
        {op: n for op, n in one.items() if op != "elb.DescribeTags"}, (one, fifty)

    # the cloud's VMs, not leaks of this stack nor hosts to adopt
    assert recon(env, "drift", cwd=tmp_path).code == 0
    worker = sorted(lb_vms(env))[0]
    refused = recon(env, "import", "docker_hosts.web", worker, cwd=tmp_path)
    assert refused.code == 1 and f"{worker} is a VM of auto-scaling group asg-euca-internal-elb-" in refused.err, \
        refused.both


STACK_42 = '''[stack]
name = "workers42"

[cloud]
eucalyptus_version = "4.2"

[lb_images.lb]
source = "images/lb.tgz"

[lb_images.lb.haproxy.defaults]
"timeout connect" = "{timeout}"

[properties]
"services.loadbalancing.worker.image" = "${{lb_images.lb.image_id}}"
"services.loadbalancing.vm_per_zone" = 1

[load_balancers.web]
zones = {zones}
listeners = [{{ lb_port = 80, protocol = "HTTP", instance_port = 80 }}]
workers = "roll"
'''


def test_a_42_cloud_rolls_every_zone_group_in_the_apply_that_enables_the_revision(tmp_path: Path) -> None:
    """4.2 runs one group per zone; with workers = "roll" from the start, the apply that installs and
    enables v2 also replaces the workers (after the property, before v1 is retired)."""
    from e2e import start_child, toml_value

    zones = (ZONE, "SecondZone")
    with start_child(tmp_path / "sandbox", zones=zones, eucalyptus_version="4.2") as cloud:
        env, work = cloud.env, make_work(tmp_path)
        names = [f"euca-internal-elb-{env['EC2_USER_ID']}-web-{zone}" for zone in zones]

        def by_group() -> dict[str, dict[str, str]]:
            ec2, found = client(env, "ec2"), {}
            for item in client(env, "autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=names)[
                    "AutoScalingGroups"]:
                ids = [i["InstanceId"] for i in item["Instances"]]
                reply = ec2.describe_instances(InstanceIds=ids)["Reservations"] if ids else []
                found[item["AutoScalingGroupName"]] = {i["InstanceId"]: i["ImageId"] for r in reply
                                                       for i in r["Instances"] if i["State"]["Name"] == "running"}
            return found

        (work / "recon.toml").write_text(STACK_42.format(timeout="5s", zones=toml_value(list(zones))))
        first = apply(env, work)
        assert first.code == 0, first.both
        v1 = lb_images(env)["eucalyptus-load-balancer-image-v1"]
        before = by_group()
        assert sorted(before) == sorted(names) and all(list(w.values()) == [v1] for w in before.values()), before

        (work / "recon.toml").write_text(STACK_42.format(timeout="7s", zones=toml_value(list(zones))))
        plan = recon(env, "plan", cwd=work)
        assert plan.code == 0, plan.both
        assert "# load_balancers.web will have 2 instance(s) replaced" in plan.out, plan.out
        assert "worker_image: " in plan.out and "-> (known after apply)" in plan.out
        assert "- lb_images.lb (deposed" in plan.out
        rolled = apply(env, work)
        assert rolled.code == 0, rolled.both
        v2 = lb_images(env)["eucalyptus-load-balancer-image-v2"]
        after = by_group()
        for name in names:
            assert len(after[name]) == 1 and list(after[name].values()) == [v2], after
            assert not set(after[name]) & set(before[name])
        assert "eucalyptus-load-balancer-image-v1" not in lb_images(env)
        lines = rolled.err.splitlines()
        enabled = next(n for n, line in enumerate(lines) if line.startswith("properties.") and "done" in line)
        replacing = [n for n, line in enumerate(lines) if "replacing worker" in line]
        retired = next(n for n, line in enumerate(lines) if line.startswith("lb_images.lb: destroying"))
        assert len(replacing) == 2 and enabled < replacing[0] and replacing[-1] < retired, rolled.err
        assert recon(env, "plan", "--detailed-exitcode", cwd=work).code == 0
