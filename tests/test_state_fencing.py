"""Fenced remote state on the sandbox's S3: a holder paused past its lease changes nothing once
another run took the lock over; a renewal that gets no answer gives up within the lease, and a
holder whose lease ran out stops; lost replies on conditional writes (the lock, the state) are
recognised as the run's own; an older state put in place of the newer one is refused; a store
that ignores If-Match is refused like one that ignores If-None-Match."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from faultproxy import FaultProxy
from test_remote_state import BUCKET, STACK, objects, use_remote_state

from e2e import Background, client, copy_examples, recon

STATE_KEY = "stacks/lb.json"
READING = ("Describe", "List", "Get", "Head")
READING_S3 = ("objectstorage.GET", "objectstorage.HEAD")


@pytest.fixture
def sandbox(installed_sandbox):
    """The stack makes a load balancer: the cloud has its LB image installed."""
    return installed_sandbox


@pytest.fixture
def proxy(sandbox):
    proxy = FaultProxy(sandbox.url)
    yield proxy
    proxy.close()


def remote_checkout(path: Path, lease: int = 60) -> Path:
    work = copy_examples(path)
    use_remote_state(work, lease=lease)
    return work


def changes(requests: Counter) -> Counter:
    """The requests of ``requests`` that could change something (S3 by method, the rest by Action)."""
    return Counter({key: n for key, n in requests.items()
                    if not key.split(".", 1)[1].startswith(READING) and key not in READING_S3})


def test_paused_holder_changes_nothing_after_another_run_took_the_lock(sandbox, proxy, tmp_path: Path) -> None:
    env = sandbox.env
    client(env, "s3").create_bucket(Bucket=BUCKET)
    first_work = remote_checkout(tmp_path / "first")
    second_work = remote_checkout(tmp_path / "second")
    # The first apply goes through the proxy, which holds its first property change until the
    # test has paused it: a known point, after the cloud was asked, whatever the machine's speed.
    gate = proxy.gates["Properties.ModifyPropertyValue"] = threading.Event()
    first = Background(proxy.env(env), "apply", "-c", STACK, "--auto-approve", "--parallelism", "1",
                       cwd=first_work)
    try:
        first.wait_until(lambda: proxy.requests["Properties.ModifyPropertyValue"], "the held property change")
        first.proc.send_signal(signal.SIGSTOP)
        gate.set()
        first.wait_until(lambda: proxy.answered["Properties.ModifyPropertyValue"], "the cloud's answer")
        # Paused past its lease: the lock as it reads once nobody renewed it (without waiting for it).
        lock = json.loads(objects(env)[f"{STATE_KEY}.lock"])
        client(env, "s3").put_object(Bucket=BUCKET, Key=f"{STATE_KEY}.lock", Body=json.dumps(
            {**lock, "expires": "2000-01-01T00:00:00.000+00:00"}).encode())

        second = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=second_work)
        assert second.code == 0, second.both
        assert "Warning: took over an expired lock" in second.err and lock["id"] in second.err
        written = objects(env)
        assert json.loads(written[STATE_KEY])["resources"]
        before = Counter(proxy.requests)

        first.proc.send_signal(signal.SIGCONT)
        run = first.finish()
    finally:
        first.proc.send_signal(signal.SIGCONT)
        first.kill()

    assert run.code == 1, run.both
    assert "this run lost the state lock" in run.err and "Apply stopped: this run lost the state lock" in run.out
    assert "Not done: " in run.out and "Traceback" not in run.both
    # After waking, the paused apply only read (the lock, to find it lost): no cloud change, no
    # state or lock object written, and the state is exactly what the taking-over apply wrote.
    assert changes(proxy.requests - before) == Counter(), proxy.requests - before
    assert objects(env) == written
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=second_work).code == 0
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=first_work).code == 0


@pytest.mark.slow
def test_a_renewal_without_answer_gives_up_and_the_expired_holder_stops(sandbox, proxy, tmp_path: Path) -> None:
    env = sandbox.env
    client(env, "s3").create_bucket(Bucket=BUCKET)
    work = remote_checkout(tmp_path / "repo", lease=30)
    held = proxy.gates["Properties.ModifyPropertyValue"] = threading.Event()
    child = Background(proxy.env(env), "apply", "-c", STACK, "--auto-approve", "--parallelism", "1", cwd=work)
    try:
        child.wait_until(lambda: proxy.requests["Properties.ModifyPropertyValue"], "the held property change")
        # From now on the lock's renewals get no answer. With the normal bounds of a call (90 s an
        # attempt) a renewal would still be waiting long after the 30 s lease ran out.
        proxy.gates[f"PUT /services/objectstorage/{BUCKET}/{STATE_KEY}.lock"] = threading.Event()
        child.wait_for(r"Warning: could not renew the lock lease on .*: PutObject failed: no answer", timeout=60)
        expires = datetime.fromisoformat(json.loads(objects(env)[f"{STATE_KEY}.lock"])["expires"])
        while datetime.now(timezone.utc) < expires + timedelta(seconds=1):   # the lease ran out, by any clock
            time.sleep(0.1)
        state = objects(env).get(STATE_KEY)
        held.set()
        run = child.finish()
    finally:
        child.kill()
    assert run.code == 1, run.both
    assert "this run lost the state lock (its lease of 30s ran out before it was renewed" in run.err, run.err
    assert "stopped before saving the state" in run.err and "Traceback" not in run.both
    assert objects(env).get(STATE_KEY) == state


def test_lost_replies_on_the_lock_and_state_writes_are_our_own(sandbox, proxy, tmp_path: Path) -> None:
    env = sandbox.env
    client(env, "s3").create_bucket(Bucket=BUCKET)
    work = remote_checkout(tmp_path / "repo")
    # The cloud takes the write and the reply is lost: the retry is refused (412), and is recognised.
    prefix = f"PUT /services/objectstorage/{BUCKET}/{STATE_KEY}"
    proxy.reset_after_once.update({f"{prefix}.lock", prefix})
    run = recon(proxy.env(env), "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert run.code == 0, run.both
    assert proxy.injected["reset-after"] == 2 and not proxy.reset_after_once
    assert "locked by" not in run.err and "no longer the one" not in run.err
    stored = objects(env)
    assert f"{STATE_KEY}.lock" not in stored   # it was released: the run knew it held it
    state = json.loads(stored[STATE_KEY])
    assert sorted(int(k.rsplit(".", 1)[1]) for k in stored if ".backup." in k) == list(range(1, state["serial"]))
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0


def test_an_older_state_put_in_place_of_the_newer_is_refused(sandbox, tmp_path: Path) -> None:
    env = sandbox.env
    s3 = client(env, "s3")
    s3.create_bucket(Bucket=BUCKET)
    work = remote_checkout(tmp_path / "repo")
    assert recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work).code == 0
    newest = objects(env)[STATE_KEY]
    serial = json.loads(newest)["serial"]
    assert serial >= 3
    record = work / ".recon-cache" / "state" / "loadbalancer.json"
    assert json.loads(record.read_text())["serial"] == serial

    s3.copy_object(Bucket=BUCKET, Key=STATE_KEY, CopySource={"Bucket": BUCKET, "Key": f"{STATE_KEY}.backup.1"})
    for command in (("plan",), ("apply", "--auto-approve")):
        refused = recon(env, *command, "-c", STACK, cwd=work)
        assert refused.code == 1, refused.both
        assert f"the state object holds serial 1, older than serial {serial}" in refused.err, refused.err
        assert "old backup copied over it" in refused.err and ".recon-cache/state/loadbalancer.json" in refused.err
    assert objects(env)[STATE_KEY] == objects(env)[f"{STATE_KEY}.backup.1"]   # the refused apply wrote nothing

    other = {**json.loads(newest), "lineage": "0e4f7c8a-another-state"}
    s3.put_object(Bucket=BUCKET, Key=STATE_KEY, Body=json.dumps(other).encode())
    assert "is another state (lineage 0e4f7c8a-another-state" in recon(env, "plan", "-c", STACK, cwd=work).err
    s3.delete_object(Bucket=BUCKET, Key=STATE_KEY)
    assert "there is no state object" in recon(env, "plan", "-c", STACK, cwd=work).err

    s3.put_object(Bucket=BUCKET, Key=STATE_KEY, Body=newest)   # the newest one put back: accepted
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0
    # Told as the hint says that the older one is meant: accepted, and recorded from then on.
    s3.copy_object(Bucket=BUCKET, Key=STATE_KEY, CopySource={"Bucket": BUCKET, "Key": f"{STATE_KEY}.backup.1"})
    record.unlink()
    assert recon(env, "plan", "-c", STACK, cwd=work).code in (0, 2)
    assert json.loads(record.read_text())["serial"] == 1


def test_store_ignoring_if_match_is_refused(sandbox, tmp_path: Path) -> None:
    env = sandbox.env
    client(env, "s3").create_bucket(Bucket=BUCKET)
    work = remote_checkout(tmp_path / "repo")
    proxy = FaultProxy(sandbox.url, drop_headers=("If-Match",),
                       credentials=(env["EC2_ACCESS_KEY"], env["EC2_SECRET_KEY"]))
    try:
        run = recon({**env, "S3_URL": f"{proxy.url}/services/objectstorage"}, "apply", "-c", STACK,
                    "--auto-approve", cwd=work)
    finally:
        proxy.close()
    assert run.code == 1, run.both
    assert "ignores If-Match" in run.err and "--lock=false" in run.err
    assert client(env, "elb").describe_load_balancers()["LoadBalancerDescriptions"] == []
    assert not [key for key in objects(env) if ".probe-" in key or key.endswith(".lock")]
