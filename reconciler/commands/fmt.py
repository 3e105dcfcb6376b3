"""``recon fmt``: rewrite the file in its canonical layout."""

from __future__ import annotations

from typing import Annotated

import typer

from ..config import read_text
from ..errors import ReconError
from ..atomic import write_atomic
from .common import DEFAULT_CONFIG, ConfigOpt, fail, term


def fmt(
    config: ConfigOpt = DEFAULT_CONFIG,
    check: Annotated[bool, typer.Option("--check", help="Change nothing; exit 1 and show the diff if the "
                                                         "file is not in canonical layout.")] = False,
) -> None:
    """Rewrite the file in its canonical layout, keeping comments (for CI: --check)."""
    from ..fmt import format_text  # tomlkit: only for this command

    try:
        original = read_text(config)
        formatted = format_text(original, str(config))
    except ReconError as exc:
        fail(exc)
    if formatted == original:
        term.line(f"{config}: already formatted.")
        return
    if check:
        import difflib

        term.write("".join(difflib.unified_diff(original.splitlines(True), formatted.splitlines(True),
                                                f"a/{config}", f"b/{config}")))
        term.error(f"{config} is not formatted; run `recon fmt -c {config}`")
        raise typer.Exit(1)
    write_atomic(config, formatted, mode=config.stat().st_mode & 0o777)
    term.line(f"{config}: formatted.")
