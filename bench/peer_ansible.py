"""Benchmark: recon against Ansible (amazon.aws) on the same stack, in the same sandbox cloud.

    python bench/peer_ansible.py [--hosts 100,500] [--runs 3] [--quick] [--cache DIR] [--work DIR]

The stack: N hosts of one image, instance type and zone with a tag, one security group with two
ingress rules, and one classic load balancer that registers the hosts. recon has it as a TOML file
(``docker_hosts``, ``security_groups``, ``load_balancers`` and an ``images`` lookup); Ansible as a
playbook of ``amazon.aws.ec2_ami_info`` (the image by name), ``ec2_security_group``,
``ec2_instance`` with ``exact_count`` and ``elb_classic_lb``. Each tool has its own names, so both
stacks live side by side in one sandbox cloud (``reconciler.sandbox.start_child``).

Ansible (the ``ansible`` package, which carries amazon.aws, and boto3) is installed by this benchmark
into a virtual environment of its own under ``--cache`` (default: ``recon-bench-ansible`` in the
system temp dir), once; it is never a dependency of recon or of its tests. It reaches the sandbox by
botocore's per-service endpoint variables (``AWS_ENDPOINT_URL_EC2``,
``AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING``: its modules call both EC2 and ELB, which the
sandbox serves on different paths), plain HTTP on loopback, the sandbox's access key and region.
``ec2_security_group`` first asks STS whose the key is (GetCallerIdentity); the sandbox has no
STS, so Ansible's proxy answers that call itself with the sandbox's account (it is counted); and
``ec2_instance`` reads every instance's ``NetworkInterfaces``, which a Eucalyptus 4.0 reply
(EC2-Classic, the sandbox's) lacks, so Ansible's proxy adds an empty ``networkInterfaceSet`` to
each instance of DescribeInstances and RunInstances replies; and ``elb_classic_lb`` reads a new
load balancer's health check before it configures one, which moto leaves out until then (ELB gives
its default), so Ansible's proxy adds ELB's default where a DescribeLoadBalancers reply has none.
None of these changes what either tool compares or the number of calls.

Every request of each tool goes through a counting loopback proxy of its own (``bench/benchlib.py``).
For each N and each of ``--runs`` rounds a fresh sandbox is started and warmed with one untimed call
of each API the stacks read (``warm_up``), and in it, tools alternating
(the first tool of a round is the second of the next):

- create: ``recon apply --auto-approve`` / ``ansible-playbook`` from nothing;
- in-sync check: ``recon plan --detailed-exitcode`` (must exit 0) / ``ansible-playbook --check
  --diff`` (must report ``changed=0``), three times each, alternating;
- one change: a third ingress rule on the group, ``recon apply --auto-approve`` / ``ansible-playbook``.

Printed per work and N (medians over the runs): wall time, CPU (user + system of the tool's process
and all the processes it waited for: Ansible's workers and modules), peak RSS of its largest process,
HTTP requests, and Ansible's wall time over recon's. Bytecode caching is on for both (an installed
tool has its ``.pyc`` files). ``--quick``: 5 hosts, one round, one check each: a smoke run.

Targets, printed: the in-sync check at least 20 times faster than Ansible at 100 hosts and 30 times
at 500; the create of 100 hosts at least 10 times.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import CountingProxy, Reply, Run, load, machine, python_env, recon, run  # noqa: E402

from reconciler.demo import plain_client  # noqa: E402
from reconciler.sandbox import start_child  # noqa: E402

IMAGE = "ubuntu-raring-docker-rootfs"
ZONE = "ViciousLiesAndDangerousRumors"
INSTANCE_TYPE = "m1.small"
RULES = [(22, "0.0.0.0/0"), (80, "0.0.0.0/0")]
EXTRA_RULE = (443, "0.0.0.0/0")
ANSIBLE_PACKAGES = ["ansible>=10", "boto3>=1.34"]
CHECKS = 3
DEFAULT_HEALTH_CHECK = (("Target", "TCP:80"), ("Interval", "30"), ("Timeout", "5"), ("UnhealthyThreshold", "2"),
                        ("HealthyThreshold", "10"))
STS_SERVICE = "Tokens"  # Eucalyptus' name for STS
TARGETS = {("check", 100): 20.0, ("check", 500): 30.0, ("create", 100): 10.0}


# --- the two stacks ----------------------------------------------------------------------------

def recon_stack(hosts: int, rules: list[tuple[int, str]]) -> str:
    ingress = "\n".join(f'  {{ protocol = "tcp", ports = "{port}", cidr = "{cidr}" }},' for port, cidr in rules)
    return f"""[stack]
