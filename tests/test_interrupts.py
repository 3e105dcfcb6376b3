"""Interrupts, exit codes and locks that die with their holder, end to end through the CLI.

An apply runs as a child process behind a proxy that slows chosen cloud calls, and gets SIGINT
or SIGTERM at a moment its progress output shows: while properties change, while Docker hosts
launch, while an LB image's parts upload. Each exits 130 saying what was done and what was not,
leaves no lock, and the next apply converges with nothing made twice. A second signal abandons
the running change: recon exits at once, and its lock is never free while it runs. A SIGKILLed
holder's local lock is free at once; ``--lock-timeout`` waits for a held lock (local and S3);
Ctrl-C at the prompt cancels; usage errors exit 1; nothing to do is success without a terminal.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
from collections import Counter
from pathlib import Path

import pytest
from faultproxy import FaultProxy

from e2e import Background, client, copy_examples, hosts_stack, property_value, recon
from reconciler.engine import Workspace
from reconciler.imagebuild.testimage import make_test_image, pack_tgz

STACK = "loadbalancer.toml"
UPDATING = r"^(properties\.\S+): updating…$"
FAST_WAITS = {"RECON_WAIT_INTERVAL": "0.05"}


def lock_path(work: Path, stack: str = "loadbalancer") -> Path:
    return work / "state" / f"{stack}.json.lock"


def lock_is_free(path: Path) -> bool:
    """Whether another process could take the local state lock now (the same flock recon takes)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def assert_lb_stack_once(env: dict[str, str]) -> None:
    """The load-balancer stack is in the cloud exactly once."""
    balancers = client(env, "elb").describe_load_balancers()["LoadBalancerDescriptions"]
    assert Counter(lb["LoadBalancerName"] for lb in balancers) == Counter({"TestLoadBalancer": 1})
    assert Counter(k["KeyName"] for k in client(env, "ec2").describe_key_pairs()["KeyPairs"]) == \
        Counter({"euca-elb": 1})
    assert property_value(env, "loadbalancing.loadbalancer_vm_keyname") == "euca-elb"


def listed(out: str, heading: str) -> list[str]:
    """The items of the "Done: a, b." or "Not done: c (interrupted), d (not started)." line."""
    [line] = [line for line in out.splitlines() if line.startswith(f"{heading}: ")]
    return line[len(heading) + 2:].rstrip(".").split(", ")


@pytest.fixture
def proxy(request):
    """A proxy in front of the test's sandbox: ``installed_sandbox`` when it asks for that one."""
    cloud = request.getfixturevalue("installed_sandbox" if "installed_sandbox" in request.fixturenames else "sandbox")
    proxy = FaultProxy(cloud.url)
    yield proxy
    proxy.close()


@pytest.fixture
def start():
    """Start `recon ARGS` in the background; whatever a failed test left running is killed."""
    children: list[Background] = []

    def run(env: dict[str, str], *args: str, cwd: Path, **options) -> Background:
        children.append(Background(env, *args, cwd=cwd, **options))
        return children[-1]

    yield run
    for child in children:
        child.kill()


