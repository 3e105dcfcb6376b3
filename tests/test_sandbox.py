"""End-to-end tests of the sandbox cloud (reconciler.sandbox), driven over HTTP.

One sandbox child process serves the whole module; tests that need a cloud of their own (stop
behaviour, bad arguments) start small ones. Clients are plain boto3 and urllib, signed the way
Eucalyptus tools sign (SigV4 with region "eucalyptus", or SigV2).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import socket
import stat
import subprocess
import tarfile
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import boto3
import pytest
from botocore.auth import SigV2Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from reconciler.errors import ReconError
from reconciler.sandbox import Sandbox, read_eucarc
from e2e import start_child
from reconciler.sandbox.properties import (
    HIDDEN_VALUE,
    PropertiesApp,
    PropertyStore,
    default_properties,
)

ZONE = "ViciousLiesAndDangerousRumors"
ZONE2 = "TheOtherCluster"
NS = "http://msgs.eucalyptus.com/4.0.0"
LB_DEFAULTS_40 = {
    "loadbalancing.loadbalancer_emi": "NULL",
    "loadbalancing.loadbalancer_instance_type": "m1.small",
    "loadbalancing.loadbalancer_vm_keyname": "",
    "loadbalancing.loadbalancer_vm_ntp_server": "",
    "loadbalancing.loadbalancer_num_vm": "1",
    "loadbalancing.loadbalancer_restricted_ports": "22",
    "loadbalancing.loadbalancer_dns_subdomain": "lb",
    "loadbalancing.loadbalancer_app_cookie_duration": "24",
}
HIDDEN = "objectstorage.s3provider.s3secretkey"


# --------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sandbox") / "creds"
    child = start_child(directory, port=0, zones=(ZONE, ZONE2))
    try:
        yield child
    finally:
        child.stop()


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A cloud of the same zones with the default load-balancer image installed: it makes load balancers."""
    with start_child(tmp_path_factory.mktemp("installed") / "creds", zones=(ZONE, ZONE2),
                     lb_image_installed=True) as child:
        yield child


def client(cloud, service: str, *, region: str = "eucalyptus", **config):
    url = {"ec2": "EC2_URL", "s3": "S3_URL", "elb": "AWS_ELB_URL"}[service]
    return boto3.client(
        service,
        endpoint_url=cloud.env[url],
        region_name=region,
        aws_access_key_id=cloud.env["EC2_ACCESS_KEY"],
        aws_secret_access_key=cloud.env["EC2_SECRET_KEY"],
        config=Config(retries={"max_attempts": 1}, **config),
    )


@pytest.fixture(scope="module")
def ec2(cloud):
    return client(cloud, "ec2")


@pytest.fixture(scope="module")
def elb(cloud):
    return client(cloud, "elb")


@pytest.fixture(scope="module")
def s3(cloud):
    return client(cloud, "s3", s3={"addressing_style": "path"})


