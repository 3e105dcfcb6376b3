"""End to end: ``--replace`` on plan and apply, through the real CLI against the sandbox.

``--replace docker_hosts.web[1]`` replaces that one host (a new instance at index 1, the others
untouched), shown as a replacement with the reason "requested", in a saved plan too; a whole
resource is replaced (delete, then create); what names nothing, or what recon cannot make again,
is refused before anything changes.
"""

from __future__ import annotations

import json
from pathlib import Path

from e2e import client, copy_examples, hosts_stack, recon

STACK = "hosts.toml"


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
    (work / STACK).write_text(hosts_stack("replace", count=1) + '\n[load_balancers.web]\nzones = '
                              '["ViciousLiesAndDangerousRumors"]\nlisteners = [{ lb_port = 80, protocol = "HTTP", '
                              'instance_port = 80, instance_protocol = "HTTP" }]\n')
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
        ("load_balancers.web[0]", "load_balancers.web has no parts to replace"),
    ]:
        refused = recon(env, "plan", "-c", STACK, "--replace", address, cwd=work)
        assert refused.code == 1 and message in refused.err, (address, refused.both)
        assert "Traceback" not in refused.err
    outside = recon(env, "plan", "-c", STACK, "--target", "load_balancers.web", "--replace", "docker_hosts.web[0]",
                    cwd=work)
    assert outside.code == 1 and "not among the --target addresses" in outside.err, outside.both
