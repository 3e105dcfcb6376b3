"""Lost replies (issue 12): the cloud acted on a call, but its reply never reached recon (a
connection reset after the cloud answered). recon retries; the retry must find what the first
attempt made rather than make it again, and the apply succeed.

The mixed stack of ``test_crash`` is made, changed (the hosts' type, so a rolling replacement; a
listener; a group's rule; a property) and taken down (every block removed from the file) with the
first reply of *every* mutating call lost: each of the calls is retried after the cloud acted on it,
with the calls before it retried too. Each apply ends exactly as the file says, with every resource
exactly once and a clean plan.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from faultproxy import FaultProxy
from test_crash import MUTATIONS, STACK, STACK_NAME, WAIT, assert_exactly_the_file, live_hosts, read_state, \
    tagged_addresses, write_stack

from e2e import client, copy_examples, property_value, recon

RETRY = {"RECON_RETRY_ATTEMPTS": "5", "RECON_RETRY_INITIAL": "0.02", "RECON_RETRY_MAX": "0.1"}


@pytest.fixture
def sandbox(installed_sandbox):
    """The stack makes a load balancer: the cloud has its LB image installed."""
    return installed_sandbox


def apply_losing(sandbox, work: Path):
    """Apply with the first reply of every mutating call lost; the proxy tells which calls those were."""
    proxy = FaultProxy(sandbox.url, lose_each_once=True)
    try:
        run = recon({**proxy.env(sandbox.env), **WAIT, **RETRY}, "apply", "-c", STACK, "--auto-approve", cwd=work)
    finally:
        proxy.close()
    assert "Traceback" not in run.both, run.both
    assert run.code == 0, f"lost reply of {proxy.lost}:\n{run.both}"
    assert proxy.most_sends() <= 2, f"a call sent again after its retry was answered: {proxy.mutations}"
    return proxy


def change_stack(work: Path) -> None:
    text = (work / STACK).read_text()
    for old, new in (('instance_type = "m1.small"', 'instance_type = "m1.large"'),
                     ('ports = "80"', 'ports = "8080"'),
                     ('{ lb_port = 80, protocol = "HTTP"', '{ lb_port = 81, protocol = "HTTP"'),
                     ('"loadbalancing.loadbalancer_instance_type" = "m1.medium"',
                      '"loadbalancing.loadbalancer_instance_type" = "m1.large"')):
        assert old in text, old
        text = text.replace(old, new)
    (work / STACK).write_text(text)


def assert_changed(env, work: Path) -> None:
    ec2, elb = client(env, "ec2"), client(env, "elb")
    hosts = live_hosts(env)
    assert hosts == {"docker_hosts.web[0]": 1, "docker_hosts.web[1]": 1}, hosts
    reply = ec2.describe_instances(Filters=[{"Name": "tag:recon:stack", "Values": [STACK_NAME]},
                                            {"Name": "instance-state-name", "Values": ["running"]}])
    running = {i["InstanceId"]: i["InstanceType"] for r in reply["Reservations"] for i in r["Instances"]}
    assert set(running.values()) == {"m1.large"}, running
    [lb] = elb.describe_load_balancers()["LoadBalancerDescriptions"]
    assert sorted(i["InstanceId"] for i in lb["Instances"]) == sorted(running)
    assert [d["Listener"]["LoadBalancerPort"] for d in lb["ListenerDescriptions"]] == [81]
    [web] = [g for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] == "web"]
    assert [(r["FromPort"], r["ToPort"]) for r in web["IpPermissions"]] == [(8080, 8080)]
    assert property_value(env, "loadbalancing.loadbalancer_instance_type") == "m1.large"
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0


def assert_all_gone(env, work: Path) -> None:
    ec2 = client(env, "ec2")
    assert not live_hosts(env) and not tagged_addresses(env), tagged_addresses(env)
    assert client(env, "elb").describe_load_balancers()["LoadBalancerDescriptions"] == []
    assert "web" not in {g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0


def test_every_mutating_call_loses_its_first_reply(sandbox, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    env = {**sandbox.env, **WAIT}
    write_stack(work)
    made = apply_losing(sandbox, work)
    # every call of making the stack was answered only on its retry, or found by the read after it
    assert len(made.lost) == MUTATIONS, (made.lost, made.mutations)
    assert_exactly_the_file(env, work, read_state(work))

    change_stack(work)
    changed = apply_losing(sandbox, work)
    assert changed.lost, changed.mutations
    assert_changed(env, work)

    (work / STACK).write_text(f'[stack]\nname = "{STACK_NAME}"\n')
    taken_down = apply_losing(sandbox, work)
    assert taken_down.lost, taken_down.mutations
    assert_all_gone(env, work)
