"""``recon version``."""

from __future__ import annotations

from .. import __version__
from .common import term


def version() -> None:
    """Print recon's version."""
    term.line(f"recon {__version__}")
