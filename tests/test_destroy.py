"""End to end: ``recon destroy`` and ``recon plan --destroy``, through the real CLI against the sandbox.

destroy plans the deletion of everything in state (dependents first), asks like apply (and refuses
without a terminal), deletes, and leaves an empty state; ``plan --destroy -o FILE`` is shown,
saved and applied with ``recon apply FILE``; ``--target`` takes what depends on the target along and
leaves the rest; a state of another cloud is refused as apply refuses it, and nothing is deleted.
"""

from __future__ import annotations

import json
from pathlib import Path

from e2e import client, copy_examples, hosts_stack, recon, start_child

STACK = "loadbalancer.toml"


def cloud_has(env: dict[str, str]) -> dict[str, list[str]]:
    elb, ec2 = client(env, "elb"), client(env, "ec2")
    return {"load_balancers": [lb["LoadBalancerName"] for lb in elb.describe_load_balancers()["LoadBalancerDescriptions"]],
            "keypairs": [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]]}


def state_list(env: dict[str, str], work: Path, stack: str) -> list[str]:
    listed = recon(env, "state", "list", "-c", stack, cwd=work)
    assert listed.code == 0, listed.both
    return listed.out.split()


def test_destroy_asks_then_deletes_everything_in_state(installed_sandbox, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    assert recon(installed_sandbox.env, "apply", "-c", STACK, "--auto-approve", cwd=work).code == 0
    assert cloud_has(installed_sandbox.env) == {"load_balancers": ["TestLoadBalancer"], "keypairs": ["euca-elb"]}

    no_terminal = recon(installed_sandbox.env, "destroy", "-c", STACK, cwd=work)
    assert no_terminal.code == 1 and "no terminal to confirm on" in no_terminal.err
    assert cloud_has(installed_sandbox.env)["load_balancers"] == ["TestLoadBalancer"]

    done = recon(installed_sandbox.env, "destroy", "-c", STACK, "--auto-approve", cwd=work)
    assert done.code == 0, done.both
    assert "load_balancers.TestLoadBalancer will be destroyed" in done.out
    assert "keypairs.euca-elb will be destroyed" in done.out
    # the properties stay as they are (a property cannot be deleted), and leave the state
    assert "No longer managed (left as they are in the cloud, dropped from state): properties." in done.out
    assert "Plan: 0 to add, 0 to change, 3 to destroy." in done.out
    assert "Destroy complete! Resources: 0 added, 0 changed, 3 destroyed." in done.out
    assert cloud_has(installed_sandbox.env) == {"load_balancers": [], "keypairs": []}
    assert state_list(installed_sandbox.env, work, STACK) == []

    again = recon(installed_sandbox.env, "destroy", "-c", STACK, "--auto-approve", cwd=work)
    assert again.code == 0 and "No changes. The state holds nothing to destroy." in again.out
    # the file still asks for everything: a plan makes it all again
    plan = recon(installed_sandbox.env, "plan", "-c", STACK, cwd=work)
    assert "Plan: 3 to add" in plan.out


def test_plan_destroy_saved_shown_and_applied(installed_sandbox, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    assert recon(installed_sandbox.env, "apply", "-c", STACK, "--auto-approve", cwd=work).code == 0

    shown = recon(installed_sandbox.env, "plan", "-c", STACK, "--destroy", "--format", "json", "-o", "destroy.plan",
                  cwd=work)
    assert shown.code == 0, shown.both
    document = json.loads(shown.out)
    assert document["summary"] == {"add": 0, "change": 0, "destroy": 3}
    assert {c["address"]: c["actions"] for c in document["resource_changes"]} == {
        "keypairs.euca-elb": ["delete"], "load_balancers.TestLoadBalancer": ["delete"],
        "security_groups.elb-internal": ["delete"]}
    markdown = recon(installed_sandbox.env, "plan", "-c", STACK, "--destroy", "--format", "markdown", cwd=work)
    assert "**3 to destroy:**" in markdown.out
    assert cloud_has(installed_sandbox.env)["load_balancers"] == ["TestLoadBalancer"]   # a plan changes nothing

    applied = recon(installed_sandbox.env, "apply", "destroy.plan", cwd=work)
    assert applied.code == 0, applied.both
    assert "Destroy complete! Resources: 0 added, 0 changed, 3 destroyed." in applied.out
    assert cloud_has(installed_sandbox.env) == {"load_balancers": [], "keypairs": []}
    stale = recon(installed_sandbox.env, "apply", "destroy.plan", cwd=work)
    assert stale.code == 1 and "state changed since the plan was made" in stale.err


def test_destroy_target_takes_its_dependents_along(installed_sandbox, tmp_path: Path) -> None:
    env = {**installed_sandbox.env, "RECON_WAIT_INTERVAL": "0.05"}
    work = copy_examples(tmp_path / "repo")
    (work / "hosts.toml").write_text(hosts_stack("destroy", count=1) + '\n[load_balancers.web]\nzones = '
                                     '["ViciousLiesAndDangerousRumors"]\nlisteners = [{ lb_port = 80, protocol = '
                                     '"HTTP", instance_port = 80, instance_protocol = "HTTP" }]\n'
                                     'instances = "${docker_hosts.web.instance_ids}"\n')
    assert recon(env, "apply", "-c", "hosts.toml", "--auto-approve", cwd=work).code == 0

    done = recon(env, "destroy", "-c", "hosts.toml", "--auto-approve", "--target", "docker_hosts.web", cwd=work)
    assert done.code == 0, done.both
    assert "Destroy complete! Resources: 0 added, 0 changed, 2 destroyed." in done.out
    # the load balancer served the hosts: it went first; the key pair and the image stay
    assert done.err.index("load_balancers.web: destroying") < done.err.index("docker_hosts.web: destroying")
    assert state_list(env, work, "hosts.toml") == ["images.rootfs", "keypairs.admin"]
    assert cloud_has(env) == {"load_balancers": [], "keypairs": ["admin"]}
    running = client(env, "ec2").describe_instances(Filters=[
        {"Name": "tag:recon:stack", "Values": ["destroy"]}, {"Name": "instance-state-name", "Values": ["running"]}])
    assert running["Reservations"] == []


def test_destroy_refuses_the_state_of_another_cloud(installed_sandbox, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    assert recon(installed_sandbox.env, "apply", "-c", STACK, "--auto-approve", cwd=work).code == 0
    with start_child(tmp_path / "other", account_id="210987654321") as other:
        refused = recon(other.env, "destroy", "-c", STACK, "--auto-approve", cwd=work)
        assert refused.code == 1, refused.both
        assert "--allow-other-cloud" in refused.err and "Traceback" not in refused.err
        saved = recon(other.env, "plan", "-c", STACK, "--destroy", "-o", "other.plan", cwd=work)
        assert saved.code == 1 and "--allow-other-cloud" in saved.err
    assert cloud_has(installed_sandbox.env) == {"load_balancers": ["TestLoadBalancer"], "keypairs": ["euca-elb"]}
    assert len(state_list(installed_sandbox.env, work, STACK)) == 6
