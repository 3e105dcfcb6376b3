"""Text the cloud stores and sends back (descriptions, tag keys and values, property values).

Eucalyptus keeps such text as given and returns it inside XML replies: a control character makes
every later reply that carries it unreadable, and an invisible one (U+200B, U+202E) hides what is
really stored. So kinds refuse both at plan, with the cloud's own length limits, through this one
check.
"""

from __future__ import annotations

from typing import Any, Callable

from .errors import hidden, shown


def text_problem(value: str, *, maximum: int, ascii_only: bool = False, newlines: bool = False) -> str | None:
    """Why the cloud should not be given ``value`` to store, or None.

    ``ascii_only``: the cloud takes only ASCII here; ``newlines``: line breaks and tabs are allowed.
    """
    if len(value) > maximum:
        return f"is {len(value)} characters long; the cloud takes at most {maximum}"
    for index, char in enumerate(value, start=1):
        if newlines and char in "\n\t":
            continue
        if hidden(char):
            return (f"contains the control or invisible character {shown(char)} (character {index}), "
                    "which the cloud would store")
        if ascii_only and ord(char) > 0x7F:
            return f"contains {shown(char)} (character {index}); the cloud takes ASCII only here"
    return None


def text_check(maximum: int, *, ascii_only: bool = False, newlines: bool = False) -> Callable[[Any], str | None]:
    """``text_problem`` as a schema Field check (values that are not strings are left to the type check)."""
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return None
        return text_problem(value, maximum=maximum, ascii_only=ascii_only, newlines=newlines)
    return check
