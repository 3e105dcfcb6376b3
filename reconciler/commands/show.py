"""``recon show``: the state, every managed resource with its id and last-applied attributes."""

from __future__ import annotations

import json

from ..engine import Workspace
from ..errors import ReconError
from .common import DEFAULT_CONFIG, ConfigOpt, EnvChoice, EnvOpt, Format, FormatOpt, VarOpt, fail, term


def show(config: ConfigOpt = DEFAULT_CONFIG, env: EnvOpt = None, var: VarOpt = None,
         format: FormatOpt = Format.text) -> None:
    """Show the state: every managed resource with its id and last-applied attributes."""
    try:
        ws = Workspace.open(config, EnvChoice.given(env, var))
        state = ws.backend.read()
    except ReconError as exc:
        fail(exc)
    if format is Format.json:
        term.write(state.dumps())
        return
    term.line(f"# stack {state.stack}: serial {state.serial}, lineage {state.lineage} ({ws.backend.describe()})")
    if not state.resources:
        term.line("(no resources in state)")
    for address in sorted(state.resources):
        entry = state.resources[address]
        term.line("")
        term.line(f"{address}  (id {entry.id})")
        for key, value in sorted(entry.attrs.items()):
            term.line(f"    {key} = {json.dumps(value)}")