def test_usage_errors_exit_1_and_help_lists_the_exit_codes(tmp_path: Path) -> None:
    usage = recon({}, "drift", "--fromat", "json", cwd=tmp_path)
    assert usage.code == 1 and "No such option: --fromat" in usage.err and "Usage:" in usage.err, usage.both
    duration = recon({}, "apply", "--lock-timeout", "soon", cwd=tmp_path)
    assert duration.code == 1 and "'soon' is not a duration" in duration.err, duration.both
    shown = recon({}, "--help", cwd=tmp_path)
    assert shown.code == 0 and "130 interrupted" in shown.out and "usage errors included" in shown.out
    plan_help = recon({"COLUMNS": "200"}, "plan", "--help", cwd=tmp_path)
    assert "--detailed-exitcode" in plan_help.out and "<text|json|markdown>" in plan_help.out, plan_help.out
    assert "<bool>" not in plan_help.out, "a flag's help shows a value it does not take"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_during_property_changes(installed_sandbox, proxy, start, tmp_path: Path,
                                           sig: signal.Signals) -> None:
    env = proxy.env(installed_sandbox.env)
    work = copy_examples(tmp_path / "repo")
    proxy.slow["Properties.ModifyPropertyValue"] = 1.5
    child = start(env, "apply", "-c", STACK, "--auto-approve", "--parallelism", "1", cwd=work)
    running = child.wait_for(UPDATING).group(1)
    child.proc.send_signal(sig)
    run = child.finish()

    assert run.code == 130, run.both
    assert (f"interrupted ({sig.name}): starting no new changes; waiting for the 1 still running: {running}. "
            "Press Ctrl-C again") in run.err, run.err
    assert f"{running}: done after" in run.err          # the running change was waited for
    done = listed(run.out, "Done")
    assert running in done and any(item.endswith("(not started)") for item in listed(run.out, "Not done")), run.out
    assert f"Apply interrupted ({sig.name}): state saved, lock released." in run.out
    assert "Traceback" not in run.both
    assert not lock_path(work).exists()

    proxy.slow.clear()
    again = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert again.code == 0 and "Apply complete!" in again.out, again.both
    assert not [address for address in done if address in again.out]   # what was done is not done again
    assert_lb_stack_once(installed_sandbox.env)
    # Nothing to do: success, and no terminal is needed to confirm nothing.
    nothing = recon(env, "apply", "-c", STACK, cwd=work)
    assert nothing.code == 0 and "No changes." in nothing.out, nothing.both


HOSTS = hosts_stack("hosts", count=2, extra="""
[load_balancers.web]
zones = ["ViciousLiesAndDangerousRumors"]
listeners = [{ lb_port = 80, protocol = "HTTP", instance_port = 80, instance_protocol = "HTTP" }]
instances = "${docker_hosts.web.instance_ids}"
""")


