"""Crash safety: `recon apply` SIGKILLed right after its k-th mutating cloud call, for every k of a
mixed stack, then applied again, converges to exactly the file -- no duplicate, no orphan, a state
file that parses and whose serial never goes back.

The stack is the runbook's load balancer (properties, a key pair, the load balancer, rules on the
group the cloud makes for it) plus a group recon owns, an image whose launch permission it sets and
two Docker hosts registered with the load balancer. Each k gets a fresh sandbox, so every run makes
the same calls; the crash comes from the test-only ``RECON_CRASH_AFTER_MUTATIONS`` (see
``reconciler/crashpoints.py``). The killed apply leaves its lock file behind, but the OS lock in it
died with the process: the next apply takes it at once, without ``recon force-unlock``.
"""

from __future__ import annotations

import json
import re
import signal
from collections import Counter
from pathlib import Path

import pytest

from e2e import client, copy_examples, property_value, recon
from reconciler.state.model import State

STACK_NAME = "crash"
STACK = "crash.toml"
#: Mutating calls a clean apply of the stack makes; test_crash_after[MUTATIONS + 1] checks it.
MUTATIONS = 13
WAIT = {"RECON_WAIT_INTERVAL": "0.05"}

EXTRA = """
[security_groups.web]
description = "Docker hosts: the web container"
ingress = [{ protocol = "tcp", ports = "80", cidr = "0.0.0.0/0" }]

[images.rootfs]
name = "ubuntu-raring-docker-rootfs"
launch_permission = ["all"]

[docker_hosts.web]
image = "${images.rootfs.id}"
instance_type = "m1.small"
key_name = "${keypairs.euca-elb.name}"
zone = "ViciousLiesAndDangerousRumors"
security_groups = ["${security_groups.web.name}"]
count = 2
cloud_init = "cloud-init-docker.yaml"
"""


def write_stack(work: Path) -> None:
    text = (work / "loadbalancer.toml").read_text().replace('name = "loadbalancer"', f'name = "{STACK_NAME}"')
    text = text.replace('health_check = { target = "HTTP:80/"',
                        'instances = "${docker_hosts.web.instance_ids}"\nhealth_check = { target = "HTTP:80/"', 1)
    (work / STACK).write_text(text + EXTRA)


def read_state(work: Path) -> State | None:
    """The local state, parsed as recon parses it (None before the first save); backups too."""
    path = work / "state" / f"{STACK_NAME}.json"
    backup = path.with_name(path.name + ".backup")
    if backup.exists():
        State.loads(backup.read_text(), str(backup))
    if not path.exists():
        return None
    return State.loads(path.read_text(), str(path))


def live_hosts(env) -> Counter:
    """Pending or running instances tagged for the stack, by recon:address."""
    found: Counter = Counter()
    for page in client(env, "ec2").get_paginator("describe_instances").paginate(
            Filters=[{"Name": "tag:recon:stack", "Values": [STACK_NAME]}]):
        for reservation in page["Reservations"]:
            for item in reservation["Instances"]:
                if item["State"]["Name"] in ("pending", "running"):
                    found[{t["Key"]: t["Value"] for t in item["Tags"]}["recon:address"]] += 1
    return found


def tagged_addresses(env) -> set[str]:
    """The addresses (without [index]) of everything in the cloud tagged for the stack."""
    found = {address.split("[", 1)[0] for address in live_hosts(env)}
    for group in client(env, "ec2").describe_security_groups()["SecurityGroups"]:
        tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
        if tags.get("recon:stack") == STACK_NAME:
            found.add(tags["recon:address"])
    elb = client(env, "elb")
    names = [lb["LoadBalancerName"] for lb in elb.describe_load_balancers()["LoadBalancerDescriptions"]]
    if names:
        for description in elb.describe_tags(LoadBalancerNames=names)["TagDescriptions"]:
            tags = {t["Key"]: t["Value"] for t in description.get("Tags", [])}
            if tags.get("recon:stack") == STACK_NAME:
                found.add(tags["recon:address"])
    return found


def assert_exactly_the_file(env, work: Path, state: State) -> None:
    ec2, elb = client(env, "ec2"), client(env, "elb")
    balancers = elb.describe_load_balancers()["LoadBalancerDescriptions"]
    assert Counter(lb["LoadBalancerName"] for lb in balancers) == Counter({"TestLoadBalancer": 1})
    hosts = live_hosts(env)
    assert hosts == Counter({"docker_hosts.web[0]": 1, "docker_hosts.web[1]": 1}), hosts
    running = sorted(state.resources[_address("docker_hosts.web")].attrs["instance_ids"])
    assert sorted(i["InstanceId"] for i in balancers[0]["Instances"]) == running
    groups = Counter(g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"])
    assert groups["web"] == 1 and sum(1 for name in groups if name.startswith("euca-internal-")) == 1, groups
    assert Counter(k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]) == Counter({"euca-elb": 1})
    assert property_value(env, "loadbalancing.loadbalancer_vm_keyname") == "euca-elb"
    assert property_value(env, "loadbalancing.loadbalancer_instance_type") == "m1.medium"
    # No orphans: everything tagged for the stack is in state.
    in_state = {str(address) for address in state.resources}
    assert tagged_addresses(env) <= in_state, (tagged_addresses(env), in_state)
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0


def _address(text: str):
    from reconciler.addresses import Address

    return Address.parse(text)


def mutations(stats_err: str) -> int:
    """Mutating calls in an apply's --stats lines (what RECON_CRASH_AFTER_MUTATIONS counts)."""
    return sum(int(n) for op, n in re.findall(r"^stats:\s+\w+\.(\w+) (\d+)$", stats_err, re.M)
               if not op.startswith(("Describe", "List", "Get", "Head")))


@pytest.mark.parametrize("k", range(1, MUTATIONS + 2))
def test_crash_after(installed_sandbox, tmp_path: Path, k: int) -> None:
    env = {**installed_sandbox.env, **WAIT}
    work = copy_examples(tmp_path / "repo")
    write_stack(work)

    crashed = recon({**env, "RECON_CRASH_AFTER_MUTATIONS": str(k)}, "apply", "-c", STACK, "--auto-approve",
                    "--stats", cwd=work)
    before = read_state(work)
    serials = [before.serial if before else 0]
    if k > MUTATIONS:  # the crash point is never reached: the stack makes exactly MUTATIONS calls
        assert crashed.code == 0, crashed.both
        assert mutations(crashed.err) == MUTATIONS, (
            f"a clean apply of the stack now makes {mutations(crashed.err)} mutating calls: set MUTATIONS")
        assert_exactly_the_file(env, work, before)
        return
    assert crashed.code == -signal.SIGKILL, crashed.both

    # The killed apply's lock file is still there, but its OS lock died with it: the next apply
    # takes it at once, saying whose it was.
    left = json.loads((work / "state" / f"{STACK_NAME}.json.lock").read_text())
    again = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert again.code == 0, f"recovery after a crash at mutation {k}:\n{crashed.err}\n---\n{again.both}"
    assert "took over the lock" in again.err and left["id"] in again.err, again.err
    state = read_state(work)
    serials.append(state.serial)
    assert not (work / "state" / f"{STACK_NAME}.json.lock").exists()
    assert_exactly_the_file(env, work, state)

    # A third apply has nothing to do and leaves the state alone (or only grows its serial).
    third = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert third.code == 0 and "No changes" in third.out, third.both
    serials.append(read_state(work).serial)
    assert serials == sorted(serials), serials