def http(request: urllib.request.Request) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def signed(cloud, path: str, params: dict, *, sig: str = "v4", method: str = "POST",
           access_key: str | None = None, secret_key: str | None = None) -> tuple[int, bytes]:
    """A query request to the sandbox signed like euca2ools 4.2+ (v4) or 4.0 (v2) sign it."""
    creds = Credentials(access_key or cloud.env["EC2_ACCESS_KEY"], secret_key or cloud.env["EC2_SECRET_KEY"])
    url = cloud.url + path
    params = {"Version": "eucalyptus", **params}
    if method == "POST":
        request = AWSRequest(method="POST", url=url, data=dict(params),
                             headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    else:
        request = AWSRequest(method="GET", url=url, params=dict(params))
    if sig == "v4":
        SigV4Auth(creds, "properties", "eucalyptus").add_auth(request)
    else:
        SigV2Auth(creds).add_auth(request)
    prepared = request.prepare()
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    return http(urllib.request.Request(prepared.url, data=body, headers=dict(prepared.headers),
                                       method=method))


def properties_xml(body: bytes) -> ET.Element:
    root = ET.fromstring(body)
    assert root.tag.startswith("{" + NS + "}"), root.tag
    return root


def items(root: ET.Element) -> dict[str, tuple[str, str]]:
    found = {}
    for item in root.iter(f"{{{NS}}}item"):
        name = item.findtext(f"{{{NS}}}name")
        found[name] = (item.findtext(f"{{{NS}}}value") or "", item.findtext(f"{{{NS}}}description") or "")
    return found


def error_code(body: bytes) -> tuple[str, str]:
    root = ET.fromstring(body)
    assert root.tag == "Response"
    error = root.find("Errors/Error")
    assert error.findtext("Type") == "Sender"
    assert root.findtext("RequestId")
    return error.findtext("Code"), error.findtext("Message")


def describe(cloud, *selectors: str, path: str = "/services/Empyrean", **kw) -> dict[str, tuple[str, str]]:
    params = {"Action": "DescribeProperties", **{f"Property.{i}": s for i, s in enumerate(selectors, 1)}}
    status, body = signed(cloud, path, params, **kw)
    assert status == 200, body
    return items(properties_xml(body))


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------------------------
# the process, the ready line, the credentials folder


def test_ready_line_names_url_and_eucarc(cloud):
    ready = cloud.output[-1]
    match = re.fullmatch(r"recon sandbox ready: (http://127\.0\.0\.1:(\d+)) \(source (.+)\)", ready)
    assert match, ready
    assert match.group(1) == cloud.url
    assert int(match.group(2)) == cloud.port != 0
    assert Path(match.group(3)) == cloud.directory / "eucarc"


def test_credentials_folder_is_private_and_complete(cloud):
    d = cloud.directory
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for name in ("eucarc", "cloud-pk.pem", "euca2-admin-pk.pem"):
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o600, name
    cloud_cert = x509.load_pem_x509_certificate((d / "cloud-cert.pem").read_bytes())
    user_cert = x509.load_pem_x509_certificate((d / "euca2-admin-cert.pem").read_bytes())
    cloud_key = serialization.load_pem_private_key((d / "cloud-pk.pem").read_bytes(), None)
    user_key = serialization.load_pem_private_key((d / "euca2-admin-pk.pem").read_bytes(), None)
    assert cloud_key.key_size == 2048 and isinstance(cloud_key, rsa.RSAPrivateKey)
    assert cloud_key.public_key().public_numbers() == cloud_cert.public_key().public_numbers()
    assert user_key.public_key().public_numbers() == user_cert.public_key().public_numbers()
    # the user certificate is issued (signed) by the cloud
    user_cert.verify_directly_issued_by(cloud_cert)


def test_eucarc_exports_the_eucalyptus_variables(cloud):
    env = cloud.env
    assert env["EC2_URL"] == cloud.url + "/services/compute"
    assert env["S3_URL"] == cloud.url + "/services/objectstorage"
    assert env["AWS_ELB_URL"] == cloud.url + "/services/LoadBalancing"
    assert env["EUCA_PROPERTIES_URL"] == cloud.url + "/services/Properties"
    assert env["EUCALYPTUS_CERT"] == str(cloud.directory / "cloud-cert.pem")
    assert env["EC2_CERT"] == str(cloud.directory / "euca2-admin-cert.pem")
    assert env["EC2_PRIVATE_KEY"] == str(cloud.directory / "euca2-admin-pk.pem")
    assert re.fullmatch(r"\d{12}", env["EC2_USER_ID"])
    assert re.fullmatch(r"[A-Z0-9]{20}", env["EC2_ACCESS_KEY"])
    assert env["AWS_ACCESS_KEY_ID"] == env["EC2_ACCESS_KEY"]
    assert env["AWS_SECRET_ACCESS_KEY"] == env["EC2_SECRET_KEY"]
    assert len(env["EC2_SECRET_KEY"]) >= 40
    assert env["AWS_DEFAULT_REGION"] == "eucalyptus"


def test_eucarc_can_be_sourced_from_anywhere(cloud, tmp_path):
    eucarc = cloud.directory / "eucarc"
    out = subprocess.run(
        ["bash", "-c", f'source "{eucarc}" && env -0'], cwd=tmp_path,
        capture_output=True, check=True,
    ).stdout.decode()
    sourced = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    for name, value in cloud.env.items():
        assert sourced[name] == value, name
    assert read_eucarc(eucarc) == cloud.env


def test_unknown_path_is_a_clean_404(cloud):
    status, body = http(urllib.request.Request(cloud.url + "/services/nothing"))
    assert status == 404
    assert b"/services/compute" in body


# --------------------------------------------------------------------------------------------
# EC2


def test_zones_are_the_eucalyptus_ones(ec2):
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    assert [z["ZoneName"] for z in zones] == [ZONE, ZONE2]
    assert {z["RegionName"] for z in zones} == {"eucalyptus"}
    assert [z["ZoneName"] for z in ec2.describe_availability_zones(ZoneNames=[ZONE2])["AvailabilityZones"]] == [ZONE2]
    with pytest.raises(ClientError) as err:
        ec2.describe_availability_zones(ZoneNames=["us-east-1a"])
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_one_region(ec2, cloud):
    regions = ec2.describe_regions()["Regions"]
    assert regions == [{"RegionName": "eucalyptus", "Endpoint": cloud.env["EC2_URL"]}]


def test_key_pairs_and_region_pinning(cloud, ec2):
    created = ec2.create_key_pair(KeyName="pinned")
    assert created["KeyMaterial"].startswith("-----BEGIN")
    other = client(cloud, "ec2", region="us-west-2")
    names = {k["KeyName"] for k in other.describe_key_pairs()["KeyPairs"]}
    assert "pinned" in names
    other.create_key_pair(KeyName="from-west")
    assert "from-west" in {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]}
    # a SigV2-signed request (euca2ools 3.x style) sees the same cloud
    status, body = signed(cloud, "/services/compute",
                          {"Action": "DescribeKeyPairs", "Version": "2014-06-15"}, sig="v2", method="GET")
    assert status == 200, body
    assert b"<keyName>pinned</keyName>" in body and b"<keyName>from-west</keyName>" in body


