"""``recon validate``: check the desired-state file without touching the cloud."""

from __future__ import annotations

from ..engine import Workspace
from ..errors import ReconError
from .common import DEFAULT_CONFIG, ConfigOpt, EnvChoice, EnvOpt, VarOpt, fail, term


def validate(config: ConfigOpt = DEFAULT_CONFIG, env: EnvOpt = None, var: VarOpt = None) -> None:
    """Check the desired-state file without touching the cloud: every environment of it, unless
    --env names one."""
    try:
        workspaces = Workspace.open_every(config, EnvChoice.given(env, var))
        for ws in workspaces:
            ws.settings()  # checks [cloud] without connecting
    except ReconError as exc:
        fail(exc)
    for ws in workspaces:
        counts: dict[str, int] = {}
        for address in ws.stack.resources:
            counts[address.kind] = counts.get(address.kind, 0) + 1
        detail = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no resources"
        term.line(f"{ws.stack.source}: valid (stack {ws.stack.name}: {detail}).")
