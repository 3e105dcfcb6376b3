"""Slim replies (reconciler/cloud/slim.py) against botocore's own parse, on the sandbox's replies.

The instances are made to differ where a reader could go wrong: with and without a key pair, with
one and two security groups, with tags whose value is empty, in six reservations, one terminated;
the slim read of the sandbox's reply is botocore's parse cut to the reader's fields, and the
instances recon makes of both are the same. (The sandbox answers in one reply, as Eucalyptus does;
a paged reply is read below from a document, and ``tests/test_cloud.py`` follows tokens.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e import client
from reconciler.cloud import Cloud, resolve_settings
from reconciler.cloud.slim import DESCRIBE_INSTANCES, INSTANCE
from reconciler.errors import CloudError
from reconciler.resources.instance_roll import Instance


def sandbox_cloud(env: dict[str, str]) -> Cloud:
    return Cloud(resolve_settings({}, env, Path(".")), env)


@pytest.fixture(scope="module")
def instances(shared_sandbox):
    """Eight instances of the sandbox in six reservations, one of them terminated."""
    ec2 = client(shared_sandbox.env, "ec2")
    image = ec2.describe_images(Filters=[{"Name": "name", "Values": ["ubuntu-raring-docker-rootfs"]}])["Images"][0]
    ec2.create_security_group(GroupName="slim-a", Description="a")
    ec2.create_security_group(GroupName="slim-b", Description="b")
    ec2.import_key_pair(KeyName="slim", PublicKeyMaterial=(Path(__file__).parent.parent / "examples" / "keys" /
                                                            "docker-admin.pub").read_bytes())
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    first = [ec2.run_instances(ImageId=image["ImageId"], MinCount=1, MaxCount=1, InstanceType="m1.small",
                               KeyName="slim", SecurityGroups=["slim-a", "slim-b"], Placement={"AvailabilityZone": zone},
                               TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                   {"Key": "recon:stack", "Value": "slim"},
                                   {"Key": "recon:address", "Value": f"docker_hosts.w[{index}]"},
                                   {"Key": "empty", "Value": ""}]}])["Instances"][0] for index in range(5)]
    second = ec2.run_instances(ImageId=image["ImageId"], MinCount=3, MaxCount=3, InstanceType="m1.medium",
                               SecurityGroups=["slim-a"])["Instances"]
    ec2.create_tags(Resources=[second[0]["InstanceId"]], Tags=[{"Key": "recon:stack", "Value": "slim"}])
    ec2.terminate_instances(InstanceIds=[second[1]["InstanceId"]])
    return [i["InstanceId"] for i in first + second]


def bodies_of(cloud: Cloud) -> list[bytes]:
    """The raw bodies of the cloud's DescribeInstances replies, as botocore receives them."""
    seen: list[bytes] = []
    cloud.client("ec2").meta.events.register(
        "before-parse.ec2.DescribeInstances", lambda response_dict, **_: seen.append(response_dict["body"]))
    return seen


def test_the_slim_read_is_botocores_parse_cut_to_its_fields(shared_sandbox, instances):
    cloud = sandbox_cloud(shared_sandbox.env)
    bodies = bodies_of(cloud)
    pages, request = [], {"Filters": [{"Name": "instance-id", "Values": instances}], "MaxResults": 5}
    while True:
        page = cloud.call("ec2", "describe_instances", **request)
        pages.append(page)
        if not page.get("NextToken"):
            break
        request["NextToken"] = page["NextToken"]
    assert len(pages) == 1 and len(bodies) == 1   # MaxResults ignored, as Eucalyptus 4.x does
    for body, page in zip(bodies, pages):
        assert DESCRIBE_INSTANCES.read(body) == DESCRIBE_INSTANCES.project(page)
    items = [i for page in pages for r in page["Reservations"] for i in r["Instances"]]
    assert sorted(i["InstanceId"] for i in items) == sorted(instances)
    # every field of the spec is in the sandbox's replies somewhere, so each is compared
    cut = [DESCRIBE_INSTANCES.project(page) for page in pages]
    present = {key for page in cut for r in page["Reservations"] for i in r["Instances"] for key in i}
    assert present == set(INSTANCE) - {"NetworkInterfaces"}  # a Eucalyptus 4.0 reply has none
    assert any(t == {"Key": "empty", "Value": ""} for i in items for t in i.get("Tags", []))
    assert any("KeyName" not in i for i in items) and any(len(i.get("SecurityGroups", [])) == 2 for i in items)