def test_security_groups(ec2):
    ec2.create_security_group(GroupName="web", Description="web servers")
    ec2.authorize_security_group_ingress(GroupName="web", IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    group = ec2.describe_security_groups(GroupNames=["web"])["SecurityGroups"][0]
    assert [(p["IpProtocol"], p["FromPort"], p["ToPort"], p["IpRanges"][0]["CidrIp"])
            for p in group["IpPermissions"]] == [("tcp", 22, 22, "0.0.0.0/0")]
    with pytest.raises(ClientError) as err:
        ec2.create_security_group(GroupName="web", Description="again")
    assert err.value.response["Error"]["Code"] == "InvalidGroup.Duplicate"


def test_no_amazon_images_and_image_ids_are_emi(ec2, cloud):
    assert [i for i in ec2.describe_images()["Images"] if i["OwnerId"] != cloud.env["EC2_USER_ID"]] == []
    image_id = ec2.register_image(
        Name="ebs-root", RootDeviceName="/dev/sda1", Architecture="i386",
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}])["ImageId"]
    assert image_id.startswith("emi-")
    [image] = ec2.describe_images(ImageIds=[image_id])["Images"]
    assert image["Name"] == "ebs-root"
    assert (image["Architecture"], image["RootDeviceType"]) == ("i386", "ebs")
    with pytest.raises(ClientError) as err:
        ec2.run_instances(ImageId="emi-0123456789abcdef0", MinCount=1, MaxCount=1)
    assert err.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"


def test_run_instances_boots_only_a_registered_machine_image(ec2):
    image_id = ec2.register_image(Name="short-lived", RootDeviceName="/dev/sda1", VirtualizationType="hvm")["ImageId"]
    [launched] = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, ClientToken="before")["Instances"]
    ec2.deregister_image(ImageId=image_id)
    [kernel] = ec2.describe_images(Filters=[{"Name": "name", "Values": ["ubuntu-raring-vmlinuz"]}])["Images"]
    for unbootable in (image_id, "emi-0123456789abcdef0", kernel["ImageId"]):   # 4.0 VmControl's words
        with pytest.raises(ClientError) as err:
            ec2.run_instances(ImageId=unbootable, MinCount=1, MaxCount=1)
        assert (err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]) == (
            "InvalidAMIID.NotFound", f"Failed to lookup image named: {unbootable}")
    launched_from = ec2.describe_instances(Filters=[{"Name": "image-id", "Values": [image_id]}])["Reservations"]
    assert [i["InstanceId"] for r in launched_from for i in r["Instances"]] == [launched["InstanceId"]]
    # the client token is looked at first: the same request again is the earlier reservation
    [again] = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, ClientToken="before")["Instances"]
    assert again["InstanceId"] == launched["InstanceId"]


@pytest.fixture(scope="module")
def image_id(ec2):
    return ec2.register_image(
        Name="docker-rootfs", RootDeviceName="/dev/sda1",
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}])["ImageId"]


def test_instances_in_eucalyptus_zones(ec2, image_id):
    r = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, Placement={"AvailabilityZone": ZONE2})
    assert r["Instances"][0]["Placement"]["AvailabilityZone"] == ZONE2
    assert r["Instances"][0]["ImageId"] == image_id
    default = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)
    assert default["Instances"][0]["Placement"]["AvailabilityZone"] == ZONE
    found = ec2.describe_instances(Filters=[{"Name": "availability-zone", "Values": [ZONE2]}])
    ids = {i["InstanceId"] for res in found["Reservations"] for i in res["Instances"]}
    assert r["Instances"][0]["InstanceId"] in ids
    assert default["Instances"][0]["InstanceId"] not in ids
    with pytest.raises(ClientError) as err:
        ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, Placement={"AvailabilityZone": "nowhere"})
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_run_instances_is_idempotent_on_client_token(ec2, image_id):
    kwargs = dict(ImageId=image_id, MinCount=2, MaxCount=2, InstanceType="m1.medium",
                  Placement={"AvailabilityZone": ZONE}, ClientToken="recon-docker_hosts.web-abc")
    first = ec2.run_instances(**kwargs)
    again = ec2.run_instances(**kwargs)
    assert again["ReservationId"] == first["ReservationId"]
    assert [i["InstanceId"] for i in again["Instances"]] == [i["InstanceId"] for i in first["Instances"]]
    assert again["Instances"][0]["Placement"]["AvailabilityZone"] == ZONE
    # no second reservation was made: the token's instances are the only ones with that type
    medium = ec2.describe_instances(Filters=[{"Name": "instance-type", "Values": ["m1.medium"]}])
    assert sum(len(r["Instances"]) for r in medium["Reservations"]) == 2
    with pytest.raises(ClientError) as err:
        ec2.run_instances(**{**kwargs, "InstanceType": "m1.large"})
    assert err.value.response["Error"]["Code"] == "IdempotentParameterMismatch"
    other = ec2.run_instances(**{**kwargs, "ClientToken": "another"})
    assert other["ReservationId"] != first["ReservationId"]


