"""End to end: machine, kernel and ramdisk images recon bundles from files (issue 14).

Small stand-in kernel, ramdisk and root file system files, made here, are bundled, uploaded and
registered as eki/eri/emi (paravirtual, the kernel and ramdisk linked, launch permission
``all``), and a host is launched from the emi; a second plan is clean. A changed root file
system registers a new emi, rolls the host onto it, then deregisters the old emi and deletes its
bundle. The bundles of all three types decrypt and verify with openssl alone. SIGKILL right after RegisterImage, then apply again: exactly one image per revision; SIGKILL
after the first part uploaded, then apply again: what was stored is not sent again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from e2e import client, recon
from reconciler.bundle import write_bundle
from reconciler.bundle.manifest import MachineConfiguration
from reconciler.bundle.reader import extract_image
from reconciler.bundle.writer import BundleKey
from reconciler.imagebuild.disk import ExtFileSystem
from reconciler.imagebuild.standins import make_rootfs
from reconciler.sandbox.credentials import write_credentials

STACK = "recon.toml"
TEXT = """[stack]
name = "docker"

[images.kernel]
source = "images/vmlinuz"
type = "kernel"
launch_permission = ["all"]

[images.ramdisk]
source = "images/initrd.img"
type = "ramdisk"
launch_permission = ["all"]

[images.rootfs]
source = "images/rootfs.img"
type = "machine"
kernel = "${images.kernel.id}"
ramdisk = "${images.ramdisk.id}"
description = "Docker root file system"
launch_permission = ["all"]
"""
HOST = """
[docker_hosts.web]
image = "${images.rootfs.id}"
instance_type = "m1.small"
zone = "ViciousLiesAndDangerousRumors"
"""


def setup(work: Path, *, hosts: bool = True) -> Path:
    (work / "images").mkdir(parents=True)
    for name, size in (("vmlinuz", 200_000), ("initrd.img", 300_000), ("rootfs.img", 1 << 20)):
        (work / "images" / name).write_bytes(os.urandom(size))
    (work / STACK).write_text(TEXT + (HOST if hosts else ""))
    return work


def images(env) -> dict[str, dict]:
    """The stack's images by block (recon:address), failing on two of one block."""
    found: dict[str, dict] = {}
    for image in client(env, "ec2").describe_images(Owners=["self"])["Images"]:
        address = {t["Key"]: t["Value"] for t in image.get("Tags") or []}.get("recon:address")
        if address:
            assert address not in found, (address, image, found)
            found[address] = image
    return found


def bucket_keys(env, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in client(env, "s3").list_objects_v2(Bucket=bucket).get("Contents", []))


def permissions(env, image_id: str) -> list[str]:
    reply = client(env, "ec2").describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
    return sorted(p.get("Group") or p["UserId"] for p in reply["LaunchPermissions"])


