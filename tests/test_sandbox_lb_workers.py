"""Load balancers' worker VMs in the sandbox, as Eucalyptus 4.0/4.2 makes and keeps them (DESIGN §11).

Plain boto3 over HTTP (EC2, ELB, Auto Scaling at ``/services/AutoScaling``, the properties
service), against sandbox child processes: a load balancer gets an auto-scaling group and launch
configuration from the worker properties, its VMs carry the cloud's tags; changing the emi, type
or key name swaps the launch configuration and leaves the VMs; a lost VM is replaced from the
current configuration; deleting the balancer leaves nothing; without a valid emi, no load balancer
(a fresh cloud refuses them until an LB image is installed; "as installed", it has one).
"""

from __future__ import annotations

import re

import boto3
import pytest
from botocore.exceptions import ClientError
from e2e import EXAMPLES, client, copy_examples, properties_client, property_value, recon, start_child

ZONES = ["ViciousLiesAndDangerousRumors", "SecondZone"]
LISTENERS = [{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}]
ROOTFS = "ubuntu-raring-docker-rootfs"   # a machine image every fresh sandbox has
PUBLIC_KEY = (EXAMPLES / "keys" / "euca-elb.pub").read_text()


def autoscaling(env):
    return boto3.client("autoscaling", endpoint_url=env["AWS_AUTO_SCALING_URL"],
                        region_name=env.get("AWS_DEFAULT_REGION", "eucalyptus"),
                        aws_access_key_id=env["EC2_ACCESS_KEY"], aws_secret_access_key=env["EC2_SECRET_KEY"])


def set_property(env, name: str, value: str) -> None:
    properties_client(env).modify_property_value(Name=name, Value=value)


def image_named(env, name: str) -> str:
    [image] = client(env, "ec2").describe_images(Filters=[{"Name": "name", "Values": [name]}])["Images"]
    return image["ImageId"]


