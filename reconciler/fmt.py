"""``recon fmt``: rewrite a desired-state file in its canonical layout, comments kept.

Canonical means: ``key = value`` with single spaces, no indentation before keys and
table headers, two spaces before a trailing comment, exactly one blank line before each
table (above the comments that belong to it), no trailing spaces, one final newline.
Tables keep their order and values their spelling. The result must parse to exactly the
same data, or the file is left as it is.
"""

from __future__ import annotations

import re
import tomllib

import tomlkit
from tomlkit.container import Container
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, SingleKey, Table

from .errors import ConfigError

HEADER = re.compile(r"^\[")
COMMENT = re.compile(r"^#")


def _canonical_items(container: Container) -> None:
    for index, (key, item) in enumerate(container.body):
        if key is None:
            continue
        if isinstance(item, Table):
            item.trivia.indent = ""
            _canonical_items(item.value)
        elif isinstance(item, AoT):
            for table in item.body:
                table.trivia.indent = ""
                _canonical_items(table.value)
        else:
            if isinstance(key, SingleKey):
                container.body[index] = (SingleKey(key.key, t=key.t, sep=" = "), item)
            item.trivia.indent = ""
            if item.trivia.comment:
                item.trivia.comment_ws = "  "


def _canonical_lines(text: str) -> str:
    out: list[str] = []
    in_string = False
    for line in text.split("\n"):
        if not in_string:
            line = line.rstrip()
            if not line and (not out or not out[-1]):
                continue
            if HEADER.match(line) and out:
                start = len(out)
                while start > 0 and COMMENT.match(out[start - 1]):
                    start -= 1
                if start > 0 and out[start - 1]:
                    out.insert(start, "")
        out.append(line)
        if (line.count('"""') + line.count("'''")) % 2:
            in_string = not in_string
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


def format_text(text: str, where: str) -> str:
    try:
        before = tomllib.loads(text)
        document = tomlkit.parse(text)
    except (tomllib.TOMLDecodeError, TOMLKitError) as exc:
        raise ConfigError(f"invalid TOML: {exc}", where=where)
    except RecursionError:
        raise ConfigError("invalid TOML: arrays or tables nested too deep", where=where) from None
    _canonical_items(document)
    formatted = _canonical_lines(document.as_string())
    if tomllib.loads(formatted) != before:  # pragma: no cover - a safety net, never expected to trip
        raise ConfigError("formatting would change what the file says; left as it is", where=where)
    return formatted
