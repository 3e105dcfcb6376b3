"""`recon import`: adopt live resources; afterwards plan shows no change, and the rest of the
file — comments included — is byte-identical."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from e2e import EXAMPLES, client, properties_client, recon

HEAD = '''# Production stack -- hand-written, with comments that must survive.
[stack]
name = "adopted"   # do not rename

[properties]
# the LB key
"loadbalancing.loadbalancer_vm_keyname" = "euca-elb"  # set by hand in 2014

# keys live in keys/
'''


def test_import_every_kind_round_trip(installed_sandbox, tmp_path: Path) -> None:
    env = installed_sandbox.env
    work = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "keys", work / "keys")
    (work / "recon.toml").write_text(HEAD)
    ec2, elb = client(env, "ec2"), client(env, "elb")

    # the cloud as an administrator left it, by hand (the key pair first: the cloud checks the key name)
    ec2.import_key_pair(KeyName="euca-elb", PublicKeyMaterial=(work / "keys" / "euca-elb.pub").read_bytes())
    properties_client(env).modify_property_value(Name="loadbalancing.loadbalancer_vm_keyname", Value="euca-elb")
    properties_client(env).modify_property_value(Name="loadbalancing.loadbalancer_num_vm", Value="2")
    group = ec2.create_security_group(GroupName="web", Description="web servers")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8080, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
        {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    elb.create_load_balancer(LoadBalancerName="Legacy", AvailabilityZones=["ViciousLiesAndDangerousRumors"],
                             Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 8080}])
    elb.configure_health_check(LoadBalancerName="Legacy", HealthCheck={
        "Target": "HTTP:8080/health", "Interval": 10, "Timeout": 5, "HealthyThreshold": 2, "UnhealthyThreshold": 4})
    internal = elb.describe_load_balancers(LoadBalancerNames=["Legacy"])["LoadBalancerDescriptions"][0][
        "SourceSecurityGroup"]["GroupName"]

    imports = [
        ("properties.loadbalancing.loadbalancer_num_vm", "loadbalancing.loadbalancer_num_vm", []),
        ("keypairs.euca-elb", "euca-elb", ["--public-key-file", "keys/euca-elb.pub"]),
        ("security_groups.web", group, []),
        ("load_balancers.Legacy", "Legacy", []),
        ("security_groups.legacy-internal", internal, []),
    ]
    for address, cloud_id, extra in imports:
        before = (work / "recon.toml").read_text()
        run = recon(env, "import", address, cloud_id, *extra, cwd=work)
        assert run.code == 0, run.both
        after = (work / "recon.toml").read_text()
        if address.startswith("properties."):
            added = [line for line in after.splitlines(True) if line not in before.splitlines(True)]
            assert added == ['"loadbalancing.loadbalancer_num_vm" = "2"\n']
            assert after.replace(added[0], "") == before
        else:
            assert after.startswith(before)
        plan = recon(env, "plan", "--detailed-exitcode", cwd=work)
        assert plan.code == 0, (address, plan.both)

    text = (work / "recon.toml").read_text()
    assert '2014\n"loadbalancing.loadbalancer_num_vm" = "2"\n\n# keys live' in text  # with its table's keys
    assert '"tcp", ports = "8000-8080", cidr = "10.0.0.0/8"' in text
    assert 'name = "' + internal + '"\nexisting = true' in text
    state = json.loads((work / "state" / "adopted.json").read_text())
    assert sorted(state["resources"]) == sorted(a for a, _, _ in imports)
    assert recon(env, "drift", cwd=work).code == 0


def test_import_refusals(sandbox, tmp_path: Path) -> None:
    env = sandbox.env
    work = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "keys", work / "keys")
    (work / "recon.toml").write_text(HEAD)
    client(env, "ec2").import_key_pair(KeyName="euca-elb",
                                       PublicKeyMaterial=(work / "keys" / "euca-elb.pub").read_bytes())
    cases = [
        (["keypairs.euca-elb", "euca-elb"], "--public-key-file"),
        (["keypairs.euca-elb", "nope"], "no key pair 'nope'"),
        (["load_balancer.x", "x"], "did you mean 'load_balancers'"),
        (["properties.objectstorage.s3provider.s3secretkey", "objectstorage.s3provider.s3secretkey"],
         "hidden property"),
        (["properties.loadbalancing.loadbalancer_vm_keyname", "loadbalancing.loadbalancer_vm_keyname"],
         "already in"),
    ]
    for args, message in cases:
        run = recon(env, "import", *args, cwd=work)
        assert run.code == 1 and message in run.err, (args, run.both)
        assert (work / "recon.toml").read_text() == HEAD
    other = work / "keys" / "other.pub"
    other.write_text("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 x\n")
    wrong = recon(env, "import", "keypairs.euca-elb", "euca-elb", "--public-key-file", "keys/other.pub", cwd=work)
    assert wrong.code == 1 and (work / "recon.toml").read_text() == HEAD


def test_import_images_and_hand_launched_hosts(sandbox, tmp_path: Path) -> None:
    env = sandbox.env
    work = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "keys", work / "keys")
    shutil.copy(EXAMPLES / "cloud-init-docker.yaml", work / "cloud-init-docker.yaml")
    head = '# hosts launched by hand in 2014\n[stack]\nname = "handmade"\n'
    (work / "recon.toml").write_text(head)
    ec2 = client(env, "ec2")
    image = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["ubuntu-raring-docker-rootfs"]}])[
        "Images"][0]["ImageId"]
    ec2.modify_image_attribute(ImageId=image, Attribute="launchPermission",
                               LaunchPermission={"Add": [{"Group": "all"}]})
    ec2.import_key_pair(KeyName="docker-admin", PublicKeyMaterial=(work / "keys" / "docker-admin.pub").read_bytes())
    user_data = (work / "cloud-init-docker.yaml").read_text()
    launched = ec2.run_instances(ImageId=image, MinCount=2, MaxCount=2, InstanceType="m1.medium",
                                 KeyName="docker-admin", UserData=user_data,
                                 Placement={"AvailabilityZone": "ViciousLiesAndDangerousRumors"})
    ids = [i["InstanceId"] for i in launched["Instances"]]

    assert recon(env, "import", "images.rootfs", image, cwd=work).code == 0
    assert recon(env, "plan", "--detailed-exitcode", cwd=work).code == 0
    no_user_data = recon(env, "import", "docker_hosts.web", ",".join(ids), cwd=work)
    assert no_user_data.code == 1 and "--cloud-init" in no_user_data.err
    run = recon(env, "import", "docker_hosts.web", ",".join(ids), "--cloud-init", "cloud-init-docker.yaml", cwd=work)
    assert run.code == 0, run.both
    text = (work / "recon.toml").read_text()
    assert text.startswith(head) and 'cloud_init = "cloud-init-docker.yaml"' in text and "count = 2" in text
    assert "apt" not in text  # the document stays in its file
    plan = recon(env, "plan", "--detailed-exitcode", cwd=work)
    assert plan.code == 0, plan.both
    tags = {t["Key"]: t["Value"] for t in ec2.describe_instances(InstanceIds=[ids[1]])["Reservations"][0][
        "Instances"][0]["Tags"]}
    assert tags["recon:address"] == "docker_hosts.web[1]" and tags["recon:stack"] == "handmade"
