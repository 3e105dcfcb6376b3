"""``recon force-unlock``: remove a stuck state lock."""

from __future__ import annotations

from typing import Annotated

import typer

from ..engine import Workspace
from ..errors import ReconError
from .common import DEFAULT_CONFIG, ConfigOpt, EnvChoice, EnvOpt, VarOpt, fail, term


def force_unlock(lock_id: Annotated[str, typer.Argument(help="The lock id an error message named.")],
                 config: ConfigOpt = DEFAULT_CONFIG, env: EnvOpt = None, var: VarOpt = None) -> None:
    """Remove a stuck state lock (only when its holder is gone)."""
    from ..state.lock import LockInfo

    try:
        ws = Workspace.open(config, EnvChoice.given(env, var))
        holder = ws.backend.force_unlock(lock_id)
    except ReconError as exc:
        fail(exc)
    if holder == LockInfo.unreadable():
        term.line("Removed a damaged (unreadable) lock file that no process held.")
    else:
        term.line(f"Lock {holder.id} removed (it was held by {holder.who} for {holder.operation}).")
