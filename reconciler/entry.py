"""The ``recon`` entry point (``python -m reconciler`` too).

``recon --version`` and ``recon version`` are answered here, before the command line is imported:
typer and every command's modules cost a few hundred milliseconds that printing the version does
not need. Everything else goes to :func:`reconciler.cli.main`.
"""

from __future__ import annotations

import sys

from . import __version__

VERSION_ARGS = (["--version"], ["version"])


def version_line() -> str:
    return f"recon {__version__}"


def main() -> None:
    if sys.argv[1:] in VERSION_ARGS:
        sys.stdout.write(version_line() + "\n")
        sys.exit(0)
    from .cli import main as cli_main

    cli_main()
