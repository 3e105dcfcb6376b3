"""Races: two `recon apply` processes on one stack, started at the same moment.

Both talk to the sandbox through a proxy that adds a fixed latency to every call, so the one that
gets the lock takes seconds to apply and the two certainly overlap. Exactly one applies; the other
fails at once -- while the first is still running -- naming the holder (its pid); nothing is
corrupted: the lock is released, the state parses, the cloud has each resource once and a plan
afterwards has nothing to do. For the local backend (an OS lock on a lock file) and for the S3
backend on the cloud's object storage (a lock object made with ``If-None-Match: *``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import forkserver
import pytest
from faultproxy import FaultProxy

from e2e import client, copy_examples, recon
from reconciler.state.model import State

STACK = "loadbalancer.toml"
BUCKET = "recon-race-state"
KEY = "stacks/race.json"
LATENCY = 0.5  # seconds per call: the lock holder's apply takes several seconds


def use_s3_state(work: Path) -> None:
    text = (work / STACK).read_text()
    (work / STACK).write_text(text.replace(
        "[cloud]", f'[state]\nbackend = "s3"\nbucket = "{BUCKET}"\nkey = "{KEY}"\n\n[cloud]', 1))


def start(env: dict[str, str], work: Path) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EC2_", "EUCA", "S3_"))}
    full.update(env)
    full.update({"NO_COLOR": "1", "RECON_RETRY_INITIAL": "0.05", "RECON_RETRY_MAX": "0.2"})
    return forkserver.Popen([sys.executable, "-m", "reconciler", "apply", "-c", STACK, "--auto-approve"],
                            cwd=work, env=full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def race(env: dict[str, str], work: Path) -> tuple[subprocess.Popen, str, subprocess.Popen, str]:
    """Start two applies at once; (winner, its output, loser, its stderr). The loser must fail while
    the winner still runs: it did not wait for the lock (however slow the machine)."""
    started = time.monotonic()
    first, second = start(env, work), start(env, work)
    procs = {first.pid: first, second.pid: second}
    loser = None
    while loser is None:  # the first to exit must be the one refused, while the other still runs
        for proc in procs.values():
            if proc.poll() is not None:
                loser = proc
                break
        assert time.monotonic() - started < 300, "neither apply finished"
        time.sleep(0.02)
    [winner] = [p for p in procs.values() if p is not loser]
    still_running = winner.poll() is None
    loser_out, loser_err = loser.communicate(timeout=10)
    winner_out, winner_err = winner.communicate(timeout=120)
    assert still_running, f"the applies did not overlap:\n{winner_out}{winner_err}\n---\n{loser_out}{loser_err}"
    assert winner.returncode == 0, winner_out + winner_err
    assert loser.returncode == 1, loser_out + loser_err
    return winner, winner_out + winner_err, loser, loser_err


def assert_one_of_each(env: dict[str, str], work: Path) -> None:
    names = Counter(lb["LoadBalancerName"] for lb in client(env, "elb").describe_load_balancers()
                    ["LoadBalancerDescriptions"])
    assert names == Counter({"TestLoadBalancer": 1})
    assert Counter(k["KeyName"] for k in client(env, "ec2").describe_key_pairs()["KeyPairs"]) == \
        Counter({"euca-elb": 1})
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0


@pytest.fixture
def slow(sandbox):
    proxy = FaultProxy(sandbox.url, latency=LATENCY)
    yield proxy
    proxy.close()


def test_two_applies_local_state(installed_sandbox, slow, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    winner, _, loser, err = race(slow.env(installed_sandbox.env), work)
    assert "state is locked by" in err and f"(pid {winner.pid})" in err and "for apply" in err, err
    assert "--lock-timeout" in err and "Traceback" not in err
    assert "TestLoadBalancer" not in err  # it changed nothing before refusing

    state_dir = work / "state"
    assert not (state_dir / "loadbalancer.json.lock").exists()
    state = State.loads((state_dir / "loadbalancer.json").read_text(), "state")
    assert {str(a) for a in state.resources} >= {"load_balancers.TestLoadBalancer", "keypairs.euca-elb"}
    backup = state_dir / "loadbalancer.json.backup"
    assert State.loads(backup.read_text(), "backup").serial == state.serial - 1
    assert not [p for p in state_dir.iterdir() if p.name.endswith(".tmp")]  # no half-written files
    assert_one_of_each(installed_sandbox.env, work)


def test_two_applies_s3_state(installed_sandbox, slow, tmp_path: Path) -> None:
    client(installed_sandbox.env, "s3").create_bucket(Bucket=BUCKET)
    work = copy_examples(tmp_path / "repo")
    use_s3_state(work)
    winner, _, loser, err = race(slow.env(installed_sandbox.env), work)
    assert "state is locked by" in err and f"(pid {winner.pid})" in err, err
    assert "Traceback" not in err

    s3 = client(installed_sandbox.env, "s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
    assert f"{KEY}.lock" not in keys and not [k for k in keys if ".probe-" in k], keys
    state = State.loads(s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read().decode(), KEY)
    assert "load_balancers.TestLoadBalancer" in {str(a) for a in state.resources}
    backups = sorted(int(k.rsplit(".", 1)[1]) for k in keys if k.startswith(f"{KEY}.backup."))
    assert backups == list(range(1, state.serial))  # one writer: every serial once, in order
    for number in backups:
        json.loads(s3.get_object(Bucket=BUCKET, Key=f"{KEY}.backup.{number}")["Body"].read())
    assert not (work / "state").exists()
    assert_one_of_each(installed_sandbox.env, work)
