"""Secret scan: marker secrets planted where recon meets secrets never come out of it.

Planted: the secret key of the credentials (the sandbox's own, which it checks every request
against; in the environment, as a sourced eucarc sets it), the user data of the Docker hosts (in
the cloud-init file), the value of a hidden property (``objectstorage.s3provider.s3secretkey``, in
the desired file) and the user's private key that signs LB image bundles (``EC2_PRIVATE_KEY``).
Then every command ``recon --help`` lists (but ``sandbox`` and ``demo``, which bring their own
cloud and credentials) runs, in every output format, with ``--stats`` where it takes it, through a
change of every secret, drift, imports and error paths; and no marker may appear in stdout, stderr,
the state file or its backup, the saved plan, or any file recon wrote under the work folder or its
temporary folder. The desired file may hold the hidden property's value (the user wrote it there),
and nothing else secret; the cloud-init file holds the user data. The sandbox's own folder and log
are the cloud's, and are not scanned.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import typer

from e2e import client, copy_examples, recon
from reconciler.imagebuild.testimage import make_test_image, pack_tgz

STACK = "secrets.toml"
HIDDEN = "objectstorage.s3provider.s3secretkey"
USER_DATA = ["userdata-marker-5be1c93f", "userdata-marker-2-77ad0e4c"]
PROPERTY = ["property-marker-d4a8e7f3", "property-marker-2-3c91b5aa"]
#: Commands that bring their own cloud, credentials and files: nothing planted reaches them.
NOT_SCANNED = {"sandbox", "demo"}

CLOUD_INIT = """#cloud-config
package_update: true
packages: [docker.io]
write_files:
  - path: /etc/docker/registry-token
    permissions: "0600"
    content: {marker}
"""


def stack_text(hidden_value: str, *, hidden_name: str = HIDDEN) -> str:
    return f"""[stack]
name = "secrets"

[cloud]
eucalyptus_version = "4.0"

[properties]
"loadbalancing.loadbalancer_vm_keyname" = "${{keypairs.euca-elb.name}}"
"loadbalancing.loadbalancer_instance_type" = "m1.medium"
"loadbalancing.loadbalancer_emi" = "${{lb_images.v1.image_id}}"
"{hidden_name}" = "{hidden_value}"

[keypairs.euca-elb]
public_key_file = "keys/euca-elb.pub"

[lb_images.v1]
source = "images/eucalyptus-load-balancer-image-1.1.0.tgz"

[lb_images.v1.haproxy.defaults]
"timeout connect" = "5s"
retries = 3

[images.rootfs]
name = "ubuntu-raring-docker-rootfs"
launch_permission = ["all"]

[security_groups.web]
description = "web hosts"
ingress = [{{ protocol = "tcp", ports = "80", cidr = "0.0.0.0/0" }}]

[docker_hosts.web]
image = "${{images.rootfs.id}}"
instance_type = "m1.small"
key_name = "${{keypairs.euca-elb.name}}"
zone = "ViciousLiesAndDangerousRumors"
security_groups = ["${{security_groups.web.name}}"]
count = 2
cloud_init = "cloud-init.yaml"