name = "peer"

[cloud]
eucalyptus_version = "4.0"

[images.rootfs]
name = "{IMAGE}"

[security_groups.web]
description = "peer benchmark web"
ingress = [
{ingress}
]

[docker_hosts.web]
image = "${{images.rootfs.id}}"
instance_type = "{INSTANCE_TYPE}"
zone = "{ZONE}"
security_groups = ["${{security_groups.web.name}}"]
count = {hosts}
tags = {{ role = "web" }}

[load_balancers.web]
zones = ["{ZONE}"]
listeners = [{{ lb_port = 80, protocol = "HTTP", instance_port = 80, instance_protocol = "HTTP" }}]
health_check = {{ target = "HTTP:80/", interval = 30, timeout = 5, healthy_threshold = 2, unhealthy_threshold = 3 }}
instances = "${{docker_hosts.web.instance_ids}}"
"""


PLAYBOOK = """\
- name: peer benchmark stack
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: image
      amazon.aws.ec2_ami_info:
        filters:
          name: "{image}"
      register: image

    - name: security group
      amazon.aws.ec2_security_group:
        name: ansible-web
        description: peer benchmark web
        rules: "{{{{ rules }}}}"
      register: group

    - name: hosts
      amazon.aws.ec2_instance:
        image_id: "{{{{ image.images[0].image_id }}}}"
        instance_type: {instance_type}
        availability_zone: {zone}
        security_groups: ["{{{{ group.group_id }}}}"]
        exact_count: "{{{{ host_count }}}}"
        filters:
          "tag:stack": ansible-peer
          instance-state-name: [pending, running]
        tags:
          stack: ansible-peer
          role: web
      register: instances

    - name: load balancer
      amazon.aws.elb_classic_lb:
        name: ansible-web
        state: present
        zones: [{zone}]
        listeners:
          - protocol: http
            load_balancer_port: 80
            instance_port: 80
        health_check:
          ping_protocol: http
          ping_port: 80
          ping_path: /
          response_timeout: 5
          interval: 30
          unhealthy_threshold: 3
          healthy_threshold: 2
        instance_ids: "{{{{ instances.instance_ids }}}}"
        purge_instance_ids: true
