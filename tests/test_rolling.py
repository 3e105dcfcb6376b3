"""End to end: a rolling replacement of docker hosts keeps their load balancer serving.

Changing the hosts' instance type replaces them, one index at a time. A thread samples the load
balancer's registered instances and the hosts' states all through the apply; each new host is
running and registered before the old one of its index is deregistered, and deregistered before
it is terminated, so the load balancer never serves fewer than ``count - max_unavailable`` running
hosts. An apply killed mid-roll leaves a cloud the next apply finishes without a new launch.
"""

from __future__ import annotations

import re
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e import client, copy_examples, hosts_stack, recon

STACK = "rolling.toml"
HOSTS = "docker_hosts.web"
LB = "web"
COUNT, MAX_UNAVAILABLE = 2, 1


def write_stack(work: Path, instance_type: str) -> None:
    (work / STACK).write_text(hosts_stack("rolling", keypair=False, instance_type=instance_type, count=COUNT,
                                          max_unavailable=MAX_UNAVAILABLE, extra=f"""
[load_balancers.{LB}]
zones = ["ViciousLiesAndDangerousRumors"]
listeners = [{{ lb_port = 80, protocol = "HTTP", instance_port = 80 }}]
instances = "${{docker_hosts.web.instance_ids}}"
"""))


def env_for(sandbox) -> dict[str, str]:
    return {**sandbox.env, "RECON_WAIT_INTERVAL": "0.05"}


def apply(env: dict[str, str], work: Path, **extra: str):
    return recon({**env, **extra}, "apply", "-c", STACK, "--auto-approve", cwd=work)


def registered(env: dict[str, str], elb=None) -> set[str]:
    elb = elb or client(env, "elb")
    [lb] = elb.describe_load_balancers(LoadBalancerNames=[LB])["LoadBalancerDescriptions"]
    return {i["InstanceId"] for i in lb["Instances"]}


def instance_states(env: dict[str, str], ec2=None) -> dict[str, str]:
    """State of every instance of the stack, terminated ones too, by id."""
    ec2 = ec2 or client(env, "ec2")
    reply = ec2.describe_instances(Filters=[{"Name": "tag:recon:stack", "Values": ["rolling"]}])
    return {i["InstanceId"]: i["State"]["Name"] for r in reply["Reservations"] for i in r["Instances"]}


def running(env: dict[str, str]) -> set[str]:
    return {i for i, state in instance_states(env).items() if state == "running"}


@dataclass
class Sample:
    registered: set[str]     # the load balancer's instances
    states: dict[str, str]   # the hosts' states, read after ``registered``


class Sampler(threading.Thread):
    """Samples the load balancer and the hosts as fast as it can until told to stop, and once more."""

    def __init__(self, env: dict[str, str]):
        super().__init__(daemon=True)
        self.env = env
        self.samples: list[Sample] = []
        self.done = threading.Event()
        self.sampling = threading.Event()
        self.error: BaseException | None = None

    def start(self) -> None:
        """Start, and return once the first sample is taken (before the apply it watches begins)."""
        super().start()
        self.sampling.wait(120)
        assert self.samples and self.error is None, f"no first sample: {self.error!r}"

    def run(self) -> None:
        try:
            elb, ec2 = client(self.env, "elb"), client(self.env, "ec2")
            while True:
                last = self.done.is_set()
                self.samples.append(Sample(registered(self.env, elb), instance_states(self.env, ec2)))
                self.sampling.set()
                if last:
                    return
        except BaseException as exc:  # reported by the test
            self.error = exc
            self.sampling.set()

    def finish(self) -> list[Sample]:
        self.done.set()
        self.join()
        assert self.error is None, repr(self.error)
        return self.samples


def check_serving(samples: list[Sample], output: str) -> None:
    """The load balancer never had fewer than ``count - max_unavailable`` hosts registered, and
    never a host registered that had been seen terminated before (so every registered host ran).

    Each check compares reads in the order they were made (a sample's instances, then the states
    read before them), so it holds however slow the samples are.
    """
    for number, sample in enumerate(samples):
        assert len(sample.registered) >= COUNT - MAX_UNAVAILABLE, (number, sample, output)
        if number:
            gone = {i for i, state in samples[number - 1].states.items() if state in ("shutting-down", "terminated")}
            assert not sample.registered & gone, (number, sample, "registered after it was terminated", output)
    assert all(samples[-1].states[i] == "running" for i in samples[-1].registered), samples[-1]


