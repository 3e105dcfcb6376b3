"""Machine-readable plans and drift reports (DESIGN §4). Sensitive values are masked."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..plan import Change, Plan
from .values import jsonable, masked_change

if TYPE_CHECKING:
    from ..drift import DriftReport

FORMAT_VERSION = "1.0"


def change_json(change: Change) -> dict[str, Any]:
    before, after = masked_change(change)
    return {
        "address": str(change.address),
        "kind": change.kind,
        "name": change.name,
        "actions": change.shown_action.json_actions,
        "before": jsonable(before),
        "after": jsonable(after),
        "changed_paths": change.changed_paths,
        "replace_paths": change.replace_paths,
        "replacements": [{"address": part.label, "replaces": list(part.old_ids)} for part in change.replacements],
        "sensitive_paths": change.sensitive_paths,
        "reason": change.reason,
        "notes": change.notes,
        "depends_on": [str(dep) for dep in change.depends_on],
        "depends_on_reasons": {str(dep): change.depends_on_reasons.get(dep, []) for dep in change.depends_on},
        **({"deposed": change.deposed_id} if change.deposed_id else {}),
    }


def plan_document(plan: Plan) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "stack": plan.stack,
        "cloud": plan.cloud.to_json() if plan.cloud else None,
        "resource_changes": [change_json(c) for c in plan.actionable],
        "resource_drift": [{**change_json(c), "drift": c.drift} for c in plan.actionable if c.drift],
        "forget": [str(a) for a in plan.forget],
        "unmanaged": [{"address": str(a), "id": i} for a, i in plan.unmanaged],
        "warnings": plan.warnings,
        "reported": [{"address": str(a), "message": m} for a, m in plan.reported],
        "summary": plan.summary(),
    }


def drift_document(report: DriftReport) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "stack": report.stack,
        "in_sync": report.in_sync,
        "changed": [change_json(c) for c in report.changed],
        "missing": [change_json(c) for c in report.missing],
        "unmanaged": [{"address": str(a), "kind": a.kind, "name": a.name, "id": i, "tagged": tagged}
                      for tagged, found in ((True, report.unmanaged), (False, report.unowned)) for a, i in found],
        "pending": [change_json(c) for c in report.pending],
        "reported": [{"address": str(a), "message": m} for a, m in report.reported],
        "summary": report.counts(),
    }


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False) + "\n"
