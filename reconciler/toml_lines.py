"""Where a key path is written in a TOML text, and how a key is written.

Problems found in the desired-state file are kept by key path (``load_balancers.web.listeners[0]``);
:func:`line_finder` maps such a path back to the line of the text it is written on, so that every
error can name ``FILE:LINE``. It reads the text line by line (table headers and ``key =`` lines),
not the parsed document, which has no line numbers.
"""

from __future__ import annotations

import re
from typing import Callable


#: A piece of a dotted key: a quoted part (its closing quote may be missing), a bare run, or a dot.
DOTTED_PIECE = re.compile(r'"([^"]*)"?|\'([^\']*)\'?|([^."\']+)|\.')


def line_finder(text: str) -> Callable[[list[str]], int | None]:
    """Return a function mapping a key path to the line it is written on, when it can be found."""
    lines = text.splitlines()
    header_re = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    key_re = re.compile(r'^\s*("(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_.-]+)\s*=')

    def split_dotted(raw: str) -> list[str]:
        """``a."b.c".d`` → [a, b.c, d]: dots outside quotes split; an unclosed quote runs to the end."""
        parts, buf = [], []
        for piece in DOTTED_PIECE.finditer(raw):
            if piece[0] == ".":
                parts.append("".join(buf).strip())
                buf = []
            else:
                buf.append(next(group for group in piece.groups() if group is not None))
        parts.append("".join(buf).strip())
        return parts

    def find(path: list[str]) -> int | None:
        table: list[str] = []
        best = None          # the line of the longest key path that is a prefix of path
        best_len = 0
        for number, line in enumerate(lines, start=1):
            header = header_re.match(line)
            if header:
                table = split_dotted(header.group(1))
                if table == path[: len(table)]:
                    if len(table) == len(path):
                        return number
                    if len(table) > best_len:
                        best, best_len = number, len(table)
                elif table[: len(path)] == path and path:
                    return number     # [KIND.NAME] for a problem about the whole KIND table
                continue
            key = key_re.match(line)
            if not key:
                continue
            full = table + split_dotted(key.group(1))
            if full == path[: len(full)] and full:
                if len(full) == len(path):
                    return number
                if len(full) > best_len:
                    best, best_len = number, len(full)
        return best

    return find


def path_parts(path: str) -> list[str]:
    """``load_balancers.web.listeners[0].lb_port`` → [load_balancers, web, listeners]."""
    cleaned = re.sub(r"\[\d+\]", "", path)
    return [part.strip('"') for part in re.findall(r'"[^"]*"|[^.]+', cleaned)]


def quote_key(key: str) -> str:
    """A key as TOML writes it: bare when it can be, else in double quotes."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else f'"{key}"'
