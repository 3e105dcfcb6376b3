"""``recon state …``: inspect the state recon keeps."""

from __future__ import annotations

import typer

from ..engine import Workspace
from ..errors import ReconError
from .common import DEFAULT_CONFIG, ConfigOpt, EnvChoice, EnvOpt, VarOpt, fail, term

app = typer.Typer(help="Inspect the state recon keeps.", no_args_is_help=True)


@app.command("list")
def state_list(config: ConfigOpt = DEFAULT_CONFIG, env: EnvOpt = None, var: VarOpt = None) -> None:
    """List the addresses in state, one per line."""
    try:
        ws = Workspace.open(config, EnvChoice.given(env, var))
        state = ws.backend.read()
    except ReconError as exc:
        fail(exc)
    for address in sorted(state.resources):
        term.line(str(address))
