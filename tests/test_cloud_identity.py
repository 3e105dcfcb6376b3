"""End to end: the plan names the cloud and account, and a state of one cloud is refused on another."""

from __future__ import annotations

import json
from pathlib import Path

from e2e import copy_examples, properties_client, recon
from reconciler.sandbox import start_child

STACK = "loadbalancer.toml"


def _host(cloud) -> str:
    return f"127.0.0.1:{cloud.port}"


def test_state_of_one_cloud_is_refused_on_another(sandbox, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    account = sandbox.env["EC2_USER_ID"]
    first = recon(sandbox.env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert first.code == 0, first.both
    assert f"Stack loadbalancer on cloud {_host(sandbox)} (account {account}, region " in first.out
    state_file = work / "state" / "loadbalancer.json"
    assert json.loads(state_file.read_text())["cloud"]["host"] == _host(sandbox)

    with start_child(tmp_path / "other") as other:
        for command in (("plan",), ("apply", "--auto-approve")):
            refused = recon(other.env, *command, "-c", STACK, cwd=work)
            assert refused.code == 1, refused.both
            assert "Traceback" not in refused.both
            assert _host(sandbox) in refused.err and _host(other) in refused.err, refused.err
            assert "--allow-other-cloud" in refused.err
            assert "to add" not in refused.out
        assert json.loads(state_file.read_text())["cloud"]["host"] == _host(sandbox)

        text = recon(other.env, "plan", "-c", STACK, "--allow-other-cloud", cwd=work)
        assert text.code == 0, text.both
        assert f"Stack loadbalancer on cloud {_host(other)} (account {account}, region " in text.out
        assert "to add" in text.out

        document = recon(other.env, "plan", "-c", STACK, "--allow-other-cloud", "-f", "json", cwd=work)
        assert document.code == 0, document.both
        cloud = json.loads(document.out)["cloud"]
        assert cloud["host"] == _host(other) and cloud["account"] == account and cloud["region"]

        markdown = recon(other.env, "plan", "-c", STACK, "--allow-other-cloud", "-f", "markdown", cwd=work)
        assert markdown.code == 0, markdown.both
        assert f"### recon plan for stack `loadbalancer` on cloud `{_host(other)}` (account `{account}`, region " \
            in markdown.out

        # a plan saved with --allow-other-cloud applies there, and the state then belongs to that cloud
        saved = recon(other.env, "plan", "-c", STACK, "--allow-other-cloud", "--out", "other.plan", cwd=work)
        assert saved.code == 0, saved.both
        refused_saved = recon(sandbox.env, "apply", "other.plan", cwd=work)
        assert refused_saved.code == 1 and _host(other) in refused_saved.err and _host(sandbox) in refused_saved.err
        moved = recon(other.env, "apply", "other.plan", cwd=work)
        assert moved.code == 0, moved.both
        assert json.loads(state_file.read_text())["cloud"]["host"] == _host(other)
        back = recon(sandbox.env, "plan", "-c", STACK, cwd=work)
        assert back.code == 1 and _host(other) in back.err, back.both


def test_state_without_identity_is_adopted(sandbox, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    first = recon(sandbox.env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert first.code == 0, first.both
    state_file = work / "state" / "loadbalancer.json"
    old = json.loads(state_file.read_text())
    del old["cloud"]
    state_file.write_text(json.dumps(old))

    plan = recon(sandbox.env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work)
    assert plan.code == 0 and "No changes" in plan.out, plan.both
    assert "cloud" not in json.loads(state_file.read_text())
    # a property changed by hand makes the next apply write the state, which then records the cloud
    properties_client(sandbox.env).modify_property_value(Name="loadbalancing.loadbalancer_num_vm", Value="2")
    repaired = recon(sandbox.env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert repaired.code == 0 and "1 changed" in repaired.out, repaired.both
    assert json.loads(state_file.read_text())["cloud"]["host"] == _host(sandbox)
