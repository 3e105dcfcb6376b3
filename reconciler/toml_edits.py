"""Edits of the desired file as text, so that everything else in it stays byte for byte.

``recon import`` uses them through its kinds (:meth:`reconciler.resources.base.Kind.add_to_file`):
a block is a table appended at the end (TOML allows a kind's tables to be apart); a key of a
table-wide kind goes after the last key of its table.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from .toml_lines import quote_key

KEY_LINE = re.compile(r'^\s*("(?:[^"\\]|\\.)*"|[A-Za-z0-9_.-]+)\s*=')
HEADER_LINE = re.compile(r"^\s*\[")


def _toml_value(value: Any) -> Any:
    import tomlkit  # only recon import edits the file; everything else reads it with tomllib

    if isinstance(value, dict):
        table = tomlkit.inline_table()
        table.update({key: _toml_value(item) for key, item in value.items()})
        return table
    if isinstance(value, list):
        array = tomlkit.array()
        for item in value:
            array.append(_toml_value(item))
        if any(isinstance(item, dict) for item in value):
            array.multiline(True)
        return array
    return value


def block_text(kind: str, name: str, block: Mapping[str, Any]) -> str:
    """``[kind.name]`` and its keys."""
    import tomlkit

    table = tomlkit.table()
    for key, value in block.items():
        table.add(key, _toml_value(value))
    return f"[{kind}.{quote_key(name)}]\n" + tomlkit.dumps(table)


def append_block(text: str, kind: str, name: str, block: Mapping[str, Any]) -> str:
    """``text`` with the table ``[kind.name]`` at its end, after one blank line."""
    separator = "" if text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
    return text + separator + block_text(kind, name, block)


def insert_key(text: str, table: str, key: str, value: Any) -> str:
    """``text`` with ``key = value`` after the last key of ``[table]`` (a new table at the end if none)."""
    import tomlkit

    line = f"{quote_key(key)} = {tomlkit.dumps({'v': value}).split('=', 1)[1].strip()}\n"
    lines = text.splitlines(keepends=True)
    header = next((i for i, l in enumerate(lines) if re.match(rf"^\s*\[\s*{re.escape(table)}\s*\]", l)), None)
    if header is None:
        return text + ("" if text.endswith("\n") or not text else "\n") + f"\n[{table}]\n" + line
    last = header
    for index in range(header + 1, len(lines)):
        if HEADER_LINE.match(lines[index]):
            break
        if KEY_LINE.match(lines[index]):
            last = index
    if not lines[last].endswith("\n"):
        lines[last] += "\n"
    lines.insert(last + 1, line)
    return "".join(lines)
