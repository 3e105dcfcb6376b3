"""End to end: values that name a resource of the file without ``${…}`` order the apply.

The runbook's stack written with literal names -- ``"loadbalancing.loadbalancer_vm_keyname" =
"euca-elb"`` beside ``[keypairs.euca-elb]``, an ingress rule naming another group block by its
cloud name, a docker host's ``key_name`` and ``security_groups`` -- applies in one run, and then
again and again with every named resource new: each round renames the key pairs and groups, so
each apply imports and creates them anew while the property, the rule and the host that name
them are set in the same apply, ten changes at a time. Eucalyptus refuses a key name naming no
key pair and a rule naming no group; an apply that did them concurrently would lose that race
sooner or later. The plan's JSON shows the inferred edges. A name that matches nothing fails the
plan, naming it, and nothing is changed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from e2e import client, copy_examples, property_value, recon

STACK = "literal.toml"
ROUNDS = 20
KEYNAME = "loadbalancing.loadbalancer_vm_keyname"


def stack_text(suffix: str, *, group: str | None = None, key_name: str | None = None) -> str:
    """The runbook's stack; every name the others name by a literal ends with ``suffix``."""
    return f"""[stack]
name = "literal"

[cloud]
eucalyptus_version = "4.0"

[properties]
"{KEYNAME}" = "euca-elb{suffix}"
"loadbalancing.loadbalancer_instance_type" = "m1.medium"

[keypairs.euca-elb{suffix}]
public_key_file = "keys/euca-elb.pub"

[keypairs.docker-admin{suffix}]
public_key_file = "keys/docker-admin.pub"

[images.docker-rootfs]
name = "ubuntu-raring-docker-rootfs"

# the block name differs from the group's name in the cloud: rules name the latter
[security_groups.clients{suffix}]
name = "lb-clients{suffix}"
description = "where the web is reached from"

[security_groups.docker{suffix}]
description = "Docker hosts"
ingress = [
  {{ protocol = "tcp", ports = "80", group = "{group or f'lb-clients{suffix}'}" }},
  {{ protocol = "tcp", ports = "22", cidr = "0.0.0.0/0" }},
]

[docker_hosts.docker]
image = "${{images.docker-rootfs.id}}"
instance_type = "m1.medium"
key_name = "{key_name or f'docker-admin{suffix}'}"
zone = "ViciousLiesAndDangerousRumors"
security_groups = ["docker{suffix}"]

[load_balancers.TestLoadBalancer]
zones = ["ViciousLiesAndDangerousRumors"]
listeners = [{{ lb_port = 80, protocol = "HTTP", instance_port = 80, instance_protocol = "HTTP" }}]
instances = "${{docker_hosts.docker.instance_ids}}"
"""


def setup(tmp_path: Path, text: str) -> Path:
    work = copy_examples(tmp_path / "repo")
    (work / STACK).write_text(text)
    return work


def env_for(sandbox) -> dict[str, str]:
    return {**sandbox.env, "RECON_WAIT_INTERVAL": "0.05"}


def apply(env: dict[str, str], work: Path, suffix: str) -> str:
    """Apply with ten changes at a time; what is named was made before what names it started."""
    run = recon(env, "apply", "-c", STACK, "--auto-approve", "--parallelism", "10", cwd=work)
    assert run.code == 0, run.both
    assert "Apply complete!" in run.out and "failed" not in run.both, run.both
    for named, user in ((f"keypairs.euca-elb{suffix}", f"properties.{KEYNAME}"),
                        (f"security_groups.clients{suffix}", f"security_groups.docker{suffix}"),
                        (f"keypairs.docker-admin{suffix}", "docker_hosts.docker"),
                        (f"security_groups.docker{suffix}", "docker_hosts.docker")):
        done, started = run.err.index(f"{named}: done"), re.search(rf"^{re.escape(user)}: \w+…", run.err, re.M)
        assert started and done < started.start(), f"{user} started before {named} was made:\n{run.err}"
    return run.out


