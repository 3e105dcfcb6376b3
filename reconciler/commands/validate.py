"""``recon validate``: check the desired-state file without touching the cloud."""

from __future__ import annotations

from ..engine import Workspace
from ..errors import ReconError
from .common import DEFAULT_CONFIG, ConfigOpt, fail, term


def validate(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Check the desired-state file without touching the cloud."""
    try:
        ws = Workspace.open(config)
        ws.settings()  # checks [cloud] without connecting
    except ReconError as exc:
        fail(exc)
    counts: dict[str, int] = {}
    for address in ws.stack.resources:
        counts[address.kind] = counts.get(address.kind, 0) + 1
    detail = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no resources"
    term.line(f"{config}: valid (stack {ws.stack.name}: {detail}).")
