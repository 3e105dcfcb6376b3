"""The options of ``recon`` itself, given before any command: ``--version``, ``--debug`` and ``--log-file``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..entry import version_line
from .common import term


def _print_version(wanted: bool) -> None:
    if wanted:
        term.line(version_line())
        raise typer.Exit()


def options(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="Print recon's version and exit.")] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Log every cloud call (service, action, attempt, HTTP status, seconds; no bodies, no "
                        "secrets) to stderr, or to --log-file. RECON_LOG=debug does the same.")] = False,
    log_file: Annotated[Optional[Path], typer.Option(
        "--log-file", envvar="RECON_LOG_FILE", metavar="FILE",
        help="Write the debug log to FILE (appended to) instead of stderr.")] = None,
) -> None:
    """Options for every command; they go before it (recon --debug plan)."""
    if debug or os.environ.get("RECON_LOG", "").strip().lower() == "debug":
        from ..cloud import calllog   # botocore: only when the log is wanted

        try:
            calllog.enable(log_file)
        except OSError as exc:
            term.error(f"{log_file}: cannot write the debug log: {exc.strerror or exc}")
            raise typer.Exit(1)
