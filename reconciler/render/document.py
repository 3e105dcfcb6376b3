"""A :class:`~reconciler.plan.Plan` again from its JSON document (:func:`.json_out.plan_document`, what a
saved plan holds), for the text and markdown renderers: ``recon show PLANFILE``.

Only what the renderers show comes back (changes, drift, notes, forget, unmanaged, warnings, the
cloud); values are as the document has them, sensitive ones masked already, and what was unknown
at plan time is unknown again.
"""

from __future__ import annotations

from typing import Any

from ..addresses import Address
from ..identity import CloudIdentity
from ..plan import UNKNOWN, Action, Change, Plan, Replacement
from .values import jsonable

ACTIONS = {tuple(action.json_actions): action for action in Action}
KNOWN_AFTER_APPLY = jsonable(UNKNOWN)


def _value(value: Any) -> Any:
    if value == KNOWN_AFTER_APPLY:
        return UNKNOWN
    if isinstance(value, dict):
        return {key: _value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_value(item) for item in value]
    return value


def change_from(item: dict[str, Any], drift: str | None) -> Change:
    shown = ACTIONS[tuple(item["actions"])]
    replacements = [Replacement(part["address"], tuple(part["replaces"])) for part in item.get("replacements", [])]
    depends_on = [Address.parse(text) for text in item.get("depends_on", [])]
    return Change(Address(item["kind"], item["name"]), Action.UPDATE if replacements else shown,
                  _value(item["before"]), _value(item["after"]), changed_paths=list(item["changed_paths"]),
                  replace_paths=list(item["replace_paths"]), sensitive_paths=list(item["sensitive_paths"]),
                  reason=item.get("reason", ""), notes=list(item.get("notes", [])), drift=drift,
                  depends_on=depends_on, replacements=replacements,
                  replace_action=shown if replacements else Action.CREATE_THEN_DELETE,
                  deposed_id=item.get("deposed"))


def plan_from(document: dict[str, Any], where: str) -> Plan:
    """The plan ``document`` describes; KeyError, ValueError or TypeError if it is not one."""
    drift = {(item["address"], item.get("deposed")): item["drift"] for item in document.get("resource_drift", [])}
    changes = [change_from(item, drift.get((item["address"], item.get("deposed"))))
               for item in document["resource_changes"]]
    cloud = document.get("cloud")
    return Plan(stack=document["stack"], changes=changes,
                forget=[Address.parse(text) for text in document.get("forget", [])],
                unmanaged=[(Address.parse(item["address"]), item["id"]) for item in document.get("unmanaged", [])],
                warnings=list(document.get("warnings", [])),
                cloud=CloudIdentity.from_json(cloud, where) if cloud else None)
