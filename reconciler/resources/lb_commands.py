"""The commands of the ``lb_images`` kind: ``recon images`` and ``recon image build|effective``.

``LbImages.commands`` adds them to the ``recon`` app. They belong to the command line (they
use its terminal and options, and the workspace), so nothing in ``resources/`` imports this
module; it sits here to keep what one kind does in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..addresses import Address
from ..commands.common import DEFAULT_CONFIG, ConfigOpt, EnvChoice, EnvOpt, VarOpt, fail, report, term
from ..engine import Workspace
from ..errors import PlanError, ReconError
from ..imagebuild.servo import EFFECTIVE_PATH
from ..render import images as listing, json_out
from .lb_images import KIND, enabled_images, installed_images
from .lb_workers import Worker, all_groups, read_workers

if TYPE_CHECKING:   # building an image is imported where it is done (every command loads this module)
    from ..imagebuild.build import Revision

image_app = typer.Typer(help="Load-balancer image revisions, without the cloud.", no_args_is_help=True)
RevisionArg = Annotated[str, typer.Argument(help="The revision, lb_images.NAME.")]
SubjectArg = Annotated[str, typer.Argument(help="The revision, lb_images.NAME; or a load balancer (NAME or "
                                                "load_balancers.NAME): the revision its workers run.")]


class ImagesFormat(str, Enum):
    text = "text"
    installer = "installer"
    json = "json"


def add_commands(app: typer.Typer) -> None:
    app.command()(images)
    app.add_typer(image_app, name="image")


def revision_address(ws: Workspace, address_text: str, where: str) -> Address:
    """The address of an ``lb_images`` block of the file."""
    try:
        address = Address.parse(address_text)
    except ValueError as exc:
        raise PlanError(str(exc), where=where)
    if address.kind != KIND.name or address not in ws.stack.resources:
        known = ", ".join(str(a) for a in ws.stack.resources if a.kind == KIND.name) or "none"
        raise PlanError(f"{address_text} is not an lb_images block of {ws.stack.path} (it has: {known})",
                        where=where)
    return address


def built(ws: Workspace, address_text: str, out: Path) -> tuple[Revision, dict[str, Any]]:
    """The customized LB image of one ``lb_images`` block, and its effective configurations; no cloud."""
    address = revision_address(ws, address_text, "image build")
    spec = ws.stack.resources[address]
    with ws.naming_file():
        from ..imagebuild.build import build_image

        revision = build_image(KIND.spec(address.name, spec.attrs, ws.stack.base_dir), out,
                               progress=lambda message: ws.report(str(address), message))
        KIND.remember(spec.attrs, ws.stack.base_dir, revision)      # so the plan below reads no image
    return revision, ws.prepared().resources[address].attrs["effective"]


@dataclass(frozen=True)
class Running:
    """What one worker of a load balancer runs: its image, that image's version, and the file's block of that revision."""

    worker: Worker
    version: int | None
    revision: Address | None


def running(ws: Workspace, load_balancer: str) -> list[Running]:
    """What the workers of a load balancer run, read from the cloud: for each, the version and the
    ``lb_images`` block of the file whose revision (digest) its image is."""
    where = f"load_balancers.{load_balancer}"
    reply = ws.cloud.call("elb", "describe_load_balancers", where=where, LoadBalancerNames=[load_balancer],
                          ignore_codes=("LoadBalancerNotFound", "AccessPointNotFound"))
    found = (reply or {}).get("LoadBalancerDescriptions") or []
    if not found:
        raise ReconError(f"no load balancer {load_balancer!r} in the cloud", where="image effective")
    security_group = (found[0].get("SourceSecurityGroup") or {}).get("GroupName")
    groups = read_workers(ws.cloud, {load_balancer: (security_group, found[0].get("AvailabilityZones") or [])},
                          where).get(load_balancer, [])
    workers = [w for group in groups for w in group.workers]
    if not workers:
        raise ReconError(f"load balancer {load_balancer} has no worker VMs", where="image effective",
                         hint="Eucalyptus launches them from the loadbalancer_emi property's image")
    installed = {item["image_id"]: item for item in installed_images(ws.cloud, where)}
    stack = ws.prepared()
    blocks = {spec.attrs.get("digest"): address for address, spec in stack.resources.items()
              if address.kind == KIND.name}
    out = []
    for worker in workers:
        image = installed.get(worker.image or "", {})
        out.append(Running(worker, image.get("version"), blocks.get(image.get("digest")) if image.get("digest") else None))
    return out


def effective(ws: Workspace, address_text: str, load_balancer: str) -> dict[str, Any]:
    """What the servo of a revision writes for a load balancer of the file."""
    address = revision_address(ws, address_text, "image effective")
    attrs = ws.prepared().resources[address].attrs
    if not attrs.get("servo"):
        raise PlanError(f"{address} does not say which servo release its image carries", where="image effective",
                        hint=f"set servo_version in [{address}] (the image has no servo package metadata)")
    found = attrs["effective"].get(load_balancer)
    if found is None:
        known = ", ".join(sorted(attrs["effective"])) or "none"
        raise PlanError(f"{load_balancer} is not a load balancer of {ws.stack.path} (it has: {known})",
                        where="image effective --lb")
    return {**found, "servo": attrs["servo"]}


@image_app.command("build")
def image_build(
    address: RevisionArg,
    out: Annotated[Path, typer.Option("--out", help="Folder for the image, revision.json and the template diff.")],
    config: ConfigOpt = DEFAULT_CONFIG,
    env: EnvOpt = None,
    var: VarOpt = None,
) -> None:
    """Build a customized LB image locally (no cloud): for CI on pull requests.

    Also prints, for each load balancer of the file, the HAProxy configuration the image's servo
    will write for it, checked with haproxy -c.
    """
    try:
        revision, configs = built(Workspace.open(config, EnvChoice.given(env, var), report=report), address, out)
    except ReconError as exc:
        fail(exc)
    term.write(revision.template_diff or "(template unchanged from the base image)\n")
    term.line(f"haproxy -c: {revision.haproxy_check.status}")
    for name, found in sorted(configs.items()):
        term.line("")
        term.line(f"# load_balancers.{name}: what servo {revision.servo.version} writes to {EFFECTIVE_PATH} "
                  f"(haproxy -c: {found['check']})")
        term.write(found["config"])
    term.line(f"Built {revision.image} (revision {revision.digest}).")


@image_app.command("effective")
def image_effective(
    subject: SubjectArg,
    lb: Annotated[str | None, typer.Option("--lb", help="A load balancer of the file (load_balancers.NAME); "
                                                        "needed with a revision.")] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    env: EnvOpt = None,
    var: VarOpt = None,
) -> None:
    """Print the HAProxy configuration the revision's servo writes for a load balancer.

    That is the file the servo writes to /var/lib/load-balancer-servo/euca_haproxy.conf on the
    load balancer's VMs: the template's global and defaults, then a frontend and a backend per
    listener. Servers are the instances the file names (the servo writes the ones in service, by
    private address). How haproxy -c judged it goes to stderr.

    Given a revision (lb_images.NAME) and --lb, no cloud is called. Given a load balancer, recon
    reads its worker VMs from the cloud and says which revision each runs (stdout, first), then
    prints the configuration of the revision they run, where that is a block of the file.
    """
    try:
        ws = Workspace.open(config, EnvChoice.given(env, var), report=report)
        if not subject.startswith(f"{KIND.name}."):
            name = subject.removeprefix("load_balancers.")
            workers = running(ws, name)
            for item in workers:
                term.line(worker_line(name, item))
            revisions = {item.revision for item in workers}
            if len(revisions) != 1 or None in revisions:
                return
            subject, lb = str(revisions.pop()), lb or name
        if lb is None:
            raise PlanError(f"which load balancer? give --lb NAME with {subject}", where="image effective")
        found = effective(ws, subject, lb.removeprefix("load_balancers."))
    except ReconError as exc:
        fail(exc)
    term.write(found["config"])
    term.info(f"# servo {found['servo']['version']} ({found['servo']['source']}); haproxy -c: {found['check']}")
    for note in found["adaptations"]:
        term.info(f"#   checked with: {note}")
    for skipped in found["skipped"]:
        term.warn(f"the servo leaves out {skipped}")


def worker_line(load_balancer: str, item: Running) -> str:
    """``load_balancers.NAME: worker i-… runs v2 (emi-…, m1.small, running), revision lb_images.v2``."""
    worker = item.worker
    version = f"v{item.version}" if item.version else "an image that is not an installed LB image"
    revision = f"revision {item.revision}" if item.revision else "not a revision of this file"
    return (f"load_balancers.{load_balancer}: worker {worker.id} runs {version} ({worker.image}, "
            f"{worker.instance_type}, {worker.state}), {revision}")


def images(
    config: ConfigOpt = DEFAULT_CONFIG,
    env: EnvOpt = None,
    var: VarOpt = None,
    format: Annotated[ImagesFormat, typer.Option("--format", "-f", help="text (a table), installer (exactly "
                                                 "euca-install-load-balancer --list) or json.")] = ImagesFormat.text,
) -> None:
    """List the installed load-balancer image versions the account can see.

    The enabled one (the image the emi property names) is marked with *; RECON names the stack and
    block that installed it; a last line counts the load balancers' worker VMs that run each (the
    installer format, exactly euca-install-load-balancer's, leaves them out).
    """
    try:
        ws = Workspace.open(config, EnvChoice.given(env, var))
        found = installed_images(ws.cloud, "images")
        enabled = enabled_images(ws.cloud, "images")
        groups = all_groups(ws.cloud, "images") if format is not ImagesFormat.installer else {}
    except ReconError as exc:
        fail(exc)
    workers = {lb: [w for group in items for w in group.workers] for lb, items in groups.items()}
    if format is ImagesFormat.json:
        term.write(json_out.dumps(listing.document(found, enabled, workers)))
    elif format is ImagesFormat.installer:
        term.write(listing.installer(found, enabled))
    else:
        term.write(listing.table(found, enabled, workers))