""".format(image=IMAGE, instance_type=INSTANCE_TYPE, zone=ZONE)


def caller_identity(account: str) -> Reply:
    """STS GetCallerIdentity's reply for the sandbox's account: ``ec2_security_group`` asks for it
    before anything else, and the sandbox has no STS (nor IAM) service, so the proxy answers it."""
    body = (f'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>'
            f"<Arn>arn:aws:iam::{account}:root</Arn><UserId>{account}</UserId><Account>{account}</Account>"
            "</GetCallerIdentityResult><ResponseMetadata><RequestId>bench</RequestId></ResponseMetadata>"
            "</GetCallerIdentityResponse>")
    return 200, [("Content-Type", "text/xml")], body.encode()


def with_interfaces(body: bytes) -> bytes:
    """An instance reply with an empty ``networkInterfaceSet`` in each instance: ``ec2_instance`` reads
    ``NetworkInterfaces`` of every instance, which a Eucalyptus 4.0 (EC2-Classic) reply lacks."""
    return re.sub(rb"(<instanceId>[^<]*</instanceId>)", rb"\1<networkInterfaceSet/>", body)


def with_health_check(body: bytes) -> bytes:
    """A DescribeLoadBalancers reply in which each load balancer has a health check: moto leaves it
    out until one is configured, where ELB gives its default one, and ``elb_classic_lb`` reads it
    between its CreateLoadBalancer and its ConfigureHealthCheck."""
    root = ET.fromstring(body)
    ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    q = (lambda tag: f"{{{ns}}}{tag}") if ns else (lambda tag: tag)
    ET.register_namespace("", ns)
    for member in root.iter(q("LoadBalancerDescriptions")):
        for description in member.findall(q("member")):
            if description.find(q("HealthCheck")) is None:
                check = ET.SubElement(description, q("HealthCheck"))
                for tag, text in DEFAULT_HEALTH_CHECK:
                    ET.SubElement(check, q(tag)).text = text
    return ET.tostring(root)


def ansible_vars(hosts: int, rules: list[tuple[int, str]]) -> str:
    return json.dumps({"host_count": hosts,
                       "rules": [{"proto": "tcp", "ports": [port], "cidr_ip": cidr} for port, cidr in rules]})


# --- Ansible's environment ---------------------------------------------------------------------

def install_ansible(cache: Path) -> Path:
    """The virtual environment with Ansible in it, made once under ``cache``."""
    venv = cache / "venv"
    playbook = venv / "bin" / "ansible-playbook"
    if not playbook.exists():
        print(f"installing {', '.join(ANSIBLE_PACKAGES)} into {venv} (once)", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *ANSIBLE_PACKAGES], check=True)
    return venv


def versions(venv: Path) -> str:
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import ansible, boto3; from importlib.metadata import version as v; "
                          "print(f'ansible-core {ansible.__version__}, boto3 {boto3.__version__}')"],
                         capture_output=True, text=True, check=True).stdout.strip()
    collections = subprocess.run([str(venv / "bin" / "ansible-galaxy"), "collection", "list", "amazon.aws"],
                                 capture_output=True, text=True).stdout
    found = re.search(r"amazon\.aws\s+(\S+)", collections)
    return f"{out}, amazon.aws {found.group(1) if found else '?'}"


def ansible_env(venv: Path, cloud_env: dict[str, str], endpoint_base: str, work: Path) -> dict[str, str]:
    env = python_env()
    env.update({
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "AWS_ACCESS_KEY_ID": cloud_env["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": cloud_env["AWS_SECRET_ACCESS_KEY"],
        "AWS_REGION": cloud_env["AWS_DEFAULT_REGION"],
        "AWS_ENDPOINT_URL_EC2": f"{endpoint_base}/services/compute",
        "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING": f"{endpoint_base}/services/LoadBalancing",
        "AWS_ENDPOINT_URL_STS": f"{endpoint_base}/services/{STS_SERVICE}",
        "ANSIBLE_HOME": str(work / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"),
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "ANSIBLE_PYTHON_INTERPRETER": str(venv / "bin" / "python"),
        "ANSIBLE_NOCOLOR": "1",
    })
    return env


# --- the runs ----------------------------------------------------------------------------------

@dataclass
class Sample:
    tool: str
    work: str
    hosts: int
    run: Run
    calls: int


@dataclass
class Round:
    hosts: int
    venv: Path
    work: Path
    first: str  # the tool that goes first in this round
    samples: list[Sample] = field(default_factory=list)

    def order(self) -> list[str]:
        return ["recon", "ansible"] if self.first == "recon" else ["ansible", "recon"]


def warm_up(cloud_env: dict[str, str]) -> None:
    """One untimed call of each kind the stacks read: a fresh sandbox imports moto's modules for an API on
    its first request (about a second in all), which would otherwise be the first timed tool's cost."""
    ec2, elb = plain_client(cloud_env, "ec2"), plain_client(cloud_env, "elb")
    ec2.describe_instances()
    ec2.describe_security_groups()
    ec2.describe_images()
    elb.describe_load_balancers()