def test_literal_names_are_edges_in_plan_json(sandbox, tmp_path: Path) -> None:
    work = setup(tmp_path, stack_text(""))
    plan = recon(env_for(sandbox), "plan", "-c", STACK, "--format", "json", cwd=work)
    assert plan.code == 0, plan.both
    changes = {c["address"]: c for c in json.loads(plan.out)["resource_changes"]}
    assert changes[f"properties.{KEYNAME}"]["depends_on"] == ["keypairs.euca-elb"]
    assert changes[f"properties.{KEYNAME}"]["depends_on_reasons"] == {
        "keypairs.euca-elb": ["names keypairs.euca-elb"]}
    assert changes["security_groups.docker"]["depends_on_reasons"] == {
        "security_groups.clients": ["names security_groups.clients"]}
    assert changes["docker_hosts.docker"]["depends_on_reasons"] == {
        "images.docker-rootfs": ["references ${images.docker-rootfs.id}"],
        "keypairs.docker-admin": ["names keypairs.docker-admin"],
        "security_groups.docker": ["names security_groups.docker"]}
    # (and the worker launch properties of the file: a load balancer is made after them)
    assert changes["load_balancers.TestLoadBalancer"]["depends_on_reasons"] == {
        "docker_hosts.docker": ["references ${docker_hosts.docker.instance_ids}"],
        **{f"properties.{name}": [f"references ${{properties.{name}.value}}"]
           for name in ("loadbalancing.loadbalancer_instance_type", KEYNAME)}}
    assert changes["keypairs.euca-elb"]["depends_on"] == [] and changes["keypairs.euca-elb"]["depends_on_reasons"] == {}


@pytest.mark.slow
@pytest.mark.repeated
def test_literal_names_apply_twenty_times_without_refusal(installed_sandbox, tmp_path: Path) -> None:
    env = env_for(installed_sandbox)
    work = setup(tmp_path, stack_text(""))
    apply(env, work, "")
    assert property_value(env, KEYNAME) == "euca-elb"
    # Each round names new key pairs and groups: the previous round's leave the file (deleted once
    # nothing uses them), the new ones are made in the same apply as what names them.
    for round_ in range(1, ROUNDS):
        suffix = f"-{round_}"
        (work / STACK).write_text(stack_text(suffix))
        out = apply(env, work, suffix)
        assert "5 added, 2 changed, 5 destroyed" in out, out  # the host is replaced: one add, one destroy
        assert property_value(env, KEYNAME) == f"euca-elb{suffix}"
    ec2 = client(env, "ec2")
    assert sorted(k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]) == [
        f"docker-admin-{ROUNDS - 1}", f"euca-elb-{ROUNDS - 1}"]
    reservations = ec2.describe_instances(Filters=[{"Name": "tag:recon:stack", "Values": ["literal"]},
                                                   {"Name": "instance-state-name", "Values": ["running"]}])
    (host,) = [i for r in reservations["Reservations"] for i in r["Instances"]]
    assert host["KeyName"] == f"docker-admin-{ROUNDS - 1}"
    assert [g["GroupName"] for g in host["SecurityGroups"]] == [f"docker-{ROUNDS - 1}"]
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0


@pytest.mark.parametrize("change, message", [
    ({"group": "clients"}, "security_groups.docker: ingress.group 'clients' names no security group in the cloud "
                           "nor in this file (security_groups.clients is named 'lb-clients' in the cloud"),
    ({"key_name": "docker-admn"}, "docker_hosts.docker: key_name 'docker-admn' names no key pair in the cloud nor "
                                  "in this file (did you mean 'docker-admin'?)"),
])
def test_a_name_matching_nothing_fails_the_plan_and_changes_nothing(sandbox, tmp_path: Path, change,
                                                                    message) -> None:
    env = env_for(sandbox)
    work = setup(tmp_path, stack_text("", **change))
    plan = recon(env, "plan", "-c", STACK, cwd=work)
    assert plan.code == 1 and message in plan.err, plan.both
    run = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert run.code == 1 and message in run.err, run.both
    ec2 = client(env, "ec2")
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    assert [g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]] == ["default"]
    assert property_value(env, KEYNAME) == ""
    assert not (work / "state" / "literal.json").exists()
