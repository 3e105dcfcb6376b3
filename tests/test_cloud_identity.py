"""End to end: the plan names the cloud and account, and a state of one account is refused on another."""

from __future__ import annotations

import json
from pathlib import Path

from e2e import copy_examples, properties_client, recon
from faultproxy import FaultProxy
from e2e import start_child

STACK = "loadbalancer.toml"


OTHER_ACCOUNT = "210987654321"


def _host(cloud) -> str:
    return f"127.0.0.1:{cloud.port}"


def _cloud_of(state_file: Path) -> dict[str, str]:
    return json.loads(state_file.read_text())["cloud"]


def test_state_of_one_account_is_refused_on_another(installed_sandbox, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    account = installed_sandbox.env["EC2_USER_ID"]
    first = recon(installed_sandbox.env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert first.code == 0, first.both
    host = _host(installed_sandbox)
    assert f"Stack loadbalancer on cloud {host} (account {account}, region eucalyptus)." in first.out
    state_file = work / "state" / "loadbalancer.json"
    assert _cloud_of(state_file) == {"host": host, "account": account, "region": "eucalyptus"}

    with start_child(tmp_path / "other", account_id=OTHER_ACCOUNT, lb_image_installed=True) as other:
        assert other.env["EC2_USER_ID"] == OTHER_ACCOUNT != account
        for command in (("plan",), ("apply", "--auto-approve")):
            refused = recon(other.env, *command, "-c", STACK, cwd=work)
            assert refused.code == 1, refused.both
            assert "Traceback" not in refused.both
            assert f"belongs to cloud {host} (account {account}, region eucalyptus)" in refused.err
            assert f"talks to cloud {_host(other)} (account {OTHER_ACCOUNT}, region eucalyptus), another account" \
                in refused.err, refused.err
            assert "--allow-other-cloud" in refused.err
            assert "to add" not in refused.out
        assert _cloud_of(state_file)["account"] == account

        text = recon(other.env, "plan", "-c", STACK, "--allow-other-cloud", cwd=work)
        assert text.code == 0, text.both
        assert f"Stack loadbalancer on cloud {_host(other)} (account {OTHER_ACCOUNT}, region eucalyptus)." in text.out
        assert "to add" in text.out

        document = recon(other.env, "plan", "-c", STACK, "--allow-other-cloud", "-f", "json", cwd=work)
        assert document.code == 0, document.both
        assert json.loads(document.out)["cloud"] == {"host": _host(other), "account": OTHER_ACCOUNT,
                                                     "region": "eucalyptus"}

        markdown = recon(other.env, "plan", "-c", STACK, "--allow-other-cloud", "-f", "markdown", cwd=work)
        assert markdown.code == 0, markdown.both
        assert (f"### recon plan for stack `loadbalancer` on cloud `{_host(other)}` (account `{OTHER_ACCOUNT}`, "
                "region `eucalyptus`)") in markdown.out

        # a plan saved with --allow-other-cloud applies there, and the state then belongs to that account
        saved = recon(other.env, "plan", "-c", STACK, "--allow-other-cloud", "--out", "other.plan", cwd=work)
        assert saved.code == 0, saved.both
        refused_saved = recon(installed_sandbox.env, "apply", "other.plan", cwd=work)
        assert refused_saved.code == 1, refused_saved.both
        assert OTHER_ACCOUNT in refused_saved.err and account in refused_saved.err, refused_saved.err
        moved = recon(other.env, "apply", "other.plan", cwd=work)
        assert moved.code == 0, moved.both
        assert _cloud_of(state_file)["account"] == OTHER_ACCOUNT
        back = recon(installed_sandbox.env, "plan", "-c", STACK, cwd=work)
        assert back.code == 1 and f"account {OTHER_ACCOUNT}" in back.err and f"account {account}" in back.err, \
            back.both


def test_same_account_through_another_front_end_is_the_same_cloud(installed_sandbox, tmp_path: Path) -> None:
    """A proxy on another port reaches the same cloud: the host is shown, the account compared. Without
    the eucarc's account variables the account is the owner of the default security group."""
    work = copy_examples(tmp_path / "repo")
    first = recon(installed_sandbox.env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert first.code == 0, first.both
    proxy = FaultProxy(installed_sandbox.url)
    try:
        env = {k: v for k, v in proxy.env(installed_sandbox.env).items()
               if k not in ("EC2_USER_ID", "EC2_ACCOUNT_NUMBER")}
        plan = recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work)
    finally:
        proxy.close()
    assert plan.code == 0, plan.both
    host = proxy.url.split("//", 1)[1]
    assert host != _host(installed_sandbox)
    assert f"Stack loadbalancer on cloud {host} (account {installed_sandbox.env['EC2_USER_ID']}, region eucalyptus)." \
        in plan.out and "No changes" in plan.out, plan.out


def test_state_without_identity_is_adopted(installed_sandbox, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    first = recon(installed_sandbox.env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert first.code == 0, first.both
    state_file = work / "state" / "loadbalancer.json"
    old = json.loads(state_file.read_text())
    del old["cloud"]
    state_file.write_text(json.dumps(old))

    plan = recon(installed_sandbox.env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work)
    assert plan.code == 0 and "No changes" in plan.out, plan.both
    assert "cloud" not in json.loads(state_file.read_text())
    # a property changed by hand makes the next apply write the state, which then records the cloud
    properties_client(installed_sandbox.env).modify_property_value(Name="loadbalancing.loadbalancer_num_vm", Value="2")
    repaired = recon(installed_sandbox.env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert repaired.code == 0 and "1 changed" in repaired.out, repaired.both
    assert _cloud_of(state_file)["account"] == installed_sandbox.env["EC2_USER_ID"]
