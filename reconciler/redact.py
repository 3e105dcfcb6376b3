"""The secret values this run knows, and their removal from every message recon prints.

Fed where secrets enter: the credentials' secret key, the values at sensitive paths (a hidden
property's desired value, and whatever references it), the Docker hosts' user data. Each is
remembered as it is, as JSON writes it, and in base64 (the form user data takes in a request),
alone or inside the base64 of a longer text. The terminal and the saved plan pass their text
through ``redact``: a cloud error that echoes a request, a log line or a note can then never
show one.

State is not a message: an attribute that references a secret is kept there as its ``digest``
(``digested``), which the planner compares with the digest of the value it wants; the comparison
with the cloud is of the plain values, in memory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from typing import Any

SENSITIVE = "(sensitive)"
#: Marks what state keeps of a value holding a secret (a referenced hidden property's).
DIGEST_PREFIX = "secret-sha256:"
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
        forms = base64_forms(data)
        try:
            text = data.decode("utf-8")
            forms |= {text, json.dumps(text)[1:-1]}   # as JSON output writes it, too
        except UnicodeDecodeError:
            pass
        with _lock:
            _known.update(form for form in forms if len(form) >= MIN_LENGTH)


def base64_forms(data: bytes) -> set[str]:
    """``data`` in base64 alone, and as it shows inside the base64 of a longer text (user data
    holding a secret): at each of the three alignments, the characters that depend on it alone."""
    forms = {base64.b64encode(data).decode()}
    for shift in range(3):
        text = base64.b64encode(b"\0" * shift + data).decode()
        forms.add(text[4 if shift else 0:(shift + len(data)) // 3 * 4])
    return forms


def redact(text: str) -> str:
    """``text`` with every known secret replaced by a marker, longest first."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, SENSITIVE)
    return text


def digest(value: Any) -> str:
    """What state keeps of a value that holds a secret: compared, never shown. (An unknown
    value digests to what no applied value does.)"""
    text = json.dumps(value, sort_keys=True, default=repr)
    return DIGEST_PREFIX + hashlib.sha256(text.encode()).hexdigest()


def digested(attrs: dict[str, Any], secret_paths: list[str]) -> dict[str, Any]:
    """Attributes for state: those of ``secret_paths`` (top-level names) kept only as their digest."""
    return {key: digest(value) if key in secret_paths else value for key, value in attrs.items()}


def digest_keys(attrs: dict[str, Any]) -> set[str]:
    """The attributes of a state entry kept as a secret's digest: sensitive wherever they are shown."""
    return {key for key, value in attrs.items() if isinstance(value, str) and value.startswith(DIGEST_PREFIX)}
