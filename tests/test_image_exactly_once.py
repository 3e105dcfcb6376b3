"""An LB image install and update happen exactly once, whatever goes wrong part-way.

- A lost reply (the connection reset after the cloud acted) on every mutating call of an install
  and of an update: each retry finds what the lost call did, RegisterImage included (the cloud
  refuses a second image of the same name, so recon must find its own first one).
- SIGKILL right after each mutating call (``RECON_CRASH_AFTER_MUTATIONS``): the next plan and
  drift report what the crash left, the next apply resumes or cleans it.
- Temporary files: none left after an apply, a Ctrl-C'd one, or (once the next run has started)
  a SIGKILLed one.

Every case ends with exactly one tagged image per revision in the file, a bucket for each image
and no other ``loadbalancer-vN`` bucket, the retired revisions gone, the emi property naming the
file's revision, and a clean plan. The base image is the small test image (one bundle part).
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest
from faultproxy import FaultProxy

from e2e import Background, client, property_value, recon
from reconciler.imagebuild.testimage import make_test_image, pack_tgz

EMI = "loadbalancing.loadbalancer_emi"
SOURCE = "images/lb.tgz"
RETRY = {"RECON_RETRY_ATTEMPTS": "6", "RECON_RETRY_INITIAL": "0.02", "RECON_RETRY_MAX": "0.1"}
#: The mutating calls of a first install (bucket, marker, part, manifest, register, tag, enable) and of an
#: update, which also retires the old revision (objects, bucket, image); checked by test_crash_* and
#: test_lost_replies.
INSTALL_MUTATIONS = 7
UPDATE_MUTATIONS = 10


def stack_text(name: str, timeout: str) -> str:
    return (f'[stack]\nname = "{name}"\n\n[lb_images.lb]\nsource = "{SOURCE}"\n\n'
            f'[lb_images.lb.haproxy.defaults]\n"timeout connect" = "{timeout}"\n\n'
            f'[properties]\n"{EMI}" = "${{lb_images.lb.image_id}}"\n')


@pytest.fixture(scope="module")
def base_image(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("base")
    return pack_tgz(make_test_image(folder / "eucalyptus-load-balancer-image.img"), folder / "lb.tgz")


def workdir(root: Path, base_image: Path, name: str, timeout: str) -> Path:
    work = root / name
    (work / "images").mkdir(parents=True)
    os.link(base_image, work / SOURCE)
    (work / "recon.toml").write_text(stack_text(name, timeout))
    return work


def images(env) -> list[dict]:
    found = client(env, "ec2").describe_images(Owners=["self"])["Images"]
    return [i for i in found if i["Name"].startswith("eucalyptus-load-balancer-image")]


def lb_buckets(env) -> set[str]:
    return {b["Name"] for b in client(env, "s3").list_buckets()["Buckets"] if b["Name"].startswith("loadbalancer")}


def tags(image: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in image.get("Tags", [])}


def state_of(work: Path, name: str) -> dict:
    return json.loads((work / "state" / f"{name}.json").read_text())


def assert_exactly_once(env, work: Path, name: str, retired: set[str] = frozenset()) -> None:
    """The stack's one revision installed once and enabled, nothing orphaned in the whole cloud."""
    everything = images(env)
    for image in everything:       # every LB image in the cloud is a finished install, with its bundle
        assert "recon:revision" in tags(image), (image, everything)
    assert len({i["Name"] for i in everything}) == len(everything), everything
    assert lb_buckets(env) == {i["ImageLocation"].split("/", 1)[0] for i in everything}, (lb_buckets(env), everything)
    state = state_of(work, name)
    digest = state["resources"]["lb_images.lb"]["attrs"]["digest"]
    mine = [i for i in everything if tags(i).get("recon:stack") == name]
    assert [tags(i)["recon:revision"] for i in mine] == [digest], mine
    assert not {tags(i)["recon:revision"] for i in everything} & retired
    assert property_value(env, EMI) == mine[0]["ImageId"]
    assert "partial" not in state and not state["resources"]["lb_images.lb"].get("deposed"), state
    planned = recon(env, "plan", "--detailed-exitcode", cwd=work)
    assert planned.code == 0, planned.both


