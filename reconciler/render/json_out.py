"""Machine-readable plans and drift reports (DESIGN §4). Sensitive values are masked."""

from __future__ import annotations

import json
from typing import Any

from ..plan import Change, Plan
from .text import drift_groups
from .values import jsonable, masked_change

FORMAT_VERSION = "1.0"


def change_json(change: Change) -> dict[str, Any]:
    before, after = masked_change(change)
    return {
        "address": str(change.address),
        "kind": change.kind,
        "name": change.name,
        "actions": change.action.json_actions,
        "before": jsonable(before),
        "after": jsonable(after),
        "changed_paths": change.changed_paths,
        "replace_paths": change.replace_paths,
        "sensitive_paths": change.sensitive_paths,
        "reason": change.reason,
    }


def plan_document(plan: Plan) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "stack": plan.stack,
        "resource_changes": [change_json(c) for c in plan.actionable],
        "resource_drift": [{**change_json(c), "drift": c.drift} for c in plan.actionable if c.drift],
        "forget": [str(a) for a in plan.forget],
        "warnings": plan.warnings,
        "summary": plan.summary(),
    }


def drift_document(plan: Plan) -> dict[str, Any]:
    groups = drift_groups(plan)
    return {
        "format_version": FORMAT_VERSION,
        "stack": plan.stack,
        "in_sync": not plan.has_changes,
        **{key: [change_json(c) for c in items] for key, items in groups.items()},
        "summary": {key: len(items) for key, items in groups.items()},
    }


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False) + "\n"
