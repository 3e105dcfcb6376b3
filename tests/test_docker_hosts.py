"""End to end: docker_hosts against the sandbox, through the real CLI.

Scaling keeps the survivors' indexes; a type change replaces the hosts one index at a time,
create before destroy; a host terminated behind recon's back is drift and is recreated; an apply
SIGKILLed right after RunInstances leaves a cloud the next apply converges without duplicates;
the cloud-init document never shows anywhere but in the instances' user data.
"""

from __future__ import annotations

import base64
import json
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from e2e import client, copy_examples, hosts_stack, recon

STACK = "hosts.toml"
ADDRESS = "docker_hosts.web"
SECRET = "PLANTED-S3CRET-7f3a9c"  # planted in the cloud-init document: must never be shown

CLOUD_INIT = f"""#cloud-config
package_update: true
packages: [docker.io]
write_files:
  - path: /etc/docker/registry-token
    permissions: "0600"
    content: {SECRET}
"""


def write_stack(work: Path, *, count: int, instance_type: str = "m1.small", max_unavailable: int = 1,
                key_name: str = "${keypairs.admin.name}") -> None:
    (work / STACK).write_text(hosts_stack("hosts", instance_type=instance_type, key_name=key_name, count=count,
                                          max_unavailable=max_unavailable, cloud_init="cloud-init.yaml",
                                          tags={"role": "docker"}))


def setup(tmp_path: Path) -> Path:
    work = copy_examples(tmp_path / "repo")
    (work / "cloud-init.yaml").write_text(CLOUD_INIT)
    return work


def env_for(sandbox) -> dict[str, str]:
    return {**sandbox.env, "RECON_WAIT_INTERVAL": "0.05"}