def digest_of(work: Path, name: str) -> str:
    return state_of(work, name)["resources"]["lb_images.lb"]["attrs"]["digest"]


# --- lost replies --------------------------------------------------------------------------------
def apply_losing(sandbox, work: Path) -> FaultProxy:
    """Apply with the first reply of every mutating call lost: each is retried after the cloud acted."""
    proxy = FaultProxy(sandbox.url, lose_each_once=True)
    try:
        run = recon({**proxy.env(sandbox.env), **RETRY}, "apply", "--auto-approve", cwd=work)
    finally:
        proxy.close()
    assert run.code == 0, f"{proxy.lost}\n{run.both}"
    assert proxy.most_sends() <= 2, f"a call sent again after its retry was answered: {proxy.mutations}"
    return proxy


@pytest.mark.slow
def test_lost_replies(sandbox, base_image: Path, tmp_path: Path) -> None:
    """An install, then an update that retires the old revision, with every mutating call's first reply lost."""
    work = workdir(tmp_path, base_image, "lost", "10s")
    installed = apply_losing(sandbox, work)
    assert len(installed.lost) == INSTALL_MUTATIONS, installed.mutations
    # the cloud registered it; the retry was refused as a duplicate name, and recon took the image
    # registered from its bundle as its own instead of failing or registering another
    assert installed.requests["compute.RegisterImage"] == installed.answered["compute.RegisterImage"] == 2
    first = digest_of(work, "lost")
    assert_exactly_once(sandbox.env, work, "lost")
    (work / "recon.toml").write_text(stack_text("lost", "100s"))
    updated = apply_losing(sandbox, work)
    assert len(updated.lost) == UPDATE_MUTATIONS, updated.mutations
    assert_exactly_once(sandbox.env, work, "lost", retired={first})


# --- SIGKILL at every mutating call --------------------------------------------------------------
def crash_and_recover(env, work: Path, name: str, k: int) -> bool:
    """Apply killed after its k-th mutating call, then drift (if it left something), then apply;
    False if k is past the end."""
    crashed = recon({**env, "RECON_CRASH_AFTER_MUTATIONS": str(k)}, "apply", "--auto-approve", cwd=work)
    if crashed.code == 0:
        return False
    assert crashed.code == -signal.SIGKILL, crashed.both
    left = images(env)
    unfinished = any("recon:revision" not in tags(i) for i in left) or \
        lb_buckets(env) != {i["ImageLocation"].split("/", 1)[0] for i in left} or \
        len([i for i in left if tags(i).get("recon:stack") == name]) != 1
    if unfinished:   # an untagged image, an empty bucket, an old revision not retired: reported until applied
        drift = recon(env, "drift", cwd=work)
        assert drift.code == 2, f"crash after mutation {k} left {left} / {lb_buckets(env)}:\n{drift.both}"
    again = recon(env, "apply", "--auto-approve", cwd=work)
    assert again.code == 0, f"recovery after a crash at mutation {k}:\n{crashed.err}\n---\n{again.both}"
    return True


@pytest.mark.slow
def test_crash_at_every_call_of_an_install(sandbox, base_image: Path, tmp_path: Path) -> None:
    k = 0
    while True:
        k += 1
        name = f"install{k}"
        work = workdir(tmp_path, base_image, name, f"{k}s")
        if not crash_and_recover(sandbox.env, work, name, k):
            break
        assert_exactly_once(sandbox.env, work, name)
    assert k == INSTALL_MUTATIONS + 1, f"an install now makes {k - 1} mutating calls: set INSTALL_MUTATIONS"
    assert_exactly_once(sandbox.env, work, name)


@pytest.mark.slow
def test_crash_at_every_call_of_an_update(sandbox, base_image: Path, tmp_path: Path) -> None:
    work = workdir(tmp_path, base_image, "update", "1s")
    assert recon(sandbox.env, "apply", "--auto-approve", cwd=work).code == 0
    k = 0
    while True:
        k += 1
        old = digest_of(work, "update")
        (work / "recon.toml").write_text(stack_text("update", f"{k + 1}s"))   # a new revision each time
        if not crash_and_recover(sandbox.env, work, "update", k):
            break
        assert_exactly_once(sandbox.env, work, "update", retired={old})
    assert k == UPDATE_MUTATIONS + 1, f"an update now makes {k - 1} mutating calls: set UPDATE_MUTATIONS"
    assert_exactly_once(sandbox.env, work, "update", retired={old})


