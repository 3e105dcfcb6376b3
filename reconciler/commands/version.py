"""``recon version``."""

from __future__ import annotations

from ..entry import version_line
from .common import term


def version() -> None:
    """Print recon's version."""
    term.line(version_line())
