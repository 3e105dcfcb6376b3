"""The ``recon`` entry point (``python -m reconciler`` too).

``recon --version`` and ``recon version`` are answered here, before the command line is imported:
typer and every command's modules cost a few hundred milliseconds that printing the version does
not need. Everything else goes to :func:`reconciler.cli.main`.
"""

from __future__ import annotations

import gc
import sys

from . import __version__

VERSION_ARGS = (["--version"], ["version"])

#: The cyclic garbage collector's thresholds for recon's processes (Python's default: 700, 10, 10).
#: A run holds large, long-lived structures (botocore's service models, a cloud's replies, the
#: plan); at the default, the collector scanned them again and again: 0.7 s of a 5,000-resource
#: plan's 2.5 s of CPU went to six full collections and 65 middle ones. Cycles are still
#: collected, every 50,000 allocations instead of every 700.
COLLECTOR_THRESHOLDS = (50_000, 10, 10)


def tune_collector() -> None:
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


def version_line() -> str:
    return f"recon {__version__}"


def main() -> None:
    tune_collector()
    if sys.argv[1:] in VERSION_ARGS:
        sys.stdout.write(version_line() + "\n")
        sys.exit(0)
    from .cli import main as cli_main

    try:
        cli_main()
    finally:
        # On its way out Python frees every module and collects what is left: with a command's objects in
        # the collector's care, that took 30-50 ms of a 0.3 s ``recon validate``. Frozen, they are not
        # collected again; the exit handlers, flushes and finalizers run as before.
        gc.freeze()
