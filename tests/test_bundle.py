"""Instance-store bundles (reconciler.bundle): round trips, the manifest's format, determinism, one gzip
member, and the upload to object storage (against the sandbox).

Keys and certificates come from the sandbox's credentials writer (a cloud certificate and key, a
user certificate issued by it and the user's key), as a real cloud's credentials folder has them.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from e2e import client
from reconciler.bundle import write_bundle
from reconciler.bundle.manifest import MachineConfiguration, manifest_xml
from reconciler.bundle.reader import BundleError, bundle_key, extract_image, iter_image, read_manifest
from reconciler.bundle.upload import PartUploader
from reconciler.bundle.writer import PART_SIZE, BundleKey, DirectorySink, bundle_image, data_ranges
from reconciler.cloud import Cloud, resolve_settings
from reconciler.errors import ReconError
from reconciler.sandbox.bundles import verify_bundle
from reconciler.sandbox.credentials import write_credentials

MIB = 1 << 20


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict:
    creds = write_credentials(tmp_path_factory.mktemp("creds"), "http://127.0.0.1:9")
    return dict(
        account_id=creds.account_id,
        cloud_cert=x509.load_pem_x509_certificate(creds.cloud_cert.read_bytes()),
        cloud_key=serialization.load_pem_private_key(creds.cloud_key.read_bytes(), None),
        user_cert=x509.load_pem_x509_certificate(creds.user_cert.read_bytes()),
        user_key=serialization.load_pem_private_key(creds.user_key.read_bytes(), None),
    )


def signing(keys: dict) -> dict:
    return {name: keys[name] for name in ("account_id", "cloud_cert", "user_cert", "user_key")}


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    """13 MiB: random bytes (so the bundle has two parts), zeros, text."""
    path = tmp_path_factory.mktemp("image") / "lb.img"
    with open(path, "wb") as f:
        f.write(os.urandom(11 * MIB))
        f.write(bytes(MIB))
        f.write(b"global\n maxconn 100000\n" * 40000)
        f.write(os.urandom(77))                       # an odd size
    return path


@pytest.fixture(scope="module")
def bundled(image, keys, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    bundle = write_bundle(image, out, "eucalyptus-load-balancer-image", key=BundleKey.derive(keys["user_key"], "rev-1"),
                          **signing(keys))
    return bundle, out


def fetch_from(directory: Path):
    return lambda name: (directory / name).read_bytes() if (directory / name).exists() else None


def decrypted_stream(bundle, directory: Path) -> bytes:
    data = b"".join((directory / part.filename).read_bytes() for part in bundle.parts)
    plain = Cipher(algorithms.AES(bundle.key.key), modes.CBC(bundle.key.iv)).decryptor().update(data)
    return plain[:-plain[-1]]


def test_round_trip_with_the_cloud_key_and_with_the_user_key(bundled, image, keys, tmp_path):
    bundle, out = bundled
    assert len(bundle.parts) == 2 and bundle.parts[0].size == PART_SIZE
    for private_key in (keys["cloud_key"], keys["user_key"]):
        back = extract_image(out / "eucalyptus-load-balancer-image.manifest.xml", private_key, tmp_path / "back.img")
        assert back.read_bytes() == image.read_bytes()
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(BundleError, match="decrypts with neither"):
        extract_image(out / "eucalyptus-load-balancer-image.manifest.xml", stranger, tmp_path / "x.img")


def test_the_sandbox_verifier_accepts_the_bundle(bundled, image, keys):
    bundle, out = bundled
    info = verify_bundle("eucalyptus-load-balancer-image.manifest.xml", fetch_from(out), cloud_key=keys["cloud_key"],
                         user_cert=keys["user_cert"], user_key=keys["user_key"])
    assert (info.name, info.image_type, info.architecture, info.size, info.parts) == (
        "eucalyptus-load-balancer-image", "machine", "x86_64", image.stat().st_size, 2)


def test_manifest_is_laid_out_as_the_design_says(bundled, image, keys):
    bundle, out = bundled
    data = (out / "eucalyptus-load-balancer-image.manifest.xml").read_bytes()
    root = ET.fromstring(data)
    assert [child.tag for child in root] == ["version", "bundler", "machine_configuration", "image", "signature"]
    assert root.findtext("version") == "2007-10-10"
    assert [child.tag for child in root.find("bundler")] == ["name", "version", "release"]
    assert [child.tag for child in root.find("machine_configuration")] == ["architecture"]
    img = root.find("image")
    assert [child.tag for child in img] == [
        "name", "user", "type", "digest", "size", "bundled_size", "ec2_encrypted_key", "user_encrypted_key",
        "ec2_encrypted_iv", "user_encrypted_iv", "parts"]
    assert img.findtext("user") == keys["account_id"]
    assert img.find("digest").get("algorithm") == "SHA1"
    assert img.find("ec2_encrypted_key").get("algorithm") == "AES-128-CBC"
    assert img.find("user_encrypted_key").get("algorithm") == "AES-128-CBC"
    assert int(img.findtext("size")) == image.stat().st_size
    assert int(img.findtext("bundled_size")) == sum((out / p.filename).stat().st_size for p in bundle.parts)
    parts = img.find("parts")
    assert parts.get("count") == "2"
    for index, part in enumerate(parts):
        assert part.get("index") == str(index)
        name = part.findtext("filename")
        assert name == f"eucalyptus-load-balancer-image.part.{index:02d}"
        assert part.find("digest").get("algorithm") == "SHA1"
        assert part.findtext("digest") == hashlib.sha1((out / name).read_bytes()).hexdigest()
    # the key and IV are hex text encrypted for each certificate
    for owner, private_key in (("ec2", keys["cloud_key"]), ("user", keys["user_key"])):
        for field, value in (("key", bundle.key.key), ("iv", bundle.key.iv)):
            encrypted = bytes.fromhex(img.findtext(f"{owner}_encrypted_{field}"))
            assert private_key.decrypt(encrypted, rsa_padding.PKCS1v15()) == value.hex().encode()
    # the signature covers <machine_configuration> then <image>, as written
    start, end = data.index(b"<machine_configuration>"), data.index(b"</image>") + len(b"</image>")
    keys["user_cert"].public_key().verify(bytes.fromhex(root.findtext("signature")), data[start:end],
                                          rsa_padding.PKCS1v15(), hashes.SHA1())


def test_manifest_bytes_are_what_euca2ools_writes(bundled):
    """lxml's declaration and a newline, then the document on one line, ASCII, no trailing newline."""
    _, out = bundled
    data = (out / "eucalyptus-load-balancer-image.manifest.xml").read_bytes()
    assert data.startswith(b"<?xml version='1.0' encoding='ASCII'?>\n<manifest><version>2007-10-10</version>")
    assert data.endswith(b"</signature></manifest>") and data.count(b"\n") == 1
    data.decode("ascii")