# --------------------------------------------------------------------------------------------
# RegisterImage of an instance-store bundle (DESIGN §6 format)


def make_bundle(image: bytes, prefix: str, *, cloud_cert, user_cert, user_key, part_size: int = 4096,
                image_type: str = "machine", tamper: bool = False, kernel_id: str = "",
                ramdisk_id: str = "") -> dict[str, bytes]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(f"{prefix}.img")
        info.size = len(image)
        tar.addfile(info, io.BytesIO(image))
    tar_bytes = buffer.getvalue()
    key, iv = os.urandom(16), os.urandom(16)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(gzip.compress(tar_bytes)) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(plain) + encryptor.finalize()
    chunks = [encrypted[i:i + part_size] for i in range(0, len(encrypted), part_size)]
    files = {f"{prefix}.part.{n:02d}": chunk for n, chunk in enumerate(chunks)}
    if tamper:
        name = next(iter(files))
        files[name] = bytes([files[name][0] ^ 1]) + files[name][1:]

    def enc(cert, value: bytes) -> str:
        return cert.public_key().encrypt(value.hex().encode(), rsa_padding.PKCS1v15()).hex()

    parts = "".join(
        f'<part index="{n}"><filename>{name}</filename>'
        f'<digest algorithm="SHA1">{hashlib.sha1(chunk).hexdigest()}</digest></part>'
        for n, (name, chunk) in enumerate(zip(files, chunks))
    )
    mc = ("<machine_configuration><architecture>x86_64</architecture>"
          + (f"<kernel_id>{kernel_id}</kernel_id>" if kernel_id else "")
          + (f"<ramdisk_id>{ramdisk_id}</ramdisk_id>" if ramdisk_id else "")
          + "</machine_configuration>")
    image_xml = (
        f"<image><name>{prefix}.img</name><user>123456789012</user><type>{image_type}</type>"
        f'<digest algorithm="SHA1">{hashlib.sha1(tar_bytes).hexdigest()}</digest>'
        f"<size>{len(image)}</size><bundled_size>{len(encrypted)}</bundled_size>"
        f'<ec2_encrypted_key algorithm="AES-128-CBC">{enc(cloud_cert, key)}</ec2_encrypted_key>'
        f'<user_encrypted_key algorithm="AES-128-CBC">{enc(user_cert, key)}</user_encrypted_key>'
        f"<ec2_encrypted_iv>{enc(cloud_cert, iv)}</ec2_encrypted_iv>"
        f"<user_encrypted_iv>{enc(user_cert, iv)}</user_encrypted_iv>"
        f'<parts count="{len(files)}">{parts}</parts></image>'
    )
    signature = user_key.sign((mc + image_xml).encode(), rsa_padding.PKCS1v15(), hashes.SHA1()).hex()
    files[f"{prefix}.manifest.xml"] = (
        '<?xml version="1.0" ?><manifest><version>2007-10-10</version>'
        "<bundler><name>recon-test</name><version>1</version><release>1</release></bundler>"
        f"{mc}{image_xml}<signature>{signature}</signature></manifest>"
    ).encode()
    return files


@pytest.fixture(scope="module")
def bundle_keys(cloud):
    d = cloud.directory
    return dict(
        cloud_cert=x509.load_pem_x509_certificate((d / "cloud-cert.pem").read_bytes()),
        user_cert=x509.load_pem_x509_certificate((d / "euca2-admin-cert.pem").read_bytes()),
        user_key=serialization.load_pem_private_key((d / "euca2-admin-pk.pem").read_bytes(), None),
    )


def upload(s3, bucket: str, files: dict[str, bytes], acl: str = "aws-exec-read") -> None:
    """Upload a bundle as euca2ools does: with the canned ACL aws-exec-read unless told otherwise."""
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as err:
        if err.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    for name, data in files.items():
        s3.put_object(Bucket=bucket, Key=name, Body=data, ACL=acl)


