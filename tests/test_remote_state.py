"""Remote state on the sandbox's S3: locking with a leased lock object, takeover of a dead
holder's lock, backups, and refusal of a store that ignores If-None-Match."""

from __future__ import annotations

import json
from pathlib import Path

from e2e import client, copy_examples, recon
from faultproxy import FaultProxy

STACK = "loadbalancer.toml"
BUCKET = "recon-state"


def use_remote_state(work: Path, lease: int = 60) -> None:
    text = (work / STACK).read_text()
    text = text.replace('[cloud]', f'[state]\nbackend = "s3"\nbucket = "{BUCKET}"\nkey = "stacks/lb.json"\n'
                                   f'lease_seconds = {lease}\n\n[cloud]')
    (work / STACK).write_text(text)


def objects(env) -> dict[str, bytes]:
    s3 = client(env, "s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    return {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


def test_remote_state_round_trip_and_backups(installed_sandbox, tmp_path: Path) -> None:
    env = installed_sandbox.env
    client(env, "s3").create_bucket(Bucket=BUCKET)
    work = copy_examples(tmp_path / "repo")
    use_remote_state(work)
    run = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert run.code == 0, run.both
    stored = objects(env)
    state = json.loads(stored["stacks/lb.json"])
    assert state["stack"] == "loadbalancer" and "load_balancers.TestLoadBalancer" in state["resources"]
    backups = sorted(int(k.rsplit(".", 1)[1]) for k in stored if k.startswith("stacks/lb.json.backup."))
    assert backups == list(range(1, state["serial"]))
    assert "stacks/lb.json.lock" not in stored  # released
    assert not [k for k in stored if ".probe-" in k]
    assert not (work / "state").exists()
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0
    shown = recon(env, "show", "-c", STACK, cwd=work)
    assert f"s3://{BUCKET}/stacks/lb.json" in shown.out


def test_second_apply_fails_naming_the_holder(installed_sandbox, tmp_path: Path) -> None:
    from reconciler.engine import Workspace

    env = installed_sandbox.env
    client(env, "s3").create_bucket(Bucket=BUCKET)
    work = copy_examples(tmp_path / "repo")
    use_remote_state(work)
    ws = Workspace.open(work / STACK, env=env)
    with ws.backend.lock("apply") as held:
        run = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)  # fails at once, does not wait
        assert run.code == 1
        assert "state is locked by" in run.err and held.who in run.err and held.id in run.err
        assert recon(env, "drift", "-c", STACK, cwd=work).code == 2  # drift takes no lock
    assert client(env, "elb").describe_load_balancers()["LoadBalancerDescriptions"] == []
    after = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert after.code == 0, after.both


def test_killed_holders_lease_expires_and_is_taken_over(installed_sandbox, tmp_path: Path) -> None:
    env = installed_sandbox.env
    client(env, "s3").create_bucket(Bucket=BUCKET)
    work = copy_examples(tmp_path / "repo")
    use_remote_state(work, lease=60)  # long enough that a slow machine still sees it held
    killed = recon({**env, "RECON_CRASH_AFTER": "elb.CreateLoadBalancer"}, "apply", "-c", STACK,
                   "--auto-approve", cwd=work)
    assert killed.code == -9
    lock = json.loads(objects(env)["stacks/lb.json.lock"])
    refused = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert refused.code == 1 and lock["id"] in refused.err
    # Let the dead holder's lease run out without waiting for it: the lock as it reads once
    # nobody renewed it past its expiry (the holder is dead, so nothing else writes it).
    expired = {**lock, "expires": "2000-01-01T00:00:00.000+00:00"}
    client(env, "s3").put_object(Bucket=BUCKET, Key="stacks/lb.json.lock", Body=json.dumps(expired).encode())
    taken = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert taken.code == 0, taken.both
    assert "Warning: took over an expired lock" in taken.err and lock["who"] in taken.err
    assert [lb["LoadBalancerName"] for lb in client(env, "elb").describe_load_balancers()
            ["LoadBalancerDescriptions"]] == ["TestLoadBalancer"]
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0


def test_store_ignoring_if_none_match_is_refused(installed_sandbox, tmp_path: Path) -> None:
    env = installed_sandbox.env
    client(env, "s3").create_bucket(Bucket=BUCKET)
    work = copy_examples(tmp_path / "repo")
    use_remote_state(work)
    proxy = FaultProxy(installed_sandbox.url, drop_headers=("If-None-Match",),  # a store that ignores it
                       credentials=(env["EC2_ACCESS_KEY"], env["EC2_SECRET_KEY"]))
    try:
        proxied = {**env, "S3_URL": f"{proxy.url}/services/objectstorage"}
        run = recon(proxied, "apply", "-c", STACK, "--auto-approve", cwd=work)
        assert run.code == 1
        assert "ignores If-None-Match" in run.err and "--lock=false" in run.err
        assert client(env, "elb").describe_load_balancers()["LoadBalancerDescriptions"] == []
        unlocked = recon(proxied, "apply", "-c", STACK, "--auto-approve", "--lock=false", cwd=work)
        assert unlocked.code == 0, unlocked.both
        assert "Warning: running without a state lock" in unlocked.err
    finally:
        proxy.close()
    assert "stacks/lb.json.lock" not in objects(env)


def test_force_unlock_remote(installed_sandbox, tmp_path: Path) -> None:
    env = installed_sandbox.env
    s3 = client(env, "s3")
    s3.create_bucket(Bucket=BUCKET)
    work = copy_examples(tmp_path / "repo")
    use_remote_state(work)
    s3.put_object(Bucket=BUCKET, Key="stacks/lb.json.lock", Body=json.dumps({
        "id": "dead-beef", "who": "ci@runner-7 (pid 42)", "operation": "apply",
        "created": "2026-01-01T00:00:00+00:00", "expires": "2999-01-01T00:00:00+00:00"}).encode())
    locked = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert locked.code == 1 and "ci@runner-7 (pid 42)" in locked.err and "recon force-unlock dead-beef" in locked.err
    wrong = recon(env, "force-unlock", "other", "-c", STACK, cwd=work)
    assert wrong.code == 1 and "does not match" in wrong.err
    unlocked = recon(env, "force-unlock", "dead-beef", "-c", STACK, cwd=work)
    assert unlocked.code == 0 and "ci@runner-7" in unlocked.out
    assert "stacks/lb.json.lock" not in objects(env)
    assert recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work).code == 0
