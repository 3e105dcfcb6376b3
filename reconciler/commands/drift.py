"""``recon drift``: report whether the cloud still matches the file."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import unowned
from ..engine import Workspace
from ..errors import ReconError
from ..render import json_out, text
from .common import DEFAULT_CONFIG, ConfigOpt, EnvChoice, EnvOpt, StatsOpt, VarOpt, fail, print_stats, report, term
from .plan import PlanFormat


def drift(
    config: ConfigOpt = DEFAULT_CONFIG,
    env: EnvOpt = None,
    var: VarOpt = None,
    format: Annotated[PlanFormat, typer.Option("--format", "-f", help="text, json, or markdown (an issue's "
                                                                      "body).")] = PlanFormat.text,
    all_unmanaged: Annotated[bool, typer.Option(
        "--all-unmanaged", help="Also report the account's key pairs, security groups, load balancers and images "
                                "that neither the file nor the state knows, tagged by recon or not "
                                "([drift] ignore_unmanaged leaves some out).")] = False,
    stats: StatsOpt = False,
) -> None:
    """Report whether the cloud still matches the file: exit 0 in sync, 2 drift, 1 error.

    Read-only; takes no lock, so it is safe from cron while others apply.
    """
    from ..drift import report as drift_report
    from ..render.markdown import render_drift_markdown

    try:
        ws = Workspace.open(config, EnvChoice.given(env, var), report=report)
        state = ws.backend.read()
        the_plan = ws.plan(state)
        with ws.stats.phase("read"):
            others = unowned.find(ws.cloud, ws.stack, state) if all_unmanaged else []
    except ReconError as exc:
        fail(exc)
    found = drift_report(the_plan, ws.stack.drift_ignore, unowned=others,
                         ignore_unmanaged=ws.stack.drift_ignore_unmanaged)
    if format is PlanFormat.json:
        term.write(json_out.dumps(json_out.drift_document(found)))
    elif format is PlanFormat.markdown:
        term.write(render_drift_markdown(found))
    else:
        term.write(text.render_drift(found, color=term.color))
    if stats:
        print_stats(ws)
    raise typer.Exit(0 if found.in_sync else 2)
