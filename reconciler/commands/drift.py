"""``recon drift``: report whether the cloud still matches the file."""

from __future__ import annotations

import typer

from ..drift import report as drift_report
from ..engine import Workspace
from ..errors import ReconError
from ..render import json_out, text
from .common import (DEFAULT_CONFIG, ConfigOpt, EnvChoice, EnvOpt, Format, FormatOpt, StatsOpt, VarOpt, fail,
                     print_stats, report, term)


def drift(config: ConfigOpt = DEFAULT_CONFIG, env: EnvOpt = None, var: VarOpt = None, format: FormatOpt = Format.text,
          stats: StatsOpt = False) -> None:
    """Report whether the cloud still matches the file: exit 0 in sync, 2 drift, 1 error.

    Read-only; takes no lock, so it is safe from cron while others apply.
    """
    try:
        ws = Workspace.open(config, EnvChoice.given(env, var), report=report)
        state = ws.backend.read()
        the_plan = ws.plan(state)
    except ReconError as exc:
        fail(exc)
    found = drift_report(the_plan, ws.stack.drift_ignore)
    if format is Format.json:
        term.write(json_out.dumps(json_out.drift_document(found)))
    else:
        term.write(text.render_drift(found, color=term.color))
    if stats:
        print_stats(ws)
    raise typer.Exit(0 if found.in_sync else 2)