def test_a_slim_call_gives_the_same_instances_in_the_same_calls(shared_sandbox, instances):
    full, slim = sandbox_cloud(shared_sandbox.env), sandbox_cloud(shared_sandbox.env)
    read = {}
    for name, cloud, flag in (("full", full, False), ("slim", slim, True)):
        items = cloud.paginate("ec2", "describe_instances", "Reservations[].Instances[]", slim=flag,
                               Filters=[{"Name": "tag:recon:stack", "Values": ["slim"]}], MaxResults=5)
        read[name] = [Instance.from_api(item, "docker_hosts") for item in items]
    assert read["slim"] == read["full"] and len(read["full"]) == 6
    assert sum(i is not None for i in read["full"]) == 5
    assert slim.stats.by_operation() == full.stats.by_operation() == {"ec2.DescribeInstances": 1}


def test_errors_of_a_slim_call_are_the_calls_errors(shared_sandbox, instances):
    cloud = sandbox_cloud(shared_sandbox.env)
    missing = "i-0123456789abcdef0"
    assert cloud.call("ec2", "describe_instances", slim=True, InstanceIds=[missing],
                      ignore_codes=("InvalidInstanceID.NotFound",)) is None
    with pytest.raises(CloudError) as info:
        cloud.call("ec2", "describe_instances", slim=True, where="docker_hosts.w", InstanceIds=[missing])
    assert info.value.code == "InvalidInstanceID.NotFound" and info.value.where == "docker_hosts.w"
    with pytest.raises(ValueError):
        cloud.call("ec2", "describe_key_pairs", slim=True)


VPC_REPLY = b"""<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId>
<reservationSet><item><reservationId>r-1</reservationId><instancesSet><item>
  <instanceId>i-1</instanceId><imageId>emi-1</imageId><instanceState><code>16</code><name>running</name></instanceState>
  <keyName/><instanceType>m1.small</instanceType><launchTime>2026-01-01T00:00:00.000Z</launchTime>
  <placement><availabilityZone>one</availabilityZone><tenancy>default</tenancy></placement><groupSet/>
  <networkInterfaceSet><item><networkInterfaceId>eni-1</networkInterfaceId><groupSet><item><groupId>sg-1</groupId>
  <groupName>web</groupName></item></groupSet></item></networkInterfaceSet>
  <tagSet><item><key>a</key><value/></item></tagSet></item></instancesSet></item>
<item><reservationId>r-2</reservationId><instancesSet/></item><item><reservationId>r-3</reservationId></item>
</reservationSet><nextToken>next</nextToken></DescribeInstancesResponse>"""


def test_a_vpc_reply_reads_as_botocore_reads_it():
    """Network interfaces, an empty key name and tag value, empty and missing instance lists."""
    import botocore.session
    from botocore.parsers import create_parser

    model = botocore.session.get_session().get_service_model("ec2").operation_model("DescribeInstances")
    parsed = create_parser("ec2").parse({"body": VPC_REPLY, "headers": {}, "status_code": 200}, model.output_shape)
    slim = DESCRIBE_INSTANCES.read(VPC_REPLY)
    assert slim == DESCRIBE_INSTANCES.project(parsed)
    assert slim["NextToken"] == "next" and [len(r.get("Instances", [])) for r in slim["Reservations"]] == [1, 0, 0]
    [item] = slim["Reservations"][0]["Instances"]
    assert item["NetworkInterfaces"] == [{"Groups": [{"GroupId": "sg-1", "GroupName": "web"}]}]
    assert item["KeyName"] == "" and item["SecurityGroups"] == [] and item["Tags"] == [{"Key": "a", "Value": ""}]
    assert DESCRIBE_INSTANCES.empty(VPC_REPLY) == (b'<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/'
                                                   b'2016-11-15/"></DescribeInstancesResponse>')


def test_a_reply_that_is_not_xml_is_a_parse_error():
    from botocore.parsers import ResponseParserError

    with pytest.raises(ResponseParserError):
        DESCRIBE_INSTANCES.read(b"<DescribeInstancesResponse><reservationSet>")