def hosts(env: dict[str, str]) -> list[tuple[str, str, str]]:
    """(recon:address, instance id, type) of the stack's pending or running instances, sorted."""
    reply = client(env, "ec2").describe_instances(Filters=[
        {"Name": "tag:recon:stack", "Values": ["hosts"]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    found = []
    for reservation in reply["Reservations"]:
        for item in reservation["Instances"]:
            tags = {t["Key"]: t["Value"] for t in item["Tags"]}
            found.append((tags["recon:address"], item["InstanceId"], item["InstanceType"]))
    return sorted(found)


def apply(env: dict[str, str], work: Path, **extra: str):
    return recon({**env, **extra}, "apply", "-c", STACK, "--auto-approve", cwd=work)


def crash(env: dict[str, str], work: Path) -> None:
    """An apply SIGKILLed right after its first RunInstances returned (its lock dies with it)."""
    crashed = apply(env, work, RECON_CRASH_AFTER="ec2.RunInstances")
    assert crashed.code == -signal.SIGKILL, crashed.both


class RunningCounter(threading.Thread):
    """Counts the stack's running instances as fast as it can while an apply runs."""

    def __init__(self, env: dict[str, str]):
        super().__init__(daemon=True)
        self.env = env
        self.samples: list[int] = []
        self.done = threading.Event()
        self.sampling = threading.Event()

    def start(self) -> None:
        """Start, and return once the first sample is taken (before the apply it watches begins)."""
        super().start()
        assert self.sampling.wait(120), "the counter took no sample in 120 s"

    def run(self) -> None:
        ec2 = client(self.env, "ec2")
        while not self.done.is_set():
            reply = ec2.describe_instances(Filters=[{"Name": "tag:recon:stack", "Values": ["hosts"]},
                                                    {"Name": "instance-state-name", "Values": ["running"]}])
            self.samples.append(sum(len(r["Instances"]) for r in reply["Reservations"]))
            self.sampling.set()
            time.sleep(0.005)


def running_from_progress(stderr: str, start: int) -> list[int]:
    """The running count after each launch and termination recon reported."""
    counts, running = [start], start
    for line in stderr.splitlines():
        if re.match(rf"{re.escape(ADDRESS)}: \[\d+\] i-\w+ running", line):
            running += 1
        elif line.startswith(f"{ADDRESS}: terminating"):
            running -= 1
        else:
            continue
        counts.append(running)
    return counts


def test_scale_and_rolling_replacement(sandbox, tmp_path: Path) -> None:
    env, work = env_for(sandbox), setup(tmp_path)
    write_stack(work, count=3)
    first = apply(env, work)
    assert first.code == 0, first.both
    three = hosts(env)
    assert [h[0] for h in three] == [f"{ADDRESS}[{i}]" for i in range(3)]
    assert {h[2] for h in three} == {"m1.small"}
    [item] = client(env, "ec2").describe_instances(InstanceIds=[three[0][1]])["Reservations"][0]["Instances"]
    tags = {t["Key"]: t["Value"] for t in item["Tags"]}
    assert tags["recon:stack"] == "hosts" and tags["role"] == "docker" and tags["recon:generation"] == "0"
    assert item["KeyName"] == "admin" and item["State"]["Name"] == "running"
    state = json.loads((work / "state" / "hosts.json").read_text())["resources"][ADDRESS]["attrs"]
    assert state["instance_ids"] == [h[1] for h in three] and len(state["private_ips"]) == 3

    # A new type: each index gets a new host that runs before its old one is terminated.
    write_stack(work, count=3, instance_type="m1.large")
    plan = recon(env, "plan", "-c", STACK, cwd=work)
    assert 'instance_type: "m1.small" -> "m1.large"  # forces replacement' in plan.out
    for index, (_, old_id, _) in enumerate(three):
        assert f"+/- {ADDRESS}[{index}] (replaces {old_id})" in plan.out
    assert "Plan: 3 to add, 0 to change, 3 to destroy." in plan.out
    counter = RunningCounter(env)
    counter.start()
    roll = apply(env, work)
    counter.done.set()
    counter.join()
    assert roll.code == 0, roll.both
    rolled = hosts(env)
    assert [h[0] for h in rolled] == [f"{ADDRESS}[{i}]" for i in range(3)]
    assert {h[2] for h in rolled} == {"m1.large"} and not {h[1] for h in rolled} & {h[1] for h in three}
    timeline = running_from_progress(roll.err, start=3)
    assert min(timeline) >= 3 - 1 and max(timeline) <= 3 + 1, roll.err
    assert len(timeline) == 7  # three launches and three terminations, one index at a time
    assert counter.samples and min(counter.samples) >= 3 - 1 and max(counter.samples) <= 3 + 1

    again = recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work)
    assert again.code == 0 and "No changes" in again.out, again.both

    # Scale to 1: the highest indexes go, index 0 keeps its host.
    write_stack(work, count=1, instance_type="m1.large")
    down = apply(env, work)
    assert down.code == 0, down.both
    assert hosts(env) == [rolled[0]]
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0

    # Back to 2 with max_unavailable 2: index 1 is new, index 0 is still the same host.
    write_stack(work, count=2, instance_type="m1.large", max_unavailable=2)
    up = apply(env, work)
    assert up.code == 0, up.both
    two = hosts(env)
    assert two[0] == rolled[0] and two[1][0] == f"{ADDRESS}[1]" and two[1][1] != rolled[1][1]


def test_example_stack_keeps_the_load_balancer_on_the_current_hosts(installed_sandbox, tmp_path: Path) -> None:
    env, work = env_for(installed_sandbox), copy_examples(tmp_path / "repo")
    first = recon(env, "apply", "-c", "docker.toml", "--auto-approve", cwd=work)
    assert first.code == 0, first.both
    elb, ec2 = client(env, "elb"), client(env, "ec2")

    def registered() -> list[str]:
        [lb] = elb.describe_load_balancers(LoadBalancerNames=["DockerLoadBalancer"])["LoadBalancerDescriptions"]
        return sorted(i["InstanceId"] for i in lb["Instances"])

    def docker_hosts() -> list[str]:
        state = json.loads((work / "state" / "docker.json").read_text())
        return state["resources"]["docker_hosts.docker"]["attrs"]["instance_ids"]

    old = docker_hosts()
    assert len(old) == 2 and registered() == sorted(old)
    [item] = ec2.describe_instances(InstanceIds=old[:1])["Reservations"][0]["Instances"]
    images = {tags["recon:address"]: i for i in ec2.describe_images(Owners=["self"])["Images"]
              if "recon:address" in (tags := {t["Key"]: t["Value"] for t in i.get("Tags") or []})}
    assert item["ImageId"] == images["images.docker-rootfs"]["ImageId"]      # built from the example's files
    assert item["KernelId"] == images["images.docker-kernel"]["ImageId"]
    assert item["RamdiskId"] == images["images.docker-ramdisk"]["ImageId"]
    assert [g["GroupName"] for g in item["SecurityGroups"]] == ["docker"]

    # A new cloud-init document replaces both hosts; the load balancer follows them.
    with (work / "cloud-init-docker.yaml").open("a") as handle:
        handle.write("timezone: Etc/UTC\n")
    plan = recon(env, "plan", "-c", "docker.toml", cwd=work)
    assert "~ user_data_sha256:" in plan.out and "instances: [" in plan.out and "(known after apply)" in plan.out
    rolled = recon(env, "apply", "-c", "docker.toml", "--auto-approve", cwd=work)
    assert rolled.code == 0, rolled.both
    new = docker_hosts()
    assert len(new) == 2 and not set(new) & set(old) and registered() == sorted(new)
    assert recon(env, "plan", "-c", "docker.toml", "--detailed-exitcode", cwd=work).code == 0


def test_drift_lost_state_and_crash_safety(sandbox, tmp_path: Path) -> None:
    env, work = env_for(sandbox), setup(tmp_path)
    write_stack(work, count=2)

    # Killed right after the first RunInstances returned, before anything was recorded (the two
    # launches are in flight together: the other one may have been made too).
    crash(env, work)
    made = [h[0] for h in hosts(env)]
    assert made in ([f"{ADDRESS}[0]"], [f"{ADDRESS}[1]"], [f"{ADDRESS}[0]", f"{ADDRESS}[1]"]), made
    state_file = work / "state" / "hosts.json"
    assert ADDRESS not in json.loads(state_file.read_text())["resources"]
    resumed = apply(env, work)
    assert resumed.code == 0, resumed.both
    for address in made:   # found by its tags, not launched again
        assert f"launching {address.removeprefix(ADDRESS)}" not in resumed.err, resumed.err
    two = hosts(env)
    assert [h[0] for h in two] == [f"{ADDRESS}[0]", f"{ADDRESS}[1]"]

    # Killed mid-replacement: index 0 has its old and its new host; the next apply finishes the roll.
    write_stack(work, count=2, instance_type="m1.medium")
    crash(env, work)
    assert [h[0] for h in hosts(env)] == [f"{ADDRESS}[0]", f"{ADDRESS}[0]", f"{ADDRESS}[1]"]
    plan = recon(env, "plan", "-c", STACK, cwd=work)
    assert 'instance_type: ["m1.medium", "m1.small"] -> "m1.medium"' in plan.out, plan.out
    resumed = apply(env, work)
    assert resumed.code == 0, resumed.both
    after = hosts(env)
    assert [(h[0], h[2]) for h in after] == [(f"{ADDRESS}[0]", "m1.medium"), (f"{ADDRESS}[1]", "m1.medium")]
    assert after[0][1] not in {h[1] for h in two}
    assert json.loads(state_file.read_text())["resources"][ADDRESS]["attrs"]["instance_ids"] == [h[1] for h in after]

    # A host terminated behind recon's back is drift, and apply brings it back. Its tags are gone
    # too (as a terminated instance vanishes from EC2 after a while), so recon first computes the
    # ClientToken of that very launch, gets the terminated instance back, and takes a new one.
    ec2 = client(env, "ec2")
    ec2.terminate_instances(InstanceIds=[after[1][1]])
    ec2.delete_tags(Resources=[after[1][1]], Tags=[{"Key": "recon:address"}])
    drift = recon(env, "drift", "-c", STACK, cwd=work)
    assert drift.code == 2 and ADDRESS in drift.out and "count: 1 -> 2" in drift.out, drift.both
    repaired = apply(env, work)
    assert repaired.code == 0, repaired.both
    assert "launching [1] (generation 1)" in repaired.err and "launching [1] (generation 2)" in repaired.err
    now = hosts(env)
    assert now[0] == after[0] and now[1][0] == f"{ADDRESS}[1]" and now[1][1] != after[1][1]
    assert recon(env, "drift", "-c", STACK, cwd=work).code == 0

    # The state file lost: the hosts are found by their tags, nothing is launched again, and
    # the next apply writes them into state.
    state_file.unlink()
    lost = recon(env, "plan", "-c", STACK, cwd=work)
    assert lost.code == 0 and "No changes" in lost.out, lost.out
    assert apply(env, work).code == 0
    assert json.loads(state_file.read_text())["resources"][ADDRESS]["attrs"]["instance_ids"] == [h[1] for h in now]

    # Removed from the file: terminated.
    stack_text = (work / STACK).read_text()
    (work / STACK).write_text(stack_text[:stack_text.index("[docker_hosts.web]")])
    removed = apply(env, work)
    assert removed.code == 0 and "docker_hosts.web will be destroyed" in removed.out, removed.both
    assert hosts(env) == []


def test_user_data_is_never_shown(sandbox, tmp_path: Path) -> None:
    env, work = env_for(sandbox), setup(tmp_path)
    write_stack(work, count=1)
    outputs = [recon(env, "plan", "-c", STACK, cwd=work), recon(env, "plan", "-c", STACK, "-f", "json", cwd=work),
               recon(env, "plan", "-c", STACK, "--out", "saved.plan", cwd=work), apply(env, work)]
    assert outputs[-1].code == 0, outputs[-1].both
    outputs += [recon(env, "show", "-c", STACK, cwd=work), recon(env, "show", "-c", STACK, "-f", "json", cwd=work)]
    (work / "cloud-init.yaml").write_text(CLOUD_INIT.replace("docker.io", "docker-ce"))
    changed = recon(env, "plan", "-c", STACK, "-f", "json", cwd=work)
    outputs += [changed, recon(env, "drift", "-c", STACK, "-f", "json", cwd=work)]
    [update] = json.loads(changed.out)["resource_changes"]
    assert update["changed_paths"] == ["user_data_sha256"] and len(update["after"]["user_data_sha256"]) == 64
    (work / "cloud-init.yaml").write_text(CLOUD_INIT + f"  - {SECRET}: [unclosed\n")
    outputs.append(recon(env, "plan", "-c", STACK, cwd=work))
    assert outputs[-1].code == 1 and "not valid YAML at line" in outputs[-1].err, outputs[-1].both
    for run in outputs:
        assert SECRET not in run.out and SECRET not in run.err
    for path in work.rglob("*"):
        if path.is_file() and path.name != "cloud-init.yaml":
            assert SECRET.encode() not in path.read_bytes(), path
    # ... and yet the hosts got it, as user data.
    [(_, instance_id, _)] = hosts(env)
    data = client(env, "ec2").describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    assert SECRET in base64.b64decode(data["UserData"]["Value"]).decode()


def test_key_name_must_name_a_key_pair(sandbox, tmp_path: Path) -> None:
    env, work = env_for(sandbox), setup(tmp_path)
    write_stack(work, count=1, key_name="nobody")
    plan = recon(env, "plan", "-c", STACK, cwd=work)
    assert plan.code == 1 and "key_name 'nobody' names no key pair in the cloud nor in this file" in plan.err, \
        plan.both
    client(env, "ec2").import_key_pair(KeyName="nobody",
                                       PublicKeyMaterial=(work / "keys" / "docker-admin.pub").read_bytes())
    assert recon(env, "plan", "-c", STACK, cwd=work).code == 0  # one only the cloud has
    write_stack(work, count=1, key_name="admin")  # the file's, by its name: imported first, as if referenced
    plan = recon(env, "plan", "-c", STACK, "--format", "json", cwd=work)
    assert plan.code == 0, plan.both
    (host,) = [c for c in json.loads(plan.out)["resource_changes"] if c["address"] == ADDRESS]
    assert host["depends_on_reasons"]["keypairs.admin"] == ["names keypairs.admin"]


@pytest.mark.slow
def test_more_hosts_than_moto_pages_come_in_one_reply(sandbox, tmp_path: Path) -> None:
    """130 hosts (130 reservations: one launch each) are launched, waited for and read back; as on
    Eucalyptus 4.0/4.2, DescribeInstances answers with all of them at once, MaxResults or not (moto
    alone pages by 100 reservations)."""
    env, work = env_for(sandbox), setup(tmp_path)
    write_stack(work, count=130)
    run = recon(env, "apply", "-c", STACK, "--auto-approve", "--stats", cwd=work, timeout=400)
    assert run.code == 0, run.both
    ec2 = client(env, "ec2")
    for extra in ({}, {"MaxResults": 5}):
        reply = ec2.describe_instances(Filters=[{"Name": "tag:recon:stack", "Values": ["hosts"]}], **extra)
        assert "NextToken" not in reply and len(reply["Reservations"]) == 130
    planned = recon(env, "plan", "-c", STACK, "--detailed-exitcode", "--stats", cwd=work)
    assert planned.code == 0 and "ec2.DescribeInstances 1\n" in planned.err, planned.both


def test_new_instance_type_plans_and_counts_as_replacements(installed_sandbox, tmp_path: Path) -> None:
    """Each host a new type replaces is a +/- of its index, one add and one destroy, in every format."""
    env, work = env_for(installed_sandbox), copy_examples(tmp_path / "repo")
    assert recon(env, "apply", "-c", "docker.toml", "--auto-approve", cwd=work).code == 0
    old = json.loads((work / "state" / "docker.json").read_text())["resources"]["docker_hosts.docker"]["attrs"]
    stack = work / "docker.toml"
    stack.write_text(stack.read_text().replace('instance_type = "m1.medium"', 'instance_type = "m1.large"'))

    text = recon(env, "plan", "-c", "docker.toml", cwd=work)
    assert text.code == 0, text.both
    for index, old_id in enumerate(old["instance_ids"]):
        assert f"+/- docker_hosts.docker[{index}] (replaces {old_id})" in text.out
    assert "updated in place" not in text.out.split("load_balancers.")[0]
    assert "Plan: 2 to add, 1 to change, 2 to destroy." in text.out  # the load balancer follows the hosts

    document = json.loads(recon(env, "plan", "-c", "docker.toml", "--format", "json", cwd=work).out)
    [hosts_change] = [c for c in document["resource_changes"] if c["address"] == "docker_hosts.docker"]
    assert hosts_change["actions"] == ["create", "delete"] and hosts_change["replace_paths"] == ["instance_type"]
    assert [r["replaces"] for r in hosts_change["replacements"]] == [[i] for i in old["instance_ids"]]
    assert document["summary"] == {"add": 2, "change": 1, "destroy": 2}

    comment = recon(env, "plan", "-c", "docker.toml", "--format", "markdown", cwd=work).out
    assert "> [!WARNING]\n> **2 to destroy:** `docker_hosts.docker[0] (" in comment

    done = recon(env, "apply", "-c", "docker.toml", "--auto-approve", cwd=work)
    assert done.code == 0, done.both
    assert "Apply complete! Resources: 2 added, 1 changed, 2 destroyed." in done.out