def test_machine_configuration_options(bundled, keys):
    bundle, _ = bundled
    machine = MachineConfiguration(kernel_id="eki-12345678", ramdisk_id="eri-12345678",
                                   block_device_mapping={"root": "/dev/sda1", "ami": "sda1"})
    root = ET.fromstring(manifest_xml(bundle, machine=machine, **signing(keys)))
    config = root.find("machine_configuration")
    assert [child.tag for child in config] == ["architecture", "block_device_mapping", "kernel_id", "ramdisk_id"]
    assert [(m.findtext("virtual"), m.findtext("device")) for m in config.find("block_device_mapping")] == [
        ("ami", "sda1"), ("root", "/dev/sda1")]
    # anything beyond ASCII is a character reference, inside the signed text as well
    data = manifest_xml(bundle, machine=MachineConfiguration(architecture="x86_64", block_device_mapping={
        "ephemeral0": "/dev/sd\u00e9"}), **signing(keys))
    assert b"<device>/dev/sd&#233;</device>" in data and data.decode("ascii")
    assert ET.fromstring(data).findtext("machine_configuration/block_device_mapping/mapping/device") == "/dev/sd\u00e9"
    start, end = data.index(b"<machine_configuration>"), data.index(b"</image>") + len(b"</image>")
    keys["user_cert"].public_key().verify(bytes.fromhex(ET.fromstring(data).findtext("signature")), data[start:end],
                                          rsa_padding.PKCS1v15(), hashes.SHA1())
    with pytest.raises(ReconError, match="image type"):
        manifest_xml(bundle, image_type="disk", **signing(keys))


def test_compressed_stream_is_one_standard_gzip_member(bundled, image, tmp_path):
    bundle, out = bundled
    stream = decrypted_stream(bundle, out)
    assert stream[:4] == b"\x1f\x8b\x08\x00" and stream[4:8] == bytes(4)      # no name, mtime 0
    gunzip = zlib.decompressobj(16 + zlib.MAX_WBITS)
    tar_bytes = gunzip.decompress(stream)
    assert gunzip.eof and gunzip.unused_data == b""
    assert hashlib.sha1(tar_bytes).hexdigest() == bundle.digest
    if shutil.which("gzip"):
        assert subprocess.run(["gzip", "-t"], input=stream).returncode == 0
        assert subprocess.run(["gzip", "-dc"], input=stream, capture_output=True).stdout == tar_bytes
    # one member named after the image (the manifest's <image><name>, as euca2ools names it),
    # deterministic header, the image's bytes
    name = ET.fromstring((out / "eucalyptus-load-balancer-image.manifest.xml").read_bytes()).findtext("image/name")
    assert name == "eucalyptus-load-balancer-image"
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        [member] = tar.getmembers()
        assert (member.name, member.size, member.mode, member.mtime, member.uid, member.gid) == (
            name, image.stat().st_size, 0o644, 0, 0, 0)
        assert tar.extractfile(member).read() == image.read_bytes()
    assert len(tar_bytes) % tarfile.RECORDSIZE == 0


