"""What the commands share: the terminal, the signal handler, common options and small helpers."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, Optional

import typer

from ..environments import EnvChoice as EnvChoice  # for the commands, with EnvOpt and VarOpt
from ..errors import ReconError
from ..interrupts import Signals
from ..terminal import Terminal
from ..waits import parse_duration

if TYPE_CHECKING:
    from ..engine import Workspace

#: Ctrl-C and SIGTERM, for the whole run (``main`` installs it).
signals = Signals()
#: All output goes through it.
term = Terminal()

DEFAULT_CONFIG = Path("recon.toml")


class Format(str, Enum):
    text = "text"
    json = "json"


def duration(text: str) -> float:
    """A --lock-timeout value: 30s, 2m, 1h."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


ConfigOpt = Annotated[Path, typer.Option("--config", "-c", envvar="RECON_CONFIG",
                                         help="The desired-state file.", show_default=True)]
EnvOpt = Annotated[Optional[str], typer.Option(
    "--env", envvar="RECON_ENV", metavar="NAME",
    help="The environment of the file to work on (its env.NAME table); a file with environments needs one.")]
VarOpt = Annotated[Optional[list[str]], typer.Option(
    "--var", metavar="NAME=VALUE",
    help="Set ${var.NAME}; repeatable. Wins over RECON_VAR_NAME, then the env's vars, then the file's vars.")]
TargetOpt = Annotated[Optional[list[str]], typer.Option(
    "--target", "-t", metavar="ADDRESS",
    help="Limit to this address (KIND.NAME) and what it depends on; repeatable.")]
ReplaceOpt = Annotated[Optional[list[str]], typer.Option(
    "--replace", metavar="ADDRESS", help="Replace this resource although nothing about it changed, or one part "
                                         "of it (docker_hosts.NAME[1]: the host at index 1); repeatable.")]
StatsOpt = Annotated[bool, typer.Option("--stats", help="Print cloud calls and seconds per phase (stderr).")]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
LockTimeoutOpt = Annotated[Optional[float], typer.Option(
    "--lock-timeout", metavar="DURATION", parser=duration,
    help="Wait this long (30s, 2m, 1h) for a state lock another run holds, instead of failing at once.")]
AllowOtherCloudOpt = Annotated[bool, typer.Option(
    "--allow-other-cloud", help="Plan even when the state was written for another cloud or account (another "
                                "front end or account than the sourced credentials reach): its resources then "
                                "look gone and are planned anew here, and the state records this cloud on its "
                                "next write. Without it, recon refuses, naming both clouds.")]


def report(address: str, message: str) -> None:
    """Long local work (reading a base image) says what it is doing, on stderr."""
    term.info(f"{address}: {message}…")


def fail(exc: ReconError) -> NoReturn:
    """Print the error and exit with its code."""
    term.error(str(exc))
    raise typer.Exit(exc.exit_code)


def print_stats(ws: "Workspace") -> None:
    stats = ws.stats.as_dict()
    phases = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in stats["phases"].items())
    term.info(f"stats: {stats['calls']} cloud calls ({stats['retries']} retried); {phases}")
    for operation, count in sorted(stats["operations"].items()):
        term.info(f"stats:   {operation} {count}")
