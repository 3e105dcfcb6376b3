"""`recon state show|rm|mv`: one resource (or one instance of a set) shown; a renamed block that keeps
its resource after `state mv`; resources forgotten with `state rm` and left in the cloud; both under
the state lock, the serial one higher, the lineage kept and the previous state kept as a backup, on
local and on S3 state."""

from __future__ import annotations

import json
from pathlib import Path

from e2e import client, copy_examples, hosts_stack, recon
from reconciler.engine import Workspace

STACK = "recon.toml"
GROUP = """
[security_groups.old]
name = "web-group"
description = "web hosts"
ingress = [{ protocol = "tcp", ports = "80", cidr = "0.0.0.0/0" }]
"""


def stack_text() -> str:
    return hosts_stack("st", count=2, security_groups=["${security_groups.old.name}"], extra=GROUP)


def read_state(work: Path) -> dict:
    return json.loads((work / "state" / "st.json").read_text())


def running(env, address: str) -> list[str]:
    reply = client(env, "ec2").describe_instances(Filters=[
        {"Name": "tag:recon:address", "Values": [address]}, {"Name": "instance-state-name", "Values": ["running"]}])
    return [i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"]]


def test_show_mv_and_rm(sandbox, tmp_path: Path) -> None:
    env = sandbox.env
    work = copy_examples(tmp_path / "repo")
    (work / STACK).write_text(stack_text())
    applied = recon(env, "apply", "--auto-approve", cwd=work)
    assert applied.code == 0, applied.both

    # show: one instance of the set, as the cloud has it; the whole entry; clear errors
    one = recon(env, "state", "show", "docker_hosts.web[1]", "-f", "json", cwd=work)
    assert one.code == 0, one.both
    shown = json.loads(one.out)
    assert shown["address"] == "docker_hosts.web[1]" and shown["index"] == 1
    assert [shown["outputs"]["instance_ids"]] == running(env, "docker_hosts.web[1]")
    whole = recon(env, "state", "show", "security_groups.old", cwd=work)
    assert whole.code == 0 and "security_groups.old  (id web-group)" in whole.out
    assert "group_id = \"sg-" in whole.out and "description = \"web hosts\"" in whole.out
    for address, message in (("security_groups.olld", "did you mean 'security_groups.old'?"),
                             ("docker_hosts.web[2]", "has 2 instance(s) in state, so no [2]"),
                             ("keypairs.admin[0]", "is one resource, not a set of instances"),
                             ("nodot", "not an address of the form KIND.NAME")):
        failed = recon(env, "state", "show", address, cwd=work)
        assert failed.code == 1 and message in failed.err and "Traceback" not in failed.err, failed.err

    # The block is renamed; without `state mv` the plan would delete the group the renamed block is.
    (work / STACK).write_text(stack_text().replace("security_groups.old", "security_groups.renamed"))
    before = json.loads(recon(env, "plan", "-f", "json", cwd=work).out)
    assert {"address": "security_groups.old", "actions": ["delete"]}.items() <= \
        next(c for c in before["resource_changes"] if c["address"] == "security_groups.old").items()
    prior_text = (work / "state" / "st.json").read_text()
    prior = json.loads(prior_text)
    moved = recon(env, "state", "mv", "security_groups.old", "security_groups.renamed", cwd=work)
    assert moved.code == 0, moved.both
    assert "Moved security_groups.old to security_groups.renamed" in moved.out
    after = read_state(work)
    assert after["serial"] == prior["serial"] + 1 and after["lineage"] == prior["lineage"]
    assert "security_groups.old" not in after["resources"]
    assert after["resources"]["security_groups.renamed"]["id"] == "web-group"
    assert after["resources"]["docker_hosts.web"]["depends_on"] == ["images.rootfs", "keypairs.admin",
                                                                   "security_groups.renamed"]
    assert (work / "state" / "st.json.backup").read_text() == prior_text
    # No change, and no surprise: the group's tag still names security_groups.old, and state owns it.
    plan = recon(env, "plan", "--detailed-exitcode", cwd=work)
    assert plan.code == 0, plan.both
    assert "No changes" in plan.out and "Note:" not in plan.out
    assert recon(env, "drift", cwd=work).code == 0

    # What mv refuses, naming why; the state is left as it was.
    for args, message in ((("keypairs.admin", "keypairs.ops"), "a key pair's name in the cloud follows its block"),
                          (("keypairs.admin", "security_groups.admin"), "a resource keeps its kind"),
                          (("keypairs.admin", "keypairs.admin"), "keypairs.admin is in state already"),
                          (("docker_hosts.web[0]", "docker_hosts.other"), "cannot move docker_hosts.web[0] alone"),
                          (("docker_hosts.web", "docker_hosts.other"), "the next plan would replace it"),
                          (("keypairs.nope", "keypairs.other"), "keypairs.nope is not in state")):
        failed = recon(env, "state", "mv", *args, cwd=work)
        assert failed.code == 1 and message in failed.err, (args, failed.err)
    assert read_state(work)["serial"] == after["serial"]

    # Under the lock: a run that holds it makes rm and mv fail at once, changing nothing.
    ws = Workspace.open(work / STACK, env=env)
    with ws.backend.lock("apply") as held:
        for args in (("rm", "keypairs.admin"), ("mv", "security_groups.renamed", "security_groups.other")):
            locked = recon(env, "state", *args, cwd=work)
            assert locked.code == 1 and "state is locked by" in locked.err and held.id in locked.err
    assert read_state(work)["serial"] == after["serial"]

    # rm: a block still in the file is forgotten with a warning; the cloud keeps it.
    assert recon(env, "state", "rm", "docker_hosts.web[1]", cwd=work).code == 1
    forgot = recon(env, "state", "rm", "keypairs.admin", cwd=work)
    assert forgot.code == 0, forgot.both
    assert "keypairs.admin is still in recon.toml" in forgot.err
    rm_state = read_state(work)
    assert "keypairs.admin" not in rm_state["resources"] and rm_state["serial"] == after["serial"] + 1
    assert "keypairs.admin" not in rm_state["resources"]["docker_hosts.web"]["depends_on"]
    assert "keypairs.admin" in json.loads((work / "state" / "st.json.backup").read_text())["resources"]
    assert client(env, "ec2").describe_key_pairs(KeyNames=["admin"])["KeyPairs"]

    # The hosts leave the file and the state: they keep running, and the plan leaves them be.
    hosts = running(env, "docker_hosts.web[0]") + running(env, "docker_hosts.web[1]")
    (work / STACK).write_text((work / STACK).read_text().split("[docker_hosts.web]")[0] + GROUP.replace(
        "security_groups.old", "security_groups.renamed"))
    assert recon(env, "state", "rm", "docker_hosts.web", cwd=work).code == 0
    plan = recon(env, "plan", "--detailed-exitcode", cwd=work)
    assert plan.code == 0, plan.both
    assert "docker_hosts.web (web)" in plan.out   # noted: tagged for the stack, in neither file nor state
    assert running(env, "docker_hosts.web[0]") + running(env, "docker_hosts.web[1]") == hosts


def test_rm_and_mv_on_s3_state(sandbox, tmp_path: Path) -> None:
    env = sandbox.env
    client(env, "s3").create_bucket(Bucket="recon-state")
    copy_examples(tmp_path)
    (tmp_path / STACK).write_text('[stack]\nname = "remote"\n\n[state]\nbackend = "s3"\nbucket = "recon-state"\n'
                                  'key = "st.json"\n' + GROUP + '\n[keypairs.admin]\npublic_key_file = '
                                  '"keys/docker-admin.pub"\n')
    assert recon(env, "apply", "--auto-approve", cwd=tmp_path).code == 0
    s3 = client(env, "s3")

    def stored(key: str = "st.json") -> dict:
        return json.loads(s3.get_object(Bucket="recon-state", Key=key)["Body"].read())

    prior = stored()
    (tmp_path / STACK).write_text((tmp_path / STACK).read_text().replace("security_groups.old", "security_groups.web"))
    assert recon(env, "state", "mv", "security_groups.old", "security_groups.web", cwd=tmp_path).code == 0
    assert recon(env, "state", "rm", "keypairs.admin", cwd=tmp_path).code == 0
    now = stored()
    assert now["serial"] == prior["serial"] + 2 and now["lineage"] == prior["lineage"]
    assert sorted(now["resources"]) == ["security_groups.web"]
    assert "keypairs.admin" in stored(f"st.json.backup.{now['serial'] - 1}")["resources"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="recon-state")["Contents"]]
    assert "st.json.lock" not in keys
    plan = recon(env, "plan", "--detailed-exitcode", cwd=tmp_path)
    assert plan.code == 0, plan.both