def test_parts_are_deterministic_and_streamed_to_a_sink_in_order(bundled, image, keys):
    bundle, out = bundled
    received, progress = [], []
    again = bundle_image(image, "eucalyptus-load-balancer-image", BundleKey.derive(keys["user_key"], "rev-1"),
                         lambda part, data: received.append((part, data)), workers=3,
                         progress=lambda done, total: progress.append((done, total)))
    assert again == bundle
    size = image.stat().st_size
    assert progress[-1] == (size, size) and [done for done, _ in progress] == sorted(done for done, _ in progress)
    assert [part.index for part, _ in received] == [0, 1]
    for part, data in received:
        assert data == (out / part.filename).read_bytes()
        assert part.md5 == hashlib.md5(data).hexdigest()          # what S3 reports as the ETag
    other = bundle_image(image, "eucalyptus-load-balancer-image", BundleKey.derive(keys["user_key"], "rev-2"),
                         lambda part, data: None)
    assert other.digest == bundle.digest and other.parts[0].sha1 != bundle.parts[0].sha1
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert BundleKey.derive(stranger, "rev-1") != BundleKey.derive(keys["user_key"], "rev-1")
    assert "key=" not in repr(bundle.key)


def test_tampering_is_detected(bundled, keys, tmp_path):
    bundle, out = bundled
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    part = copy / bundle.parts[1].filename
    data = bytearray(part.read_bytes())
    data[100] ^= 1
    part.write_bytes(bytes(data))
    manifest = read_manifest((copy / "eucalyptus-load-balancer-image.manifest.xml").read_bytes())
    with pytest.raises(BundleError, match="does not match its SHA1"):
        b"".join(iter_image(manifest.parts, manifest.digest, bundle_key(manifest, keys["cloud_key"]),
                            fetch_from(copy)))
    # parts that check out but do not add up to the image digest
    with pytest.raises(BundleError, match="image digest"):
        b"".join(iter_image(manifest.parts, "0" * 40, bundle.key, fetch_from(out)))


@pytest.mark.parametrize("size", [0, 1, 511, 512, 1 << 20, (1 << 20) - 512])
def test_small_and_block_aligned_images_round_trip(size, keys, tmp_path):
    image = tmp_path / "small.img"
    image.write_bytes(os.urandom(size))
    bundle = write_bundle(image, tmp_path / "out", "small", key=BundleKey.random(), **signing(keys))
    assert len(bundle.parts) == 1
    assert extract_image(tmp_path / "out" / "small.manifest.xml", keys["user_key"],
                         tmp_path / "back.img").read_bytes() == image.read_bytes()
    verify_bundle("small.manifest.xml", fetch_from(tmp_path / "out"), cloud_key=keys["cloud_key"],
                  user_cert=keys["user_cert"])


def test_bad_prefixes_are_refused(image, tmp_path):
    for prefix in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(ReconError, match="bundle prefix"):
            bundle_image(image, prefix, BundleKey.random(), DirectorySink(tmp_path))


def test_uploads_carry_aws_exec_read_and_resume_by_etag(sandbox, tmp_path):
    """Parts and manifest go up with the canned ACL aws-exec-read (GetObjectAcl shows the owner's
    FULL_CONTROL and Eucalyptus' READ grant to the cloud), the cloud registers the bundle, and
    uploading the same revision again sends no part (identical parts, same ETags)."""
    env = sandbox.env
    signer = dict(account_id=env["EC2_USER_ID"],
                  cloud_cert=x509.load_pem_x509_certificate(Path(env["EUCALYPTUS_CERT"]).read_bytes()),
                  user_cert=x509.load_pem_x509_certificate(Path(env["EC2_CERT"]).read_bytes()),
                  user_key=serialization.load_pem_private_key(Path(env["EC2_PRIVATE_KEY"]).read_bytes(), None))
    image = tmp_path / "small.img"
    image.write_bytes(os.urandom(PART_SIZE + 4096))            # incompressible: two parts
    cloud = Cloud(resolve_settings({}, env, tmp_path), env)
    s3 = client(env, "s3")
    s3.create_bucket(Bucket="bundles")
    key = BundleKey.derive(signer["user_key"], "rev-1")

    def upload(existing: dict[str, str]) -> tuple:
        uploader = PartUploader(cloud, "bundles", existing, where="test")
        try:
            bundle = bundle_image(image, "small", key, uploader)
        finally:
            uploader.close()
        uploader.put_manifest("small.manifest.xml", manifest_xml(bundle, **signer))
        return bundle, uploader

    bundle, first = upload({})
    assert (first.sent, first.skipped) == (2, 0)
    for name in [part.filename for part in bundle.parts] + ["small.manifest.xml"]:
        acl = s3.get_object_acl(Bucket="bundles", Key=name)
        grants = {(grant["Grantee"].get("URI") or grant["Grantee"].get("ID"), grant["Permission"])
                  for grant in acl["Grants"]}
        assert grants == {(acl["Owner"]["ID"], "FULL_CONTROL"), ("http://acs.amazonaws.com/groups/s3/zateam", "READ")}
    image_id = client(env, "ec2").register_image(Name="small", ImageLocation="bundles/small.manifest.xml",
                                                 Architecture="x86_64", VirtualizationType="hvm")["ImageId"]
    assert image_id.startswith("emi-")
    stored = {o["Key"]: o["ETag"].strip('"') for o in s3.list_objects_v2(Bucket="bundles")["Contents"]}
    again, resumed = upload(stored)
    assert (resumed.sent, resumed.skipped) == (0, 2) and again.parts == bundle.parts