def host_images(env) -> set[str]:
    reservations = client(env, "ec2").describe_instances(Filters=[
        {"Name": "tag:recon:stack", "Values": ["docker"]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
    return {i["ImageId"] for r in reservations for i in r["Instances"]}


def test_kernel_ramdisk_rootfs_from_files_and_a_new_rootfs(sandbox, tmp_path: Path) -> None:
    env, work = sandbox.env, setup(tmp_path)
    plan = recon(env, "plan", "-c", STACK, cwd=work)
    assert plan.code == 0, plan.both
    assert "+ images.kernel" in plan.out and "+ images.rootfs" in plan.out, plan.out
    applied = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert applied.code == 0, applied.both

    made = images(env)
    kernel, ramdisk, rootfs = made["images.kernel"], made["images.ramdisk"], made["images.rootfs"]
    assert kernel["ImageId"].startswith("eki-") and kernel["ImageType"] == "kernel"
    assert ramdisk["ImageId"].startswith("eri-") and ramdisk["ImageType"] == "ramdisk"
    assert rootfs["ImageId"].startswith("emi-") and rootfs["ImageType"] == "machine"
    assert rootfs["KernelId"] == kernel["ImageId"] and rootfs["RamdiskId"] == ramdisk["ImageId"]
    assert rootfs["VirtualizationType"] == "paravirtual" and rootfs["Description"] == "Docker root file system"
    assert all(permissions(env, image["ImageId"]) == ["all"] for image in made.values())
    bucket, _, manifest = rootfs["ImageLocation"].partition("/")
    assert bucket == "docker-rootfs" and manifest == f"{rootfs['Name']}.manifest.xml"
    assert host_images(env) == {rootfs["ImageId"]}
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0

    # A new root file system: a new emi beside the old one, the host rolled onto it, the old one gone.
    (work / "images" / "rootfs.img").write_bytes(os.urandom(1 << 20))
    plan = recon(env, "plan", "-c", STACK, cwd=work)
    assert plan.code == 0 and "images.rootfs" in plan.out and "images.kernel" not in plan.out, plan.both
    rolled = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert rolled.code == 0, rolled.both
    after = images(env)
    new = after["images.rootfs"]
    assert new["ImageId"] != rootfs["ImageId"] and new["KernelId"] == kernel["ImageId"]
    assert after["images.kernel"]["ImageId"] == kernel["ImageId"]
    assert client(env, "ec2").describe_images(Owners=["self"], Filters=[
        {"Name": "image-id", "Values": [rootfs["ImageId"]]}])["Images"] == []
    assert permissions(env, new["ImageId"]) == ["all"]
    assert host_images(env) == {new["ImageId"]}
    assert bucket_keys(env, "docker-rootfs") == [f"{new['Name']}.manifest.xml", f"{new['Name']}.part.00"]
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0

    # Removed from the file: deregistered, bundles and buckets deleted.
    (work / STACK).write_text('[stack]\nname = "docker"\n')
    gone = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert gone.code == 0, gone.both
    assert images(env) == {}
    buckets = {b["Name"] for b in client(env, "s3").list_buckets()["Buckets"]}
    assert not buckets & {"docker-kernel", "docker-ramdisk", "docker-rootfs"}


def test_killed_after_register_image_then_applied_again(sandbox, tmp_path: Path) -> None:
    env, work = sandbox.env, setup(tmp_path, hosts=False)
    killed = recon({**env, "RECON_CRASH_AFTER": "ec2.RegisterImage:3"}, "apply", "-c", STACK, "--auto-approve",
                   cwd=work)
    assert killed.code == -9, killed.both
    again = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert again.code == 0, again.both
    made = images(env)     # one image per block (images() fails on a second)
    assert sorted(made) == ["images.kernel", "images.ramdisk", "images.rootfs"]
    names = [i["Name"] for i in client(env, "ec2").describe_images(Owners=["self"])["Images"]
             if i["Name"].startswith("docker-")]
    assert len(names) == 3, names
    assert made["images.rootfs"]["KernelId"] == made["images.kernel"]["ImageId"]
    state = json.loads((work / "state" / "docker.json").read_text())
    assert not state.get("partial"), state
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0

    # killed after registering a new revision of the root file system, before tagging it
    (work / "images" / "rootfs.img").write_bytes(os.urandom(1 << 20))
    killed = recon({**env, "RECON_CRASH_AFTER": "ec2.RegisterImage"}, "apply", "-c", STACK, "--auto-approve",
                   cwd=work)
    assert killed.code == -9, killed.both
    again = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert again.code == 0, again.both
    rootfs = [i for i in client(env, "ec2").describe_images(Owners=["self"])["Images"]
              if i["Name"].startswith("docker-rootfs-")]
    assert len(rootfs) == 1 and rootfs[0]["ImageId"] == images(env)["images.rootfs"]["ImageId"], rootfs
    assert bucket_keys(env, "docker-rootfs") == [f"{rootfs[0]['Name']}.manifest.xml",
                                                 f"{rootfs[0]['Name']}.part.00"]
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0


def test_a_signing_key_that_is_not_the_certificates_is_refused_before_any_upload(sandbox, tmp_path: Path) -> None:
    """EC2_PRIVATE_KEY of another certificate: the cloud would refuse the manifest's signature, so recon
    says so, naming the block, before it makes a bucket."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    work = setup(tmp_path, hosts=False)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (work / "other-pk.pem").write_bytes(stranger.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    env = {**sandbox.env, "EC2_PRIVATE_KEY": str(work / "other-pk.pem")}
    applied = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert applied.code == 1, applied.both
    assert re.search(r"images\.(kernel|ramdisk).*EC2_PRIVATE_KEY is not the key of the certificate EC2_CERT",
                     applied.err), applied.err
    assert "Traceback" not in applied.both
    assert client(sandbox.env, "s3").list_buckets()["Buckets"] == []
    assert images(sandbox.env) == {}


def test_an_interrupted_upload_resumes(sandbox, tmp_path: Path) -> None:
    env, work = sandbox.env, setup(tmp_path, hosts=False)
    # the first object uploaded is a part (images have no bucket marker): killed right after it
    killed = recon({**env, "RECON_CRASH_AFTER": "s3.PutObject"}, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert killed.code == -9, killed.both
    stored = {b["Name"]: bucket_keys(env, b["Name"]) for b in client(env, "s3").list_buckets()["Buckets"]}
    assert sum(len(keys) for keys in stored.values()) >= 1, stored
    again = recon(env, "apply", "-c", STACK, "--auto-approve", "--stats", cwd=work)
    assert again.code == 0, again.both
    # six objects in all (a part and a manifest per image): what the killed apply stored is not sent again
    puts = int(re.search(r"s3\.PutObject\s+(\d+)", again.err).group(1))
    assert puts <= 6 - sum(len(keys) for keys in stored.values()), again.err
    assert sorted(images(env)) == ["images.kernel", "images.ramdisk", "images.rootfs"]
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0


def openssl(*args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


@pytest.mark.parametrize("image_type", ["kernel", "ramdisk", "machine"])
def test_bundles_of_each_type_check_out_with_openssl_alone(image_type: str, tmp_path: Path) -> None:
    creds = write_credentials(tmp_path / "creds", "http://127.0.0.1:9")
    user_key = serialization.load_pem_private_key(creds.user_key.read_bytes(), None)
    source = tmp_path / "source.img"
    source.write_bytes(os.urandom(11 << 20) + b"tail" * 1000)      # two parts
    machine = MachineConfiguration(kernel_id="eki-0123abcd", ramdisk_id="eri-0123abcd") \
        if image_type == "machine" else MachineConfiguration()
    out = tmp_path / "bundle"
    bundle = write_bundle(source, out, f"docker-{image_type}", key=BundleKey.derive(user_key, image_type),
                          account_id=creds.account_id, user_key=user_key,
                          cloud_cert=x509.load_pem_x509_certificate(creds.cloud_cert.read_bytes()),
                          user_cert=x509.load_pem_x509_certificate(creds.user_cert.read_bytes()),
                          machine=machine, image_type=image_type)
    data = (out / f"docker-{image_type}.manifest.xml").read_bytes()
    root = ET.fromstring(data)
    image = root.find("image")
    assert image.findtext("type") == image_type and len(bundle.parts) == 2
    if image_type == "machine":
        assert root.findtext("machine_configuration/kernel_id") == "eki-0123abcd"
    # the signature: RSA-SHA1 by the user's key over <machine_configuration> then <image>, as written
    signed = re.search(rb"<machine_configuration>.*</machine_configuration>", data).group(0) + \
        re.search(rb"<image>.*</image>", data).group(0)
    (tmp_path / "signed").write_bytes(signed)
    (tmp_path / "signature").write_bytes(bytes.fromhex(root.findtext("signature")))
    (tmp_path / "user.pub").write_bytes(openssl("x509", "-in", str(creds.user_cert), "-pubkey", "-noout"))
    assert b"Verified OK" in openssl("dgst", "-sha1", "-verify", str(tmp_path / "user.pub"), "-signature",
                                     str(tmp_path / "signature"), str(tmp_path / "signed"))
    # the key and IV, for the cloud; the parts decrypt, gunzip and untar to the source, byte for byte
    key, iv = (openssl("pkeyutl", "-decrypt", "-inkey", str(creds.cloud_key),
                       data=bytes.fromhex(image.findtext(f"ec2_encrypted_{what}"))).decode() for what in ("key", "iv"))
    parts = b"".join((out / part.findtext("filename")).read_bytes() for part in image.findall("parts/part"))
    compressed = openssl("enc", "-d", "-aes-128-cbc", "-K", key, "-iv", iv, data=parts)
    tar = subprocess.run(["gzip", "-dc"], input=compressed, capture_output=True, check=True).stdout
    assert hashlib.sha1(tar).hexdigest() == image.findtext("digest")
    extracted = subprocess.run(["tar", "-xO"], input=tar, capture_output=True, check=True).stdout
    assert extracted == source.read_bytes()


def test_import_adopts_an_image_registered_by_hand_only_from_its_source(sandbox, tmp_path: Path) -> None:
    """The runbook's bundle, upload and register by hand (here: recon's bundler and boto3), then
    `recon import` of the kernel block: adopted since its bundle holds the file; a ramdisk block's
    import of it is refused, and so is the kernel block's once the file changed."""
    env, work = sandbox.env, setup(tmp_path, hosts=False)
    creds = {name: Path(env[name]) for name in ("EC2_CERT", "EC2_PRIVATE_KEY", "EUCALYPTUS_CERT")}
    user_key = serialization.load_pem_private_key(creds["EC2_PRIVATE_KEY"].read_bytes(), None)
    out = tmp_path / "bundle"
    write_bundle(work / "images" / "vmlinuz", out, "vmlinuz", key=BundleKey.random(), account_id=env["EC2_USER_ID"],
                 cloud_cert=x509.load_pem_x509_certificate(creds["EUCALYPTUS_CERT"].read_bytes()),
                 user_cert=x509.load_pem_x509_certificate(creds["EC2_CERT"].read_bytes()), user_key=user_key,
                 image_type="kernel")
    s3, ec2 = client(env, "s3"), client(env, "ec2")
    s3.create_bucket(Bucket="by-hand")
    for path in sorted(out.iterdir()):
        s3.put_object(Bucket="by-hand", Key=path.name, Body=path.read_bytes(), ACL="aws-exec-read")
    eki = ec2.register_image(ImageLocation="by-hand/vmlinuz.manifest.xml", Name="vmlinuz-by-hand")["ImageId"]
    assert eki.startswith("eki-")

    refused = recon(env, "import", "images.ramdisk", eki, cwd=work)
    assert refused.code == 1 and f"{eki} is a kernel image; the block makes a ramdisk" in refused.err, refused.both
    adopted = recon(env, "import", "images.kernel", eki, cwd=work)
    assert adopted.code == 0, adopted.both
    assert images(env)["images.kernel"]["ImageId"] == eki
    plan = recon(env, "plan", "-c", STACK, cwd=work)
    assert plan.code == 0 and "~ images.kernel" in plan.out and "+ images.kernel" not in plan.out, plan.both
    assert recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work).code == 0
    assert images(env)["images.rootfs"]["KernelId"] == eki and permissions(env, eki) == ["all"]
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0

    # another file: the bundle is not its source
    other = tmp_path / "other"
    setup(other, hosts=False)
    changed = recon(env, "import", "images.kernel", eki, cwd=other)
    assert changed.code == 1 and f"the bundle of {eki} is not images/vmlinuz" in changed.err, changed.both


# --- files baked into the root file system ----------------------------------------------------------

DOCKER_LIST = b"deb [arch=amd64] https://download.docker.com/linux/ubuntu noble stable\n"
FILES = '\nfiles = { "/etc/apt/sources.list.d/docker.list" = "files/docker.list" }\n'


def with_files(work: Path) -> Path:
    """The stack's root file system as an ext4 partition image, Docker's apt source baked into it."""
    make_rootfs(work / "images" / "rootfs.img")
    (work / "files").mkdir()
    (work / "files" / "docker.list").write_bytes(DOCKER_LIST)
    text = (work / STACK).read_text()
    (work / STACK).write_text(text.replace('description = "Docker root file system"\n',
                                           'description = "Docker root file system"' + FILES))
    return work


def registered_rootfs(env, image: dict, tmp_path: Path) -> ExtFileSystem:
    """The root file system the cloud holds: the image's bundle, fetched and decrypted with the user's key."""
    bucket, _, key = image["ImageLocation"].partition("/")
    s3 = client(env, "s3")
    folder = tmp_path / f"fetched-{image['ImageId']}"
    folder.mkdir()
    for name in bucket_keys(env, bucket):
        (folder / name).write_bytes(s3.get_object(Bucket=bucket, Key=name)["Body"].read())
    user_key = serialization.load_pem_private_key(Path(env["EC2_PRIVATE_KEY"]).read_bytes(), None)
    return ExtFileSystem.of_image(extract_image(folder / key, user_key, folder / "rootfs.img"))


def test_files_are_baked_into_the_root_file_system_and_a_changed_one_rolls_the_host(sandbox, tmp_path: Path):
    env, work = sandbox.env, with_files(setup(tmp_path))
    plan = recon(env, "plan", "-c", STACK, cwd=work)
    assert plan.code == 0 and "/etc/apt/sources.list.d/docker.list" in plan.out, plan.both
    applied = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert applied.code == 0, applied.both
    first = images(env)["images.rootfs"]
    fs = registered_rootfs(env, first, tmp_path)
    assert fs.read("/etc/apt/sources.list.d/docker.list") == DOCKER_LIST
    assert fs.read("/etc/os-release").startswith(b'NAME="Ubuntu"')         # the rest of the file system stays
    info = fs.stat("/etc/apt/sources.list.d/docker.list")
    assert (info.uid, info.gid, info.mode) == (0, 0, 0o644) and fs.stat("/etc/apt").type == "directory"
    fs.fsck()
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0

    # a changed file is a new revision: registered, the host rolled onto it, the old one gone
    (work / "files" / "docker.list").write_bytes(DOCKER_LIST.replace(b"noble", b"jammy"))
    plan = recon(env, "plan", "-c", STACK, cwd=work)
    assert plan.code == 0 and "images.rootfs" in plan.out and "images.kernel" not in plan.out, plan.both
    rolled = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert rolled.code == 0, rolled.both
    second = images(env)["images.rootfs"]
    assert second["ImageId"] != first["ImageId"] and host_images(env) == {second["ImageId"]}
    assert registered_rootfs(env, second, tmp_path).read("/etc/apt/sources.list.d/docker.list") == \
        DOCKER_LIST.replace(b"noble", b"jammy")
    assert client(env, "ec2").describe_images(Owners=["self"], Filters=[
        {"Name": "image-id", "Values": [first["ImageId"]]}])["Images"] == []
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0


@pytest.mark.parametrize("files, problem", [
    ('{ "etc/apt/docker.list" = "files/docker.list" }',
     'images.rootfs.files."etc/apt/docker.list": \'etc/apt/docker.list\' is not an absolute path in the image'),
    ('{ "/etc/../docker.list" = "files/docker.list" }',
     'images.rootfs.files."/etc/../docker.list": \'/etc/../docker.list\' is not a plain path in the image'),
    ('{ "/etc/apt/do\\u0000cker.list" = "files/docker.list" }', 'is not a plain path in the image'),
    ('{ "/etc/apt/docker.list" = "files/missing.list" }',
     'images.rootfs.files."/etc/apt/docker.list": local file \'files/missing.list\' not found'),
])
def test_bad_files_are_refused_naming_the_entry(files: str, problem: str, tmp_path: Path) -> None:
    work = with_files(setup(tmp_path, hosts=False))
    text = (work / STACK).read_text().replace(FILES.strip().split(" = ", 1)[1], files)
    (work / STACK).write_text(text)
    checked = recon({}, "validate", "-c", STACK, cwd=work)
    assert checked.code == 1 and problem in checked.err and "Traceback" not in checked.err, checked.both


def test_files_are_for_machine_images_only(tmp_path: Path) -> None:
    work = with_files(setup(tmp_path, hosts=False))
    text = (work / STACK).read_text().replace('type = "kernel"\n', 'type = "kernel"' + FILES)
    (work / STACK).write_text(text)
    checked = recon({}, "validate", "-c", STACK, cwd=work)
    assert checked.code == 1 and "images.kernel.files: files is for machine images, not a kernel" in checked.err, \
        checked.both


# --- the source digest cache ------------------------------------------------------------------------

def test_plans_hash_an_unchanged_source_once_and_never_trust_a_cache_beyond_its_key(sandbox, tmp_path: Path):
    env, work = sandbox.env, setup(tmp_path, hosts=False)
    rootfs = work / "images" / "rootfs.img"
    old = rootfs.stat().st_mtime - 60          # not changed in the clock tick it is hashed in
    for path in (work / "images").iterdir():
        os.utime(path, (old, old))
    assert recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work).code == 0
    cache = work / ".recon-cache" / "sha256.json"
    entries = json.loads(cache.read_text())["files"]
    real = hashlib.sha256(rootfs.read_bytes()).hexdigest()
    assert entries[str(rootfs.resolve())]["sha256"] == real

    # the next plan takes the digest from the cache, not the file: shown by a cache that lies
    entries[str(rootfs.resolve())]["sha256"] = "0" * 64
    cache.write_text(json.dumps({"format": 1, "files": entries}))
    lied = recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work)
    assert lied.code == 2 and "images.rootfs" in lied.out and "images.kernel" not in lied.out, lied.both
    # ... but only while the file is as it was then: a new modification time, and it is read again
    os.utime(rootfs, (old - 60, old - 60))
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0
    assert json.loads(cache.read_text())["files"][str(rootfs.resolve())]["sha256"] == real

    # a damaged cache is ignored (and replaced)
    for damaged in ("{not json", '{"format": 1, "files": {"x": 1}}', '[1, 2]', ""):
        cache.write_text(damaged)
        again = recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work)
        assert again.code == 0 and "Traceback" not in again.err, again.both
    assert json.loads(cache.read_text())["files"][str(rootfs.resolve())]["sha256"] == real


