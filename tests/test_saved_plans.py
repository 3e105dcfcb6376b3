"""Saved plans: apply exactly the reviewed plan, refuse a stale one and change nothing."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from e2e import client, copy_examples, property_value, recon

STACK = "loadbalancer.toml"


def lbs(env) -> list[str]:
    return [lb["LoadBalancerName"] for lb in client(env, "elb").describe_load_balancers()["LoadBalancerDescriptions"]]


def test_apply_saved_plan(installed_sandbox, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    secret = "MARKER-planfile-9d2c"
    text = (work / STACK).read_text().replace(
        '"loadbalancing.loadbalancer_num_vm" = 1\n',
        f'"loadbalancing.loadbalancer_num_vm" = 1\n"objectstorage.s3provider.s3secretkey" = "{secret}"\n')
    (work / STACK).write_text(text)
    made = recon(installed_sandbox.env, "plan", "-c", STACK, "--out", "reviewed.plan", cwd=work)
    assert made.code == 0, made.both
    plan_path = work / "reviewed.plan"
    assert stat.S_IMODE(plan_path.stat().st_mode) == 0o600
    assert secret not in plan_path.read_text()
    saved = json.loads(plan_path.read_text())
    assert saved["inputs"][STACK] and saved["inputs"]["keys/euca-elb.pub"]

    # no -c, no prompt: the plan names its file
    applied = recon(installed_sandbox.env, "apply", "reviewed.plan", cwd=work)
    assert applied.code == 0, applied.both
    assert "Apply complete! Resources: 3 added, 3 changed, 0 destroyed." in applied.out
    assert lbs(installed_sandbox.env) == ["TestLoadBalancer"]
    assert secret not in applied.both

    again = recon(installed_sandbox.env, "apply", "reviewed.plan", cwd=work)
    assert again.code == 1 and "state changed since the plan was made" in again.err


def test_stale_plans_are_refused_and_change_nothing(sandbox, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    assert recon(sandbox.env, "plan", "-c", STACK, "--out", "p1", cwd=work).code == 0

    # the file is edited after the review
    original = (work / STACK).read_text()
    (work / STACK).write_text(original.replace('"m1.medium"', '"m1.large"'))
    edited = recon(sandbox.env, "apply", "p1", cwd=work)
    assert edited.code == 1
    assert f"{STACK} changed since the plan was made" in edited.err
    (work / STACK).write_text(original)

    # a companion file changes
    key = work / "keys" / "euca-elb.pub"
    key_text = key.read_text()
    key.write_text(key_text.replace("euca-elb@example", "someone-else"))
    companion = recon(sandbox.env, "apply", "p1", cwd=work)
    assert companion.code == 1 and "keys/euca-elb.pub changed since the plan was made" in companion.err
    key.write_text(key_text)

    # the cloud changes after the review
    client(sandbox.env, "ec2").import_key_pair(KeyName="euca-elb", PublicKeyMaterial=key_text.encode())
    moved = recon(sandbox.env, "apply", "p1", cwd=work)
    assert moved.code == 1
    assert "the cloud changed since it was made" in moved.err and "keypairs.euca-elb" in moved.err

    assert lbs(sandbox.env) == []
    assert property_value(sandbox.env, "loadbalancing.loadbalancer_instance_type") == "m1.small"
    assert not (work / "state" / "loadbalancer.json").exists()

    # another apply moved the state on
    fresh = recon(sandbox.env, "plan", "-c", STACK, "--out", "p2", cwd=work)
    assert fresh.code == 0
    assert recon(sandbox.env, "apply", "-c", STACK, "--auto-approve", "--target",
                 "properties.loadbalancing.loadbalancer_num_vm", cwd=work).code == 0
    stale = recon(sandbox.env, "apply", "p2", cwd=work)
    assert stale.code == 1 and "another apply ran" in stale.err
    assert lbs(sandbox.env) == []


def test_markdown_comment(installed_sandbox, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    assert recon(installed_sandbox.env, "apply", "-c", STACK, "--auto-approve", cwd=work).code == 0
    text = (work / STACK).read_text()
    (work / STACK).write_text(text[: text.index("[load_balancers.TestLoadBalancer]")])
    comment = recon(installed_sandbox.env, "plan", "-c", STACK, "--format", "markdown", cwd=work)
    assert comment.code == 0
    lines = comment.out.splitlines()
    assert lines[0] == "<!-- recon plan -->"
    assert "**Plan: 0 to add, 0 to change, 2 to destroy.**" in lines[:5]
    warning = comment.out.index("[!WARNING]")
    assert warning < comment.out.index("<details>")
    assert "`load_balancers.TestLoadBalancer`" in comment.out[warning:comment.out.index("<details>")]
    assert comment.out.count("<details>") == 2