def test_register_image_checks_the_bundle_and_keeps_its_location(ec2, s3, bundle_keys):
    image = os.urandom(20000)  # incompressible: several parts
    files = make_bundle(image, "lb", **bundle_keys)
    assert len(files) > 3
    upload(s3, "loadbalancer-v3", files)
    image_id = ec2.register_image(Name="eucalyptus-load-balancer-image-v3", Description="Installed on today",
                                  ImageLocation="loadbalancer-v3/lb.manifest.xml",
                                  VirtualizationType="hvm")["ImageId"]
    assert re.fullmatch(r"emi-[0-9a-f]+", image_id)
    [desc] = ec2.describe_images(Owners=["self"], Filters=[
        {"Name": "manifest-location", "Values": ["loadbalancer-v3/lb.manifest.xml"]}])["Images"]
    assert desc["ImageId"] == image_id
    assert desc["ImageLocation"] == "loadbalancer-v3/lb.manifest.xml"
    assert desc["RootDeviceType"] == "instance-store"
    assert desc["VirtualizationType"] == "hvm"
    assert desc["Architecture"] == "x86_64"


def test_register_image_refuses_bad_bundles(ec2, s3, bundle_keys, cloud):
    # missing manifest
    with pytest.raises(ClientError) as err:
        ec2.register_image(Name="bad-x", ImageLocation="nobucket/none.manifest.xml")
    assert err.value.response["Error"]["Code"] == "InvalidManifest"
    # a part that does not match its digest
    upload(s3, "tampered", make_bundle(b"x" * 9000, "t", tamper=True, **bundle_keys))
    with pytest.raises(ClientError) as err:
        ec2.register_image(Name="bad-t", ImageLocation="tampered/t.manifest.xml")
    assert "digest" in err.value.response["Error"]["Message"]
    # signed by somebody else
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    upload(s3, "stranger", make_bundle(b"y" * 100, "s", **{**bundle_keys, "user_key": stranger}))
    with pytest.raises(ClientError) as err:
        ec2.register_image(Name="bad-s", ImageLocation="stranger/s.manifest.xml")
    assert "signature" in err.value.response["Error"]["Message"]
    # encrypted for another cloud
    other_cloud = bundle_keys["user_cert"]  # any certificate that is not the cloud's
    upload(s3, "othercloud", make_bundle(b"z" * 100, "o", **{**bundle_keys, "cloud_cert": other_cloud}))
    with pytest.raises(ClientError) as err:
        ec2.register_image(Name="bad-o", ImageLocation="othercloud/o.manifest.xml")
    assert "decrypt" in err.value.response["Error"]["Message"]
    assert not ec2.describe_images(Filters=[{"Name": "name", "Values": ["bad-x", "bad-t", "bad-s", "bad-o"]}])["Images"]


def test_register_image_refuses_a_bundle_the_cloud_cannot_read(ec2, s3, bundle_keys):
    # uploaded private: the manifest is refused in Eucalyptus' words
    upload(s3, "private", make_bundle(b"p" * 9000, "p", **bundle_keys), acl="private")
    with pytest.raises(ClientError) as err:
        ec2.register_image(Name="bad-p", ImageLocation="private/p.manifest.xml", VirtualizationType="hvm")
    assert err.value.response["Error"]["Code"] == "InvalidManifest"
    assert "Failed to read manifest file: private/p.manifest.xml" in err.value.response["Error"]["Message"]
    assert "aws-exec-read" in err.value.response["Error"]["Message"]
    # a readable manifest whose part is private
    files = make_bundle(os.urandom(9000), "q", **bundle_keys)        # incompressible: three parts
    assert "q.part.02" in files
    upload(s3, "onepart", files)
    s3.put_object_acl(Bucket="onepart", Key="q.part.01", ACL="private")
    with pytest.raises(ClientError) as err:
        ec2.register_image(Name="bad-q", ImageLocation="onepart/q.manifest.xml", VirtualizationType="hvm")
    assert "Failed to read bundle part: onepart/q.part.01" in err.value.response["Error"]["Message"]
    assert not ec2.describe_images(Filters=[{"Name": "name", "Values": ["bad-p", "bad-q"]}])["Images"]
    # what the cloud can read: the canned ACLs that grant it (or everybody) READ
    s3.put_object_acl(Bucket="onepart", Key="q.part.01", ACL="public-read")
    s3.put_object_acl(Bucket="onepart", Key="q.part.02", ACL="authenticated-read")
    assert ec2.register_image(Name="good-q", ImageLocation="onepart/q.manifest.xml",
                              VirtualizationType="hvm")["ImageId"].startswith("emi-")


