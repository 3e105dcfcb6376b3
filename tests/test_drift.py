"""`recon drift` for cron: changed, missing and unmanaged, with [drift] ignore."""

from __future__ import annotations

import json
from pathlib import Path

from e2e import client, copy_examples, recon

STACK = "loadbalancer.toml"


def test_drift_groups_and_ignore(installed_sandbox, tmp_path: Path) -> None:
    env = installed_sandbox.env
    work = copy_examples(tmp_path / "repo")
    assert recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work).code == 0

    elb, ec2 = client(env, "elb"), client(env, "ec2")
    elb.configure_health_check(LoadBalancerName="TestLoadBalancer", HealthCheck={
        "Target": "TCP:80", "Interval": 30, "Timeout": 5, "HealthyThreshold": 2, "UnhealthyThreshold": 3})
    ec2.delete_key_pair(KeyName="euca-elb")
    stray = ec2.create_security_group(GroupName="left-behind", Description="from an old revision")["GroupId"]
    ec2.create_tags(Resources=[stray], Tags=[{"Key": "recon:stack", "Value": "loadbalancer"},
                                             {"Key": "recon:address", "Value": "security_groups.left-behind"}])
    image = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["ubuntu-raring-docker-rootfs"]}])[
        "Images"][0]["ImageId"]
    orphan = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=[{
        "ResourceType": "instance", "Tags": [{"Key": "recon:stack", "Value": "loadbalancer"},
                                             {"Key": "recon:address", "Value": "docker_hosts.gone[0]"}]}])
    orphan_id = orphan["Instances"][0]["InstanceId"]
    other = ec2.create_security_group(GroupName="other-stack", Description="x")["GroupId"]
    ec2.create_tags(Resources=[other], Tags=[{"Key": "recon:stack", "Value": "another"},
                                             {"Key": "recon:address", "Value": "security_groups.x"}])

    run = recon(env, "drift", "-c", STACK, "--format", "json", cwd=work)
    assert run.code == 2, run.both
    report = json.loads(run.out)
    assert [c["address"] for c in report["changed"]] == ["load_balancers.TestLoadBalancer"]
    assert report["changed"][0]["changed_paths"] == ["health_check.target"]
    assert [c["address"] for c in report["missing"]] == ["keypairs.euca-elb"]
    assert [(u["address"], u["id"]) for u in report["unmanaged"]] == [("docker_hosts.gone", "gone"),
                                                                       ("security_groups.left-behind", "left-behind")]
    assert report["summary"] == {"changed": 1, "missing": 1, "unmanaged": 2, "pending": 0, "reported": 0, "ignored": 0}
    assert orphan_id

    text = recon(env, "drift", "-c", STACK, cwd=work)
    assert text.code == 2
    assert "Changed outside recon (1)" in text.out and "Gone from the cloud (1)" in text.out
    assert "? security_groups.left-behind (left-behind)" in text.out
    assert 'health_check.target: "TCP:80" -> "HTTP:80/"' in text.out

    with (work / STACK).open("a") as handle:
        handle.write('\n[drift]\nignore = ["load_balancers.*.health_check.*", "security_groups.left-*", '
                     '"docker_hosts.gone"]\n')
    ignored = json.loads(recon(env, "drift", "-c", STACK, "--format", "json", cwd=work).out)
    assert ignored["summary"] == {"changed": 0, "missing": 1, "unmanaged": 0, "pending": 0, "reported": 0, "ignored": 3}

    assert recon(env, "apply", "-c", STACK, "--auto-approve", cwd=work).code == 0
    clean = recon(env, "drift", "-c", STACK, cwd=work)
    assert clean.code == 0, clean.out
    assert "No drift" in clean.out and "(2 ignored by [drift] ignore)" in clean.out


def test_drift_error_exit_code(tmp_path: Path) -> None:
    (tmp_path / "recon.toml").write_text('[stack]\nname = "x"\n[keypairs.k]\npublic_key = "ssh-rsa AAAA"\n')
    run = recon({}, "drift", cwd=tmp_path)
    assert run.code == 1 and "not a valid OpenSSH public key" in run.err
