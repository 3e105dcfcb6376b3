"""The sandbox's speed-ups of moto change no reply: the same bytes with and without them."""

from __future__ import annotations

import re

import boto3
import pytest
from moto import mock_aws, settings
from moto.core import responses as moto_responses

from reconciler.sandbox import services

#: What differs between two clouds made alike: ids, addresses, times, tokens, request ids.
VARIES = re.compile(rb"\b[a-z][a-z-]*-[0-9a-f]{8,17}\b|\d+(?:[.-]\d+){3}"
                    rb"|\d{4}-\d\d-\d\d[T ][0-9:.]+(?:Z|[+-]\d\d:?\d\d)?|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
                    rb"|<(requestId|RequestId|macAddress|dnsName|publicDnsName|privateDnsName)>[^<]*</\1>")
KEY = b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x"


def replies_of_a_cloud() -> list[bytes]:
    """A fresh moto cloud with instances (tagged, untagged, stopped, terminated), a group, a key pair and
    a load balancer; the bodies of describing them, and of starting two more instances."""
    bodies: list[bytes] = []
    with mock_aws():
        keys = {"region_name": "us-east-1", "aws_access_key_id": "a", "aws_secret_access_key": "b"}
        ec2, elb = boto3.client("ec2", **keys), boto3.client("elb", **keys)
        group = ec2.create_security_group(GroupName="web", Description="web")["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        image = "ami-12c6146b"   # not checked (moto_images)
        started = ec2.run_instances(ImageId=image, MinCount=6, MaxCount=6, SecurityGroupIds=[group],
                                    TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                        {"Key": "recon:stack", "Value": "s"}, {"Key": "role", "Value": "<web> & co"}]}])
        ids = [i["InstanceId"] for i in started["Instances"]]
        ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)    # no tags at all
        ec2.stop_instances(InstanceIds=ids[:1])
        ec2.terminate_instances(InstanceIds=ids[1:2])
        ec2.import_key_pair(KeyName="k", PublicKeyMaterial=KEY)
        elb.create_load_balancer(LoadBalancerName="lb", AvailabilityZones=["us-east-1a"], Listeners=[
            {"Protocol": "HTTP", "LoadBalancerPort": 80, "InstanceProtocol": "HTTP", "InstancePort": 80}])
        elb.register_instances_with_load_balancer(LoadBalancerName="lb", Instances=[{"InstanceId": ids[2]}])
        for client in (ec2, elb):
            client.meta.events.register("before-parse", lambda response_dict, **_: bodies.append(response_dict["body"]))
        ec2.describe_instances()
        ec2.describe_instances(InstanceIds=ids[:3])
        ec2.describe_security_groups()
        ec2.describe_key_pairs()
        ec2.describe_tags()
        ec2.describe_instance_status(IncludeAllInstances=True)
        elb.describe_load_balancers()
        elb.describe_instance_health(LoadBalancerName="lb")
        ec2.run_instances(ImageId=image, MinCount=2, MaxCount=2)
    return [VARIES.sub(b"", body) for body in bodies]


@pytest.fixture
def moto_images(monkeypatch):
    """The sandbox's adjustments of moto, but instances of any image (a cloud to describe, in this test only)."""
    services.patch_moto()
    monkeypatch.setattr(settings, "ENABLE_AMI_VALIDATION", False)


def test_remembering_the_value_picker_writes_the_same_replies(moto_images, monkeypatch):
    from moto.core import serialize

    remembering = moto_responses.XFormedAttributePicker
    assert remembering is not serialize.XFormedAttributePicker      # patch_moto put it there
    monkeypatch.setattr(moto_responses, "XFormedAttributePicker", serialize.XFormedAttributePicker)
    plain = replies_of_a_cloud()
    assert replies_of_a_cloud() == plain                            # two clouds made alike answer alike
    monkeypatch.setattr(moto_responses, "XFormedAttributePicker", remembering)
    assert replies_of_a_cloud() == plain                            # remembering (cold)
    assert replies_of_a_cloud() == plain                            # remembered
    assert len(plain) == 9 and all(b"<item>" in body or b"<member>" in body for body in plain)   # none empty
    assert b"&lt;web&gt; &amp; co" in plain[0] and b"<instanceState>" in plain[0]