def reference_stream(image: Path, prefix: str) -> bytes:
    """The tar stream a byte-by-byte bundler makes of ``image`` (tarfile reads every byte of it)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        member = tarfile.TarInfo(prefix)
        member.size, member.mode, member.mtime, member.uname, member.gname = image.stat().st_size, 0o644, 0, "", ""
        with open(image, "rb") as f:
            tar.addfile(member, f)
    return out.getvalue()


@pytest.fixture(scope="module")
def sparse_image(tmp_path_factory) -> Path:
    """40 MiB and a few bytes, mostly holes: data islands (at the start, across block boundaries,
    at odd offsets, at the very end) and a stretch of zeros written as data."""
    path = tmp_path_factory.mktemp("sparse") / "sparse.img"
    with open(path, "wb") as f:
        f.truncate((40 << 20) + 1234)
        for offset, size in [(0, 4096), (3 * MIB - 700, 2 * MIB), (17 * MIB + 511, 9000), ((40 << 20) + 1000, 234)]:
            f.seek(offset)
            f.write(os.urandom(size))
        f.seek(25 * MIB)
        f.write(bytes(3 * MIB))
    return path


def test_a_sparse_image_bundles_as_a_byte_by_byte_bundler_does(sparse_image, keys, tmp_path):
    fd = os.open(sparse_image, os.O_RDONLY)
    try:
        ranges = data_ranges(fd, sparse_image.stat().st_size)
    finally:
        os.close(fd)
    if len(ranges) == 1:
        pytest.skip("the file system of the temporary folder keeps no holes")
    assert sum(end - start for start, end in ranges) < 12 * MIB        # the holes are seen as holes
    key = BundleKey.derive(keys["user_key"], "sparse")
    bundle = bundle_image(sparse_image, "sparse", key, DirectorySink(tmp_path / "sparse"))
    reference = reference_stream(sparse_image, "sparse")
    assert bundle.digest == hashlib.sha1(reference).hexdigest()
    gunzip = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert gunzip.decompress(decrypted_stream(bundle, tmp_path / "sparse")) == reference
    assert gunzip.eof and gunzip.unused_data == b""                    # one gzip member
    # the same bytes without holes (read whole) give the same parts
    dense = tmp_path / "dense.img"
    with open(sparse_image, "rb") as source, open(dense, "wb") as out:
        while chunk := source.read(MIB):
            out.write(chunk)
    assert bundle_image(dense, "sparse", key, DirectorySink(tmp_path / "dense")) == bundle
    for part in bundle.parts:
        assert (tmp_path / "dense" / part.filename).read_bytes() == (tmp_path / "sparse" / part.filename).read_bytes()


def test_incompressible_blocks_are_stored_and_the_stream_stays_one_member(keys, tmp_path):
    """Random bytes between text: the random blocks are stored (no bigger than they are), the text
    still deflates, and it is one gzip member holding the exact tar stream."""
    image = tmp_path / "mixed.img"
    image.write_bytes(b"text line\n" * (300 << 10) + os.urandom(4 * MIB) + b"more text\n" * (300 << 10))
    bundle = bundle_image(image, "mixed", BundleKey.random(), DirectorySink(tmp_path / "out"))
    assert 4 * MIB < bundle.bundled_size < 4 * MIB + 128 * 1024
    gunzip = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert gunzip.decompress(decrypted_stream(bundle, tmp_path / "out")) == reference_stream(image, "mixed")
    assert gunzip.eof and gunzip.unused_data == b""
    assert subprocess.run(["gzip", "-t"], input=decrypted_stream(bundle, tmp_path / "out")).returncode == 0
