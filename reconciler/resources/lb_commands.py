"""The commands of the ``lb_images`` kind: ``recon images`` and ``recon image build|effective``.

``LbImages.commands`` adds them to the ``recon`` app. They belong to the command line (they
use its terminal and options, and the workspace), so nothing in ``resources/`` imports this
module; it sits here to keep what one kind does in one place.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..addresses import Address
from ..commands.common import DEFAULT_CONFIG, ConfigOpt, EnvChoice, EnvOpt, VarOpt, fail, report, term
from ..engine import Workspace
from ..errors import PlanError, ReconError
from ..imagebuild.build import Revision, build_image
from ..imagebuild.servo import EFFECTIVE_PATH
from ..render import images as listing, json_out
from .lb_images import KIND, enabled_images, installed_images

image_app = typer.Typer(help="Load-balancer image revisions, without the cloud.", no_args_is_help=True)
RevisionArg = Annotated[str, typer.Argument(help="The revision, lb_images.NAME.")]


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
        revision = build_image(KIND.spec(address.name, spec.attrs, ws.stack.base_dir), out,
                               progress=lambda message: ws.report(str(address), message))
        KIND.remember(spec.attrs, ws.stack.base_dir, revision)      # so the plan below reads no image
    return revision, ws.prepared().resources[address].attrs["effective"]


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
    address: RevisionArg,
    lb: Annotated[str, typer.Option("--lb", help="A load balancer of the file (load_balancers.NAME).")],
    config: ConfigOpt = DEFAULT_CONFIG,
    env: EnvOpt = None,
    var: VarOpt = None,
) -> None:
    """Print the HAProxy configuration the revision's servo writes for a load balancer (no cloud).

    That is the file the servo writes to /var/lib/load-balancer-servo/euca_haproxy.conf on the
    load balancer's VMs: the template's global and defaults, then a frontend and a backend per
    listener. Servers are the instances the file names (the servo writes the ones in service, by
    private address). How haproxy -c judged it goes to stderr.
    """
    name = lb.removeprefix("load_balancers.")
    try:
        found = effective(Workspace.open(config, EnvChoice.given(env, var), report=report), address, name)
    except ReconError as exc:
        fail(exc)
    term.write(found["config"])
    term.info(f"# servo {found['servo']['version']} ({found['servo']['source']}); haproxy -c: {found['check']}")
    for note in found["adaptations"]:
        term.info(f"#   checked with: {note}")
    for skipped in found["skipped"]:
        term.warn(f"the servo leaves out {skipped}")


def images(
    config: ConfigOpt = DEFAULT_CONFIG,
    env: EnvOpt = None,
    var: VarOpt = None,
    format: Annotated[ImagesFormat, typer.Option("--format", "-f", help="text (a table), installer (exactly "
                                                 "euca-install-load-balancer --list) or json.")] = ImagesFormat.text,
) -> None:
    """List the installed load-balancer image versions the account can see.

    The enabled one (the image the emi property names) is marked with *; RECON names the stack and
    block that installed it.
    """
    try:
        ws = Workspace.open(config, EnvChoice.given(env, var))
        found = installed_images(ws.cloud, "images")
        enabled = enabled_images(ws.cloud, "images")
    except ReconError as exc:
        fail(exc)
    if format is ImagesFormat.json:
        term.write(json_out.dumps(listing.document(found, enabled)))
    elif format is ImagesFormat.installer:
        term.write(listing.installer(found, enabled))
    else:
        term.write(listing.table(found, enabled))
