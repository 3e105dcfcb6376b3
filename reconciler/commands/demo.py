"""``recon demo``: the whole story on the embedded sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import term


def demo(
    keep: Annotated[Optional[Path], typer.Option("--dir", help="Work here instead of a temporary folder.")] = None,
) -> None:
    """Run the whole story on the embedded sandbox: plan, apply, drift, repair."""
    from ..demo import run_demo

    raise typer.Exit(run_demo(term, keep))