def test_kernel_bundle_registers_as_eki(ec2, s3, bundle_keys):
    upload(s3, "kernels", make_bundle(b"kernel" * 100, "vmlinuz", image_type="kernel", **bundle_keys))
    kernel_id = ec2.register_image(Name="vmlinuz", ImageLocation="kernels/vmlinuz.manifest.xml")["ImageId"]
    assert kernel_id.startswith("eki-")
    [image] = ec2.describe_images(ImageIds=[kernel_id])["Images"]
    assert image["ImageId"] == kernel_id and image["ImageType"] == "kernel"
    upload(s3, "kernels", make_bundle(b"root" * 100, "pv", **bundle_keys))
    [ramdisk] = ec2.describe_images(Filters=[{"Name": "name", "Values": ["ubuntu-raring-initrd"]}])["Images"]
    machine_id = ec2.register_image(Name="pv-machine", ImageLocation="kernels/pv.manifest.xml",
                                    KernelId=kernel_id, RamdiskId=ramdisk["ImageId"])["ImageId"]
    [machine] = ec2.describe_images(ImageIds=[machine_id])["Images"]
    assert machine_id.startswith("emi-")
    assert (machine["KernelId"], machine["RamdiskId"]) == (kernel_id, ramdisk["ImageId"])
    assert machine["VirtualizationType"] == "paravirtual"
    kernels = ec2.describe_images(Filters=[{"Name": "image-type", "Values": ["kernel"]}])["Images"]
    assert sorted(i["Name"] for i in kernels) == ["ubuntu-raring-vmlinuz", "vmlinuz"]  # seeded, and this one


# --------------------------------------------------------------------------------------------
# ELB


def test_load_balancer_in_eucalyptus_zone(installed):
    cloud, elb, ec2 = installed, client(installed, "elb"), client(installed, "ec2")
    elb.create_load_balancer(
        LoadBalancerName="TestLoadBalancer", AvailabilityZones=[ZONE],
        Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstanceProtocol": "HTTP", "InstancePort": 80}])
    [lb] = elb.describe_load_balancers(LoadBalancerNames=["TestLoadBalancer"])["LoadBalancerDescriptions"]
    assert lb["AvailabilityZones"] == [ZONE]
    elb.enable_availability_zones_for_load_balancer(LoadBalancerName="TestLoadBalancer", AvailabilityZones=[ZONE2])
    [lb] = elb.describe_load_balancers(LoadBalancerNames=["TestLoadBalancer"])["LoadBalancerDescriptions"]
    assert sorted(lb["AvailabilityZones"]) == sorted([ZONE, ZONE2])
    # the cloud made the balancer's internal security group, as Eucalyptus 4.0 does
    group_name = f"euca-internal-{cloud.env['EC2_USER_ID']}-TestLoadBalancer"
    [group] = ec2.describe_security_groups(GroupNames=[group_name])["SecurityGroups"]
    assert lb["SecurityGroups"] == [group["GroupId"]]
    assert lb["SourceSecurityGroup"] == {"OwnerAlias": cloud.env["EC2_USER_ID"], "GroupName": group_name}
    attrs = elb.describe_load_balancer_attributes(LoadBalancerName="TestLoadBalancer")["LoadBalancerAttributes"]
    assert attrs["CrossZoneLoadBalancing"] == {"Enabled": False}


def test_load_balancer_errors_are_clean(elb):
    with pytest.raises(ClientError) as err:
        elb.describe_load_balancer_attributes(LoadBalancerName="missing")
    assert err.value.response["Error"]["Code"] == "LoadBalancerNotFound"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as err:
        elb.configure_health_check(LoadBalancerName="missing", HealthCheck={
            "Target": "HTTP:80/", "Interval": 30, "Timeout": 5, "HealthyThreshold": 2, "UnhealthyThreshold": 3})
    assert err.value.response["Error"]["Code"] == "LoadBalancerNotFound"
    with pytest.raises(ClientError) as err:
        elb.create_load_balancer(LoadBalancerName="aws-zone", AvailabilityZones=["us-east-1a"],
                                 Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}])
    assert err.value.response["Error"]["Code"] == "ValidationError"


def test_deleting_a_load_balancer_removes_its_internal_group(installed):
    cloud, elb, ec2 = installed, client(installed, "elb"), client(installed, "ec2")
    elb.create_load_balancer(LoadBalancerName="Short", AvailabilityZones=[ZONE2],
                             Listeners=[{"Protocol": "TCP", "LoadBalancerPort": 22, "InstancePort": 22}])
    group_name = f"euca-internal-{cloud.env['EC2_USER_ID']}-Short"
    assert ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [group_name]}])["SecurityGroups"]
    elb.delete_load_balancer(LoadBalancerName="Short")
    assert not ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [group_name]}])["SecurityGroups"]


# --------------------------------------------------------------------------------------------
# S3


def test_s3_path_style(cloud, s3):
    s3.create_bucket(Bucket="recon-state")
    s3.put_object(Bucket="recon-state", Key="stacks/prod.json", Body=b'{"serial": 1}')
    assert s3.get_object(Bucket="recon-state", Key="stacks/prod.json")["Body"].read() == b'{"serial": 1}'
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "recon-state", "Key": "stacks/prod.json"})
    assert url.startswith(cloud.url + "/services/objectstorage/recon-state/stacks/prod.json?")
    assert http(urllib.request.Request(url)) == (200, b'{"serial": 1}')
    # a client that names a location constraint still gets its bucket: there is one region
    client(cloud, "s3").create_bucket(Bucket="with-constraint",
                                      CreateBucketConfiguration={"LocationConstraint": "eucalyptus"})
    assert "with-constraint" in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_s3_conditional_put_refuses_a_second_writer(s3):
    s3.create_bucket(Bucket="recon-locks")
    s3.put_object(Bucket="recon-locks", Key="lock", Body=b"one", IfNoneMatch="*")
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket="recon-locks", Key="lock", Body=b"two", IfNoneMatch="*")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert s3.get_object(Bucket="recon-locks", Key="lock")["Body"].read() == b"one"


