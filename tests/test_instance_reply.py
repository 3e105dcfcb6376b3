"""The sandbox writes instance replies as Eucalyptus 4.0 does (``reconciler.sandbox.instance_reply``):
4.0's elements in 4.0's order, and for each of them what moto's own writer says of the same instance
(but for the DNS names, which are the addresses on 4.0, the placement, which is the zone alone, and
the groups of a launch that named none, and of its reservation, which moto leaves empty)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import boto3
import botocore.session
import pytest
from botocore.parsers import EC2QueryParser
from moto import mock_aws, settings
from moto.core.responses import ActionContext, ActionResult, XFormedAttributePicker
from moto.core.serialize import get_serializer_class
from moto.core.utils import get_service_model
from moto.ec2.models import ec2_backends
from moto.ec2.responses.instances import InstanceResponse

from reconciler.sandbox import services

#: ``RunningInstancesItemType`` of 4.0's newest binding (``ec2-instances-12-06-01.xml``), in order.
ITEM_ELEMENTS = ["instanceId", "imageId", "instanceState", "privateDnsName", "dnsName", "reason", "keyName",
                 "amiLaunchIndex", "productCodes", "instanceType", "launchTime", "placement", "kernelId",
                 "ramdiskId", "platform", "monitoring", "privateIpAddress", "ipAddress", "groupSet",
                 "architecture", "rootDeviceType", "rootDeviceName", "blockDeviceMapping", "virtualizationType",
                 "clientToken", "tagSet", "iamInstanceProfile"]
RESERVATION_ELEMENTS = ["reservationId", "ownerId", "groupSet", "instancesSet"]
#: What botocore calls those elements.
KEYS = {"InstanceId", "ImageId", "State", "PrivateDnsName", "PublicDnsName", "StateTransitionReason", "KeyName",
        "AmiLaunchIndex", "ProductCodes", "InstanceType", "LaunchTime", "Placement", "KernelId", "RamdiskId",
        "Platform", "Monitoring", "PrivateIpAddress", "PublicIpAddress", "SecurityGroups", "Architecture",
        "RootDeviceType", "RootDeviceName", "BlockDeviceMappings", "VirtualizationType", "ClientToken", "Tags",
        "IamInstanceProfile"}
KEYS_REWRITTEN = {"PrivateDnsName", "PublicDnsName", "Placement", "SecurityGroups"}
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x"
REGION = {"region_name": "us-east-1", "aws_access_key_id": "a", "aws_secret_access_key": "b"}


@pytest.fixture
def cloud(monkeypatch):
    """A moto cloud with the sandbox's adjustments, instances of any image (moto's EBS-backed default)."""
    services.patch_moto()
    monkeypatch.setattr(settings, "ENABLE_AMI_VALIDATION", False)
    with mock_aws():
        ec2 = boto3.client("ec2", **REGION)
        group = ec2.create_security_group(GroupName="web", Description="web")["GroupId"]
        ec2.import_key_pair(KeyName="k", PublicKeyMaterial=KEY)
        started = ec2.run_instances(ImageId="ami-12c6146b", MinCount=4, MaxCount=4, SecurityGroupIds=[group],
                                    KeyName="k", ClientToken="t-1", TagSpecifications=[
                                        {"ResourceType": "instance", "Tags": [
                                            {"Key": "recon:stack", "Value": "s"},
                                            {"Key": "role", "Value": "<web> & \"co\""}]}])
        ids = [i["InstanceId"] for i in started["Instances"]]
        ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)   # no tags, no key, default group
        ec2.stop_instances(InstanceIds=ids[:1])
        ec2.terminate_instances(InstanceIds=ids[1:2])
        yield ec2


def parse(body: bytes) -> dict:
    """``body`` as botocore reads a DescribeInstances reply."""
    shape = botocore.session.get_session().get_service_model("ec2").operation_model("DescribeInstances").output_shape
    return EC2QueryParser().parse({"body": body, "headers": {}, "status_code": 200}, shape)


def moto_written(reservations) -> bytes:
    """What moto's own writer makes of ``reservations``."""
    service = get_service_model("ec2")
    context = ActionContext(service, service.operation_model("DescribeInstances"),
                            get_serializer_class("ec2", "ec2"), InstanceResponse())
    picker = XFormedAttributePicker(response_transformers=InstanceResponse.RESPONSE_KEY_PATH_TO_TRANSFORMER)
    serializer = context.serializer_class(operation_model=context.operation_model, pretty_print=False,
                                          value_picker=picker)
    return serializer.serialize({"Reservations": reservations})["body"]


