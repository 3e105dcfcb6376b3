"""``recon sandbox``: serve the embedded Eucalyptus-like cloud on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import ReconError
from .common import fail, term


def sandbox(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0: any free one).")] = 8773,
    dir: Annotated[Path, typer.Option("--dir", help="Where to write eucarc and certificates.")] = Path(".recon-sandbox"),
    zones: Annotated[str, typer.Option("--zones", help="Comma-separated availability zone names.")]
        = "ViciousLiesAndDangerousRumors",
    eucalyptus_version: Annotated[str, typer.Option("--eucalyptus-version", help="4.0 or 4.2 property names.")]
        = "4.0",
    account_id: Annotated[str, typer.Option("--account-id", help="The admin account's number (12 digits); "
                                            "two sandboxes of different accounts are two clouds to recon.")]
        = "123456789012",
    lb_image_installed: Annotated[bool, typer.Option(
        "--lb-image-installed/--no-lb-image-installed",
        help="Start as a cloud its administrator has installed: the default load-balancer image installed "
             "(v1, bucket loadbalancer-v1, as euca-install-load-balancer --install-default does) and enabled, so "
             "that load balancers get worker VMs. --no-lb-image-installed: a fresh cloud, no LB image, every "
             "CreateLoadBalancer refused until one is installed and enabled.")] = True,
    background: Annotated[bool, typer.Option("--background", help="Run it in the background: return once it "
                                             "serves and DIR/eucarc is written, printing its ready line.")] = False,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the sandbox a --background run left serving for "
                                       "DIR.")] = False,
) -> None:
    """Serve an embedded Eucalyptus-like cloud on loopback (EC2, S3, ELB, properties).

    Like a real cloud, it refuses a load balancer while no load-balancer image is enabled; it starts
    with the default one installed, as an administrator's cloud is (--no-lb-image-installed: without).
    Writes DIR/eucarc, then prints one line, `recon sandbox ready: URL (source DIR/eucarc)`;
    `source DIR/eucarc` and recon talks to it like to a real cloud. In the foreground it stops on
    Ctrl-C or SIGTERM; with --background it keeps serving until `recon sandbox --stop --dir DIR`.
    """
    from ..sandbox import detached, serve
    from ..sandbox.server import READY_PREFIX

    zone_names = [z for z in zones.split(",") if z]
    if stop:
        stopped = detached.stop(dir)
        term.line(f"recon sandbox stopped (process {stopped})" if stopped is not None
                  else f"no background sandbox runs for {dir}")
        return
    if not background:
        raise typer.Exit(serve(dir, port=port, zones=zone_names, eucalyptus_version=eucalyptus_version,
                               account_id=account_id, lb_image_installed=lb_image_installed))
    try:
        child = detached.start(dir, port=port, zones=zone_names, eucalyptus_version=eucalyptus_version,
                               account_id=account_id, lb_image_installed=lb_image_installed)
    except ReconError as exc:
        fail(exc)
    term.line(f"{READY_PREFIX} {child.url} (source {child.eucarc})")
    term.info(f"recon sandbox: serving in the background as process {child.pid} (log {child.directory}/sandbox.log); "
              f"stop it with `recon sandbox --stop --dir {dir}`")
