"""Shared helpers of the renderers: masking sensitive values, showing values compactly."""

from __future__ import annotations

import json
from typing import Any, Collection

from ..plan import UNKNOWN, Change

SENSITIVE = "(sensitive)"


def masked(value: Any, sensitive_paths: Collection[str]) -> Any:
    """A copy of an attribute dict with every sensitive path replaced by a marker."""
    if not isinstance(value, dict) or not sensitive_paths:
        return value
    out = dict(value)
    for path in sensitive_paths:
        head, _, rest = path.partition(".")
        if head in out:
            out[head] = masked(out[head], [rest]) if rest and isinstance(out[head], dict) else SENSITIVE
    return out


def masked_change(change: Change) -> tuple[Any, Any]:
    return masked(change.before, change.sensitive_paths), masked(change.after, change.sensitive_paths)


def jsonable(value: Any) -> Any:
    if value is UNKNOWN:
        return "(known after apply)"
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def show(value: Any) -> str:
    """A value in compact, TOML-like form."""
    if value is UNKNOWN:
        return "(known after apply)"
    if value == SENSITIVE:
        return SENSITIVE
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return json.dumps(value)
