"""End to end: the real CLI against the sandbox over HTTP, on the example stack."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from e2e import client, copy_examples, properties_client, property_value, recon

STACK = "loadbalancer.toml"


def test_the_whole_story(installed_sandbox, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    env = installed_sandbox.env

    first = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert first.code == 0, first.both
    assert "Apply complete! Resources: 3 added, 2 changed, 0 destroyed." in first.out
    elb = client(env, "elb")
    (lb,) = elb.describe_load_balancers(LoadBalancerNames=["TestLoadBalancer"])["LoadBalancerDescriptions"]
    assert lb["AvailabilityZones"] == ["ViciousLiesAndDangerousRumors"]
    assert lb["HealthCheck"]["Target"] == "HTTP:80/"
    assert property_value(env, "loadbalancing.loadbalancer_vm_keyname") == "euca-elb"
    internal = lb["SourceSecurityGroup"]["GroupName"]
    assert internal.startswith("euca-internal-") and internal.endswith("-TestLoadBalancer")
    group = client(env, "ec2").describe_security_groups(GroupNames=[internal])["SecurityGroups"][0]
    assert any(p.get("FromPort") == 22 and {"CidrIp": "0.0.0.0/0"} in p.get("IpRanges", [])
               for p in group["IpPermissions"])

    state_file = work / "state" / "loadbalancer.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    state = json.loads(state_file.read_text())
    assert state["version"] == 1 and state["serial"] >= 5
    assert sorted(state["resources"]) == sorted([
        "keypairs.euca-elb", "load_balancers.TestLoadBalancer", "security_groups.elb-internal",
        "properties.loadbalancing.loadbalancer_instance_type", "properties.loadbalancing.loadbalancer_vm_keyname",
        "properties.loadbalancing.loadbalancer_num_vm"])

    again = recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work)
    assert again.code == 0, again.both
    assert "No changes" in again.out

    in_sync = recon(env, "drift", "-c", STACK, cwd=work)
    assert in_sync.code == 0 and "No drift" in in_sync.out

    # An administrator changes a property and a listener by hand.
    properties_client(env).modify_property_value(Name="loadbalancing.loadbalancer_instance_type", Value="m1.large")
    elb.delete_load_balancer_listeners(LoadBalancerName="TestLoadBalancer", LoadBalancerPorts=[80])
    elb.create_load_balancer_listeners(LoadBalancerName="TestLoadBalancer", Listeners=[
        {"Protocol": "TCP", "LoadBalancerPort": 80, "InstanceProtocol": "TCP", "InstancePort": 8080}])

    drift = recon(env, "drift", "-c", STACK, cwd=work)
    assert drift.code == 2, drift.both
    assert "properties.loadbalancing.loadbalancer_instance_type" in drift.out
    assert 'value: "m1.large" -> "m1.medium"' in drift.out
    assert "load_balancers.TestLoadBalancer" in drift.out and "listeners" in drift.out
    assert "Changed outside recon (2)" in drift.out

    report = json.loads(recon(env, "drift", "-c", STACK, "--format", "json", cwd=work).out)
    assert report["in_sync"] is False
    assert {c["address"]: c["changed_paths"] for c in report["changed"]} == {
        "properties.loadbalancing.loadbalancer_instance_type": ["value"],
        "load_balancers.TestLoadBalancer": ["listeners"]}

    repair = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert repair.code == 0, repair.both
    assert "0 added, 2 changed, 0 destroyed" in repair.out
    assert property_value(env, "loadbalancing.loadbalancer_instance_type") == "m1.medium"
    (lb,) = elb.describe_load_balancers(LoadBalancerNames=["TestLoadBalancer"])["LoadBalancerDescriptions"]
    assert [d["Listener"]["Protocol"] for d in lb["ListenerDescriptions"]] == ["HTTP"]
    assert recon(env, "drift", "-c", STACK, cwd=work).code == 0

    # Removing a property from the file leaves it alone; removing the load balancer deletes it.
    text = (work / STACK).read_text()
    text = text.replace('"loadbalancing.loadbalancer_instance_type" = "m1.medium"\n', "")
    text = text[: text.index("[load_balancers.TestLoadBalancer]")]
    (work / STACK).write_text(text)
    shrink_plan = recon(env, "plan", "-c", STACK, cwd=work)
    assert "load_balancers.TestLoadBalancer will be destroyed" in shrink_plan.out
    assert "security_groups.elb-internal will be destroyed (removed from the file: only the rules recon added " \
           "are revoked, the group is the cloud's)" in shrink_plan.out
    assert "Plan: 0 to add, 0 to change, 2 to destroy." in shrink_plan.out
    assert "loadbalancing.loadbalancer_instance_type" in shrink_plan.out  # named as no longer managed
    shrink = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert shrink.code == 0, shrink.both
    assert elb.describe_load_balancers()["LoadBalancerDescriptions"] == []
    assert property_value(env, "loadbalancing.loadbalancer_instance_type") == "m1.medium"
    listed = recon(env, "state", "list", "-c", STACK, cwd=work).out.split()
    assert "load_balancers.TestLoadBalancer" not in listed
    assert "properties.loadbalancing.loadbalancer_instance_type" not in listed
    assert "keypairs.euca-elb" in listed
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0


def test_apply_refuses_without_terminal_or_approval(sandbox, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    run = recon(sandbox.env, "apply", "-c", STACK, cwd=work)
    assert run.code == 1
    assert "--auto-approve" in run.err
    assert client(sandbox.env, "elb").describe_load_balancers()["LoadBalancerDescriptions"] == []
    assert not (work / "state" / "loadbalancer.json").exists()


def test_second_apply_fails_at_once_naming_the_holder(sandbox, tmp_path: Path) -> None:
    from reconciler.engine import Workspace

    work = copy_examples(tmp_path / "repo")
    ws = Workspace.open(work / STACK, env=sandbox.env)
    with ws.backend.lock("apply") as held:
        run = recon(sandbox.env, "apply", "-c", STACK, "--auto-approve", cwd=work, timeout=120)
        assert run.code == 1
        assert "state is locked by" in run.err and held.who in run.err and held.id in run.err
        assert "--lock-timeout" in run.err  # a live holder's local lock is waited for, not forced
        # drift takes no lock
        assert recon(sandbox.env, "drift", "-c", STACK, cwd=work).code == 2
    assert client(sandbox.env, "elb").describe_load_balancers()["LoadBalancerDescriptions"] == []


def test_force_unlock(sandbox, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    lock = work / "state" / "loadbalancer.json.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps({"id": "abc-123", "who": "ci@runner (pid 1)", "operation": "apply",
                                "created": "2026-01-01T00:00:00+00:00"}))
    wrong = recon(sandbox.env, "force-unlock", "wrong-id", "-c", STACK, cwd=work)
    assert wrong.code == 1 and "does not match" in wrong.err and lock.exists()
    right = recon(sandbox.env, "force-unlock", "abc-123", "-c", STACK, cwd=work)
    assert right.code == 0 and "ci@runner" in right.out and not lock.exists()


def test_target_and_json_plan(sandbox, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    plan = json.loads(recon(sandbox.env, "plan", "-c", STACK, "--format", "json", cwd=work).out)
    assert plan["format_version"] == "1.0"
    assert plan["summary"] == {"add": 3, "change": 2, "destroy": 0}
    by_address = {c["address"]: c for c in plan["resource_changes"]}
    assert by_address["load_balancers.TestLoadBalancer"]["actions"] == ["create"]
    assert by_address["security_groups.elb-internal"]["after"]["name"] == "(known after apply)"
    assert by_address["properties.loadbalancing.loadbalancer_vm_keyname"]["after"] == {"value": "euca-elb"}

    run = recon(sandbox.env, "apply", "-c", STACK, "--auto-approve", "--target",
                "properties.loadbalancing.loadbalancer_vm_keyname", "--stats", cwd=work)
    assert run.code == 0, run.both
    assert "1 added, 1 changed, 0 destroyed" in run.out  # the property and the key pair it names
    assert client(sandbox.env, "elb").describe_load_balancers()["LoadBalancerDescriptions"] == []
    calls = re.search(r"stats: (\d+) cloud calls", run.err)
    assert calls and int(calls.group(1)) > 0
    for phase in ("prepare", "read", "diff", "apply"):
        assert re.search(rf"\b{phase} \d+\.\d+s", run.err), phase

    bad = recon(sandbox.env, "plan", "-c", STACK, "--target", "load_balancers.TestLoadBalancr", cwd=work)
    assert bad.code == 1 and "did you mean 'load_balancers.TestLoadBalancer'" in bad.err


def test_hidden_property_never_shown_or_stored(sandbox, tmp_path: Path) -> None:
    secret = "s3cr3t-MARKER-7f3a"
    work = tmp_path / "repo"
    work.mkdir()
    (work / "recon.toml").write_text(
        '[stack]\nname = "hidden"\n[properties]\n'
        f'"objectstorage.s3provider.s3secretkey" = "{secret}"\n')
    outputs = [recon(sandbox.env, "plan", cwd=work), recon(sandbox.env, "plan", "--format", "json", cwd=work)]
    apply = recon(sandbox.env, "apply", "--auto-approve", "--parallelism", "1", cwd=work)
    assert apply.code == 0, apply.both
    outputs.append(apply)
    second = recon(sandbox.env, "plan", "--detailed-exitcode", cwd=work)
    assert second.code == 0, second.both
    outputs += [second, recon(sandbox.env, "show", cwd=work), recon(sandbox.env, "drift", "--format", "json", cwd=work)]
    for run in outputs:
        assert secret not in run.both
    assert "(sensitive)" in outputs[0].out
    for path in (work / "state").iterdir():
        assert secret not in path.read_text()
    (work / "recon.toml").write_text((work / "recon.toml").read_text().replace(secret, secret + "-rotated"))
    rotated = recon(sandbox.env, "plan", "--detailed-exitcode", cwd=work)
    assert rotated.code == 2 and secret not in rotated.both and "(sensitive)" in rotated.out