# --- a block switched from a source to an existing image --------------------------------------------

def test_switching_to_an_existing_image_retires_the_revision_recon_registered(sandbox, tmp_path: Path):
    env, work = sandbox.env, setup(tmp_path)
    assert recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work).code == 0
    ours = images(env)["images.rootfs"]
    text = (work / STACK).read_text()
    block = text[text.index("[images.rootfs]"):text.index("\n\n", text.index("[images.rootfs]"))]
    (work / STACK).write_text(text.replace(block, '[images.rootfs]\nname = "ubuntu-raring-docker-rootfs"'))
    plan = recon(env, "plan", "-c", STACK, cwd=work)
    assert plan.code == 0, plan.both
    assert re.search(r"- images\.rootfs \(deposed [0-9a-f]+\)", plan.out), plan.out
    assert "deregistered and its bundle deleted, once nothing uses it" in plan.out, plan.out
    assert re.search(r"\b2 to destroy\b", plan.out), plan.out      # the host it replaces, and the revision
    applied = recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert applied.code == 0, applied.both
    ec2 = client(env, "ec2")
    seeded = ec2.describe_images(Owners=["self"], Filters=[
        {"Name": "name", "Values": ["ubuntu-raring-docker-rootfs"]}])["Images"][0]["ImageId"]
    assert host_images(env) == {seeded}
    assert ec2.describe_images(Owners=["self"], Filters=[{"Name": "image-id", "Values": [ours["ImageId"]]}])[
        "Images"] == []
    assert "docker-rootfs" not in {b["Name"] for b in client(env, "s3").list_buckets()["Buckets"]}
    state = json.loads((work / "state" / "docker.json").read_text())
    assert "deposed" not in json.dumps(state), state
    assert recon(env, "plan", "-c", STACK, "--detailed-exitcode", cwd=work).code == 0