# --------------------------------------------------------------------------------------------
# the properties service, on the wire (DESIGN §6)


def test_describe_properties_wire_format(cloud):
    status, body = signed(cloud, "/services/Empyrean", {"Action": "DescribeProperties"})
    assert status == 200
    text = body.decode()
    assert text.startswith(f'<euca:DescribePropertiesResponseType xmlns:euca="{NS}">')
    assert "<euca:properties><euca:item><euca:name>" in text
    root = properties_xml(body)
    assert root.tag == f"{{{NS}}}DescribePropertiesResponseType"
    assert root.find(f"{{{NS}}}requestId").text
    found = items(root)
    for name, default in LB_DEFAULTS_40.items():
        value, description = found[name]
        assert value == default, name
        assert description, name
    assert found[HIDDEN][0] == HIDDEN_VALUE
    assert any(not n.startswith("loadbalancing.") for n in found)


def test_describe_selects_by_exact_name_or_prefix(cloud):
    assert set(describe(cloud, "loadbalancing.")) == set(LB_DEFAULTS_40)
    assert set(describe(cloud, "loadbalancing.loadbalancer_num_vm")) == {"loadbalancing.loadbalancer_num_vm"}
    both = describe(cloud, "loadbalancing.loadbalancer_emi", "objectstorage.")
    assert "loadbalancing.loadbalancer_emi" in both and HIDDEN in both
    assert not any(n.startswith("cloud.") for n in both)
    assert describe(cloud, "no.such.prefix") == {}


@pytest.mark.parametrize("path", ["/services/Properties", "/services/Empyrean", "/services/Configuration"])
def test_describe_answers_on_every_properties_path(cloud, path):
    assert "loadbalancing.loadbalancer_emi" in describe(cloud, "loadbalancing.", path=path)


def test_sigv2_get_is_accepted(cloud):
    found = describe(cloud, "loadbalancing.loadbalancer_instance_type", sig="v2", method="GET")
    assert found["loadbalancing.loadbalancer_instance_type"][0] == "m1.small"


def test_modify_property_value_and_reset(cloud, ec2):
    name = "loadbalancing.loadbalancer_vm_keyname"
    for key_name in ("euca-elb", "other"):  # the cloud checks that the key pair exists
        ec2.create_key_pair(KeyName=key_name)
    status, body = signed(cloud, "/services/Properties",
                          {"Action": "ModifyPropertyValue", "Name": name, "Value": "euca-elb"})
    assert status == 200, body
    text = body.decode()
    assert text.startswith(f'<euca:ModifyPropertyValueResponseType xmlns:euca="{NS}">')
    root = properties_xml(body)
    assert root.tag == f"{{{NS}}}ModifyPropertyValueResponseType"
    assert root.findtext(f"{{{NS}}}name") == name
    assert root.findtext(f"{{{NS}}}value") == "euca-elb"
    assert (root.findtext(f"{{{NS}}}oldValue") or "") == ""
    assert describe(cloud, name)[name][0] == "euca-elb"

    status, body = signed(cloud, "/services/Properties",
                          {"Action": "ModifyPropertyValue", "Name": name, "Value": "other"}, sig="v2")
    assert status == 200
    assert properties_xml(body).findtext(f"{{{NS}}}oldValue") == "euca-elb"

    status, body = signed(cloud, "/services/Properties",
                          {"Action": "ModifyPropertyValue", "Name": name, "Reset": "true"})
    assert status == 200
    root = properties_xml(body)
    assert (root.findtext(f"{{{NS}}}value") or "") == ""
    assert root.findtext(f"{{{NS}}}oldValue") == "other"
    assert describe(cloud, name)[name][0] == ""


def test_modify_emi_property(cloud, image_id):
    name = "loadbalancing.loadbalancer_emi"
    status, body = signed(cloud, "/services/Properties",
                          {"Action": "ModifyPropertyValue", "Name": name, "Value": image_id})
    assert status == 200
    assert properties_xml(body).findtext(f"{{{NS}}}oldValue") == "NULL"
    assert describe(cloud, name)[name][0] == image_id


