"""A flaky cloud: with 20% of calls failing transiently, apply still converges, making every
resource exactly once; errors that are not transient fail fast with the cloud's message."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from faultproxy import FaultProxy

from e2e import client, copy_examples, property_value, recon

STACKS = ("loadbalancer.toml", "docker.toml")
RETRY = {"RECON_RETRY_ATTEMPTS": "10", "RECON_RETRY_INITIAL": "0.02", "RECON_RETRY_MAX": "0.1",
         "RECON_WAIT_INTERVAL": "0.1"}


@pytest.fixture
def sandbox(installed_sandbox):
    """The stacks here make load balancers: the cloud has its LB image installed."""
    return installed_sandbox


@pytest.fixture
def proxy(sandbox):
    flaky = FaultProxy(sandbox.url, share=0.2, seed=20261127)
    yield flaky
    flaky.close()


def instances_by_address(env) -> Counter:
    """The live instances by their ``recon:address`` tag; the load balancers' worker VMs (the cloud's
    own) count as ``worker``."""
    found: Counter = Counter()
    for reservation in client(env, "ec2").describe_instances()["Reservations"]:
        for instance in reservation["Instances"]:
            if instance["State"]["Name"] in ("terminated", "shutting-down"):
                continue
            tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
            worker = tags.get("Name") == "loadbalancer-resources"
            found[tags.get("recon:address") or ("worker" if worker else None)] += 1
    return found


def test_apply_converges_through_faults(sandbox, proxy, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    flaky = {**proxy.env(sandbox.env), **RETRY}
    retried = 0
    for stack in STACKS:
        run = recon(flaky, "apply", "-c", stack, "--auto-approve", "--stats", cwd=work, timeout=300)
        assert run.code == 0, run.both
        retried += int(re.search(r"stats: \d+ cloud calls \((\d+) retried\)", run.err).group(1))
    failed = sum(v for k, v in proxy.injected.items() if k != "delay")
    assert failed >= 5, proxy.injected
    # Every injected failure was retried. On a loaded machine a real transient fault (a connection
    # the proxy did not accept in time) can add a retry, so this is a lower bound; that errors which
    # are not transient are never retried is test_non_transient_errors_fail_fast's part.
    assert retried >= failed, (retried, proxy.injected)
    assert_converged(sandbox.env, work)


def test_lost_replies_do_not_duplicate(sandbox, tmp_path: Path) -> None:
    """The cloud acted but its reply was lost: the retry must not make a second resource."""
    lossy = FaultProxy(sandbox.url, share=0.3, faults=("reset-after",), seed=7)
    try:
        work = copy_examples(tmp_path / "repo")
        for stack in STACKS:
            run = recon({**lossy.env(sandbox.env), **RETRY}, "apply", "-c", stack, "--auto-approve", cwd=work,
                        timeout=300)
            assert run.code == 0, run.both
        assert lossy.injected["reset-after"] >= 5
    finally:
        lossy.close()
    assert_converged(sandbox.env, work)


def assert_converged(env, work: Path) -> None:
    """Exactly the stacks' resources, each once, and nothing left to plan."""
    names = Counter(lb["LoadBalancerName"] for lb in client(env, "elb").describe_load_balancers()
                    ["LoadBalancerDescriptions"])
    assert names == Counter({"TestLoadBalancer": 1, "DockerLoadBalancer": 1})
    groups = Counter(g["GroupName"] for g in client(env, "ec2").describe_security_groups()["SecurityGroups"])
    assert groups["docker"] == 1
    keys = Counter(k["KeyName"] for k in client(env, "ec2").describe_key_pairs()["KeyPairs"])
    assert keys == Counter({"euca-elb": 1, "docker-admin": 1})
    assert instances_by_address(env) == Counter({"docker_hosts.docker[0]": 1, "docker_hosts.docker[1]": 1,
                                                 "worker": 2})   # one per load balancer
    assert property_value(env, "loadbalancing.loadbalancer_instance_type") == "m1.medium"
    for stack in STACKS:  # the state agrees with the cloud: nothing left to do
        assert recon(env, "plan", "-c", stack, "--detailed-exitcode", cwd=work).code == 0


def test_non_transient_errors_fail_fast(sandbox, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    text = (work / "loadbalancer.toml").read_text().replace(
        'zones = ["ViciousLiesAndDangerousRumors"]', 'zones = ["NoSuchZone"]')
    (work / "loadbalancer.toml").write_text(text)
    slow_retries = {"RECON_RETRY_ATTEMPTS": "6", "RECON_RETRY_INITIAL": "2", "RECON_RETRY_MAX": "5"}
    proxy = FaultProxy(sandbox.url)  # counts the calls: a refusal is never retried
    try:
        run = recon(proxy.env({**sandbox.env, **slow_retries}), "apply", "-c", "loadbalancer.toml",
                    "--auto-approve", cwd=work)
    finally:
        proxy.close()
    assert run.code == 1
    assert proxy.requests["LoadBalancing.CreateLoadBalancer"] == 1, proxy.requests
    assert "load_balancers.TestLoadBalancer" in run.err and "NoSuchZone" in run.err
    assert "CreateLoadBalancer failed" in run.err
    assert "Apply failed" in run.out

    wrong_key = {**sandbox.env, **slow_retries, "EC2_SECRET_KEY": "wrong", "AWS_SECRET_ACCESS_KEY": "wrong",
                 "EC2_ACCESS_KEY": "AKIDNOTADMIN0000", "AWS_ACCESS_KEY_ID": "AKIDNOTADMIN0000"}
    proxy = FaultProxy(sandbox.url)
    try:
        denied = recon(proxy.env(wrong_key), "plan", "-c", "loadbalancer.toml", cwd=work)
    finally:
        proxy.close()
    assert denied.code == 1
    assert proxy.requests and set(proxy.requests.values()) == {1}, proxy.requests  # each call once
    assert "refused the credentials (access key AKIDNOTADMIN0000 from the AWS variables" in denied.err
