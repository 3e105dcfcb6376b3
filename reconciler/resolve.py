"""Substituting ``${KIND.NAME.ATTR}`` references with values."""

from __future__ import annotations

from typing import Any, Callable

from .addresses import REF_RE, Reference, is_whole_reference
from .plan import UNKNOWN, contains_unknown

Lookup = Callable[[Reference], Any]


def resolve(value: Any, lookup: Lookup) -> Any:
    """Replace references in a nested value; a whole-string reference keeps the
    referenced value's type, an embedded one is interpolated as text. UNKNOWN spreads."""
    if isinstance(value, str) and "${" in value:
        if is_whole_reference(value):
            return lookup(Reference.parse(value[2:-1]))
        parts = []
        for piece in REF_RE.split(value)[1::2]:
            parts.append(lookup(Reference.parse(piece)))
        if any(part is UNKNOWN for part in parts):
            return UNKNOWN
        texts = iter(str(part) for part in parts)
        return REF_RE.sub(lambda _m: next(texts), value)
    if isinstance(value, dict):
        return {key: resolve(item, lookup) for key, item in value.items()}
    if isinstance(value, list):
        out = []
        for item in value:
            resolved = resolve(item, lookup)
            # a reference to a list inside a list splices it in
            if isinstance(item, str) and is_whole_reference(item) and isinstance(resolved, list):
                out.extend(resolved)
            else:
                out.append(resolved)
        return out
    return value


def resolve_attrs(attrs: dict[str, Any], lookup: Lookup,
                  sensitive: Callable[[Reference], bool]) -> tuple[dict[str, Any], set[str]]:
    """Resolve each attribute; also the names of those that took a value from a sensitive
    output (sensitivity follows references: such an attribute is sensitive too)."""
    resolved: dict[str, Any] = {}
    tainted: set[str] = set()
    for key, value in attrs.items():
        def tracked(ref: Reference, key: str = key) -> Any:
            if sensitive(ref):
                tainted.add(key)
            return lookup(ref)
        resolved[key] = resolve(value, tracked)
    return resolved, tainted


__all__ = ["resolve", "resolve_attrs", "contains_unknown", "UNKNOWN"]
