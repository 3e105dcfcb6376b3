"""The error a desired file with problems gives: each problem at its line and key path, with the
environments it is found in, in the file's order."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .environments import Origin
from .errors import ConfigError, printable
from .schema import Problems
from .toml_lines import line_finder


@dataclass(frozen=True)
class Located:
    """One problem of a file: its line (0: not found), key path and message, and the environments it
    is found in when it is written in the base file (an env's own table is in ``path``)."""

    line: int
    path: str
    message: str
    hint: str | None = None
    envs: tuple[str, ...] = ()

    def text(self, file: Path) -> str:
        loc = f"{file}:{self.line}" if self.line else str(file)
        where = self.path
        if self.envs:
            where += f" (env{'s' if len(self.envs) > 1 else ''} {', '.join(self.envs)})"
        return printable(f"{loc}: {where}: {self.message}" + (f" ({self.hint})" if self.hint else ""))


class FileProblems(ConfigError):
    """Every problem found in a desired file (in each environment checked), in the file's order; one
    found in several environments is listed once, naming them."""

    def __init__(self, path: Path, entries: list[Located]):
        envs: dict[Located, list[str]] = {}
        for entry in entries:
            envs.setdefault(replace(entry, envs=()), []).extend(entry.envs)
        self.entries = [replace(entry, envs=tuple(dict.fromkeys(names))) for entry, names in envs.items()]
        lines = [entry.text(path) for entry in sorted(self.entries, key=lambda entry: entry.line)]
        count = len(lines)
        super().__init__(lines[0] if count == 1 else f"{count} problems in {path}:\n  " + "\n  ".join(lines))


def problems_error(problems: Problems, text: str, path: Path, origin: Origin) -> FileProblems:
    """The error listing ``problems``, each at its line of ``text`` and in the environments it is in."""
    find = line_finder(text)
    located = []
    for key_path, message, hint in problems.items:
        shown_path, parts, envs = origin.place(key_path)
        located.append(Located(find(parts) or 0, shown_path, message, hint, envs))
    return FileProblems(path, located)