def test_an_interrupted_upload_of_a_rootfs_with_files_resumes_with_the_same_parts(sandbox, tmp_path: Path):
    """The files are written again on the resumed apply, into a fresh copy of the source: the same
    bytes (debugfs edits are repeatable), so the part the killed apply stored is not sent again."""
    env, work = sandbox.env, with_files(setup(tmp_path, hosts=False))
    # kernel part and manifest, ramdisk part and manifest, then the root file system's part: killed after it
    killed = recon({**env, "RECON_CRASH_AFTER": "s3.PutObject:5"}, "apply", "-c", STACK, "--auto-approve", cwd=work)
    assert killed.code == -9, killed.both
    [part] = bucket_keys(env, "docker-rootfs")
    assert part.endswith(".part.00"), part
    again = recon(env, "apply", "-c", STACK, "--auto-approve", "--stats", cwd=work)
    assert again.code == 0, again.both
    assert int(re.search(r"s3\.PutObject\s+(\d+)", again.err).group(1)) == 1, again.err      # the manifest alone
    rootfs = images(env)["images.rootfs"]        # registered: the sandbox verified the bundle, part and all
    assert bucket_keys(env, "docker-rootfs") == [f"{rootfs['Name']}.manifest.xml", part]
    assert registered_rootfs(env, rootfs, tmp_path).read("/etc/apt/sources.list.d/docker.list") == DOCKER_LIST