def test_a_crashed_install_left_by_a_changed_file_is_cleaned(sandbox, base_image: Path, tmp_path: Path) -> None:
    """Killed after RegisterImage (untagged image, full bucket), then the file asks for another revision:
    the plan deletes what the killed install made, and the apply installs the new one."""
    work = workdir(tmp_path, base_image, "changed", "5s")
    crashed = recon({**sandbox.env, "RECON_CRASH_AFTER": "ec2.RegisterImage"}, "apply", "--auto-approve", cwd=work)
    assert crashed.code == -signal.SIGKILL
    (orphan,) = images(sandbox.env)
    assert "recon:revision" not in tags(orphan)
    (work / "recon.toml").write_text(stack_text("changed", "6s"))
    plan = recon(sandbox.env, "plan", cwd=work)
    assert re.search(r"lb_images\.lb \(deposed [0-9a-f]+\) will be destroyed \(left by an interrupted apply\)",
                     plan.out), plan.out
    applied = recon(sandbox.env, "apply", "--auto-approve", cwd=work)
    assert applied.code == 0, applied.both
    assert orphan["ImageId"] not in {i["ImageId"] for i in images(sandbox.env)}
    assert_exactly_once(sandbox.env, work, "changed")


# --- temporary files ----------------------------------------------------------------------------
def run_dirs(tmpdir: Path) -> list[str]:
    return sorted(p.name for p in tmpdir.iterdir())


@pytest.mark.slow
def test_temporary_files_go_on_every_exit(sandbox, base_image: Path, tmp_path: Path) -> None:
    tmpdir = tmp_path / "TMPDIR"
    tmpdir.mkdir()
    env = {**sandbox.env, "TMPDIR": str(tmpdir)}
    work = workdir(tmp_path, base_image, "tmp", "5s")

    # killed during the upload: its folder (with the customized image) stays, until the next run starts
    killed = recon({**env, "RECON_CRASH_AFTER": "s3.PutObject:2"}, "apply", "--auto-approve", cwd=work)
    assert killed.code == -signal.SIGKILL
    (stale,) = run_dirs(tmpdir)
    assert re.fullmatch(r"recon-\d+-\w+", stale)
    assert any(p.suffix == ".img" for p in (tmpdir / stale).rglob("*")), list((tmpdir / stale).rglob("*"))
    assert recon(env, "apply", "--auto-approve", cwd=work).code == 0
    assert run_dirs(tmpdir) == []

    # Ctrl-C during an update's upload: the change stops, and its files go with it
    (work / "recon.toml").write_text(stack_text("tmp", "6s"))
    proxy = FaultProxy(sandbox.url, slow={"objectstorage.PUT": 2.0})
    try:
        running = Background(proxy.env(env), "apply", "--auto-approve", cwd=work)
        try:
            running.wait_for(r"bundling and uploading")
            running.proc.send_signal(signal.SIGINT)
            stopped = running.finish()
        finally:
            running.kill()
    finally:
        proxy.close()
    assert stopped.code == 130, stopped.both
    assert run_dirs(tmpdir) == []

    # and a normal apply leaves nothing either
    assert recon(env, "apply", "--auto-approve", cwd=work).code == 0
    assert run_dirs(tmpdir) == []
    assert_exactly_once(sandbox.env, work, "tmp")


def test_sweep_removes_only_the_folders_of_dead_runs(tmp_path: Path) -> None:
    import subprocess
    import sys

    from reconciler import scratch

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    dead, alive = tmp_path / f"recon-{finished.stdout.strip()}-abc", tmp_path / f"recon-{os.getppid()}-def"
    other = tmp_path / "recon-not-a-run"
    for folder in (dead, alive, other):
        (folder / "sub").mkdir(parents=True)
    assert scratch.sweep(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name])
