"""Lost replies, one mutating call at a time (issue 12): the cloud acted on the call, but its reply
never reached recon (a connection reset after the cloud answered). recon retries; the retry must
find what the first attempt made rather than make it again, and the apply succeed. Every k of
the mixed stack of ``test_crash`` gets its own fresh sandbox: the k-th mutating call of making
the stack loses its reply, then the k-th of changing it (the hosts' type, so a rolling
replacement; a listener; a group's rule; a property), then the k-th of taking it down (every
block removed from the file); each ends exactly as the file says, with a clean plan. Every k of the mixed stack of ``test_crash`` gets its own fresh sandbox; each run ends
with every resource exactly once and a clean plan.
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


def apply_losing(sandbox, work: Path, k: int):
    """Apply with the reply of the k-th mutating call lost; the proxy tells which call that was."""
    proxy = FaultProxy(sandbox.url, lose_reply_of=k)
    try:
        run = recon({**proxy.env(sandbox.env), **WAIT, **RETRY}, "apply", "-c", STACK, "--auto-approve", cwd=work)
    finally:
        proxy.close()
    assert "Traceback" not in run.both, run.both
    assert run.code == 0, f"lost reply of {proxy.lost}:\n{run.both}"
    return proxy


def calls_without_the_retry(proxy: FaultProxy) -> int:
    """The mutating calls an apply makes when no reply is lost (the lost one is retried once)."""
    return len(proxy.mutations) - len(proxy.lost)


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


@pytest.mark.parametrize("k", range(1, MUTATIONS + 1))
def test_lost_reply_of_mutation(sandbox, tmp_path: Path, k: int) -> None:
    work = copy_examples(tmp_path / "repo")
    env = {**sandbox.env, **WAIT}
    write_stack(work)
    made = apply_losing(sandbox, work, k)
    assert made.lost, f"the apply made only {len(made.mutations)} mutating calls"
    assert_exactly_the_file(env, work, read_state(work))

    change_stack(work)
    changed = apply_losing(sandbox, work, k)
    assert changed.lost or len(changed.mutations) < k
    assert calls_without_the_retry(changed) <= MUTATIONS, "the change makes more calls than this test loses"
    assert_changed(env, work)

    (work / STACK).write_text(f'[stack]\nname = "{STACK_NAME}"\n')
    taken_down = apply_losing(sandbox, work, k)
    assert taken_down.lost or len(taken_down.mutations) < k
    assert calls_without_the_retry(taken_down) <= MUTATIONS, "the take-down makes more calls than this test loses"
    assert_all_gone(env, work)
