"""End to end: ``--replace`` on plan and apply, through the real CLI against the sandbox.

``--replace docker_hosts.web[1]`` replaces that one host (a new instance at index 1, the others
untouched), shown as a replacement with the reason "requested", in a saved plan too; a whole
resource is replaced (delete, then create); what names nothing, or what recon cannot make again,
is refused before anything changes.

``--replace 'load_balancers.web[i-…]'`` replaces that one worker VM through the load balancer's
auto-scaling group (checked with plain boto3 Auto Scaling and EC2 calls): under ``workers =
"report"`` too, and although it runs the enabled image; the other worker is untouched and one always
runs. An apply SIGKILLed right after the terminate, or whose terminate reply is lost, replaces it
exactly once.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from faultproxy import FaultProxy
from test_lb_workers import NUM_VM, ZONE, Sampler, group, lb_vms, workers

from e2e import client, copy_examples, hosts_stack, images_stack, recon

STACK = "hosts.toml"
WAIT = {"RECON_WAIT_INTERVAL": "0.05"}
#: The emi property names the sandbox's image before the load balancer is made, so that it gets workers.
LB_PROPERTIES = f"""
[properties]
"loadbalancing.loadbalancer_emi" = "${{images.rootfs.id}}"
"loadbalancing.loadbalancer_num_vm" = {NUM_VM}
"""
LB_BLOCK = f"""
[load_balancers.web]
zones = ["{ZONE}"]
listeners = [{{ lb_port = 80, protocol = "HTTP", instance_port = 80, instance_protocol = "HTTP" }}]
depends_on = ["properties.loadbalancing.loadbalancer_num_vm"]
"""


def hosts(env: dict[str, str]) -> dict[str, str]:
    """recon:address -> instance id of the stack's pending or running instances."""
    reply = client(env, "ec2").describe_instances(Filters=[
        {"Name": "tag:recon:stack", "Values": ["replace"]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    found = {}
    for reservation in reply["Reservations"]:
        for item in reservation["Instances"]:
            tags = {t["Key"]: t["Value"] for t in item["Tags"]}
            assert tags["recon:address"] not in found, f"two hosts at {tags['recon:address']}"
            found[tags["recon:address"]] = item["InstanceId"]
    return found


def applied(env: dict[str, str], tmp_path: Path) -> Path:
    work = copy_examples(tmp_path / "repo")
    (work / STACK).write_text(hosts_stack("replace", count=3))
    made = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert made.code == 0, made.both
    return work


def test_replace_one_host_and_a_saved_plan_of_it(sandbox, tmp_path: Path) -> None:
    env = {**sandbox.env, "RECON_WAIT_INTERVAL": "0.05"}
    work = applied(env, tmp_path)
    before = hosts(env)
    assert sorted(before) == [f"docker_hosts.web[{i}]" for i in range(3)]

    shown = recon(env, "plan", "-c", STACK, "--replace", "docker_hosts.web[1]", "--format", "json", cwd=work)
    assert shown.code == 0, shown.both
    (change,) = [c for c in json.loads(shown.out)["resource_changes"] if c["actions"] != ["no-op"]]
    assert change["address"] == "docker_hosts.web" and change["reason"] == "requested"
    assert json.loads(shown.out)["summary"] == {"add": 1, "change": 0, "destroy": 1}
    text = recon(env, "plan", "-c", STACK, "--replace", "docker_hosts.web[1]", cwd=work)
    assert "docker_hosts.web will have 1 instance(s) replaced (new ones created first) (requested)" in text.out
    assert f"docker_hosts.web[1] (replaces {before['docker_hosts.web[1]']})" in text.out
    assert "Plan: 1 to add, 0 to change, 1 to destroy." in text.out

    done = recon(env, "apply", "-c", STACK, "--auto-approve", "--replace", "docker_hosts.web[1]", cwd=work)
    assert done.code == 0, done.both
    after = hosts(env)
    assert after["docker_hosts.web[0]"] == before["docker_hosts.web[0]"]
    assert after["docker_hosts.web[2]"] == before["docker_hosts.web[2]"]
    assert after["docker_hosts.web[1]"] != before["docker_hosts.web[1]"]
    assert "Apply complete! Resources: 1 added, 0 changed, 1 destroyed." in done.out
    again = recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work)
    assert again.code == 0, again.both    # the new host is what the file asks for

    saved = recon(env, "plan", "-c", STACK, "--replace", "docker_hosts.web[0]", "-o", "replace.plan", cwd=work)
    assert saved.code == 0, saved.both
    from_file = recon(env, "apply", "replace.plan", cwd=work)
    assert from_file.code == 0, from_file.both
    last = hosts(env)
    assert last["docker_hosts.web[0]"] != after["docker_hosts.web[0]"]
    assert {k: v for k, v in last.items() if k != "docker_hosts.web[0]"} == \
        {k: v for k, v in after.items() if k != "docker_hosts.web[0]"}


def test_replace_a_whole_resource_and_refusals(installed_sandbox, tmp_path: Path) -> None:
    env = {**installed_sandbox.env, "RECON_WAIT_INTERVAL": "0.05"}
    work = copy_examples(tmp_path / "repo")
    (work / STACK).write_text(hosts_stack("replace", count=1) + LB_PROPERTIES + LB_BLOCK)
    assert recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work).code == 0
    elb = client(env, "elb")
    created = elb.describe_load_balancers()["LoadBalancerDescriptions"][0]["CreatedTime"]

    plan = recon(env, "plan", "-c", STACK, "--replace", "load_balancers.web", cwd=work)
    assert plan.code == 0, plan.both
    assert "load_balancers.web must be replaced (requested)" in plan.out
    assert "Plan: 1 to add, 0 to change, 1 to destroy." in plan.out
    done = recon(env, "apply", "-c", STACK, "--auto-approve", "--replace", "load_balancers.web", cwd=work)
    assert done.code == 0, done.both
    (lb,) = elb.describe_load_balancers()["LoadBalancerDescriptions"]
    assert lb["LoadBalancerName"] == "web" and lb["CreatedTime"] >= created

    for address, message in [
        ("docker_hosts.web[5]", "--replace docker_hosts.web: no host [5] runs (the indexes of its hosts: [0])"),
        ("docker_hosts.wbe", "docker_hosts.wbe is not a block of the file"),
        ("images.rootfs", "--replace images.rootfs: recon cannot make this"),
        ("load_balancers.web[0]", "--replace load_balancers.web: no worker 0 (its workers: i-"),
    ]:
        refused = recon(env, "plan", "-c", STACK, "--replace", address, cwd=work)
        assert refused.code == 1 and message in refused.err, (address, refused.both)
        assert "Traceback" not in refused.err
    outside = recon(env, "plan", "-c", STACK, "--target", "load_balancers.web", "--replace", "docker_hosts.web[0]",
                    cwd=work)
    assert outside.code == 1 and "not among the --target addresses" in outside.err, outside.both


# --- one worker of a load balancer ------------------------------------------------------------------

def lb_applied(env: dict[str, str], tmp_path: Path, mode: str | None = None) -> tuple[Path, str, dict[str, str]]:
    """The load balancer made with its workers on the sandbox's image: the work folder, that image
    (the enabled emi), and the workers (image by instance id)."""
    work = copy_examples(tmp_path / "repo")
    (work / "recon.toml").write_text(images_stack("replace", keypair=False) + LB_PROPERTIES + LB_BLOCK
                                     + (f'workers = "{mode}"\n' if mode else ""))
    made = recon(env, "apply", "--auto-approve", cwd=work)
    assert made.code == 0, made.both
    emi = client(env, "properties").describe_properties(Properties=["loadbalancing.loadbalancer_emi"])[
        "properties"][0]["value"]
    found = workers(env)
    assert len(found) == NUM_VM and set(found.values()) == {emi}, (found, emi)
    return work, emi, found


def assert_one_replaced(env: dict[str, str], before: dict[str, str], victim: str, emi: str) -> dict[str, str]:
    """Exactly ``victim`` is replaced: its successor runs ``emi``, the others are untouched, the group
    keeps its capacity and no LB VM runs outside it; the workers now."""
    now = workers(env)
    assert len(now) == NUM_VM and victim not in now, (before, now)
    assert set(before) - {victim} <= set(now), (before, now)
    (new,) = set(now) - set(before)
    assert now[new] == emi
    assert group(env)["DesiredCapacity"] == NUM_VM and set(lb_vms(env)) == set(now)
    state = client(env, "ec2").describe_instances(InstanceIds=[victim])["Reservations"][0]["Instances"][0]["State"]
    assert state["Name"] in ("shutting-down", "terminated"), state
    return now


def test_replace_one_lb_worker_under_report(sandbox, tmp_path: Path) -> None:
    env = {**sandbox.env, **WAIT}
    work, emi, before = lb_applied(env, tmp_path)
    victim, other = sorted(before)
    address = f"load_balancers.web[{victim}]"

    shown = recon(env, "plan", "--replace", address, "--format", "json", cwd=work)
    assert shown.code == 0, shown.both
    (change,) = [c for c in json.loads(shown.out)["resource_changes"] if c["actions"] != ["no-op"]]
    assert change["address"] == "load_balancers.web" and change["reason"] == "requested", change
    assert change["replacements"] == [{"address": address, "replaces": [victim]}]
    assert json.loads(shown.out)["summary"] == {"add": 1, "change": 0, "destroy": 1}
    text = recon(env, "plan", "--replace", address, cwd=work)
    assert "# load_balancers.web will have 1 instance(s) replaced (requested)" in text.out, text.out
    assert f"-/+ {address} (a new instance takes its place)" in text.out
    assert "Plan: 1 to add, 0 to change, 1 to destroy." in text.out
    assert workers(env) == before                       # a plan changes nothing

    sampler = Sampler(env, emi)
    sampler.start()
    done = recon(env, "apply", "--auto-approve", "--replace", address, cwd=work)
    samples = sampler.finish()
    assert done.code == 0, done.both
    assert "Apply complete! Resources: 1 added, 0 changed, 1 destroyed." in done.out, done.out
    assert f"replacing worker {victim} (" in done.err and "requested" in done.err, done.err
    assert samples and all(len(running) >= NUM_VM - 1 for running, _ in samples), samples   # one always serves
    after = assert_one_replaced(env, before, victim, emi)
    assert other in after
    assert recon(env, "plan", "--detailed-exitcode", cwd=work).code == 0

    for command in ("plan", "apply"):
        refused = recon(env, command, *(["--auto-approve"] if command == "apply" else []), "--replace",
                        "load_balancers.web[i-0badc0de]", cwd=work)
        assert refused.code == 1 and "Traceback" not in refused.err, refused.both
        assert "--replace load_balancers.web: no worker i-0badc0de (its workers: " in refused.err, refused.err
        assert all(f"{worker} (running, InService" in refused.err for worker in after), refused.err
    assert workers(env) == after


def test_a_worker_replacement_killed_after_its_terminate_is_not_made_twice(sandbox, tmp_path: Path) -> None:
    env = {**sandbox.env, **WAIT}
    work, emi, before = lb_applied(env, tmp_path, mode="roll")
    victim = sorted(before)[1]
    address = f"load_balancers.web[{victim}]"

    crashed = recon({**env, "RECON_CRASH_AFTER": "autoscaling.TerminateInstanceInAutoScalingGroup"}, "apply",
                    "--auto-approve", "--replace", address, cwd=work)
    assert crashed.code == -signal.SIGKILL, crashed.both
    after_kill = assert_one_replaced(env, before, victim, emi)

    again = recon(env, "apply", "--auto-approve", "--replace", address, cwd=work)   # the same command
    assert again.code == 1 and f"--replace load_balancers.web: no worker {victim} (its workers: " in again.err, \
        again.both
    assert workers(env) == after_kill
    plain = recon(env, "apply", "--auto-approve", cwd=work)
    assert plain.code == 0 and "replacing worker" not in plain.err, plain.both
    assert workers(env) == after_kill and group(env)["DesiredCapacity"] == NUM_VM
    assert recon(env, "plan", "--detailed-exitcode", cwd=work).code == 0


def test_a_lost_terminate_reply_replaces_the_worker_once(sandbox, tmp_path: Path) -> None:
    env = {**sandbox.env, **WAIT}
    work, emi, before = lb_applied(env, tmp_path)
    victim = sorted(before)[0]
    proxy = FaultProxy(sandbox.url, lose_each_once=True)
    try:
        done = recon({**proxy.env(env), "RECON_RETRY_INITIAL": "0.02", "RECON_RETRY_MAX": "0.1"}, "apply",
                     "--auto-approve", "--replace", f"load_balancers.web[{victim}]", cwd=work)
    finally:
        proxy.close()
    assert proxy.lost == ["AutoScaling.TerminateInstanceInAutoScalingGroup"], proxy.mutations
    assert proxy.most_sends() <= 2, proxy.mutations
    assert done.code == 0 and "Traceback" not in done.both, done.both
    assert_one_replaced(env, before, victim, emi)
    assert recon(env, "plan", "--detailed-exitcode", cwd=work).code == 0


def test_a_requested_worker_out_of_service_is_replaced_without_waiting_for_it(sandbox, tmp_path: Path) -> None:
    """A worker the group lists, running but not in service (here put in standby, which makes the group
    launch a stand-in: Eucalyptus 4.0 has no standby, but a worker stuck on its way into service looks
    the same), is what ``--replace`` is for: apply does not wait for it to come into service first."""
    env = {**sandbox.env, **WAIT}
    work, emi, before = lb_applied(env, tmp_path)
    victim, other = sorted(before)
    client(env, "autoscaling").enter_standby(InstanceIds=[victim], AutoScalingGroupName=group(env)[
        "AutoScalingGroupName"], ShouldDecrementDesiredCapacity=False)
    (stand_in,) = set(workers(env)) - set(before)

    done = recon(env, "apply", "--auto-approve", "--replace", f"load_balancers.web[{victim}]", cwd=work)
    assert done.code == 0, done.both
    assert f"replacing worker {victim} (" in done.err, done.err
    now = workers(env)
    assert set(now) == {other, stand_in} and group(env)["DesiredCapacity"] == NUM_VM, now
    assert all(i["LifecycleState"] == "InService" for i in group(env)["Instances"])
