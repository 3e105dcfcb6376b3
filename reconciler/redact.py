"""The secret values this run knows, and their removal from every message recon prints.

Fed where secrets enter: the credentials' secret key, the values at sensitive paths (a hidden
property's desired value, and whatever references it), the Docker hosts' user data. Each is
remembered as it is and in base64 (the form user data takes in a request). The terminal and
the saved plan pass their text through ``redact``: a cloud error that echoes a request, a log
line or a note can then never show one.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

SENSITIVE = "(sensitive)"
#: Shorter values are too likely to be ordinary words or numbers to be replaced everywhere.
MIN_LENGTH = 6

_known: set[str] = set()
_lock = threading.Lock()


def remember(value: Any) -> None:
    """Note a secret (a string, or the strings inside a list or dict)."""
    if isinstance(value, dict):
        for item in value.values():
            remember(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            remember(item)
    elif isinstance(value, (str, bytes)):
        data = value.encode() if isinstance(value, str) else value
        forms = {base64.b64encode(data).decode()}
        try:
            forms.add(data.decode("utf-8"))
        except UnicodeDecodeError:
            pass
        with _lock:
            _known.update(form for form in forms if len(form) >= MIN_LENGTH)


def redact(text: str) -> str:
    """``text`` with every known secret replaced by a marker, longest first."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, SENSITIVE)
    return text
