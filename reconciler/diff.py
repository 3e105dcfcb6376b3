"""Attribute-level differences between normalized dicts.

Values are compared strictly: a change of type (``1`` to ``1.0``, ``"1"`` to ``1``, a list to a
tuple) is a change, as the cloud would see it.
"""

from __future__ import annotations

from typing import Any, Collection


def changed_paths(before: dict[str, Any], after: dict[str, Any], set_attrs: Collection[str] = ()) -> list[str]:
    """Dotted paths of the attributes that differ, sorted.

    A path stops at a list, at a set-valued attribute, and at a table that has under a third of
    its keys in common with its counterpart: a changed listener is reported as ``listeners``, a
    changed health-check interval as ``health_check.interval``, a health check added where there
    was none as ``health_check``.
    """
    paths: set[str] = set()
    for key in before.keys() | after.keys():
        if key not in before or key not in after:
            paths.add(str(key))
        elif key in set_attrs:
            if differs(before[key], after[key]):
                paths.add(str(key))
        else:
            _collect(before[key], after[key], str(key), paths)
    return sorted(paths)


def _collect(before: Any, after: Any, path: str, paths: set[str]) -> None:
    if isinstance(before, dict) and isinstance(after, dict) and not _unlike(before, after):
        for key in before.keys() | after.keys():
            inner = f"{path}.{key}"
            if key not in before or key not in after:
                paths.add(inner)
            else:
                _collect(before[key], after[key], inner, paths)
    elif differs(before, after):
        paths.add(path)


def _unlike(before: dict, after: dict) -> bool:
    """Tables with under a third of their keys in common: reported as one change, not key by key."""
    union = before.keys() | after.keys()
    return len(union) > 1 and len(before.keys() & after.keys()) / len(union) < 1 / 3 - 0.0033


def differs(before: Any, after: Any) -> bool:
    """Whether two values differ, in value or in type, anywhere inside."""
    if type(before) is not type(after):
        return True
    if isinstance(before, dict):
        return before.keys() != after.keys() or any(differs(before[k], after[k]) for k in before)
    if isinstance(before, (list, tuple)):
        return len(before) != len(after) or any(differs(a, b) for a, b in zip(before, after))
    return before != after


def get_path(value: Any, path: str) -> Any:
    """The value at a dotted attribute path (None where it stops existing)."""
    for part in path.split(".") if path else []:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