def running_hosts(env: dict[str, str]) -> list[tuple[str, str]]:
    reply = client(env, "ec2").describe_instances(Filters=[
        {"Name": "tag:recon:stack", "Values": ["hosts"]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return sorted(({t["Key"]: t["Value"] for t in item["Tags"]}["recon:address"], item["InstanceId"])
                  for reservation in reply["Reservations"] for item in reservation["Instances"])


def test_sigterm_during_a_host_launch_wait(installed_sandbox, proxy, start, tmp_path: Path) -> None:
    env = {**proxy.env(installed_sandbox.env), **FAST_WAITS}
    work = copy_examples(tmp_path / "repo")
    (work / "hosts.toml").write_text(HOSTS)
    proxy.slow["compute.RunInstances"] = 2.0      # the signal lands while [1] is being launched
    child = start(env, "apply", "-c", "hosts.toml", "--auto-approve", cwd=work)
    child.wait_for(r"^docker_hosts\.web: launching \[1\]")
    child.proc.send_signal(signal.SIGTERM)
    run = child.finish()

    assert run.code == 130, run.both
    assert "waiting for the 1 still running: docker_hosts.web." in run.err, run.err
    assert "docker_hosts.web: interrupted (SIGTERM) while waiting for 2 instance(s) to run" in run.err, run.err
    not_done = listed(run.out, "Not done")
    assert {"docker_hosts.web (interrupted)", "load_balancers.web (not started)"} <= set(not_done), run.out
    assert not lock_path(work, "hosts").exists()
    launched = running_hosts(installed_sandbox.env)
    assert [address for address, _ in launched] == ["docker_hosts.web[0]", "docker_hosts.web[1]"]

    proxy.slow.clear()
    again = recon(env, "apply", "-c", "hosts.toml", "--auto-approve", cwd=work)
    assert again.code == 0, again.both
    assert "launching" not in again.err                 # found by their tags, not launched again
    assert running_hosts(installed_sandbox.env) == launched
    [balancer] = client(installed_sandbox.env, "elb").describe_load_balancers()["LoadBalancerDescriptions"]
    assert sorted(i["InstanceId"] for i in balancer["Instances"]) == sorted(i for _, i in launched)
    assert recon(env, "plan", "-c", "hosts.toml", "--detailed-exitcode", cwd=work).code == 0


EMI = "loadbalancing.loadbalancer_emi"
IMAGE_STACK = f"""[stack]
name = "lbimg"

[lb_images.v1]
source = "images/eucalyptus-load-balancer-image-1.1.0.tgz"

[lb_images.v1.haproxy.defaults]
"timeout connect" = "5s"

[properties]
"{EMI}" = "${{lb_images.v1.image_id}}"
"""


@pytest.mark.slow
def test_sigint_during_an_lb_image_upload(sandbox, proxy, start, tmp_path: Path) -> None:
    env = proxy.env(sandbox.env)
    work = tmp_path / "repo"
    (work / "images").mkdir(parents=True)
    filler = random.Random(4).randbytes(64 << 20)        # incompressible: 7 parts, more than upload slots
    image = make_test_image(tmp_path / "eucalyptus-load-balancer-image.img", fs_mib=80,
                            files={"/opt/servo/filler.bin": filler})
    pack_tgz(image, work / "images" / "eucalyptus-load-balancer-image-1.1.0.tgz")
    (work / "recon.toml").write_text(IMAGE_STACK)
    proxy.slow["objectstorage.PUT"] = 1.0
    child = start(env, "apply", "--auto-approve", cwd=work)
    child.wait_for(r"^lb_images\.v1: bundling and uploading to loadbalancer-v1")
    # the bucket, its revision marker, then the first part: the upload is under way
    child.wait_until(lambda: proxy.requests["objectstorage.PUT"] >= 3, "the first part's upload")
    child.proc.send_signal(signal.SIGINT)
    run = child.finish()

    assert run.code == 130, run.both
    assert "lb_images.v1: interrupted (SIGINT) before uploading eucalyptus-load-balancer-image.part.0" in run.err
    assert {"lb_images.v1 (interrupted)", f"properties.{EMI} (not started)"} <= set(listed(run.out, "Not done"))
    assert not lock_path(work, "lbimg").exists()
    ec2 = client(sandbox.env, "ec2")
    assert ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["eucalyptus-load-balancer*"]}])[
        "Images"] == []
    assert property_value(sandbox.env, EMI) == "NULL"

    proxy.slow.clear()
    again = recon(env, "apply", "--auto-approve", cwd=work)
    assert again.code == 0, again.both
    [kept] = [line for line in again.err.splitlines() if "were already there)" in line]
    assert "(0 were already there)" not in kept       # the parts sent before the interrupt were kept
    [installed] = ec2.describe_images(Owners=["self"], Filters=[
        {"Name": "name", "Values": ["eucalyptus-load-balancer*"]}])["Images"]
    assert installed["ImageLocation"].startswith("loadbalancer-v1/")
    assert sorted(b["Name"] for b in client(sandbox.env, "s3").list_buckets()["Buckets"]
                  if b["Name"].startswith("loadbalancer")) == ["loadbalancer-v1"]
    assert property_value(sandbox.env, EMI) == installed["ImageId"]
    assert recon(env, "plan", "--detailed-exitcode", cwd=work).code == 0


def test_second_signal_abandons_but_the_lock_outlives_the_work(installed_sandbox, proxy, start, tmp_path: Path) -> None:
    env = proxy.env(installed_sandbox.env)
    work = copy_examples(tmp_path / "repo")
    proxy.slow["Properties.ModifyPropertyValue"] = 6.0
    child = start(env, "apply", "-c", STACK, "--auto-approve", "--parallelism", "1", cwd=work)
    running = child.wait_for(UPDATING).group(1)
    child.proc.send_signal(signal.SIGINT)
    child.wait_for("Press Ctrl-C again")
    child.proc.send_signal(signal.SIGINT)
    lock = lock_path(work)
    while child.proc.poll() is None:
        if lock_is_free(lock) and child.proc.poll() is None:
            # free while recon runs: allowed only in the instant its exit closes its files
            child.proc.wait(timeout=120)
    run = child.finish()

    assert run.code == 130, run.both
    assert f"abandoned 1 running change(s): {running}" in run.err, run.err
    assert "Apply abandoned: state saved up to the last completed change; the operating system frees the lock" \
        in run.out, run.out
    # recon left while its call was still on its way: it did not wait for it
    assert proxy.answered["Properties.ModifyPropertyValue"] == 0
    left = json.loads(lock.read_text())
    assert f"(pid {child.proc.pid})" in left["who"] and lock_is_free(lock)

    proxy.slow.clear()
    again = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert again.code == 0, again.both
    assert "took over the lock" in again.err and left["id"] in again.err
    assert_lb_stack_once(installed_sandbox.env)
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0


