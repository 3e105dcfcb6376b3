"""``recon show [PLANFILE]``: a saved plan (text, JSON, markdown), or without one the state, every managed
resource with its id and last-applied attributes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..engine import Workspace
from ..errors import PlanError, ReconError
from ..render import json_out, text
from .common import DEFAULT_CONFIG, ConfigOpt, EnvChoice, EnvOpt, VarOpt, fail, term
from .plan import PlanFormat


def show(
    plan_file: Annotated[Optional[Path], typer.Argument(
        metavar="PLANFILE", show_default=False,
        help="A plan saved by `recon plan --out`: show it (nothing is read from the cloud or the state).")] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    env: EnvOpt = None,
    var: VarOpt = None,
    format: Annotated[PlanFormat, typer.Option("--format", "-f", help="text, json, or markdown (a saved plan "
                                                                      "only).")] = PlanFormat.text,
) -> None:
    """Show a saved plan, or without PLANFILE the state: each resource's id and last-applied attributes."""
    if plan_file is not None:
        _show_plan(plan_file, format)
    elif format is PlanFormat.markdown:
        term.error("--format markdown shows a saved plan: give its PLANFILE (the state shows as text or json)")
        raise typer.Exit(1)
    else:
        _show_state(config, EnvChoice.given(env, var), format)


def _show_plan(path: Path, format: PlanFormat) -> None:
    from .. import planfile
    from ..render.document import plan_from
    from ..render.markdown import render_markdown

    try:
        saved = planfile.load(path)
        document = saved.data["plan"]
        try:
            the_plan = plan_from(document, str(path))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PlanError(f"not a recon plan file: its plan is damaged ({exc!r})", where=str(path))
    except ReconError as exc:
        fail(exc)
    if format is PlanFormat.json:
        term.write(json_out.dumps(document))
    elif format is PlanFormat.markdown:
        term.write(render_markdown(the_plan))
    else:
        data = saved.data
        term.line(f"# saved plan {path}: stack {data.get('stack')} from {data.get('config')}, made by recon "
                  f"{data.get('recon_version')} against state serial {data.get('serial')}")
        term.write(text.render_plan(the_plan, color=term.color))


def _show_state(config: Path, choice: EnvChoice, format: PlanFormat) -> None:
    try:
        ws = Workspace.open(config, choice)
        state = ws.backend.read()
    except ReconError as exc:
        fail(exc)
    if format is PlanFormat.json:
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