def check_order(stderr: str, old: list[str]) -> None:
    """recon's progress: each old host is deregistered (after its successor runs and is registered),
    then terminated."""
    lines = stderr.splitlines()

    def first(pattern: str) -> int:
        found = [n for n, line in enumerate(lines) if re.search(pattern, line)]
        assert found, f"no line matching {pattern!r} in:\n{stderr}"
        return found[0]

    for index, old_id in enumerate(old):
        swap = first(rf"^load_balancers\.{LB}: registering (i-\w+); deregistering {old_id}$")
        new_id = re.search(r"registering (i-\w+);", lines[swap]).group(1)
        assert first(rf"^{re.escape(HOSTS)}: \[{index}\] {new_id} running") < swap
        assert swap < first(rf"^{re.escape(HOSTS)}: terminating \[{index}\] {old_id} \(replaced\)$")


def host_ids(env: dict[str, str]) -> dict[str, list[str]]:
    """The running hosts' ids by their recon:address."""
    reply = client(env, "ec2").describe_instances(Filters=[{"Name": "tag:recon:stack", "Values": ["rolling"]},
                                                           {"Name": "instance-state-name", "Values": ["running"]}])
    found: dict[str, list[str]] = {}
    for item in (i for r in reply["Reservations"] for i in r["Instances"]):
        address = {t["Key"]: t["Value"] for t in item["Tags"]}["recon:address"]
        found.setdefault(address, []).append(item["InstanceId"])
    return found


@pytest.mark.parametrize("target", [None, HOSTS], ids=["whole-file", "target-hosts-only"])
def test_rolling_replacement_keeps_the_load_balancer_serving(installed_sandbox, tmp_path: Path, target) -> None:
    """With ``--target`` of the hosts alone the load balancer is not in the plan, and still serves."""
    env, work = env_for(installed_sandbox), copy_examples(tmp_path / "repo")
    write_stack(work, "m1.small")
    first = apply(env, work)
    assert first.code == 0, first.both
    old = [host_ids(env)[f"{HOSTS}[{i}]"][0] for i in range(COUNT)]
    assert registered(env) == set(old) == running(env)

    write_stack(work, "m1.large")
    targets = ["--target", target] if target else []
    plan = recon(env, "plan", "-c", STACK, *targets, cwd=work)
    if target is None:
        assert f"Plan: {COUNT} to add, 1 to change, {COUNT} to destroy." in plan.out, plan.out
    else:
        assert "load_balancers" not in plan.out, plan.out
    sampler = Sampler(env)
    sampler.start()
    roll = recon(env, "apply", "-c", STACK, "--auto-approve", *targets, cwd=work)
    samples = sampler.finish()
    assert roll.code == 0, roll.both
    check_serving(samples, roll.both)
    check_order(roll.err, old)
    new = set(running(env))
    assert len(new) == COUNT and not new & set(old)
    assert registered(env) == new == samples[-1].registered
    assert {instance_states(env)[i] for i in old} <= {"shutting-down", "terminated"}
    again = recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work)
    assert again.code == 0 and "No changes" in again.out, again.both


def test_an_apply_killed_mid_roll_is_finished_by_the_next(installed_sandbox, tmp_path: Path) -> None:
    env, work = env_for(installed_sandbox), copy_examples(tmp_path / "repo")
    write_stack(work, "m1.small")
    assert apply(env, work).code == 0
    old = [host_ids(env)[f"{HOSTS}[{i}]"][0] for i in range(COUNT)]

    # Killed right after the first old host left the load balancer, before it was terminated.
    write_stack(work, "m1.large")
    crashed = apply(env, work, RECON_CRASH_AFTER="elb.DeregisterInstancesFromLoadBalancer")
    assert crashed.code == -signal.SIGKILL, crashed.both
    hosts = host_ids(env)
    assert len(hosts[f"{HOSTS}[0]"]) == 2 and hosts[f"{HOSTS}[1]"] == [old[1]]
    [new0] = set(hosts[f"{HOSTS}[0]"]) - {old[0]}
    assert registered(env) == {new0, old[1]}

    sampler = Sampler(env)
    sampler.start()
    resumed = apply(env, work)
    samples = sampler.finish()
    assert resumed.code == 0, resumed.both
    assert "launching [0]" not in resumed.err, resumed.err   # the new host of [0] is kept, not launched again
    check_serving(samples, resumed.both)
    hosts = host_ids(env)
    assert sorted(hosts) == [f"{HOSTS}[{i}]" for i in range(COUNT)] and hosts[f"{HOSTS}[0]"] == [new0]
    assert all(len(ids) == 1 for ids in hosts.values()) and hosts[f"{HOSTS}[1]"] != [old[1]]
    assert registered(env) == running(env) == {ids[0] for ids in hosts.values()}
    again = recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work)
    assert again.code == 0 and "No changes" in again.out, again.both
