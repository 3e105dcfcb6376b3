"""Attribute-level differences between normalized dicts, by deepdiff."""

from __future__ import annotations

from typing import Any, Collection

from deepdiff import DeepDiff

_MISSING = object()


def changed_paths(before: dict[str, Any], after: dict[str, Any], set_attrs: Collection[str] = ()) -> list[str]:
    """Dotted paths of the attributes that differ, sorted.

    A path stops at a list index, and at a set-valued attribute: a changed listener is
    reported as ``listeners``, a changed health-check interval as ``health_check.interval``.
    """
    if not before or not after:  # deepdiff reports an empty side as one change at the root
        return sorted(key for key in {*before, *after} if before.get(key, _MISSING) != after.get(key, _MISSING))
    diff = DeepDiff(before, after, ignore_order=False, view="tree", verbose_level=2)
    paths: set[str] = set()
    for items in diff.values():
        for item in items:
            parts = []
            for part in item.path(output_format="list"):
                if isinstance(part, int) or (parts and parts[0] in set_attrs):
                    break
                parts.append(str(part))
            paths.add(".".join(parts) if parts else "")
    return sorted(paths)


def get_path(value: Any, path: str) -> Any:
    """The value at a dotted attribute path (None where it stops existing)."""
    for part in path.split(".") if path else []:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
