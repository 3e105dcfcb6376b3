"""recon's own error types. Everything recon reports to a user is one of these.

Values from files and from the cloud reach messages through one place, here: ``shown`` quotes a
value with its control and invisible characters escaped and its length cut; ``printable`` does
the same to a whole message, line by line, as the last step before it is printed.
"""

from __future__ import annotations

import unicodedata

#: How much of one value a message shows; how long one line of a message may be.
SHOWN_CHARS = 80
LINE_CHARS = 2000
#: Unicode categories that print nothing or reorder what follows: control, format (U+200B, U+202E,
#: U+FEFF…), line and paragraph separators, private use, surrogates, unassigned.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})


def hidden(char: str) -> bool:
    """Is ``char`` one that a terminal would not show as itself?"""
    return unicodedata.category(char) in HIDDEN_CATEGORIES


def _escape(text: str, keep: str = "") -> str:
    if (text.translate(dict.fromkeys(map(ord, keep))) if keep else text).isprintable():
        return text   # nothing hidden: every hidden category is one str.isprintable refuses
    return "".join(char if char in keep or not hidden(char) else
                   (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}" if ord(char) < 0x10000
                    else f"\\U{ord(char):08x}")
                   for char in text)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = max(1, limit - 40)
    return f"{text[:head]}… ({len(text)} characters)"


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``value`` for a message: quoted, hidden characters escaped, cut to about ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    return "'" + _escape(_cut(text, limit)).replace("'", "\\'") + "'"


def _cut_middle(line: str, limit: int) -> str:
    if len(line) <= limit:
        return line
    keep = limit // 2
    return f"{line[:keep]} …[{len(line) - 2 * keep} characters left out]… {line[-keep:]}"


def printable(message: str) -> str:
    """A whole message made safe to print: hidden characters escaped (newlines and tabs kept), long
    lines cut in the middle (their start says where, their end what)."""
    return "\n".join(_cut_middle(_escape(line, keep="\t"), LINE_CHARS) for line in message.split("\n"))


class ReconError(Exception):
    """Base of every error recon reports without a traceback.

    ``where`` names the place the error is about: a file and key path, a resource
    address, a cloud call. It is printed before the message.
    """

    exit_code = 1

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return printable(text)


class ConfigError(ReconError):
    """The desired-state file (or a file it names) is wrong."""


class CloudError(ReconError):
    """A cloud call failed (after retries, where it was worth retrying)."""

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None,
                 code: str | None = None, operation: str | None = None):
        super().__init__(message, where=where, hint=hint)
        self.code = code
        self.operation = operation


class StateError(ReconError):
    """The state file is unreadable, or belongs to something else."""


class LockError(StateError):
    """The state is locked by somebody else."""


class PlanError(ReconError):
    """The plan cannot be made (or applied) as asked."""
