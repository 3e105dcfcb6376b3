"""End to end: the images kind against the sandbox's seeded Ubuntu images (emi, eki, eri).

Publishing to ``all`` and back is ModifyImageAttribute add and remove; a name matching no
image, or several, is a plan-time error naming them; removing a block revokes only what recon
granted and never deregisters the image; reading costs one DescribeImages plus one
DescribeImageAttribute per image the file names.
"""

from __future__ import annotations

import json
from pathlib import Path

from e2e import client, recon

STACK = "images.toml"
OTHER_ACCOUNT = "210987654321"


def write_stack(work: Path, rootfs: list[str], kernel: list[str] | None, kernel_id: str) -> None:
    text = f"""[stack]
name = "images"

[images.rootfs]
name = "ubuntu-raring-docker-rootfs"
launch_permission = {json.dumps(rootfs)}

[images.ramdisk]
name = "ubuntu-raring-initrd"
"""
    if kernel is not None:
        text += f'\n[images.kernel]\nid = "{kernel_id}"\nlaunch_permission = {json.dumps(kernel)}\n'
    (work / STACK).write_text(text)


def permissions(ec2, image_id: str) -> list[str]:
    reply = ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
    return sorted(p.get("Group") or p["UserId"] for p in reply["LaunchPermissions"])


def test_publish_to_all_and_back(sandbox, tmp_path: Path) -> None:
    env, work = sandbox.env, tmp_path
    ec2 = client(env, "ec2")
    seeded = {i["Name"]: i for i in ec2.describe_images(Owners=["self"])["Images"]}
    rootfs, kernel = seeded["ubuntu-raring-docker-rootfs"], seeded["ubuntu-raring-vmlinuz"]
    assert kernel["ImageId"].startswith("eki-") and rootfs["KernelId"] == kernel["ImageId"]
    assert seeded["ubuntu-raring-initrd"]["ImageId"].startswith("eri-")

    write_stack(work, ["all"], ["all", OTHER_ACCOUNT], kernel["ImageId"])
    plan = recon(env, "plan", "-c", STACK, "--stats", cwd=work)
    assert plan.code == 0, plan.both
    assert "~ images.rootfs" in plan.out and '+ "all"' in plan.out and "images.ramdisk" not in plan.out
    assert "stats:   ec2.DescribeImages 1" in plan.err and "stats:   ec2.DescribeImageAttribute 3" in plan.err
    published = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert published.code == 0, published.both
    assert permissions(ec2, rootfs["ImageId"]) == ["all"]
    assert permissions(ec2, kernel["ImageId"]) == [OTHER_ACCOUNT, "all"]
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0

    # Someone else adds an account: the file's set is the truth, so it is drift.
    ec2.modify_image_attribute(ImageId=rootfs["ImageId"], Attribute="launchPermission",
                               LaunchPermission={"Add": [{"UserId": "111122223333"}]})
    drift = recon(env, "drift", "-c", STACK, cwd=work)
    assert drift.code == 2 and '- "111122223333"' in drift.out, drift.both

    # ... and back: private again (the root file system), the kernel block removed.
    write_stack(work, [], None, kernel["ImageId"])
    back = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert back.code == 0, back.both
    assert permissions(ec2, rootfs["ImageId"]) == []
    # recon granted "all" and the other account to the kernel: both revoked, the image kept.
    assert permissions(ec2, kernel["ImageId"]) == []
    assert [i["ImageId"] for i in ec2.describe_images(ImageIds=[kernel["ImageId"]])["Images"]] == [kernel["ImageId"]]
    state = json.loads((work / "state" / "images.json").read_text())["resources"]
    assert sorted(state) == ["images.ramdisk", "images.rootfs"]
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0


def test_removing_a_block_revokes_only_what_recon_granted(sandbox, tmp_path: Path) -> None:
    env, work = sandbox.env, tmp_path
    ec2 = client(env, "ec2")
    kernel = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["ubuntu-raring-vmlinuz"]}])
    kernel_id = kernel["Images"][0]["ImageId"]
    write_stack(work, [], ["all"], kernel_id)
    assert recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work).code == 0
    ec2.modify_image_attribute(ImageId=kernel_id, Attribute="launchPermission",
                               LaunchPermission={"Add": [{"UserId": OTHER_ACCOUNT}]})
    write_stack(work, [], None, kernel_id)
    removed = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert removed.code == 0, removed.both
    assert permissions(ec2, kernel_id) == [OTHER_ACCOUNT]


def test_image_name_must_name_an_image(sandbox, tmp_path: Path) -> None:
    # (two images of one name cannot be: the cloud refuses a name the account already uses)
    env, work = sandbox.env, tmp_path
    (work / STACK).write_text('[stack]\nname = "images"\n[images.rootfs]\nname = "ubuntu-raring-docker-rootf"\n')
    missing = recon(env, "plan", "-c", STACK, cwd=work)
    assert missing.code == 1, missing.both
    assert "no image named 'ubuntu-raring-docker-rootf' owned by this account" in missing.err
    assert "did you mean 'ubuntu-raring-docker-rootfs'?" in missing.err
