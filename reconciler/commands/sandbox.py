"""``recon sandbox``: serve the embedded Eucalyptus-like cloud on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


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
) -> None:
    """Serve an embedded Eucalyptus-like cloud on loopback (EC2, S3, ELB, properties).

    Writes DIR/eucarc; `source DIR/eucarc` and recon talks to it like to a real cloud.
    Stops on Ctrl-C or SIGTERM.
    """
    from ..sandbox import serve

    raise typer.Exit(serve(dir, port=port, zones=[z for z in zones.split(",") if z],
                           eucalyptus_version=eucalyptus_version, account_id=account_id))
