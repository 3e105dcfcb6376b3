"""Damaged local state (issue 12, item 5): each case exits 1 with an error naming the path and
saying what to do, never a traceback and never a hang.

Cases found before any cloud call run against a stack with no cloud; the ones that need a state
write (a symlinked state file, a write that fails) apply one key pair to the sandbox.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from e2e import Run, cli_env, recon

KEY = (Path(__file__).parent / "fixtures" / "bad" / "keys" / "good.pub").read_text()
NO_CLOUD = '[stack]\nname = "s"\n'
ONE_KEY = NO_CLOUD + '\n[keypairs.k]\npublic_key = "' + KEY.strip() + '"\n'


def failed(run: Run, *expected: str) -> None:
    assert run.code == 1, run.both
    assert "Traceback" not in run.both, run.both
    for text in expected:
        assert text in run.err, run.err


@pytest.fixture
def work(tmp_path) -> Path:
    (tmp_path / "recon.toml").write_text(NO_CLOUD)
    (tmp_path / "state").mkdir()
    return tmp_path


def test_lock_file_of_non_utf8_bytes_is_taken_over_or_force_unlocked(work):
    lock = work / "state" / "s.json.lock"
    lock.write_bytes(b"\xff\xfe{not json")
    run = recon({}, "apply", "--auto-approve", cwd=work)   # fails later, at the cloud: the lock was taken
    assert "took over the lock on state/s.json left by unknown (unreadable lock)" in run.err
    assert "Traceback" not in run.both
    lock.write_bytes(b"\xff\xfe{not json")
    run = recon({}, "force-unlock", "any-id", cwd=work)
    assert run.code == 0, run.both
    assert "Removed a damaged (unreadable) lock file" in run.out
    assert not lock.exists()


@pytest.mark.parametrize("command", [["force-unlock", "any-id"], ["apply", "--auto-approve"]])
def test_lock_path_that_is_a_folder(work, command):
    (work / "state" / "s.json.lock").mkdir()
    failed(recon({}, *command, cwd=work), "state/s.json.lock: cannot open the lock file: Is a directory",
           "remove it (state/s.json.lock)")


@pytest.mark.parametrize("command", [["force-unlock", "any-id"], ["apply", "--auto-approve"]])
def test_lock_path_that_is_a_fifo(work, command):
    os.mkfifo(work / "state" / "s.json.lock")
    failed(recon({}, *command, cwd=work, timeout=120), "state/s.json.lock: the lock file is not a regular file",
           "remove it")


def test_state_file_of_non_utf8_bytes(work):
    (work / "state" / "s.json").write_bytes(b'{"stack": "\xff"}')
    failed(recon({}, "show", cwd=work), "state/s.json: state file is not valid UTF-8",
           "restore it from s.json.backup")


def test_fifo_as_state_file_does_not_hang(work):
    os.mkfifo(work / "state" / "s.json")
    for command in (["show"], ["plan"], ["apply", "--auto-approve"]):
        # a hang fails the test through subprocess.TimeoutExpired
        failed(recon({}, *command, cwd=work, timeout=120), "state/s.json: the state file is not a regular file",
               "move it away")


@pytest.mark.parametrize("command", [["show"], ["apply", "--auto-approve"], ["force-unlock", "any-id"]])
def test_state_path_naming_a_file(work, command):
    (work / "state").rmdir()
    (work / "state").write_text("not a folder\n")
    failed(recon({}, *command, cwd=work), "state: [state] path names a file, not a folder",
           "set [state] path to a folder")


def test_state_folder_under_a_file(work):
    (work / "recon.toml").write_text(NO_CLOUD + '\n[state]\npath = "recon.toml/state"\n')
    failed(recon({}, "apply", "--auto-approve", cwd=work), "recon.toml/state: cannot make the state folder",
           "[state] path must name a folder")


def test_symlinked_state_file_is_written_through(sandbox, work):
    (work / "recon.toml").write_text(ONE_KEY)
    elsewhere = work / "kept" / "s.json"
    elsewhere.parent.mkdir()
    (work / "state" / "s.json").symlink_to(elsewhere)
    run = recon(sandbox.env, "apply", "--auto-approve", cwd=work)
    assert run.code == 0, run.both
    assert (work / "state" / "s.json").is_symlink()
    assert "keypairs.k" in json.loads(elsewhere.read_text())["resources"]
    run = recon(sandbox.env, "plan", "--detailed-exitcode", cwd=work)
    assert run.code == 0, run.both


def test_state_write_that_fails_names_the_file(sandbox, work):
    """A write the OS refuses (here a file size limit: EFBIG, as root as well as not) is a clear
    error naming the state file, like a full disk (ENOSPC) or a read-only folder (EROFS)."""
    (work / "recon.toml").write_text(ONE_KEY)
    limit = 200   # bytes: below any state file with a resource, above nothing else recon writes here

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run([sys.executable, "-m", "reconciler", "apply", "--auto-approve"], cwd=work,
                          env=cli_env(sandbox.env), text=True, capture_output=True, timeout=300,
                          input="", preexec_fn=small_files)
    run = Run(proc.returncode, proc.stdout, proc.stderr)
    failed(run, "state/s.json: cannot write state: File too large", "free space on that file system")
    assert not list((work / "state").glob(".*.tmp")), "the temporary file was left behind"
