"""The ``recon`` executable's entry point. ``recon --version`` is answered here, before the commands (and
the cloud libraries they import) are loaded; everything else goes to :func:`reconciler.cli.main`."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from . import __version__

        print(f"recon {__version__}")
        return
    from .cli import main as run

    run()
