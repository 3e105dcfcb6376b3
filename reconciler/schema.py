"""A small declarative schema for the desired-state file.

Each resource kind declares its fields with :class:`Field`; :func:`check` validates a
TOML table against them, collecting every problem with its key path and, for a
misspelt key, the nearest valid one. The same declarations produce the JSON Schema
that ``recon schema`` prints.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .addresses import is_whole_reference, references_in
from .errors import shown

# A scalar type name and the Python types that satisfy it.
SCALARS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "scalar": (str, int, bool),
}
#: "setting": a scalar or an array of scalars (an HAProxy keyword's value or values).
#: A var's name (``${var.NAME}``, see environments.py).
VAR_NAME = "[A-Za-z_][A-Za-z0-9_]{0,63}"


@dataclass(frozen=True)
class Field:
    """One key of a table.

    ``type`` is a scalar name (see SCALARS), ``"list"`` (of ``items``), ``"table"``
    (with ``fields``) or ``"map"`` (string keys, ``items`` values).
    """

    type: str
    help: str = ""
    required: bool = False
    items: "Field | None" = None
    fields: Mapping[str, "Field"] | None = None
    choices: tuple[Any, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    check: Callable[[Any], str | None] | None = None  # returns a problem or None
    references: bool = True  # may the value be (or contain) ${…} references?


@dataclass
class Problems:
    """Problems found while checking a file, each with its key path."""

    items: list[tuple[str, str, str | None]] = field(default_factory=list)

    def add(self, path: str, message: str, hint: str | None = None) -> None:
        self.items.append((path, message, hint))

    def __bool__(self) -> bool:
        return bool(self.items)


def python_type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string",
            list: "array", dict: "table"}.get(type(value), type(value).__name__)


def nearest(word: str, candidates: list[str] | tuple[str, ...] | set[str], cutoff: float = 0.6) -> str | None:
    """The candidate most like ``word``, if one is alike enough. Candidates whose length alone keeps them
    under the cutoff are not compared (difflib's ratio is at most 2·min/(sum of the lengths)), so that a
    key three million characters long costs nothing here."""
    near = sorted(c for c in candidates if 2 * min(len(c), len(word)) >= cutoff * (len(c) + len(word)))
    match = difflib.get_close_matches(word, near, n=1, cutoff=cutoff) if near else []
    return match[0] if match else None


def check_table(table: Mapping[str, Any], fields: Mapping[str, Field], path: str,
                problems: Problems) -> None:
    """Check a table: unknown keys, missing required keys, and each value."""
    for key, value in table.items():
        spec = fields.get(key)
        if spec is None:
            guess = nearest(key, list(fields))
            problems.add(f"{path}.{key}", f"unknown key {shown(key)}",
                         f"did you mean {guess!r}?" if guess else
                         f"valid keys here: {', '.join(sorted(fields))}")
            continue
        check_value(value, spec, f"{path}.{key}", problems)
    for key, spec in fields.items():
        if spec.required and key not in table:
            problems.add(f"{path}.{key}", f"missing required key {key!r}")


def check_value(value: Any, spec: Field, path: str, problems: Problems) -> None:
    """Check one value against its field: references, type and bounds, then the field's own check."""
    if isinstance(value, str) and "${" in value:
        _check_reference(value, spec, path, problems)
        return
    checker = _CHECKERS.get(spec.type, _check_scalar if spec.type in SCALARS else None)
    if checker is None:  # pragma: no cover - a programming error in a kind's declaration
        raise AssertionError(f"unknown field type {spec.type}")
    if not checker(value, spec, path, problems):
        return
    if spec.check is not None:
        problem = spec.check(value)
        if problem:
            problems.add(path, problem)


def _check_reference(value: str, spec: Field, path: str, problems: Problems) -> None:
    """A string holding ``${…}``: allowed here, well formed, and standing for the whole value
    unless the field is a string (whole references are checked again once resolved)."""
    if not spec.references:
        problems.add(path, "references are not allowed here")
        return
    try:
        references_in(value)
    except ValueError as exc:
        problems.add(path, str(exc))
        return
    if not (is_whole_reference(value) or spec.type in ("string", "scalar")):
        problems.add(path, f"expected {spec.type}, got a string with a reference inside")


# Each checker below reports the value's problems and returns whether the field's own
# ``check`` should run on it (it does once the value has the right shape).

def _check_setting(value: Any, spec: Field, path: str, problems: Problems) -> bool:
    """A scalar or an array of scalars, none of them a reference; no field check of its own."""
    if not isinstance(value, list):
        check_value(value, _SETTING_ITEM, path, problems)
        return False
    for index, item in enumerate(value):
        check_value(item, _SETTING_ITEM, f"{path}[{index}]", problems)
    return False


def _check_scalar(value: Any, spec: Field, path: str, problems: Problems) -> bool:
    """Type (true never stands for 1), choices, integer bounds and no NUL characters."""
    allowed = SCALARS[spec.type]
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        problems.add(path, f"expected {spec.type}, got {python_type_name(value)}")
        return False
    if spec.choices is not None and value not in spec.choices:
        guess = nearest(str(value), [str(c) for c in spec.choices])
        problems.add(path, f"{value!r} is not one of {', '.join(map(repr, spec.choices))}",
                     f"did you mean {guess!r}?" if guess else None)
        return False
    problem = _value_problem(value, spec)
    if problem is not None:
        problems.add(path, problem)
        return False
    return True


def _value_problem(value: Any, spec: Field) -> str | None:
    """The problem with a scalar of the right type: a NUL character, or an integer out of bounds."""
    if isinstance(value, str):
        return "NUL characters are not allowed" if "\x00" in value else None
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    if spec.minimum is not None and value < spec.minimum:
        return f"{value} is below the minimum {spec.minimum}"
    if spec.maximum is not None and value > spec.maximum:
        return f"{value} is above the maximum {spec.maximum}"
    return None


def _check_list(value: Any, spec: Field, path: str, problems: Problems) -> bool:
    if not isinstance(value, list):
        problems.add(path, f"expected array, got {python_type_name(value)}")
        return False
    for index, item in enumerate(value):
        check_value(item, spec.items or Field("scalar"), f"{path}[{index}]", problems)
    return True


def _check_subtable(value: Any, spec: Field, path: str, problems: Problems) -> bool:
    if not isinstance(value, dict):
        problems.add(path, f"expected table, got {python_type_name(value)}")
        return False
    check_table(value, spec.fields or {}, path, problems)
    return True


def _check_map(value: Any, spec: Field, path: str, problems: Problems) -> bool:
    if not isinstance(value, dict):
        problems.add(path, f"expected table, got {python_type_name(value)}")
        return False
    for key, item in value.items():
        check_value(item, spec.items or Field("string"), f"{path}.{key}", problems)
    return True


_SETTING_ITEM = Field("scalar", references=False)
_CHECKERS: dict[str, Callable[[Any, Field, str, Problems], bool]] = {
    "setting": _check_setting,
    "list": _check_list,
    "table": _check_subtable,
    "map": _check_map,
}


def json_schema(spec: Field) -> dict[str, Any]:
    """The JSON Schema of one field (references are allowed wherever a string is)."""
    out: dict[str, Any]
    if spec.type in ("string", "integer", "boolean"):
        out = {"type": spec.type}
        if spec.choices is not None:
            out["enum"] = list(spec.choices)
        if spec.minimum is not None:
            out["minimum"] = spec.minimum
        if spec.maximum is not None:
            out["maximum"] = spec.maximum
    elif spec.type == "scalar":
        out = {"type": ["string", "integer", "boolean"]}
    elif spec.type == "setting":
        scalar = {"type": ["string", "integer", "boolean"]}
        out = {"anyOf": [scalar, {"type": "array", "items": scalar}]}
    elif spec.type == "list":
        out = {"type": "array", "items": json_schema(spec.items or Field("scalar"))}
    elif spec.type == "table":
        out = table_schema(spec.fields or {})
    else:
        out = {"type": "object", "additionalProperties": json_schema(spec.items or Field("string"))}
    if spec.type not in ("string", "scalar") or spec.choices is not None:
        # a value that is a whole ${var.NAME} (any field) or reference (fields that take them) is a string
        pattern = r"^\$\{[^}]+\}$" if spec.references else rf"^\$\{{var\.{VAR_NAME}\}}$"
        out = {"anyOf": [out, {"type": "string", "pattern": pattern}]}
    if spec.help:
        out["description"] = spec.help
    return out


def table_schema(fields: Mapping[str, Field]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {key: json_schema(spec) for key, spec in fields.items()},
        "required": [key for key, spec in fields.items() if spec.required],
    }


def document_schema(top_level: Mapping[str, Mapping[str, Field]], kinds: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a whole desired-state file, for editors (Taplo, Even Better TOML…)."""
    properties: dict[str, Any] = {name: table_schema(fields) for name, fields in top_level.items()}
    depends = Field("list", "Addresses (KIND.NAME) this resource must follow.",
                    items=Field("string", references=False), references=False)
    for name, kind in kinds.items():
        properties[name] = kind.json_schema(table_schema({**kind.fields, "depends_on": depends}))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "recon desired-state file",
        "description": "One stack: [stack], [cloud], [state], [drift] and one table per resource kind; "
                       "values may be ${KIND.NAME.ATTR} references.",
        "type": "object",
        "additionalProperties": False,
        "required": ["stack"],
        "properties": properties,
    }
