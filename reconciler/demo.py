"""``recon demo``: the whole story on the embedded sandbox, with real commands.

Starts a sandbox child process -- a fresh cloud, which refuses every load balancer until a
load-balancer image is installed and enabled -- copies the examples into a work folder and runs
``recon`` itself, step by step, in the runbook's order: the LB image customized, installed as v1
and enabled, a load balancer whose worker runs it, a new revision v2 enabled, the stale worker
reported, rolled onto v2, v1 retired; then the load-balancer stack: plan, apply, plan again (no
changes), a property and a listener changed by hand with plain boto3, drift, apply repairs,
drift clean; then the Docker stack: the image built from (stand-in) files and published, two
hosts behind a load balancer, one terminated by hand, drift, apply replaces it; last, a new root
file system: a new Docker image, the hosts rolled onto it, the old image retired. The sandbox is
stopped whatever happens.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import boto3

from .cloud.credentials import new_session
from .forked import run_recon
from .imagebuild.standins import make_docker_standins
from .terminal import Terminal

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STACK = "loadbalancer.toml"
DOCKER_STACK = "docker.toml"
LB_IMAGE_STACK = "lb-image.toml"


def plain_client(env: dict[str, str], service: str):
    """A boto3 client for a sandbox (or any eucarc), as an administrator would make one.

    ``properties`` uses the service model recon ships, as euca-modify-property speaks it; the
    others botocore's whole models, not the cut ones recon's own clients are made from.
    """
    urls = {"ec2": env["EC2_URL"], "elb": env["AWS_ELB_URL"], "s3": env["S3_URL"],
            "autoscaling": env.get("AWS_AUTO_SCALING_URL"), "properties": env.get("EUCA_PROPERTIES_URL")}
    return boto3.Session(botocore_session=new_session(cut_models=False)).client(
        service, endpoint_url=urls[service], region_name=env.get("AWS_DEFAULT_REGION", "eucalyptus"),
        aws_access_key_id=env["EC2_ACCESS_KEY"], aws_secret_access_key=env["EC2_SECRET_KEY"])


def example_dir() -> Path:
    if not (EXAMPLES / STACK).exists():
        raise FileNotFoundError(f"the example stack is missing ({EXAMPLES / STACK}); run from a source checkout")
    return EXAMPLES


class Story:
    def __init__(self, term: Terminal, work: Path, env: dict[str, str]):
        self.term = term
        self.work = work
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EC2_", "EUCA"))}, **env}
        self.failures: list[str] = []
        self.steps = 0

    def say(self, text: str) -> None:
        """A numbered step's title."""
        self.steps += 1
        self.term.line("")
        self.term.line(f"### {self.steps}. {text}")

    def recon(self, *args: str, expect: int) -> None:
        """Run ``recon ARGS`` (a forked child of the demo: see ``forked``) and show what it printed."""
        self.term.line(f"$ recon {' '.join(args)}")
        code, output = run_recon(list(args), cwd=self.work, env=self.env)
        self.term.write(output)
        self.term.line(f"(exit code {code})")
        if code != expect:
            self.failures.append(f"recon {' '.join(args)} exited {code}, expected {expect}")

    def run(self) -> int:
        self.lb_image_story()
        self.lb_story()
        self.docker_story()
        self.docker_image_story()
        self.term.line("")
        if self.failures:
            for failure in self.failures:
                self.term.error(failure)
            return 1
        self.term.line("Demo complete: a customized LB image installed, enabled, changed, the load balancer's worker "
                       "rolled onto it and the old revision retired; "
                       "plan, apply, no-op plan, drift detected, drift repaired; "
                       "Docker image published, hosts running behind a load balancer, a lost host replaced; "
                       "a new Docker root file system rolled out.")
        return 0

    def lb_image_story(self) -> None:
        """The runbook's first half: customize the LB image's HAProxy template, install, enable; then
        a new revision, the load balancer's worker rolled onto it, the old one retired."""
        from .imagebuild.testimage import RUNBOOK_SERVO, make_test_image, pack_tgz

        self.say("The fresh cloud has no load-balancer image, so no load balancer yet. Customize the package's "
                 "image (a small stand-in, with the runbook's servo 1.0.4 template), install and enable it; a "
                 "load balancer whose worker VM runs it")
        with tempfile.TemporaryDirectory() as tmp:
            image = make_test_image(Path(tmp) / "eucalyptus-load-balancer-image.img", servo_version=RUNBOOK_SERVO)
            pack_tgz(image, self.work / "images" / "eucalyptus-load-balancer-image.tgz")   # the .img alone
        self.recon("plan", "-c", LB_IMAGE_STACK, "--detailed-exitcode", expect=2)
        self.recon("apply", "-c", LB_IMAGE_STACK, "--auto-approve", expect=0)
        self.recon("images", "-c", LB_IMAGE_STACK, "--format", "installer", expect=0)
        self.say("A longer connect timeout: a new revision v2 is installed and enabled; Eucalyptus leaves the "
                 "running worker VM on v1, so v1 stays, and the cron job notices")
        stack = self.work / LB_IMAGE_STACK
        stack.write_text(stack.read_text().replace('"timeout connect" = "5s"', '"timeout connect" = "7s"'))
        self.recon("apply", "-c", LB_IMAGE_STACK, "--auto-approve", expect=0)
        self.recon("drift", "-c", LB_IMAGE_STACK, expect=2)
        self.say('workers = "roll": apply replaces the worker through its auto-scaling group, then retires v1; '
                 "the worker now runs v2")
        stack.write_text(stack.read_text().replace('# workers = "roll"', 'workers = "roll"'))
        self.recon("apply", "-c", LB_IMAGE_STACK, "--auto-approve", expect=0)
        self.recon("images", "-c", LB_IMAGE_STACK, expect=0)
        self.recon("image", "effective", "TemplateCheck", "-c", LB_IMAGE_STACK, expect=0)

    def lb_story(self) -> None:
        """The runbook's load balancer, now that the cloud has an LB image enabled."""
        self.say("What would recon change for the runbook's load balancer?")
        self.recon("plan", "-c", STACK, "--detailed-exitcode", expect=2)
        self.say("Apply it")
        self.recon("apply", "-c", STACK, "--auto-approve", expect=0)
        self.say("Plan again: nothing to do")
        self.recon("plan", "-c", STACK, "--detailed-exitcode", expect=0)
        self.say("Someone changes the cloud by hand (plain boto3)")
        self.term.line("$ euca-modify-property -p loadbalancing.loadbalancer_instance_type=m1.large")
        plain_client(self.env, "properties").modify_property_value(
            Name="loadbalancing.loadbalancer_instance_type", Value="m1.large")
        self.term.line("$ eulb-delete-lb-listeners + eulb-create-lb-listeners: port 80 is now TCP to 8080")
        elb = plain_client(self.env, "elb")
        elb.delete_load_balancer_listeners(LoadBalancerName="TestLoadBalancer", LoadBalancerPorts=[80])
        elb.create_load_balancer_listeners(LoadBalancerName="TestLoadBalancer", Listeners=[
            {"Protocol": "TCP", "LoadBalancerPort": 80, "InstanceProtocol": "TCP", "InstancePort": 8080}])
        self.say("The cron job notices")
        self.recon("drift", "-c", STACK, expect=2)
        self.say("Apply repairs it")
        self.recon("apply", "-c", STACK, "--auto-approve", expect=0)
        self.recon("drift", "-c", STACK, expect=0)

    def docker_story(self) -> None:
        """The runbook's second half: publish the Docker image, run hosts from it behind a load balancer."""
        self.say("Build the Docker image from its files (kernel, ramdisk, root file system), publish it to "
                 "every account; two Docker hosts behind a load balancer")
        self.recon("apply", "-c", DOCKER_STACK, "--auto-approve", expect=0)
        self.say("Someone terminates a Docker host by hand; the cron job notices")
        ec2 = plain_client(self.env, "ec2")
        reply = ec2.describe_instances(Filters=[{"Name": "tag:recon:address", "Values": ["docker_hosts.docker[1]"]},
                                                {"Name": "instance-state-name", "Values": ["running"]}])
        ids = [item["InstanceId"] for r in reply["Reservations"] for item in r["Instances"]]
        self.term.line(f"$ euca-terminate-instances {' '.join(ids)}")
        ec2.terminate_instances(InstanceIds=ids)
        self.recon("drift", "-c", DOCKER_STACK, expect=2)
        self.say("Apply starts a new host in its place and registers it with the load balancer")
        self.recon("apply", "-c", DOCKER_STACK, "--auto-approve", expect=0)
        self.recon("drift", "-c", DOCKER_STACK, expect=0)

    def docker_image_story(self) -> None:
        """A new root file system: a new emi, the hosts rolled onto it, then the old emi and its bundle gone."""
        self.say("A new Docker root file system: a new image is registered, the hosts roll onto it, "
                 "then the old image is deregistered and its bundle deleted")
        make_docker_standins(self.work / "images", revision=1)
        self.recon("plan", "-c", DOCKER_STACK, "--detailed-exitcode", expect=2)
        self.recon("apply", "-c", DOCKER_STACK, "--auto-approve", expect=0)
        self.recon("plan", "-c", DOCKER_STACK, "--detailed-exitcode", expect=0)


def run_demo(term: Terminal, keep: Path | None = None) -> int:
    from .sandbox import start_child

    work_root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="recon-demo-"))
    try:
        work = work_root / "repo"
        shutil.copytree(example_dir(), work, dirs_exist_ok=True)
        make_docker_standins(work / "images")
        term.line(f"Starting a fresh sandbox cloud, no load-balancer image installed (work folder {work_root}) …")
        with start_child(work_root / "sandbox") as cloud:
            term.line(f"Sandbox ready at {cloud.url}; recon reads its eucarc like a real cloud's.")
            return Story(term, work, dict(cloud.env)).run()
    finally:
        if keep is None:
            shutil.rmtree(work_root, ignore_errors=True)