def described(ec2) -> bytes:
    bodies: list[bytes] = []
    ec2.meta.events.register("before-parse", lambda response_dict, **_: bodies.append(response_dict["body"]))
    ec2.describe_instances()
    return bodies[-1]


def test_elements_are_40_ones_in_40_order(cloud):
    root = ET.fromstring(described(cloud))
    local = [child.tag.split("}")[1] for child in root]
    assert local == ["requestId", "reservationSet"]
    reservations = root[1]
    assert len(reservations) == 2
    for reservation in reservations:
        assert [c.tag.split("}")[1] for c in reservation] == RESERVATION_ELEMENTS
        for item in reservation.find("{*}instancesSet"):
            tags = [c.tag.split("}")[1] for c in item]
            assert tags == [t for t in ITEM_ELEMENTS if t in tags], tags        # 4.0's order
            assert {"instanceId", "instanceState", "groupSet", "rootDeviceType"} <= set(tags)


def test_each_element_says_what_moto_says(cloud):
    backend = ec2_backends["123456789012"]["us-east-1"]
    ours = parse(described(cloud))["Reservations"]
    theirs = parse(moto_written(backend.describe_instances()))["Reservations"]
    assert [r["ReservationId"] for r in ours] == [r["ReservationId"] for r in theirs]
    seen_states, seen_ebs = set(), 0
    for mine, moto in zip(ours, theirs):
        # moto keeps no reservation groups; 4.0's are the launch's
        assert mine["OwnerId"] == moto["OwnerId"] and mine["Groups"] == mine["Instances"][0]["SecurityGroups"]
        assert [i["InstanceId"] for i in mine["Instances"]] == [i["InstanceId"] for i in moto["Instances"]]
        for item, reference in zip(mine["Instances"], moto["Instances"]):
            assert set(item) <= KEYS, set(item) - KEYS                      # nothing 4.0 lacks
            for key in KEYS - KEYS_REWRITTEN:
                if reference.get(key) == "None":                            # moto's kernel of no image
                    assert key not in item, key
                elif key == "BlockDeviceMappings":
                    assert item.get(key, []) == [
                        {"DeviceName": m["DeviceName"], "Ebs": m["Ebs"]} for m in reference.get(key, [])], key
                else:
                    assert item.get(key) == reference.get(key), key
            assert item["PrivateDnsName"] == item["PrivateIpAddress"] == reference["PrivateIpAddress"]
            assert item["PublicDnsName"] == item.get("PublicIpAddress", "")
            # a launch without groups: its interface's (moto's default-VPC launch), as in EC2-Classic
            groups = reference["SecurityGroups"] or reference["NetworkInterfaces"][0]["Groups"]
            assert item["SecurityGroups"] == groups and groups
            assert item["Placement"] == {"AvailabilityZone": reference["Placement"]["AvailabilityZone"]}
            seen_states.add(item["State"]["Name"])
            seen_ebs += bool(item.get("BlockDeviceMappings"))
    assert seen_states == {"running", "stopped", "terminated"} and seen_ebs   # the cloud has each kind
    assert any(t["Value"] == '<web> & "co"' for i in ours[0]["Instances"] for t in i.get("Tags", []))


def test_a_retried_run_instances_shows_its_instances_as_they_are_now(tmp_path):
    from reconciler.demo import plain_client
    from reconciler.sandbox.server import Sandbox

    sandbox = Sandbox(tmp_path / "sandbox", lb_image_installed=True)
    sandbox.start()
    try:
        ec2 = plain_client(sandbox.env, "ec2")
        image = next(i["ImageId"] for i in ec2.describe_images()["Images"] if i["ImageType"] == "machine")
        [first] = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, ClientToken="token")["Instances"]
        assert first["State"] == {"Code": 0, "Name": "pending"} and first["ImageId"].startswith("emi-")
        [again] = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, ClientToken="token")["Instances"]
        assert again["InstanceId"] == first["InstanceId"] and again["State"]["Name"] == "running"
        ec2.terminate_instances(InstanceIds=[first["InstanceId"]])
        [gone] = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, ClientToken="token")["Instances"]
        assert gone["InstanceId"] == first["InstanceId"] and gone["State"]["Name"] == "terminated"
        assert "VpcId" not in gone and "NetworkInterfaces" not in gone and "MetadataOptions" not in gone
    finally:
        sandbox.stop()
