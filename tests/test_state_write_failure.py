"""A state write that fails mid-apply (issue 12, item 6): the summary says exactly which changes
reached the cloud and which of them the state holds, recon starts nothing after the failure, and
the next apply adopts what the failed one made instead of making it twice.

The write is refused by a file-size limit on the recon process (EFBIG, for root as well): it
admits the state as it is before the apply and nothing bigger, so the first change that grows the
state is the one whose record cannot be saved.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

from e2e import Run, cli_env, client, copy_examples, hosts_stack, images_stack, recon

BEFORE = images_stack("full")
AFTER = hosts_stack("full", security_groups=["${security_groups.web.name}"], count=2, extra="""
[security_groups.web]
description = "web hosts"
ingress = [{ protocol = "tcp", ports = "80", cidr = "0.0.0.0/0" }]
""")


def apply_with_file_limit(env: dict[str, str], work: Path, limit: int) -> Run:
    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run([sys.executable, "-m", "reconciler", "apply", "--auto-approve", "--parallelism", "1"],
                          cwd=work, env=cli_env(env), text=True, capture_output=True, timeout=300, input="",
                          preexec_fn=small_files)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def cloud_objects(env: dict[str, str]) -> tuple[list[str], list[str]]:
    """The stack's security groups named web, and its pending or running instances."""
    ec2 = client(env, "ec2")
    groups = [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] == "web"]
    reply = ec2.describe_instances(Filters=[{"Name": "tag:recon:stack", "Values": ["full"]},
                                            {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return groups, [i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"]]


def test_failed_state_write_is_reported_exactly_and_the_next_apply_adopts(sandbox, tmp_path: Path) -> None:
    work = copy_examples(tmp_path / "repo")
    (work / "recon.toml").write_text(BEFORE)
    run = recon(sandbox.env, "apply", "--auto-approve", cwd=work)
    assert run.code == 0, run.both
    state_file = work / "state" / "full.json"
    before = state_file.read_bytes()

    (work / "recon.toml").write_text(AFTER)
    run = apply_with_file_limit(sandbox.env, work, len(before) + 20)
    assert run.code == 1, run.both
    assert "Traceback" not in run.both
    # the group was made, its record could not be written; the hosts (which need it) never started
    assert "security_groups.web: made in the cloud, but" in run.err and "File too large" in run.err, run.err
    assert "Made in the cloud but not in the state: security_groups.web." in run.out, run.out
    assert "docker_hosts.web (not started)" in run.out, run.out
    assert "the state could not be written, so no further change was started" in run.out, run.out
    assert "Apply complete" not in run.out
    groups, instances = cloud_objects(sandbox.env)
    assert len(groups) == 1 and instances == [], (groups, instances)
    assert state_file.read_bytes() == before, "the state changed though no write could succeed"

    run = recon(sandbox.env, "apply", "--auto-approve", cwd=work)
    assert run.code == 0, run.both
    again_groups, instances = cloud_objects(sandbox.env)
    assert again_groups == groups, "the group was made a second time instead of adopted"
    assert len(instances) == 2
    state = json.loads(state_file.read_text())
    assert state["resources"]["security_groups.web"]["id"] in (groups[0], "web")
    run = recon(sandbox.env, "plan", "--detailed-exitcode", cwd=work)
    assert run.code == 0, run.both
