"""``/etc/sysctl.d/90-recon.conf`` from ``[lb_images.X.sysctl]``.

Keys are dotted names whose segments are lowercase letters, digits, ``_`` and ``-`` (no ``/``, no
empty segment, so no ``..``); values are strings, integers or booleans (written 1 / 0) on one line.
Lines are sorted by key, so the file depends only on the settings.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..errors import ConfigError
from .haproxy import key_path

SYSCTL_PATH = "/etc/sysctl.d/90-recon.conf"
SEGMENT = re.compile(r"^[a-z0-9_-]+$")
HEADER = "# Written by recon from the lb_images sysctl settings.\n"


def _check_key(key: str, where: str) -> None:
    if "/" in key:
        raise ConfigError(f"sysctl key {key!r} contains '/'", where=where, hint="write keys with dots: net.ipv4.x")
    segments = key.split(".")
    if any(not segment for segment in segments):
        raise ConfigError(f"sysctl key {key!r} has an empty segment ('..' or a dot at an end)", where=where)
    bad = next((segment for segment in segments if not SEGMENT.match(segment)), None)
    if bad is not None:
        raise ConfigError(f"sysctl key {key!r}: segment {bad!r} may hold only a-z, 0-9, '_' and '-'", where=where)


def _value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if not isinstance(value, (str, int)):
        raise ConfigError(f"must be a string, an integer or a boolean, not {type(value).__name__}", where=where)
    text = str(value)
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigError(f"value {text!r} contains a newline or another control character", where=where)
    if not text.strip() or text != text.strip():
        raise ConfigError(f"value {text!r} is empty or has leading or trailing spaces", where=where)
    return text


def render_sysctl(settings: Mapping[str, Any], *, where: str = "sysctl") -> str:
    """The sysctl.d file for ``settings`` (ConfigError naming the key for a bad one)."""
    lines = []
    for key in sorted(settings):
        key_where = key_path(where, key)
        _check_key(key, key_where)
        lines.append(f"{key} = {_value(settings[key], key_where)}\n")
    return HEADER + "".join(lines)