def test_hidden_property_reads_back_masked(cloud):
    status, body = signed(cloud, "/services/Properties",
                          {"Action": "ModifyPropertyValue", "Name": HIDDEN, "Value": "s3cr3t-value"})
    assert status == 200
    root = properties_xml(body)
    assert root.findtext(f"{{{NS}}}value") == HIDDEN_VALUE
    assert root.findtext(f"{{{NS}}}oldValue") == HIDDEN_VALUE
    assert b"s3cr3t-value" not in body
    status, body = signed(cloud, "/services/Empyrean", {"Action": "DescribeProperties", "Property.1": HIDDEN})
    assert items(properties_xml(body))[HIDDEN][0] == HIDDEN_VALUE
    assert b"s3cr3t-value" not in body


def test_properties_errors(cloud):  # what the cloud refuses in a value: tests/test_sandbox_euca.py
    status, body = signed(cloud, "/services/Properties", {"Action": "DescribeServices"})
    assert status == 400
    assert error_code(body) == ("InvalidAction", "The action DescribeServices is not valid for this web service.")


def test_properties_are_for_the_admin_only():
    # Over HTTP the sandbox refuses every key but the admin's before this (test_sandbox_auth.py);
    # the service itself still lets only the admin in, as on a cloud with other users.
    from werkzeug.test import Client

    app = Client(PropertiesApp(PropertyStore(default_properties("4.0")), admin_access_key="AKIDADMIN"))
    for params in ({}, {"AWSAccessKeyId": "AKIDOTHERUSER"}):
        response = app.post("/services/Properties", data={"Action": "DescribeProperties", **params})
        assert response.status_code == 403
        assert error_code(response.data)[0] == "AccessDenied"


def test_properties_of_a_42_cloud():
    app = PropertiesApp(PropertyStore(default_properties("4.2")), admin_access_key="AKIDADMIN",
                        eucalyptus_version="4.2")
    from werkzeug.test import Client

    response = Client(app).post("/services/Properties", data={
        "Action": "DescribeProperties", "Version": "eucalyptus", "Property.1": "services.loadbalancing.",
        "AWSAccessKeyId": "AKIDADMIN"})
    assert response.status_code == 200
    root = ET.fromstring(response.data)
    ns = "http://msgs.eucalyptus.com/4.2.0"
    names = {i.findtext(f"{{{ns}}}name"): i.findtext(f"{{{ns}}}value") for i in root.iter(f"{{{ns}}}item")}
    assert names["services.loadbalancing.worker.image"] == "NULL"
    assert names["services.loadbalancing.vm_per_zone"] == "1"
    assert set(names) == {
        "services.loadbalancing.worker.image", "services.loadbalancing.worker.instance_type",
        "services.loadbalancing.worker.keyname", "services.loadbalancing.worker.ntp_server",
        "services.loadbalancing.worker.app_cookie_duration", "services.loadbalancing.dns_subdomain",
        "services.loadbalancing.vm_per_zone", "services.loadbalancing.restricted_ports"}
    assert not any(p.name.startswith("loadbalancing.") for p in default_properties("4.2"))


def test_hidden_value_is_kept_server_side():
    store = PropertyStore(default_properties("4.0"))
    assert store.modify(HIDDEN, "real") == (HIDDEN, HIDDEN_VALUE, HIDDEN_VALUE)
    assert store.value(HIDDEN) == "real"
    assert dict((n, v) for n, v, _ in store.describe([HIDDEN]))[HIDDEN] == HIDDEN_VALUE


# --------------------------------------------------------------------------------------------
# lifecycle


def test_sigterm_stops_cleanly_and_closes_the_port(tmp_path):
    child = start_child(tmp_path / "creds", port=0)
    assert port_open(child.port)
    assert child.stop() == 0
    assert "recon sandbox stopped" in child.output
    assert child.stopped_cleanly
    assert not port_open(child.port)


def test_a_fresh_process_is_a_fresh_cloud(tmp_path, cloud):
    with start_child(tmp_path / "fresh", port=0) as fresh:
        assert fresh.port != cloud.port
        assert fresh.env["EC2_ACCESS_KEY"] != cloud.env["EC2_ACCESS_KEY"]
        assert client(fresh, "ec2").describe_key_pairs()["KeyPairs"] == []
        assert [z["ZoneName"] for z in client(fresh, "ec2").describe_availability_zones()["AvailabilityZones"]] \
            == [ZONE]
    assert fresh.returncode == 0


def test_child_that_cannot_start_says_why(tmp_path):
    with pytest.raises(ReconError) as err:
        start_child(tmp_path / "bad", zones=("us-east-1a",), timeout=30)
    assert "did not start" in str(err.value)
    assert "zone" in str(err.value)


def test_sandbox_refuses_to_listen_beyond_loopback(tmp_path):
    # (starting a Sandbox in-process would adjust moto process-wide: tests use start_child)
    with pytest.raises(ReconError):
        Sandbox(tmp_path, host="0.0.0.0")
    with pytest.raises(ReconError):
        Sandbox(tmp_path, zones=())
    with pytest.raises(ReconError):
        Sandbox(tmp_path, eucalyptus_version="four")