[load_balancers.TestLoadBalancer]
zones = ["ViciousLiesAndDangerousRumors"]
listeners = [{{ lb_port = 80, protocol = "HTTP", instance_port = 80, instance_protocol = "HTTP" }}]
instances = "${{docker_hosts.web.instance_ids}}"
"""


class Scan:
    """Runs recon with the planted credentials and keeps every output to scan."""

    def __init__(self, sandbox, tmp_path: Path):
        self.work = copy_examples(tmp_path / "repo")
        self.tmp = tmp_path / "tmp"   # recon's temporary files land here, and are scanned too
        self.tmp.mkdir()
        (self.work / "images").mkdir(exist_ok=True)
        image = make_test_image(tmp_path / "eucalyptus-load-balancer-image.img")
        pack_tgz(image, self.work / "images" / "eucalyptus-load-balancer-image-1.1.0.tgz")
        image.unlink()
        self.cloud_env = sandbox.env
        self.secret_key = sandbox.env["EC2_SECRET_KEY"]  # 40 random hex digits: a marker of its own
        self.env = {**sandbox.env, "RECON_WAIT_INTERVAL": "0.05", "TMPDIR": str(self.tmp)}
        private_key = Path(sandbox.env["EC2_PRIVATE_KEY"]).read_text().splitlines()
        body = [line for line in private_key if line and not line.startswith("-----")]
        assert len(body) > 10
        self.key_lines = body[1:-1]  # every full line of the key's base64
        self.outputs: list[tuple[str, str]] = []
        self.commands: set[str] = set()

    def markers(self) -> list[str]:
        return [self.secret_key, *USER_DATA, *PROPERTY, *self.key_lines]

    def run(self, *args: str, expect: int | tuple[int, ...] = 0, env: dict[str, str] | None = None):
        result = recon({**self.env, **(env or {})}, *args, cwd=self.work, timeout=180)
        codes = expect if isinstance(expect, tuple) else (expect,)
        assert result.code in codes, f"recon {' '.join(args)}: exit {result.code}\n{result.both}"
        words = [a for a in args if not a.startswith("-")] or ["--help"]
        self.commands.add(" ".join(words[:2]) if words[0] in ("state", "image") else words[0])
        self.outputs.append((" ".join(args), result.out + "\n" + result.err))
        return result

    def assert_clean(self) -> None:
        for label, text in self.outputs:
            for marker in self.markers():
                assert marker.encode() not in revealed(text.encode()), f"{marker!r} in the output of recon {label}"
        for folder in (self.work, self.tmp):
            for path in folder.rglob("*"):
                if not path.is_file() or path.name in ("cloud-init.yaml", "bad-cloud-init.yaml"):
                    continue
                data = path.read_bytes()
                data = revealed(data) if path.stat().st_size < 1 << 20 else data
                allowed = PROPERTY if path.suffix == ".toml" else []  # the user wrote it there
                for marker in self.markers():
                    if marker not in allowed:
                        assert marker.encode() not in data, f"{marker!r} in {path.relative_to(folder.parent)}"


def revealed(data: bytes) -> bytes:
    """``data``, then every run of base64 in it decoded (user data in an echoed request, say)."""
    decoded = [data]
    for run in re.findall(rb"[A-Za-z0-9+/]{16,}", data):
        for start in range(4):   # a run may begin inside a word: try each alignment
            chunk = run[start:]
            decoded.append(base64.b64decode(chunk[:len(chunk) // 4 * 4]))
    return b"\n".join(decoded)


def listed_commands() -> set[str]:
    """Every command `recon --help` lists, groups by their subcommands (``state list``)."""
    from reconciler.cli import app

    found = set()
    for name, command in typer.main.get_command(app).commands.items():
        subcommands = getattr(command, "commands", None)  # a group
        found |= {f"{name} {sub}" for sub in subcommands} if subcommands else {name}
    return found


@pytest.fixture
def scan(sandbox, tmp_path: Path) -> Scan:
    return Scan(sandbox, tmp_path)


@pytest.mark.slow
def test_no_command_shows_a_secret(scan: Scan) -> None:
    work, run = scan.work, scan.run
    (work / STACK).write_text(stack_text(PROPERTY[0]))
    (work / "cloud-init.yaml").write_text(CLOUD_INIT.format(marker=USER_DATA[0]))

    run("validate", "-c", STACK)
    run("fmt", "-c", STACK)
    run("fmt", "--check", "-c", STACK)
    run("schema")
    run("version")
    run("--help")
    run("image", "build", "lb_images.v1", "--out", "build", "-c", STACK)
    run("image", "effective", "lb_images.v1", "--lb", "TestLoadBalancer", "-c", STACK)
    for fmt in ("text", "json", "markdown"):
        run("plan", "-c", STACK, "-f", fmt, "--stats")
    run("drift", "-c", STACK, "--stats", expect=2)
    run("drift", "-c", STACK, "-f", "json", "--stats", expect=2)
    run("plan", "-c", STACK, "--out", "reviewed.plan", "--stats")
    for fmt in ("text", "json", "markdown"):
        run("show", "reviewed.plan", "-f", fmt)
    run("--debug", "apply", "reviewed.plan", "--stats")            # apply FILE, every call logged
    run("plan", "-c", STACK, "--detailed-exitcode", "--stats")
    for fmt in ("text", "json"):
        run("drift", "-c", STACK, "-f", fmt, "--stats")
        run("show", "-c", STACK, "-f", fmt)
    run("state", "list", "-c", STACK)
    run("state", "show", f"properties.{HIDDEN}", "-c", STACK)
    run("state", "show", "docker_hosts.web[1]", "-c", STACK, "-f", "json")
    for fmt in ("text", "json"):
        run("output", "-c", STACK, "-f", fmt)
    run("output", "docker_hosts.web.private_ips", "-c", STACK)
    assert run("output", f"properties.{HIDDEN}.value", "-c", STACK).out == "(sensitive)\n"   # state keeps its digest
    for fmt in ("text", "installer", "json"):
        run("images", "-c", STACK, "-f", fmt)

    # Every secret changes: the hosts are replaced, the hidden property is written again.
    (work / STACK).write_text(stack_text(PROPERTY[1]))
    (work / "cloud-init.yaml").write_text(CLOUD_INIT.format(marker=USER_DATA[1]))
    for fmt in ("text", "json", "markdown"):
        plan = run("plan", "-c", STACK, "-f", fmt, "--stats", "--detailed-exitcode", expect=2)
    assert "(sensitive)" in plan.out  # the hidden value is masked, not left out unnoticed
    run("drift", "-c", STACK, "-f", "json", "--stats", expect=2)
    run("apply", "reviewed.plan", expect=1)                        # a stale saved plan is refused
    run("apply", "-c", STACK, "--auto-approve", "--stats", env={"RECON_LOG": "debug", "RECON_LOG_FILE": "debug.log"})
    assert "ec2.RunInstances attempt 1: HTTP 200" in (work / "debug.log").read_text()   # scanned with the work folder
    # The secrets did reach the cloud: the hosts' user data, a bundle signed with the private key.
    ec2 = client(scan.cloud_env, "ec2")
    hosts = ec2.describe_instances(Filters=[{"Name": "tag:recon:address", "Values": ["docker_hosts.web[0]"]},
                                            {"Name": "instance-state-name", "Values": ["running"]}])
    [host] = [i["InstanceId"] for r in hosts["Reservations"] for i in r["Instances"]]
    user_data = ec2.describe_instance_attribute(InstanceId=host, Attribute="userData")["UserData"]["Value"]
    assert USER_DATA[1] in base64.b64decode(user_data).decode()
    assert re.search(r"^\*\s+v1\s+emi-", run("images", "-c", STACK).out, re.M)

    # Changes behind recon's back, reported and repaired.
    properties = client(scan.cloud_env, "properties")
    properties.modify_property_value(Name="loadbalancing.loadbalancer_instance_type", Value="m1.small")
    properties.modify_property_value(Name=HIDDEN, Value="changed-behind-recons-back")
    for fmt in ("text", "json"):
        run("drift", "-c", STACK, "-f", fmt, "--stats", expect=2)
    run("apply", "-c", STACK, "--auto-approve", "--parallelism", "1", "--stats")

    # Adopting what was made by hand: a host launched with the user data, a key pair.
    image = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["ubuntu-raring-docker-rootfs"]}])
    instance = ec2.run_instances(ImageId=image["Images"][0]["ImageId"], MinCount=1, MaxCount=1,
                                 InstanceType="m1.small", UserData=CLOUD_INIT.format(marker=USER_DATA[1]))
    ec2.import_key_pair(KeyName="by-hand", PublicKeyMaterial=(work / "keys" / "docker-admin.pub").read_bytes())
    run("import", "docker_hosts.by-hand", instance["Instances"][0]["InstanceId"], "-c", STACK,
        "--cloud-init", "cloud-init.yaml")
    run("import", "keypairs.by-hand", "by-hand", "-c", STACK, "--public-key-file", "keys/docker-admin.pub")
    run("import", "properties.hidden", HIDDEN, "-c", STACK, expect=1)   # a hidden value cannot be read back
    run("plan", "-c", STACK, "--detailed-exitcode", "--stats")
    run("force-unlock", "no-such-lock", "-c", STACK, expect=1)
    run("drift", "-c", STACK, "--all-unmanaged", "-f", "markdown", expect=(0, 2))
    run("state", "mv", "security_groups.web", "security_groups.www", "-c", STACK)
    run("state", "rm", "keypairs.by-hand", f"properties.{HIDDEN}", "-c", STACK)

    # One host replaced on request, then everything destroyed; a starter written beside.
    for fmt in ("text", "json", "markdown"):
        run("plan", "-c", STACK, "-f", fmt, "--replace", "docker_hosts.web[0]", "--detailed-exitcode", expect=2)
    run("apply", "-c", STACK, "--auto-approve", "--replace", "docker_hosts.web[0]", "--stats")
    for fmt in ("text", "json", "markdown"):
        run("plan", "-c", STACK, "-f", fmt, "--destroy", "--detailed-exitcode", expect=2)
    # everything goes but the LB image its load balancer's worker runs and the emi property (left as it
    # is) still names: the plan keeps it, saying why
    assert "is kept (not retired)" in run("destroy", "-c", STACK, "--auto-approve", "--stats").out
    run("init", "--example", "docker", "--dir", "starter")

    assert listed_commands() - NOT_SCANNED <= scan.commands, \
        f"commands not scanned: {sorted(listed_commands() - NOT_SCANNED - scan.commands)}"
    assert (work / "state" / "secrets.json").exists() and (work / "state" / "secrets.json.backup").exists()
    assert (work / "reviewed.plan").exists() and any((work / "build").iterdir())
    scan.assert_clean()


def test_errors_show_no_secret(scan: Scan) -> None:
    work, run = scan.work, scan.run
    (work / STACK).write_text(stack_text(PROPERTY[0]))
    # Cloud-init that is not YAML, with the secret on the broken line.
    (work / "cloud-init.yaml").write_text(CLOUD_INIT.format(marker=USER_DATA[0]) + f"  - {USER_DATA[1]}: [x\n")
    for command in ("validate", "plan"):
        failed = run(command, "-c", STACK, expect=1)
        assert "not valid YAML at line" in failed.err
    (work / "cloud-init.yaml").write_text(f"#cloud-config\n- {USER_DATA[0]}\n- a list, not a mapping\n")
    assert "YAML mapping" in run("plan", "-c", STACK, expect=1).err
    (work / "cloud-init.yaml").write_text(f"#!/bin/sh\necho {USER_DATA[0]}\n")
    assert "#cloud-config" in run("validate", "-c", STACK, expect=1).err
    (work / "cloud-init.yaml").write_text(CLOUD_INIT.format(marker=USER_DATA[0]))

    # A misspelt hidden property: named in the error, its value not.
    (work / STACK).write_text(stack_text(PROPERTY[0], hidden_name=HIDDEN + "x"))
    assert HIDDEN in run("plan", "-c", STACK, expect=1).err
    (work / STACK).write_text(stack_text(PROPERTY[0]))

    # Credentials the cloud refuses, and a cloud that is not there.
    denied = run("plan", "-c", STACK, "--stats", expect=1,
                 env={"EC2_ACCESS_KEY": "AKIDNOTADMIN0000", "AWS_ACCESS_KEY_ID": "AKIDNOTADMIN0000"})
    assert "refused the credentials" in denied.err
    gone = {name: "http://127.0.0.1:9/services/" + path for name, path in (
        ("EC2_URL", "compute"), ("S3_URL", "objectstorage"), ("AWS_ELB_URL", "LoadBalancing"),
        ("EUCA_PROPERTIES_URL", "Properties"))}
    assert "cannot reach" in run("apply", "-c", STACK, "--auto-approve", "--stats", expect=1,
                                 env={**gone, "RECON_RETRY_ATTEMPTS": "1"}).err
    # An apply killed right after it launched a host; the lock file it left locks nothing, and
    # force-unlock removes it.
    run("apply", "-c", STACK, "--auto-approve", expect=-9, env={"RECON_CRASH_AFTER": "ec2.RunInstances"})
    left = json.loads((work / "state" / "secrets.json.lock").read_text())
    run("force-unlock", left["id"], "-c", STACK)
    # The cloud refuses a change half-way: the error names the call, not the secrets.
    (work / STACK).write_text(stack_text(PROPERTY[0]).replace('zones = ["ViciousLiesAndDangerousRumors"]',
                                                              'zones = ["NoSuchZone"]'))
    failed = run("apply", "-c", STACK, "--auto-approve", "--stats", expect=1)
    assert "CreateLoadBalancer failed" in failed.err
    run("plan", "-c", STACK, "-f", "json", "--stats", "--detailed-exitcode", expect=2)
    scan.assert_clean()


def referencing_stack(hidden_value: str, *, hosts: bool = False) -> str:
    """The hidden property, and a security group whose description references its value; with
    ``hosts``, Docker hosts in that group, with the user data."""
    text = f"""[stack]