def test_a_local_lock_dies_with_its_holder_and_is_waited_for(installed_sandbox, start, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    killed = recon({**installed_sandbox.env, "RECON_CRASH_AFTER": "ec2.ImportKeyPair"}, "apply", "-c", STACK,
                   "--auto-approve", cwd=work)
    assert killed.code == -signal.SIGKILL, killed.both
    left = json.loads(lock_path(work).read_text())
    assert left["operation"] == "apply"
    again = recon(installed_sandbox.env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert again.code == 0 and "took over the lock" in again.err and left["id"] in again.err, again.both
    assert not lock_path(work).exists()
    assert_lb_stack_once(installed_sandbox.env)

    # A live holder (this test, with the same flock): force-unlock refuses, --lock-timeout waits.
    with Workspace.open(work / STACK, env=installed_sandbox.env).backend.lock("apply") as holder:
        refused = recon(installed_sandbox.env, "force-unlock", holder.id, "-c", STACK, cwd=work)
        assert refused.code == 1 and "which is still running" in refused.err, refused.both
        at_once = recon(installed_sandbox.env, "plan", "-c", STACK, "--lock-timeout", "1s", cwd=work)
        assert at_once.code == 1 and "still held after waiting 1s" in at_once.err, at_once.both
        assert holder.id in at_once.err
        child = start(installed_sandbox.env, "apply", "-c", STACK, "--lock-timeout", "2m", cwd=work)
        child.wait_for(rf"{holder.id}.*; waiting up to 120s for it")
    run = child.finish()
    assert run.code == 0 and "No changes." in run.out, run.both
    assert not lock_path(work).exists()


def test_lock_timeout_waits_for_a_held_s3_lock(installed_sandbox, start, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    client(installed_sandbox.env, "s3").create_bucket(Bucket="recon-state")
    text = (work / STACK).read_text()
    (work / STACK).write_text(text.replace(
        "[cloud]", '[state]\nbackend = "s3"\nbucket = "recon-state"\nkey = "lb.json"\n\n[cloud]', 1))
    with Workspace.open(work / STACK, env=installed_sandbox.env).backend.lock("apply") as holder:
        child = start(installed_sandbox.env, "apply", "-c", STACK, "--auto-approve", "--lock-timeout", "2m", cwd=work)
        child.wait_for(rf"{holder.id}.*; waiting up to 120s for it")
    run = child.finish()
    assert run.code == 0 and "Apply complete!" in run.out, run.both
    assert_lb_stack_once(installed_sandbox.env)


def test_ctrl_c_at_the_prompt_and_while_planning(sandbox, proxy, start, tmp_path: Path) -> None:
    env = proxy.env(sandbox.env)
    work = copy_examples(tmp_path / "repo")
    terminal, tty = os.openpty()
    try:
        child = start(env, "apply", "-c", STACK, cwd=work, stdin=tty)
        child.wait_for(r"Enter a value: $", stream="out")
        child.proc.send_signal(signal.SIGINT)
        run = child.finish()
    finally:
        os.close(tty)
        os.close(terminal)
    assert run.code == 130, run.both
    assert run.out.endswith("Enter a value: \nApply cancelled.\n"), run.out[-200:]
    assert not lock_path(work).exists()

    proxy.slow["compute.DescribeInstances"] = 30.0
    before = proxy.requests["compute.DescribeInstances"]
    child = start(env, "plan", "-c", STACK, cwd=work)
    child.wait_until(lambda: proxy.requests["compute.DescribeInstances"] > before, "a DescribeInstances call")
    child.proc.send_signal(signal.SIGTERM)
    run = child.finish(timeout=60)
    assert run.code == 130 and "Error: interrupted by SIGTERM" in run.err and "Traceback" not in run.err, run.both
    assert client(sandbox.env, "elb").describe_load_balancers()["LoadBalancerDescriptions"] == []
