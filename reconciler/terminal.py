"""All output goes through here: colour when it helps, errors on stderr, never secrets; warnings
and errors printable (``errors.printable``) whatever text they carry."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

from .errors import printable
from .redact import redact


class Terminal:
    def __init__(self, out: TextIO | None = None, err: TextIO | None = None):
        self._out = out
        self._err = err

    @property
    def out(self) -> TextIO:
        return self._out or sys.stdout  # looked up at each use: tests and pagers swap them

    @property
    def err(self) -> TextIO:
        return self._err or sys.stderr

    @property
    def color(self) -> bool:
        return "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb" and self.out.isatty()

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty()

    def write(self, text: str) -> None:
        self.out.write(redact(text))
        self.out.flush()

    def line(self, text: str = "") -> None:
        self.write(text + "\n")

    def info(self, text: str) -> None:
        """Progress and notes: stderr, so stdout stays machine-readable."""
        self.err.write(redact(text) + "\n")
        self.err.flush()

    def warn(self, text: str) -> None:
        prefix = "\x1b[33mWarning:\x1b[0m " if self.color and self.err.isatty() else "Warning: "
        self.err.write(prefix + printable(redact(text)) + "\n")
        self.err.flush()

    def error(self, text: str) -> None:
        prefix = "\x1b[31mError:\x1b[0m " if self.color and self.err.isatty() else "Error: "
        self.err.write(prefix + printable(redact(text)) + "\n")
        self.err.flush()

    def confirm(self, question: str) -> bool:
        """True if the answer is 'yes'. Ctrl-C ends the line (what follows starts on its own) and goes on."""
        self.write(f"{question}\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ")
        try:
            answer = input()
        except EOFError:
            return False
        except KeyboardInterrupt:
            self.write("\n")
            raise
        return answer.strip() == "yes"


class LogLines(logging.Handler):
    """recon's own log records from INFO up (a cloud call still waiting…) as notes on stderr."""

    def __init__(self, term: Terminal):
        super().__init__(logging.INFO)
        self.term = term

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string must not end the command
            self.handleError(record)
            return
        (self.term.warn if record.levelno >= logging.WARNING else self.term.info)(text)
