"""`recon drift --all-unmanaged`: the account's key pairs, security groups, load balancers and images that
neither the file nor the state knows, tagged or not, but never what the cloud makes itself; `[drift]
ignore_unmanaged`; and `recon drift --format markdown`."""

from __future__ import annotations

import json
from pathlib import Path

from e2e import client, copy_examples, recon

STACK = """[stack]
name = "um"

[keypairs.admin]
public_key_file = "keys/docker-admin.pub"

[security_groups.web]
description = "web hosts"
ingress = [{ protocol = "tcp", ports = "80", cidr = "0.0.0.0/0" }]
"""


def unmanaged(run) -> list[tuple[str, bool]]:
    return sorted((item["address"], item["tagged"]) for item in json.loads(run.out)["unmanaged"])


def test_all_unmanaged_and_markdown(installed_sandbox, tmp_path: Path) -> None:
    env = installed_sandbox.env
    work = copy_examples(tmp_path / "repo")
    (work / "recon.toml").write_text(STACK)
    assert recon(env, "apply", "--auto-approve", cwd=work).code == 0
    clean = recon(env, "drift", "-f", "markdown", cwd=work)
    assert clean.code == 0
    assert clean.out == "<!-- recon drift -->\n### recon drift for stack `um`\n\n**No drift.** The cloud matches the file.\n"

    ec2, elb = client(env, "ec2"), client(env, "elb")
    ec2.import_key_pair(KeyName="by-hand", PublicKeyMaterial=(work / "keys" / "docker-admin.pub").read_bytes())
    stray = ec2.create_security_group(GroupName="stray", Description="made by hand")["GroupId"]
    theirs = ec2.create_security_group(GroupName="theirs", Description="another stack's")["GroupId"]
    ec2.create_tags(Resources=[theirs], Tags=[{"Key": "recon:stack", "Value": "another"},
                                              {"Key": "recon:address", "Value": "security_groups.theirs"}])
    elb.create_load_balancer(LoadBalancerName="handmade", AvailabilityZones=["ViciousLiesAndDangerousRumors"],
                             Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}])
    groups = {g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    assert "default" in groups and any(g.startswith("euca-internal-") for g in groups)   # the cloud's own
    images = sorted(i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"])
    assert images

    # Without the flag, only what carries this stack's tags counts: nothing here.
    assert recon(env, "drift", cwd=work).code == 0
    found = recon(env, "drift", "--all-unmanaged", "-f", "json", cwd=work)
    assert found.code == 2, found.both
    assert unmanaged(found) == sorted([("keypairs.by-hand", False), ("security_groups.stray", False),
                                       ("load_balancers.handmade", False), *((f"images.{i}", False) for i in images)])
    assert {"address": "security_groups.stray", "id": stray}.items() <= \
        next(u for u in json.loads(found.out)["unmanaged"] if u["address"] == "security_groups.stray").items()
    text = recon(env, "drift", "--all-unmanaged", cwd=work)
    assert "In the account, in neither the file nor the state, not tagged by recon" in text.out
    assert f"? security_groups.stray ({stray})" in text.out

    # The ignore list, checked by validate
    for bad, message in (('["widgets.x"]', "'widgets' is not one of the kinds"), ('["nodot"]', 'expected "KIND.NAME"'),
                         ('"keypairs.x"', "")):
        (work / "recon.toml").write_text(STACK + f"\n[drift]\nignore_unmanaged = {bad}\n")
        invalid = recon(env, "validate", cwd=work)
        assert invalid.code == 1 and "ignore_unmanaged" in invalid.err and message in invalid.err, invalid.err
    (work / "recon.toml").write_text(STACK + '\n[drift]\nignore_unmanaged = ["keypairs.by-*", "images.*"]\n')
    assert recon(env, "validate", cwd=work).code == 0
    ignored = recon(env, "drift", "--all-unmanaged", "-f", "json", cwd=work)
    assert unmanaged(ignored) == [("load_balancers.handmade", False), ("security_groups.stray", False)]
    assert json.loads(ignored.out)["summary"]["ignored"] == 1 + len(images)

    # Markdown: counts, a changed resource's diff collapsed, the unmanaged ones listed.
    ec2.authorize_security_group_ingress(GroupName="web", IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    markdown = recon(env, "drift", "--all-unmanaged", "--format", "markdown", cwd=work)
    assert markdown.code == 2, markdown.both
    assert markdown.out.startswith("<!-- recon drift -->\n### recon drift for stack `um`\n\n**Drift: 1 changed, "
                                   f"0 missing, 2 unmanaged, 0 pending, 0 reported ({1 + len(images)} ignored by "
                                   "[drift] ignore).**")
    assert "\n\n#### Changed outside recon (1)\n\n<details><summary><code>~</code> <code>security_groups.web</code>" \
        in markdown.out
    assert '\n-         - "tcp:22 from 10.0.0.0/8"\n```\n</details>\n' in markdown.out
    assert "</details>\n\n#### In the account, in neither the file nor the state, not tagged by recon (2)\n\n" \
        in markdown.out
    assert f"- `security_groups.stray` (`{stray}`)" in markdown.out
    assert "- `load_balancers.handmade` (`handmade`)" in markdown.out

    # An image the file names (not yet applied) is known, and so are its kernel and ramdisk.
    rootfs = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["ubuntu-raring-docker-rootfs"]}])[
        "Images"][0]
    (work / "recon.toml").write_text(STACK + '\n[images.rootfs]\nname = "ubuntu-raring-docker-rootfs"\n')
    pending = recon(env, "drift", "--all-unmanaged", "-f", "json", cwd=work)
    uses = {rootfs["ImageId"], rootfs.get("KernelId"), rootfs.get("RamdiskId")} - {None}
    assert len(uses) == 3
    assert [a for a, _ in unmanaged(pending) if a.startswith("images.")] == \
        [f"images.{i}" for i in images if i not in uses]