name = "secrets"

[properties]
"{HIDDEN}" = "{hidden_value}"

[security_groups.web]
description = "key ${{properties.{HIDDEN}.value}}"
ingress = [{{ protocol = "tcp", ports = "80", cidr = "0.0.0.0/0" }}]
"""
    return text + ("""
[images.rootfs]
name = "ubuntu-raring-docker-rootfs"

[docker_hosts.web]
image = "${images.rootfs.id}"
instance_type = "m1.small"
zone = "ViciousLiesAndDangerousRumors"
security_groups = ["${security_groups.web.name}"]
cloud_init = "cloud-init.yaml"
""" if hosts else "")


@pytest.mark.slow
def test_a_referenced_secret_stays_secret(scan: Scan) -> None:
    work, run = scan.work, scan.run
    # A name is shown to every user of the cloud: it cannot hold a hidden value.
    (work / STACK).write_text(referencing_stack(PROPERTY[0]).replace(
        "[security_groups.web]\n", f"[security_groups.web]\nname = \"g-${{properties.{HIDDEN}.value}}\"\n"))
    assert "would hold a hidden value" in run("plan", "-c", STACK, expect=1).err

    (work / STACK).write_text(referencing_stack(PROPERTY[0]))
    for fmt in ("text", "json", "markdown"):
        plan = run("plan", "-c", STACK, "-f", fmt, "--stats")
    assert "(sensitive)" in plan.out
    run("plan", "-c", STACK, "--out", "reviewed.plan")
    run("apply", "reviewed.plan")
    for fmt in ("text", "json"):
        run("show", "-c", STACK, "-f", fmt)
        run("plan", "-c", STACK, "-f", fmt, "--detailed-exitcode")   # no change
        run("drift", "-c", STACK, "-f", fmt)
    ec2 = client(scan.cloud_env, "ec2")
    # The group reached the cloud with the value the file asked for, not a digest of it.
    assert ec2.describe_security_groups(GroupNames=["web"])["SecurityGroups"][0]["Description"] == f"key {PROPERTY[0]}"

    # A new value: the property is written again, the group replaced.
    (work / STACK).write_text(referencing_stack(PROPERTY[1]))
    for fmt in ("text", "json", "markdown"):
        plan = run("plan", "-c", STACK, "-f", fmt, "--detailed-exitcode", expect=2)
    run("apply", "-c", STACK, "--auto-approve")
    run("plan", "-c", STACK, "--detailed-exitcode")
    assert ec2.describe_security_groups(GroupNames=["web"])["SecurityGroups"][0]["Description"] == f"key {PROPERTY[1]}"

    # Both leave the file: the value is no longer known to this run, the group's delete masks it
    # because state kept only its digest.
    (work / STACK).write_text('[stack]\nname = "secrets"\n')
    for fmt in ("text", "json", "markdown"):
        plan = run("plan", "-c", STACK, "-f", fmt, "--detailed-exitcode", expect=2)
        assert "(sensitive)" in plan.out
    run("apply", "-c", STACK, "--auto-approve")
    scan.assert_clean()


def test_a_cloud_that_echoes_the_request_shows_no_secret(scan: Scan, sandbox) -> None:
    from faultproxy import FaultProxy

    work = scan.work
    (work / STACK).write_text(referencing_stack(PROPERTY[0], hosts=True))
    (work / "cloud-init.yaml").write_text(CLOUD_INIT.format(marker=USER_DATA[0]))
    # The group's description holds the hidden value; the hosts' user data goes in base64.
    for call in ("compute.CreateSecurityGroup", "compute.RunInstances"):
        proxy = FaultProxy(sandbox.url, echo={call})
        try:
            failed = scan.run("--debug", "apply", "-c", STACK, "--auto-approve", expect=1, env=proxy.env(sandbox.env))
        finally:
            proxy.close()
        assert call.split(".")[1] in failed.err and "(sensitive)" in failed.err   # the echo, redacted
    scan.run("apply", "-c", STACK, "--auto-approve")
    scan.run("plan", "-c", STACK, "--detailed-exitcode")
    scan.assert_clean()
