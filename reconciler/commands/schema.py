"""``recon schema``: the JSON Schema of the desired-state file."""

from __future__ import annotations

import json

from ..config import TOP_LEVEL
from ..environments import with_environments
from ..resources import KINDS
from ..schema import document_schema
from .common import term


def schema() -> None:
    """Print the JSON Schema of the desired-state file (for TOML editors such as Taplo)."""
    term.write(json.dumps(with_environments(document_schema(TOP_LEVEL, KINDS)), indent=2) + "\n")
