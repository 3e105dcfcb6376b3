"""The sandbox refuses what a Eucalyptus 4.0/4.2 cloud refuses, in Eucalyptus' words (DESIGN §11).

Driven over HTTP with boto3 (the properties service through the model recon ships), against
sandbox child processes of both versions. The wording is the server's: 4.0's
``LoadBalancerASGroupCreator`` and ``LoadBalancerDnsRecord`` change listeners, ``PropertiesManager``
and ``PropertyDirectory`` for properties, ``ImageManager`` for RegisterImage.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from e2e import client, properties_client, recon
from test_sandbox import make_bundle, signed, upload

from e2e import start_child

ZONE = "ViciousLiesAndDangerousRumors"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    with start_child(tmp_path_factory.mktemp("euca40") / "creds") as child:
        yield child


@pytest.fixture(scope="module")
def cloud42(tmp_path_factory):
    with start_child(tmp_path_factory.mktemp("euca42") / "creds", eucalyptus_version="4.2") as child:
        yield child


def modify(cloud, name: str, value: str | None = None, **extra) -> dict:
    params = {"Name": name, **({} if value is None else {"Value": value}), **extra}
    return properties_client(cloud.env).modify_property_value(**params)


def refusal(cloud, name: str, value: str | None = None, **extra) -> tuple[str, str, str]:
    """(message, the exception chain the cloud sends in RequestID) of a refused ModifyPropertyValue."""
    with pytest.raises(ClientError) as err:
        modify(cloud, name, value, **extra)
    response = err.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 406
    assert response["Error"]["Code"] == "ModifyPropertyValueType"
    return response["Error"]["Message"], response.get("RequestID", "")


def value(cloud, name: str) -> str:
    reply = properties_client(cloud.env).describe_properties(Properties=[name])
    return {p["name"]: p.get("value") or "" for p in reply["properties"]}[name]


def image_named(ec2, name: str) -> str:
    [image] = ec2.describe_images(Filters=[{"Name": "name", "Values": [name]}])["Images"]
    return image["ImageId"]


# --------------------------------------------------------------------------------------------
# properties, 4.0


def test_unknown_property(cloud):
    assert refusal(cloud, "loadbalancing.no_such", "1") == (
        "Failed to set property: No such property: loadbalancing.no_such",
        "com.eucalyptus.util.EucalyptusCloudException: Failed to set property: No such property: loadbalancing.no_such")
    # on the wire, as Binding.createRestFault writes it; a missing Name is the binding's null
    status, body = signed(cloud, "/services/Properties", {"Action": "ModifyPropertyValue", "Value": "1"})
    assert status == 406
    assert body.startswith(b'<?xml version="1.0"?><Response><Errors><Error><Code>ModifyPropertyValueType</Code>'
                           b"<Message>Failed to set property: No such property: null</Message></Error></Errors>"
                           b"<RequestID>")


def test_emi_must_name_an_image_of_the_cloud(cloud):
    name = "loadbalancing.loadbalancer_emi"
    for bad in ("emi-00000000", "", "NULL-ish"):
        message, chain = refusal(cloud, name, bad)
        assert message == "Could not change EMI ID"
        assert "Caused by: com.eucalyptus.util.EucalyptusCloudException: No such EMI is found in the system" in chain
    assert value(cloud, name) == "NULL"
    rootfs = image_named(client(cloud.env, "ec2"), "ubuntu-raring-docker-rootfs")
    assert modify(cloud, name, rootfs.upper())["value"] == rootfs.upper()  # 4.0 compares ids case-blind
    reply = modify(cloud, name, rootfs)
    assert (reply["name"], reply["value"], reply["oldValue"]) == (name, rootfs, rootfs.upper())
    assert value(cloud, name) == rootfs
    assert modify(cloud, name, rootfs)["value"] == rootfs  # the same value again is not checked
    # resetting checks the default like any value: once an emi is set, NULL is no image either
    assert refusal(cloud, name, Reset=True)[0] == "Could not change EMI ID"
    assert value(cloud, name) == rootfs


def test_key_name_must_name_a_key_pair(cloud):
    name = "loadbalancing.loadbalancer_vm_keyname"
    message, chain = refusal(cloud, name, "euca-elb")
    assert message == "Could not change key name"
    assert chain.endswith("Caused by: com.eucalyptus.util.EucalyptusCloudException: "
                          "No such keypair is found in the system")
    client(cloud.env, "ec2").create_key_pair(KeyName="euca-elb")
    assert modify(cloud, name, "euca-elb")["value"] == "euca-elb"
    assert modify(cloud, name, "")["value"] == ""  # no key: allowed


def test_instance_type_cannot_be_unset(cloud):
    name = "loadbalancing.loadbalancer_instance_type"
    for params in ({"value": ""}, {}):  # a missing Value sets the empty string
        message, chain = refusal(cloud, name, **params)
        assert message == "Could not change instance type"
        assert chain.endswith("Instance type cannot be unset")
    assert modify(cloud, name, "m1.large")["value"] == "m1.large"
    reply = modify(cloud, name, Reset=True)
    assert (reply["value"], reply["oldValue"]) == ("m1.small", "m1.large")


@pytest.mark.parametrize("good", ["", "pool.ntp.org", "10.0.0.1", "ntp1.example.com,ntp2.example.com", "ntp_1"])
def test_ntp_server_accepts_host_names(cloud, good):
    assert modify(cloud, "loadbalancing.loadbalancer_vm_ntp_server", good)["value"] == good


@pytest.mark.parametrize("bad", ["ntp server", "ntp.example.com:123", "a.example,", ",a.example", "a,,b",
                                 "-ntp.example", "ntp..example", "x" * 64])
def test_ntp_server_refuses_what_is_not_a_host_name(cloud, bad):
    message, chain = refusal(cloud, "loadbalancing.loadbalancer_vm_ntp_server", bad)
    assert message == "Could not change ntp server address"
    assert chain.endswith("Invalid address")


def test_app_cookie_duration_is_a_positive_number(cloud):
    name = "loadbalancing.loadbalancer_app_cookie_duration"
    assert refusal(cloud, name, "a day")[0] == "Duration must be in number type and bigger than 0 (in hours)"
    assert refusal(cloud, name, "99999999999")[0] == "Duration must be in number type and bigger than 0 (in hours)"
    assert refusal(cloud, name, "0")[0] == "Could not change instance type"  # sic: 4.0's listener says so
    assert modify(cloud, name, "12")["value"] == "12"


def test_other_checked_values(cloud):
    assert refusal(cloud, "loadbalancing.loadbalancer_dns_subdomain", "my lb")[0] == "Malformed domain name"
    assert refusal(cloud, "cloud.vmstate.instance_timeout", "soon")[0] == 'For input string: "soon"'
    # what 4.0 leaves unchecked stays accepted: the number of VMs is a text field
    assert modify(cloud, "loadbalancing.loadbalancer_num_vm", "two")["value"] == "two"
    assert modify(cloud, "loadbalancing.loadbalancer_num_vm", "1")["value"] == "1"


def test_missing_value_sets_the_empty_string_and_reset_false_changes_nothing(cloud):
    name = "loadbalancing.loadbalancer_vm_ntp_server"
    modify(cloud, name, "pool.ntp.org")
    reply = modify(cloud, name, Reset=False)
    assert (reply["value"], reply["oldValue"]) == ("pool.ntp.org", "pool.ntp.org")
    reply = modify(cloud, name)
    assert (reply.get("value", ""), reply["oldValue"]) == ("", "pool.ntp.org")
    assert value(cloud, name) == ""


# --------------------------------------------------------------------------------------------
# properties, 4.2 words


def test_42_words_its_refusals_with_their_reason(cloud42):
    worker = "services.loadbalancing.worker."
    assert refusal(cloud42, worker + "image", "emi-00000000")[0] == \
        "Could not change EMI ID due to: No such EMI is found in the system"
    assert refusal(cloud42, worker + "keyname", "euca-elb")[0] == (
        "Could not change key name due to: The key pair 'euca-elb' does not exist. "
        "Do you have keypair euca-elb that belongs to (eucalyptus)loadbalancing account?")
    assert refusal(cloud42, worker + "instance_type", "")[0] == \
        "Could not change instance type due to: Instance type cannot be unset"
    assert refusal(cloud42, worker + "app_cookie_duration", "-1")[0] == "Could not change ELB app cookie duration"
    assert refusal(cloud42, "services.loadbalancing.no_such", "1")[0] == \
        "Failed to set property: No such property: services.loadbalancing.no_such"
    rootfs = image_named(client(cloud42.env, "ec2"), "ubuntu-raring-docker-rootfs")
    assert modify(cloud42, worker + "image", rootfs)["value"] == rootfs


# --------------------------------------------------------------------------------------------
# RegisterImage (4.0 ImageManager)


@pytest.fixture(scope="module")
def keys(cloud):
    d = cloud.directory
    return dict(
        cloud_cert=x509.load_pem_x509_certificate((d / "cloud-cert.pem").read_bytes()),
        user_cert=x509.load_pem_x509_certificate((d / "euca2-admin-cert.pem").read_bytes()),
        user_key=serialization.load_pem_private_key((d / "euca2-admin-pk.pem").read_bytes(), None),
    )


def register_refused(ec2, **params) -> tuple[str, str]:
    with pytest.raises(ClientError) as err:
        ec2.register_image(**params)
    return err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]


def test_a_paravirtual_machine_image_needs_a_kernel_and_a_ramdisk(cloud, keys):
    ec2, s3 = client(cloud.env, "ec2"), client(cloud.env, "s3")
    kernel, ramdisk = image_named(ec2, "ubuntu-raring-vmlinuz"), image_named(ec2, "ubuntu-raring-initrd")
    upload(s3, "pv-images", make_bundle(b"root" * 1000, "plain", **keys))
    location = "pv-images/plain.manifest.xml"
    # without a virtualization type the image is paravirtual
    assert register_refused(ec2, Name="no-kernel", ImageLocation=location) == \
        ("MissingParameter", "Kernel ID must be specified")
    assert register_refused(ec2, Name="no-ramdisk", ImageLocation=location, KernelId=kernel) == \
        ("MissingParameter", "Ramdisk ID must be specified")
    assert register_refused(ec2, Name="xen-image", ImageLocation=location, VirtualizationType="xen") == \
        ("RegisterImageType", "Unknown virtualization-type")
    pv = ec2.register_image(Name="pv-given", ImageLocation=location, KernelId=kernel, RamdiskId=ramdisk)["ImageId"]
    hvm = ec2.register_image(Name="hvm-image", ImageLocation=location, VirtualizationType="HVM")["ImageId"]
    # the manifest's machine_configuration may name them instead
    upload(s3, "pv-images", make_bundle(b"root" * 1000, "withkernel", kernel_id=kernel, ramdisk_id=ramdisk, **keys))
    from_manifest = ec2.register_image(Name="pv-manifest", ImageLocation="pv-images/withkernel.manifest.xml")["ImageId"]
    images = {i["ImageId"]: i for i in ec2.describe_images(ImageIds=[pv, hvm, from_manifest])["Images"]}
    assert images[pv]["VirtualizationType"] == images[from_manifest]["VirtualizationType"] == "paravirtual"
    assert (images[from_manifest]["KernelId"], images[from_manifest]["RamdiskId"]) == (kernel, ramdisk)
    assert images[hvm]["VirtualizationType"] == "hvm" and "KernelId" not in images[hvm]
    assert not ec2.describe_images(Filters=[{"Name": "name", "Values": ["no-kernel", "no-ramdisk", "xen-image"]}])[
        "Images"]


def test_image_names_are_unique_in_the_account_and_well_formed(cloud, keys):
    ec2 = client(cloud.env, "ec2")
    existing = image_named(ec2, "ubuntu-raring-initrd")
    assert register_refused(ec2, Name="ubuntu-raring-initrd", RootDeviceName="/dev/sda1",
                            BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 1}}]) == \
        ("InvalidAMIName.Duplicate", f"AMI name ubuntu-raring-initrd is already in use by EMI {existing}")
    for bad in ("my image", "name!", "x" * 129):
        code, message = register_refused(ec2, Name=bad, ImageLocation="pv-images/plain.manifest.xml")
        assert code == "InvalidAMIName.Malformed"
        assert message.startswith("AMI names must be between 3 and 128 characters long")
    assert register_refused(ec2, Name="long-description", Description="d" * 256, ImageLocation="x/y.manifest.xml") \
        == ("InvalidParameter", "AMI descriptions must be less than 256 characters long")


def test_a_manifest_signed_by_the_cloud_is_accepted(cloud, keys):
    ec2, s3 = client(cloud.env, "ec2"), client(cloud.env, "s3")
    cloud_key = serialization.load_pem_private_key((cloud.directory / "cloud-pk.pem").read_bytes(), None)
    upload(s3, "by-cloud", make_bundle(b"lb" * 3000, "lb", **{**keys, "user_key": cloud_key}))
    image_id = ec2.register_image(Name="cloud-signed", ImageLocation="by-cloud/lb.manifest.xml",
                                  VirtualizationType="hvm")["ImageId"]
    assert ec2.describe_images(ImageIds=[image_id])["Images"][0]["ImageLocation"] == "by-cloud/lb.manifest.xml"


# --------------------------------------------------------------------------------------------
# what only AWS answers is gone


def test_load_balancers_get_the_40_dns_name(installed_sandbox):
    cloud = installed_sandbox
    elb, account = client(cloud.env, "elb"), cloud.env["EC2_USER_ID"]
    listeners = [{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}]
    created = elb.create_load_balancer(LoadBalancerName="First", AvailabilityZones=[ZONE], Listeners=listeners)
    assert created["DNSName"] == f"First-{account}.lb.localhost"
    modify(cloud, "loadbalancing.loadbalancer_dns_subdomain", "elb")
    modify(cloud, "system.dns.dnsdomain", "cloud.example.com")
    try:
        second = elb.create_load_balancer(LoadBalancerName="Second", AvailabilityZones=[ZONE], Listeners=listeners)
    finally:
        modify(cloud, "loadbalancing.loadbalancer_dns_subdomain", Reset=True)
        modify(cloud, "system.dns.dnsdomain", Reset=True)
    assert second["DNSName"] == f"Second-{account}.elb.cloud.example.com"
    described = {lb["LoadBalancerName"]: lb for lb in elb.describe_load_balancers()["LoadBalancerDescriptions"]}
    assert described["First"]["DNSName"] == created["DNSName"]
    assert described["Second"]["DNSName"] == second["DNSName"]
    for lb in described.values():
        assert "VPCId" not in lb and not lb.get("Subnets")


def test_instance_store_images_and_instances_look_like_40_ones(cloud):
    ec2 = client(cloud.env, "ec2")
    images = ec2.describe_images(Filters=[{"Name": "name", "Values": ["ubuntu-raring-*"]}])["Images"]
    assert len(images) == 3
    for image in images:
        assert image["RootDeviceType"] == "instance-store"
        assert image.get("BlockDeviceMappings", []) == [] and "BootMode" not in image
    rootfs = image_named(ec2, "ubuntu-raring-docker-rootfs")
    [launched] = ec2.run_instances(ImageId=rootfs, MinCount=1, MaxCount=1)["Instances"]
    [reservation] = ec2.describe_instances(InstanceIds=[launched["InstanceId"]])["Reservations"]
    [described] = reservation["Instances"]
    assert [g["GroupName"] for g in reservation["Groups"]] == ["default"]
    for instance in (launched, described):
        assert instance["RootDeviceType"] == "instance-store"
        assert instance.get("BlockDeviceMappings", []) == []
        for aws_only in ("VpcId", "SubnetId", "NetworkInterfaces", "SourceDestCheck"):
            assert aws_only not in instance, aws_only
        assert [g["GroupName"] for g in instance["SecurityGroups"]] == ["default"]
        assert instance["PublicDnsName"] == instance["PublicIpAddress"]
        assert instance["PrivateDnsName"] == instance["PrivateIpAddress"]


# --------------------------------------------------------------------------------------------
# Text the cloud stores (NetworkGroupManager, TagManager), and replies that always parse


def _refused(call, code: str) -> str:
    with pytest.raises(ClientError) as err:
        call()
    assert err.value.response["Error"]["Code"] == code, err.value.response
    return err.value.response["Error"]["Message"]


def test_group_names_and_descriptions_are_ascii(cloud):
    ec2 = client(cloud.env, "ec2")
    message = _refused(lambda: ec2.create_security_group(GroupName="g-text", Description="caf\u00e9"),
                       "InvalidParameterValue")
    assert message.endswith("for parameter GroupDescription is invalid. Character sets beyond ASCII are not supported.")
    _refused(lambda: ec2.create_security_group(GroupName="g-\u202e", Description="d"), "InvalidParameterValue")
    assert not ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["g-*"]}])["SecurityGroups"]


@pytest.mark.parametrize("text", ["bell\x07", "escape\x1b[31m", "nul\x00"])
def test_what_no_reply_could_carry_is_never_stored(cloud, text):
    """ASCII, so Eucalyptus would take it: stored, every later describe would be unreadable XML."""
    ec2 = client(cloud.env, "ec2")
    _refused(lambda: ec2.create_security_group(GroupName="g-control", Description=text), "InvalidParameterValue")
    _refused(lambda: modify(cloud, "loadbalancing.loadbalancer_dns_subdomain", text), "InvalidParameterValue")
    ec2.describe_security_groups()           # every later reply still parses
    value(cloud, "loadbalancing.loadbalancer_dns_subdomain")


def test_tags_have_eucalyptus_limits(cloud):
    ec2 = client(cloud.env, "ec2")
    group = ec2.create_security_group(GroupName="g-tags", Description="tags")["GroupId"]
    tag = lambda i: {"Key": f"k{i}", "Value": "v"}     # noqa: E731
    assert "127 characters" in _refused(lambda: ec2.create_tags(Resources=[group], Tags=[{"Key": "k" * 128,
                                                                                          "Value": ""}]),
                                        "InvalidParameterValue")
    assert "255 characters" in _refused(lambda: ec2.create_tags(Resources=[group], Tags=[{"Key": "k",
                                                                                          "Value": "v" * 256}]),
                                        "InvalidParameterValue")
    ec2.create_tags(Resources=[group], Tags=[tag(i) for i in range(8)])
    ec2.create_tags(Resources=[group], Tags=[tag(i) for i in range(6, 10)])   # two replaced, two added: 10
    _refused(lambda: ec2.create_tags(Resources=[group], Tags=[tag(10)]), "TagLimitExceeded")
    [described] = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"]
    assert len(described["Tags"]) == 10
    rootfs = image_named(ec2, "ubuntu-raring-docker-rootfs")
    _refused(lambda: ec2.run_instances(ImageId=rootfs, MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [tag(i) for i in range(11)]}]), "TagLimitExceeded")


# --------------------------------------------------------------------------------------------
# recon quotes the cloud


@pytest.mark.parametrize("version, emi_property, type_property, words", [
    ("4.0", "loadbalancing.loadbalancer_emi", "loadbalancing.loadbalancer_instance_type",
     "ModifyPropertyValueType: Could not change instance type"),
    ("4.2", "services.loadbalancing.worker.image", "services.loadbalancing.worker.instance_type",
     "ModifyPropertyValueType: Could not change instance type due to: Instance type cannot be unset"),
])
def test_recon_names_the_property_and_quotes_the_cloud(tmp_path: Path, version, emi_property, type_property,
                                                       words):
    def write(body: str) -> None:
        stack.write_text(f'[stack]\nname = "bad-lb"\n[cloud]\neucalyptus_version = "{version}"\n'
                         f"[properties]\n{body}\n")

    stack = tmp_path / "stack.toml"
    with start_child(tmp_path / "sandbox", eucalyptus_version=version) as sandbox:
        # an emi of no image: plan knows it before the cloud is asked
        write(f'"{emi_property}" = "emi-00000000"')
        run = recon(sandbox.env, "apply", "-c", stack.name, "--auto-approve", cwd=tmp_path)
        assert run.code == 1, run.both
        assert f"properties.{emi_property}: value 'emi-00000000' names no image" in run.err
        # what only the cloud refuses: recon names the property and quotes the cloud's words
        write(f'"{type_property}" = ""')
        run = recon(sandbox.env, "apply", "-c", stack.name, "--auto-approve", cwd=tmp_path)
        assert run.code == 1, run.both
        assert f"properties.{type_property}" in run.err
        assert words in run.err
        assert "Traceback" not in run.both
        assert value(sandbox, emi_property) == "NULL"
        assert value(sandbox, type_property) == "m1.small"