def one_round(rnd: Round, checks: int) -> None:
    (rnd.work / "stack.toml").write_text(recon_stack(rnd.hosts, RULES))
    (rnd.work / "stack.yml").write_text(PLAYBOOK)
    with start_child(rnd.work / "sandbox", timeout=60, lb_image_installed=True) as cloud:   # both make a load balancer
        warm_up(cloud.env)
        proxies = {"recon": CountingProxy(cloud.url), "ansible": CountingProxy(
            cloud.url, answers={f"{STS_SERVICE}.GetCallerIdentity": caller_identity(cloud.env["EC2_ACCOUNT_NUMBER"])},
            rewrite={"compute.DescribeInstances": with_interfaces, "compute.RunInstances": with_interfaces,
                     "LoadBalancing.DescribeLoadBalancers": with_health_check})}
        try:
            recon_env = python_env() | proxies["recon"].env(cloud.env, cloud.url) | {"RECON_WAIT_INTERVAL": "0.2"}
            peer_env = ansible_env(rnd.venv, cloud.env, proxies["ansible"].url, rnd.work)

            def step(tool: str, work: str, rules: list[tuple[int, str]], check: bool = False) -> None:
                proxy = proxies[tool]
                proxy.reset()
                if tool == "recon":
                    (rnd.work / "stack.toml").write_text(recon_stack(rnd.hosts, rules))
                    args = ("plan", "-c", "stack.toml", "--detailed-exitcode") if check else \
                        ("apply", "-c", "stack.toml", "--auto-approve")
                    done = recon(*args, env=recon_env, cwd=rnd.work)
                    ok = done.code == 0
                else:
                    argv = [str(rnd.venv / "bin" / "ansible-playbook"), "-i", "localhost,", "stack.yml",
                            "-e", ansible_vars(rnd.hosts, rules)] + (["--check", "--diff"] if check else [])
                    done = run(argv, env=peer_env, cwd=rnd.work)
                    recap = re.search(r"changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", done.out)
                    ok = done.code == 0 and recap is not None and (not check or recap.group(1) == "0")
                if not ok:
                    raise SystemExit(f"{tool} {work} at {rnd.hosts} hosts failed (exit {done.code}):\n"
                                     f"{done.out[-4000:]}\n{done.err[-3000:]}")
                rnd.samples.append(Sample(tool, work, rnd.hosts, done, proxy.total))
                print(f"    {tool:>7} {work:<6} {done.seconds:7.2f}s wall {done.cpu:7.2f}s cpu "
                      f"{proxy.total:>6} calls", flush=True)

            for tool in rnd.order():
                step(tool, "create", RULES)
            for _ in range(checks):
                for tool in rnd.order():
                    step(tool, "check", RULES, check=True)
            for tool in rnd.order():
                step(tool, "change", RULES + [EXTRA_RULE])
        finally:
            for proxy in proxies.values():
                proxy.close()
        cloud.stop()


def report(samples: list[Sample], hosts: list[int]) -> bool:
    print(f"\n{'work':<7} {'hosts':>5} {'tool':>7} {'wall s':>8} {'cpu s':>7} {'peak MiB':>9} {'calls':>6} "
          f"{'ratio':>6}")
    ok = True
    for n in hosts:
        for work in ("create", "check", "change"):
            figures = {}
            for tool in ("recon", "ansible"):
                mine = [s for s in samples if s.hosts == n and s.work == work and s.tool == tool]
                figures[tool] = (statistics.median(s.run.seconds for s in mine),
                                 statistics.median(s.run.cpu for s in mine),
                                 max(s.run.peak_mib for s in mine),
                                 int(statistics.median(s.calls for s in mine)))
            ratio = figures["ansible"][0] / figures["recon"][0]
            for tool in ("recon", "ansible"):
                wall, cpu, peak, calls = figures[tool]
                shown = f"{ratio:5.1f}x" if tool == "ansible" else ""
                print(f"{work:<7} {n:>5} {tool:>7} {wall:>8.2f} {cpu:>7.2f} {peak:>9.0f} {calls:>6} {shown:>6}")
            target = TARGETS.get((work, n))
            if target is not None:
                met = ratio >= target
                ok &= met
                print(f"  [{'met' if met else 'MISSED'}] {work} at {n} hosts at least {target:g}x Ansible's wall "
                      f"time: {ratio:.1f}x")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="100,500", help="host counts, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="rounds per host count (medians are reported)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5 hosts, one round, one check each")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "recon-bench-ansible",
                        help="where Ansible's virtual environment is kept")
    parser.add_argument("--work", type=Path, help="keep the stacks and sandboxes here")
    args = parser.parse_args()
    hosts = [5] if args.quick else [int(n) for n in args.hosts.split(",")]
    runs, checks = (1, 1) if args.quick else (args.runs, CHECKS)
    venv = install_ansible(args.cache)
    print(f"machine: {machine()}\npeer: {versions(venv)}")
    base = args.work or Path(tempfile.mkdtemp(prefix="recon-bench-peer-"))
    started = time.perf_counter()
    samples: list[Sample] = []
    try:
        for n in hosts:
            for number in range(runs):
                work = base / f"n{n}-r{number}"
                work.mkdir(parents=True, exist_ok=True)
                rnd = Round(n, venv, work, "recon" if number % 2 == 0 else "ansible")
                print(f"  {n} hosts, round {number + 1} of {runs} ({rnd.first} first; {load()})", flush=True)
                one_round(rnd, checks)
                samples += rnd.samples
    finally:
        if args.work is None:
            shutil.rmtree(base, ignore_errors=True)
    ok = report(samples, hosts)
    print(f"\nmachine at the end: {machine()}\nwhole benchmark: {time.perf_counter() - started:.0f}s")
    return 0 if ok or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