def workers(env) -> list[dict]:
    """The running instances tagged as load-balancer resources, as euca-describe-instances finds them."""
    reply = client(env, "ec2").describe_instances(Filters=[
        {"Name": "tag:Name", "Values": ["loadbalancer-resources"]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return [i for r in reply["Reservations"] for i in r["Instances"]]


def tags(instance: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def only_group(env) -> dict:
    [group] = autoscaling(env).describe_auto_scaling_groups()["AutoScalingGroups"]
    return group


def configuration(env, name: str) -> dict:
    [config] = autoscaling(env).describe_launch_configurations(LaunchConfigurationNames=[name])[
        "LaunchConfigurations"]
    return config


@pytest.fixture
def cloud(tmp_path):
    with start_child(tmp_path / "sandbox", zones=ZONES) as child:
        yield child


def test_a_load_balancer_gets_its_group_and_one_worker_per_zone(cloud) -> None:
    env, account = cloud.env, cloud.env["EC2_USER_ID"]
    assert env["AWS_AUTO_SCALING_URL"] == f"{cloud.url}/services/AutoScaling"
    emi = image_named(env, ROOTFS)
    client(env, "ec2").import_key_pair(KeyName="euca-elb", PublicKeyMaterial=PUBLIC_KEY)
    set_property(env, "loadbalancing.loadbalancer_emi", emi)
    set_property(env, "loadbalancing.loadbalancer_instance_type", "m1.medium")
    set_property(env, "loadbalancing.loadbalancer_vm_keyname", "euca-elb")

    client(env, "elb").create_load_balancer(LoadBalancerName="TestLoadBalancer", AvailabilityZones=ZONES,
                                            Listeners=LISTENERS)

    group_name = f"asg-euca-internal-elb-{account}-TestLoadBalancer"
    vms = workers(env)
    assert sorted(vm["Placement"]["AvailabilityZone"] for vm in vms) == sorted(ZONES)
    for vm in vms:
        assert (vm["ImageId"], vm["InstanceType"], vm["KeyName"]) == (emi, "m1.medium", "euca-elb")
        assert [g["GroupName"] for g in vm["SecurityGroups"]] == [f"euca-internal-{account}-TestLoadBalancer"]
        assert tags(vm)["aws:autoscaling:groupName"] == group_name
        assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", tags(vm)["euca:node"])
    group = only_group(env)
    assert group["AutoScalingGroupName"] == group_name
    assert group["AutoScalingGroupARN"].startswith(f"arn:aws:autoscaling::{account}:autoScalingGroup:")
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (2, 2, 2)
    assert sorted(group["AvailabilityZones"]) == sorted(ZONES)
    assert group["HealthCheckType"] == "EC2"
    assert {"Key": "Name", "Value": "loadbalancer-resources", "PropagateAtLaunch": True}.items() <= \
        group["Tags"][0].items()
    assert sorted(i["InstanceId"] for i in group["Instances"]) == sorted(vm["InstanceId"] for vm in vms)
    assert re.fullmatch(rf"lc-euca-internal-elb-{account}-TestLoadBalancer-[0-9a-f]{{8}}",
                        group["LaunchConfigurationName"])
    config = configuration(env, group["LaunchConfigurationName"])
    assert (config["ImageId"], config["InstanceType"], config["KeyName"]) == (emi, "m1.medium", "euca-elb")
    assert config["SecurityGroups"] == [f"euca-internal-{account}-TestLoadBalancer"]
    # the back-end instances are the user's: the balancer's own VMs are not among them
    assert client(env, "elb").describe_instance_health(LoadBalancerName="TestLoadBalancer")["InstanceStates"] == []


def test_property_changes_swap_the_configuration_and_lost_workers_come_back_from_the_new_one(cloud) -> None:
    env = cloud.env
    ec2, scaling = client(env, "ec2"), autoscaling(env)
    old_emi = image_named(env, ROOTFS)
    new_emi = ec2.register_image(Name="lb-v2", RootDeviceName="/dev/sda1", VirtualizationType="hvm")["ImageId"]
    set_property(env, "loadbalancing.loadbalancer_emi", old_emi)
    client(env, "elb").create_load_balancer(LoadBalancerName="Web", AvailabilityZones=ZONES[:1], Listeners=LISTENERS)
    [first] = workers(env)
    old_config = only_group(env)["LaunchConfigurationName"]

    set_property(env, "loadbalancing.loadbalancer_emi", new_emi)

    group = only_group(env)
    assert group["LaunchConfigurationName"] != old_config
    assert configuration(env, group["LaunchConfigurationName"])["ImageId"] == new_emi
    assert scaling.describe_launch_configurations(LaunchConfigurationNames=[old_config])["LaunchConfigurations"] == []
    assert [(vm["InstanceId"], vm["ImageId"]) for vm in workers(env)] == [(first["InstanceId"], old_emi)]
    [member] = group["Instances"]
    assert member["LaunchConfigurationName"] == old_config   # what the VM was launched from

    ec2.terminate_instances(InstanceIds=[first["InstanceId"]])
    [second] = workers(env)              # the next describe call finds the group healed
    assert second["InstanceId"] != first["InstanceId"] and second["ImageId"] == new_emi

    set_property(env, "loadbalancing.loadbalancer_instance_type", "c1.medium")
    assert [vm["InstanceId"] for vm in workers(env)] == [second["InstanceId"]]
    scaling.terminate_instance_in_auto_scaling_group(InstanceId=second["InstanceId"],
                                                     ShouldDecrementDesiredCapacity=False)
    [third] = workers(env)
    assert third["InstanceId"] != second["InstanceId"]
    assert (third["ImageId"], third["InstanceType"]) == (new_emi, "c1.medium")
    group = only_group(env)
    assert group["DesiredCapacity"] == 1
    assert [(i["InstanceId"], i["LaunchConfigurationName"]) for i in group["Instances"]] == [
        (third["InstanceId"], group["LaunchConfigurationName"])]
    assert len(scaling.describe_launch_configurations()["LaunchConfigurations"]) == 1


def test_deleting_the_load_balancer_leaves_no_group_configuration_or_vm(cloud) -> None:
    env, account = cloud.env, cloud.env["EC2_USER_ID"]
    set_property(env, "loadbalancing.loadbalancer_emi", image_named(env, ROOTFS))
    elb, scaling = client(env, "elb"), autoscaling(env)
    elb.create_load_balancer(LoadBalancerName="Gone", AvailabilityZones=ZONES, Listeners=LISTENERS)
    elb.create_load_balancer(LoadBalancerName="Kept", AvailabilityZones=ZONES[:1], Listeners=LISTENERS)
    gone = {vm["InstanceId"] for vm in workers(env) if tags(vm)["aws:autoscaling:groupName"].endswith("-Gone")}
    assert len(gone) == 2

    elb.delete_load_balancer(LoadBalancerName="Gone")

    assert [g["AutoScalingGroupName"] for g in scaling.describe_auto_scaling_groups()["AutoScalingGroups"]] == [
        f"asg-euca-internal-elb-{account}-Kept"]
    assert [c["LaunchConfigurationName"].split("-")[-2]
            for c in scaling.describe_launch_configurations()["LaunchConfigurations"]] == ["Kept"]
    states = client(env, "ec2").describe_instances(InstanceIds=sorted(gone))["Reservations"]
    assert {i["State"]["Name"] for r in states for i in r["Instances"]} == {"terminated"}
    assert [tags(vm)["aws:autoscaling:groupName"] for vm in workers(env)] == [f"asg-euca-internal-elb-{account}-Kept"]
    assert sorted(g["GroupName"] for g in client(env, "ec2").describe_security_groups()["SecurityGroups"]) == [
        "default", f"euca-internal-{account}-Kept"]


def refused(call) -> dict:
    """The error a boto3 call gets (it must fail)."""
    with pytest.raises(ClientError) as err:
        call()
    return {"status": err.value.response["ResponseMetadata"]["HTTPStatusCode"], **err.value.response["Error"]}


def nothing_of_load_balancers(env) -> None:
    """No balancer, no euca-internal group, no auto-scaling group or launch configuration, no VM."""
    ec2 = client(env, "ec2")
    assert client(env, "elb").describe_load_balancers()["LoadBalancerDescriptions"] == []
    assert autoscaling(env).describe_auto_scaling_groups()["AutoScalingGroups"] == []
    assert autoscaling(env).describe_launch_configurations()["LaunchConfigurations"] == []
    assert ec2.describe_instances()["Reservations"] == []
    assert [g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]] == ["default"]


@pytest.mark.parametrize("version, emi_property", [("4.0", "loadbalancing.loadbalancer_emi"),
                                                   ("4.2", "services.loadbalancing.worker.image")])
def test_a_fresh_cloud_refuses_load_balancers_until_an_image_is_enabled(tmp_path, version, emi_property) -> None:
    with start_child(tmp_path / "sandbox", zones=ZONES, eucalyptus_version=version) as cloud:
        env = cloud.env
        elb, ec2 = client(env, "elb"), client(env, "ec2")

        def create() -> dict:
            return elb.create_load_balancer(LoadBalancerName="Web", AvailabilityZones=ZONES, Listeners=LISTENERS)

        # the property is still NULL, which DescribeImages refuses as an image id
        assert refused(create) == {"status": 400, "Type": "Receiver", "Code": "InternalFailure",
                                   "Message": "Failed to create the loadbalancer: failed to validate the "
                                              "loadbalancer EMI"}
        nothing_of_load_balancers(env)
        # an image id the cloud no longer has an image for
        gone = ec2.register_image(Name="deregistered", RootDeviceName="/dev/sda1", VirtualizationType="hvm")["ImageId"]
        set_property(env, emi_property, gone)
        ec2.deregister_image(ImageId=gone)
        assert refused(create)["Message"] == "Failed to create the loadbalancer: No loadbalancer EMI is found"
        nothing_of_load_balancers(env)

        emi = image_named(env, ROOTFS)
        set_property(env, emi_property, emi)
        create()
        assert [lb["LoadBalancerName"] for lb in elb.describe_load_balancers()["LoadBalancerDescriptions"]] == ["Web"]
        assert sorted((vm["ImageId"], vm["Placement"]["AvailabilityZone"]) for vm in workers(env)) == \
            sorted((emi, zone) for zone in ZONES)


def test_a_cloud_as_installed_has_the_default_lb_image_enabled(tmp_path) -> None:
    with start_child(tmp_path / "sandbox", lb_image_installed=True) as cloud:
        env, account = cloud.env, cloud.env["EC2_USER_ID"]
        emi = property_value(env, "loadbalancing.loadbalancer_emi")
        [image] = client(env, "ec2").describe_images(ImageIds=[emi])["Images"]
        manifest = "eucalyptus-load-balancer-image.img.manifest.xml"
        assert (image["Name"], image["ImageLocation"], image["OwnerId"]) == (
            "eucalyptus-load-balancer-image-v1", f"loadbalancer-v1/{manifest}", account)
        assert (image["VirtualizationType"], image["Architecture"], image["RootDeviceType"], image["ImageType"]) == (
            "hvm", "x86_64", "instance-store", "machine")
        assert re.fullmatch(r"Installed on \d{4}-\d\d-\d\d at \d\d:\d\d:\d\d \S+", image["Description"])
        s3 = client(env, "s3")
        assert [o["Key"] for o in s3.list_objects(Bucket="loadbalancer-v1")["Contents"]] == [
            manifest, "eucalyptus-load-balancer-image.img.part.00"]
        for key in (manifest, "eucalyptus-load-balancer-image.img.part.00"):   # euca2ools' aws-exec-read
            assert {"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/s3/zateam"},
                    "Permission": "READ"} in s3.get_object_acl(Bucket="loadbalancer-v1", Key=key)["Grants"]
        # the bundle is one the cloud registers: the sandbox checks it again at a second RegisterImage
        assert client(env, "ec2").register_image(ImageLocation=f"loadbalancer-v1/{manifest}", Name="again",
                                                 VirtualizationType="hvm")["ImageId"].startswith("emi-")

        client(env, "elb").create_load_balancer(LoadBalancerName="Web", AvailabilityZones=ZONES[:1],
                                                Listeners=LISTENERS)
        assert [vm["ImageId"] for vm in workers(env)] == [emi]


def test_a_42_cloud_makes_one_group_per_zone(tmp_path) -> None:
    with start_child(tmp_path / "sandbox", zones=ZONES, eucalyptus_version="4.2") as cloud:
        env, account = cloud.env, cloud.env["EC2_USER_ID"]
        emi = image_named(env, ROOTFS)
        set_property(env, "services.loadbalancing.worker.image", emi)
        set_property(env, "services.loadbalancing.vm_per_zone", "2")
        client(env, "elb").create_load_balancer(LoadBalancerName="LB42", AvailabilityZones=ZONES, Listeners=LISTENERS)

        groups = {g["AutoScalingGroupName"]: g for g in
                  autoscaling(env).describe_auto_scaling_groups()["AutoScalingGroups"]}
        assert sorted(groups) == sorted(f"euca-internal-elb-{account}-LB42-{zone}" for zone in ZONES)
        for zone in ZONES:
            group = groups[f"euca-internal-elb-{account}-LB42-{zone}"]
            assert group["AvailabilityZones"] == [zone] and group["DesiredCapacity"] == 2
            assert re.fullmatch(rf"lc-euca-internal-elb-{account}-LB42-{zone}-[0-9a-f]{{8}}",
                                group["LaunchConfigurationName"])
            assert {i["AvailabilityZone"] for i in group["Instances"]} == {zone} and len(group["Instances"]) == 2
        assert len(workers(env)) == 4

        set_property(env, "services.loadbalancing.worker.instance_type", "m1.large")
        for group in autoscaling(env).describe_auto_scaling_groups()["AutoScalingGroups"]:
            # 4.2's listener names the new configuration without the zone
            assert re.fullmatch(rf"lc-euca-internal-elb-{account}-LB42-[0-9a-f]{{8}}", group["LaunchConfigurationName"])
            assert configuration(env, group["LaunchConfigurationName"])["InstanceType"] == "m1.large"
        assert {vm["InstanceType"] for vm in workers(env)} == {"m1.small"}


def test_workers_follow_the_zones_and_a_group_whose_image_is_gone_stays_short(cloud) -> None:
    env, account = cloud.env, cloud.env["EC2_USER_ID"]
    ec2, elb = client(env, "ec2"), client(env, "elb")
    emi = ec2.register_image(Name="lb-short-lived", RootDeviceName="/dev/sda1", VirtualizationType="hvm")["ImageId"]
    set_property(env, "loadbalancing.loadbalancer_emi", emi)
    elb.create_load_balancer(LoadBalancerName="Zones", AvailabilityZones=ZONES[:1], Listeners=LISTENERS)
    [first] = workers(env)

    elb.enable_availability_zones_for_load_balancer(LoadBalancerName="Zones", AvailabilityZones=ZONES[1:])
    assert only_group(env)["DesiredCapacity"] == 2 and sorted(only_group(env)["AvailabilityZones"]) == sorted(ZONES)
    assert sorted(vm["Placement"]["AvailabilityZone"] for vm in workers(env)) == sorted(ZONES)

    elb.disable_availability_zones_for_load_balancer(LoadBalancerName="Zones", AvailabilityZones=ZONES[:1])
    [second] = workers(env)
    assert second["InstanceId"] != first["InstanceId"] and second["Placement"]["AvailabilityZone"] == ZONES[1]
    group = only_group(env)
    assert (group["AvailabilityZones"], group["DesiredCapacity"]) == ([ZONES[1]], 1)
    assert group["AutoScalingGroupName"] == f"asg-euca-internal-elb-{account}-Zones"

    ec2.deregister_image(ImageId=emi)       # the group cannot launch any more: it stays short
    ec2.terminate_instances(InstanceIds=[second["InstanceId"]])
    assert workers(env) == []
    assert only_group(env)["Instances"] == [] and only_group(env)["DesiredCapacity"] == 1


def test_recon_apply_of_a_load_balancer_on_a_fresh_cloud_fails_naming_it(tmp_path) -> None:
    work = copy_examples(tmp_path / "work")
    with start_child(tmp_path / "sandbox") as cloud:
        env = cloud.env
        run = recon(env, "apply", "-c", "loadbalancer.toml", "--auto-approve", cwd=work)
        assert run.code == 1, run.both
        assert ("Error: load_balancers.TestLoadBalancer: CreateLoadBalancer failed: InternalFailure: Failed to "
                "create the loadbalancer: failed to validate the loadbalancer EMI") in run.err
        assert "Traceback" not in run.both and "attempts" not in run.err   # a refusal, not retried
        # what does not need the load balancer is done; the rule on its group is not attempted
        assert "Not done: load_balancers.TestLoadBalancer (failed), security_groups.elb-internal (skipped)." \
            in run.out
        nothing_of_load_balancers(env)
        assert [k["KeyName"] for k in client(env, "ec2").describe_key_pairs()["KeyPairs"]] == ["euca-elb"]

        # the administrator enables an image: the same apply now makes it, with its worker
        emi = image_named(env, ROOTFS)
        set_property(env, "loadbalancing.loadbalancer_emi", emi)
        run = recon(env, "apply", "-c", "loadbalancer.toml", "--auto-approve", cwd=work)
        assert run.code == 0, run.both
        assert [(vm["ImageId"], vm["InstanceType"], vm["KeyName"]) for vm in workers(env)] == [
            (emi, "m1.medium", "euca-elb")]


def test_recon_sees_the_installed_image_as_version_1_and_installs_v2(tmp_path) -> None:
    work = tmp_path / "work"
    with start_child(tmp_path / "sandbox", lb_image_installed=True) as cloud:
        env = cloud.env
        emi = property_value(env, "loadbalancing.loadbalancer_emi")
        assert recon(env, "init", "--example", "lb-image", "--dir", str(work), cwd=tmp_path).code == 0
        run = recon(env, "images", "--format", "installer", cwd=work)
        assert run.code == 0, run.both
        assert (f"Version 1 (enabled)\n{emi} (loadbalancer-v1/eucalyptus-load-balancer-image.img.manifest.xml)\n"
                "\tInstalled on ") in run.out
        run = recon(env, "plan", cwd=work)
        assert run.code == 0, run.both
        assert "installs as v2: image eucalyptus-load-balancer-image-v2 in bucket loadbalancer-v2" in run.out
