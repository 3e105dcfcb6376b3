"""``recon plan``: show what apply would change, attribute by attribute."""

from __future__ import annotations

from contextlib import nullcontext
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..engine import Workspace
from ..errors import ReconError
from ..render import text
from .common import (DEFAULT_CONFIG, AllowOtherCloudOpt, ConfigOpt, EnvChoice, EnvOpt, ReplaceOpt, StatsOpt,
                     TargetOpt, VarOpt, duration, fail, print_stats, report, term)


class PlanFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"


def plan(
    config: ConfigOpt = DEFAULT_CONFIG,
    env: EnvOpt = None,
    var: VarOpt = None,
    format: Annotated[PlanFormat, typer.Option("--format", "-f",
                                               help="text, json, or markdown (a pull-request comment).")]
        = PlanFormat.text,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Save the plan for `recon apply FILE`.")] = None,
    detailed_exitcode: Annotated[bool, typer.Option(
        "--detailed-exitcode", help="Exit 0 with no changes, 2 with changes, 1 on error.")] = False,
    target: TargetOpt = None,
    replace: ReplaceOpt = None,
    destroy: Annotated[bool, typer.Option("--destroy", help="Plan the deletion of everything in state (with "
                                                            "--target: of those and what depends on them), as "
                                                            "`recon destroy` does.")] = False,
    stats: StatsOpt = False,
    lock_timeout: Annotated[Optional[float], typer.Option(
        "--lock-timeout", metavar="DURATION", parser=duration,
        help="Take the state lock while planning, waiting this long (30s, 2m) for a running apply to "
             "finish. Without it, plan takes no lock.")] = None,
    allow_other_cloud: AllowOtherCloudOpt = False,
) -> None:
    """Show what apply would change, attribute by attribute."""
    from .. import planfile

    if destroy and replace:
        term.error("--replace cannot be combined with --destroy (a destroy replaces nothing)")
        raise typer.Exit(1)
    request = planfile.Request(targets=tuple(target or ()), replace=tuple(replace or ()), destroy=destroy)
    try:
        ws = Workspace.open(config, EnvChoice.given(env, var), warn=term.warn, report=report, lock_timeout=lock_timeout or 0.0)
        with ws.backend.lock("plan") if lock_timeout is not None else nullcontext():
            state = ws.backend.read()
            the_plan = ws.plan(state, request.targets, replace=request.replace, destroy=destroy,
                               allow_other_cloud=allow_other_cloud)
        if out is not None:
            planfile.save(out, the_plan, ws.stack, state, str(config), allow_other_cloud=allow_other_cloud,
                          request=request)
    except ReconError as exc:
        fail(exc)
    if format is PlanFormat.json:
        from ..render import json_out

        term.write(json_out.dumps(json_out.plan_document(the_plan)))
    elif format is PlanFormat.markdown:
        from ..render.markdown import render_markdown

        term.write(render_markdown(the_plan))
    else:
        term.write(text.render_plan(the_plan, color=term.color))
        if out is not None:
            term.line(f"Saved the plan to {out}; `recon apply {out}` applies exactly these changes.")
    if stats:
        print_stats(ws)
    if detailed_exitcode and the_plan.has_changes:
        raise typer.Exit(2)
