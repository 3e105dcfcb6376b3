"""Environments and vars: one desired file, several stacks.

``[env.NAME]`` tables make environments. An environment is the rest of the file (the *base*) with
the env's table merged over it: a table merges into the base's table of the same key, key by key
and at any depth (``[env.staging.docker_hosts.web] count = 1`` changes one key of one block, and a
block the base lacks is added); any other value (a string, a number, an array) replaces the
base's value whole. An env cannot remove a key or a block. A file with environments is only ever
used through one of them (``--env NAME`` or ``RECON_ENV``); each must have its own stack name and
state, so that environments applied side by side never see each other's resources.

``${var.NAME}`` in any string value (never in a key) is the value of the var NAME, taken from the
first of: ``--var NAME=VALUE``, the process environment's ``RECON_VAR_NAME``, the env's
``[env.E.vars]``, ``[vars]``. A string that is exactly ``${var.NAME}`` takes the var's value and
type (``count = "${var.hosts}"`` with ``hosts = 2`` is the integer 2); inside a longer string the
value is written as text. A value given with ``--var`` or ``RECON_VAR_`` takes the type of the
var's value in the file. The values of vars whose name looks secret are redacted from all output.

Problems found in an environment are kept by key path of the merged document; :class:`Origin`
says where such a path is written: in the env's table (``env.staging.docker_hosts.web.count``) or
in the base, for that env.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import ConfigError, shown
from .redact import remember
from .schema import VAR_NAME, Problems, nearest, python_type_name
from .toml_lines import path_parts, quote_key

ENV_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
VAR_NAME_RE = re.compile(f"^{VAR_NAME}$")
VAR_USE_RE = re.compile(r"\$\{var\.([^}]*)\}")
#: A var with such a name holds a secret: its value is redacted wherever recon prints.
SECRET_NAME_RE = re.compile(r"secret|passw|passphrase|token|credential|private|api_?key", re.IGNORECASE)
ENV_VAR_PREFIX = "RECON_VAR_"
VAR_TYPES = (str, int, bool)


@dataclass(frozen=True)
class EnvChoice:
    """The environment of the file a command works on (None: the file has none, or validate checks
    all) and the ``--var NAME=VALUE`` assignments given to it."""

    env: str | None = None
    assignments: tuple[str, ...] = ()

    @classmethod
    def given(cls, env: str | None, assignments: list[str] | tuple[str, ...] | None) -> "EnvChoice":
        """From the ``--env`` and ``--var`` options (an empty RECON_ENV chooses nothing)."""
        return cls(env or None, tuple(assignments or ()))

    def parsed(self) -> dict[str, str]:
        """The --var assignments by name; the last of one name wins. Raises ConfigError."""
        out: dict[str, str] = {}
        for index, text in enumerate(self.assignments, start=1):
            name, sep, value = text.partition("=")
            if not sep or not VAR_NAME_RE.match(name):
                what = f"{shown(name)} is not a var name" if sep else "expected NAME=VALUE"
                raise ConfigError(f"{what} (letters, digits and '_', not starting with a digit)",
                                  where=f"--var (the {_ordinal(index)})")
            out[name] = value
        return out


def _ordinal(index: int) -> str:
    return {1: "first", 2: "second", 3: "third"}.get(index, f"{index}th")


def check_tables(document: Mapping[str, Any], problems: Problems) -> list[str]:
    """The file's environment names, each checked; problems name the env tables."""
    table = document.get("env")
    if table is None:
        return []
    if not isinstance(table, dict):
        problems.add("env", "must be a table of environments ([env.NAME])")
        return []
    names = []
    for name, body in table.items():
        key = f"env.{quote_key(name)}"
        if not ENV_NAME_RE.match(name):
            problems.add(key, f"invalid environment name {shown(name)}: use 1-63 letters, digits, '-' or '_', "
                              "starting with a letter or digit")
        elif not isinstance(body, dict):
            problems.add(key, f"must be a table, got {python_type_name(body)}")
        elif "env" in body:
            problems.add(f"{key}.env", "environments do not nest: an env's tables override the base file's")
        else:
            names.append(name)
    return names


def chosen_env(names: list[str], choice: EnvChoice, where: str) -> str | None:
    """The environment a command works on; a clear error if the choice does not fit the file."""
    if choice.env is None:
        if names:
            raise ConfigError(f"this file holds environments ({', '.join(sorted(names))}): choose one with "
                              "--env NAME (or RECON_ENV=NAME)", where=where)
        return None
    if not names:
        raise ConfigError(f"environment {shown(choice.env)} was chosen (--env or RECON_ENV), but this file has "
                          "no [env.NAME] tables", where=where, hint="leave out --env (and unset RECON_ENV)")
    if choice.env not in names:
        guess = nearest(choice.env, names)
        raise ConfigError(f"no environment {shown(choice.env)} (--env or RECON_ENV): this file's environments are "
                          f"{', '.join(sorted(names))}", where=where,
                          hint=f"did you mean {guess!r}?" if guess else None)
    return choice.env


def merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged over it: tables key by key, any other value replaced whole."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@dataclass(frozen=True)
class Origin:
    """Where a key path of an environment's merged document is written: in the env's table, or in
    the base file (for that env)."""

    env: str | None = None
    base: Mapping[str, Any] = field(default_factory=dict)
    override: Mapping[str, Any] = field(default_factory=dict)

    def place(self, key_path: str) -> tuple[str, list[str], tuple[str, ...]]:
        """(the path to show, its parts in the file for finding its line, the envs it is about)."""
        parts = path_parts(key_path)
        if self.env is None:
            return key_path, parts, ()
        in_env = _depth(self.override, parts)
        if in_env and in_env >= _depth(self.base, parts):
            return f"env.{self.env}.{key_path}", ["env", self.env, *parts], ()
        return key_path, parts, (self.env,)


def _depth(table: Any, parts: list[str]) -> int:
    """How many leading ``parts`` ``table`` holds (a value that is not a table holds what is under it)."""
    depth = 0
    for part in parts:
        if not isinstance(table, dict):
            return len(parts)
        if part not in table:
            break
        table = table[part]
        depth += 1
    return depth


@dataclass
class Resolved:
    """One environment of a file (or the file, without environments), ready for the loader."""

    document: dict[str, Any]
    env: str | None
    vars: dict[str, Any]
    origin: Origin


def resolve(document: Mapping[str, Any], env: str | None, choice: EnvChoice, environ: Mapping[str, str],
            problems: Problems) -> Resolved:
    """The document of ``env`` with its vars substituted; problems by key path of that document.
    Raises ConfigError for a --var or RECON_VAR_ value that does not fit."""
    base = {key: value for key, value in document.items() if key != "env"}
    override = dict(document.get("env", {}).get(env, {})) if env is not None else {}
    whole = merged(base, override)
    declared = _declared_vars(whole.pop("vars", {}), problems)
    known = _names_in(document)
    given = choice.parsed()
    _check_given(given, known)
    supplied = [(f"{ENV_VAR_PREFIX}{name}", name, text) for name, text in _from_environ(environ, known).items()]
    supplied += [(f"--var {name}", name, text) for name, text in given.items()]
    values = dict(declared)
    for where, name, text in supplied:
        values[name] = _typed(text, declared.get(name), where)
    for name, value in values.items():
        if SECRET_NAME_RE.search(name) and isinstance(value, str):
            remember(value)
    substituted = {key: _substitute(value, key, values, problems) for key, value in whole.items()}
    return Resolved(substituted, env, values, Origin(env, base, override))


def _declared_vars(table: Any, problems: Problems) -> dict[str, Any]:
    if not isinstance(table, dict):
        problems.add("vars", "must be a table of NAME = VALUE")
        return {}
    out = {}
    for name, value in table.items():
        key = f"vars.{quote_key(name)}"
        if not VAR_NAME_RE.match(name):
            problems.add(key, f"invalid var name {shown(name)}: use letters, digits and '_', not starting with a digit")
        elif not isinstance(value, VAR_TYPES):
            problems.add(key, f"expected a string, integer or boolean, got {python_type_name(value)}")
        elif isinstance(value, str) and ("\x00" in value or "${var." in value):
            problems.add(key, "NUL characters are not allowed" if "\x00" in value else
                         "a var's value cannot use another var")
        else:
            out[name] = value
    return out


def _from_environ(environ: Mapping[str, str], known: set[str]) -> dict[str, str]:
    """``RECON_VAR_NAME`` values by NAME, for the vars the file knows (the process environment may
    hold others', for other files)."""
    return {key[len(ENV_VAR_PREFIX):]: value for key, value in environ.items()
            if key.startswith(ENV_VAR_PREFIX) and key[len(ENV_VAR_PREFIX):] in known}


def _typed(text: str, declared: Any, where: str) -> Any:
    """A value given as text, as the type of the var's value in the file (text if the file has none).
    Errors never show the value: it may be a secret."""
    if isinstance(declared, bool):
        if text not in ("true", "false"):
            raise ConfigError("expected true or false (the var is a boolean in the file)", where=where)
        return text == "true"
    if isinstance(declared, int):
        if not re.fullmatch(r"[+-]?[0-9]{1,18}", text):
            raise ConfigError("expected an integer (the var is an integer in the file)", where=where)
        return int(text)
    if "\x00" in text:
        raise ConfigError("NUL characters are not allowed", where=where)
    return text


def _check_given(given: Mapping[str, str], known: set[str]) -> None:
    """A --var the file neither declares (in any [vars]) nor uses is a typo: refused."""
    for name in given:
        if name not in known:
            guess = nearest(name, known)
            raise ConfigError(f"this file declares no var {name!r} and uses none by that name", where=f"--var {name}",
                              hint=f"did you mean {guess!r}?" if guess else
                              (f"its vars: {', '.join(sorted(known))}" if known else "declare it in [vars]"))


def _names_in(document: Mapping[str, Any]) -> set[str]:
    """Every var name the file declares (in [vars] and each env's) or uses (${var.NAME})."""
    envs = document.get("env")
    tables = [document, *(envs.values() if isinstance(envs, dict) else ())]
    names = {str(name) for table in tables if isinstance(table, dict) and isinstance(table.get("vars"), dict)
             for name in table["vars"]}
    pending: list[Any] = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str):
            names.update(VAR_USE_RE.findall(value))
    return names


def _substitute(value: Any, where: str, values: Mapping[str, Any], problems: Problems) -> Any:
    """``value`` with every ``${var.NAME}`` in its strings replaced; problems name ``where``."""
    if isinstance(value, dict):
        return {key: _substitute(item, f"{where}.{quote_key(str(key))}", values, problems)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, f"{where}[{index}]", values, problems) for index, item in enumerate(value)]
    if not isinstance(value, str) or "${var." not in value:
        return value
    whole = VAR_USE_RE.fullmatch(value)
    if whole and whole.group(1) in values:
        return values[whole.group(1)]

    def one(match: re.Match) -> str:
        name = match.group(1)
        if not VAR_NAME_RE.match(name):
            problems.add(where, f"{shown(match.group(0))} is not a var of the form ${{var.NAME}}")
        elif name not in values:
            guess = nearest(name, list(values))
            problems.add(where, f"${{var.{name}}}: no var {name!r} is set",
                         (f"did you mean {guess!r}? " if guess else "") +
                         f"set it in [vars], with --var {name}=VALUE or RECON_VAR_{name}")
        else:
            item = values[name]
            return ("true" if item else "false") if isinstance(item, bool) else str(item)
        return match.group(0)

    return VAR_USE_RE.sub(one, value)


def state_place(document: Mapping[str, Any]) -> tuple[str, ...] | None:
    """Where an environment's state is kept and what its ownership tags say (its stack name), as far
    as the merged document tells (None when it is too broken to say)."""
    stack, state = document.get("stack"), document.get("state", {})
    if not isinstance(stack, dict) or not isinstance(state, dict) or not isinstance(stack.get("name"), str):
        return None
    name = stack["name"]
    if state.get("backend") == "s3":
        return name, "s3", str(state.get("bucket")), str(state.get("key", f"recon/{name}.json"))
    return name, "local", str(state.get("path", "state"))


def check_apart(document: Mapping[str, Any], names: list[str], env: str, problems: Problems) -> None:
    """``env`` shares neither its stack name (ownership tags) nor its state with another environment.
    Compared as the file alone says (a name made of vars given on the command line is not compared)."""
    def place(name: str) -> tuple[str, ...] | None:
        found = state_place(resolve(document, name, EnvChoice(), {}, Problems()).document)
        return None if found is None or any("${var." in part for part in found) else found

    mine = place(env)
    if mine is None:
        return
    for other in sorted(set(names) - {env}):
        theirs = place(other)
        if theirs is None:
            continue
        pair = " and ".join(f"env {name}" for name in sorted((env, other)))
        if theirs[0] == mine[0]:
            problems.add("stack.name", f"{pair} are both stack {mine[0]!r}",
                         "give each environment its own [env.NAME.stack] name: its ownership tags and its "
                         "state go by it")
        elif mine[1] == "s3" and theirs[1:] == mine[1:]:
            problems.add("state.key", f"{pair} keep their state in the same object",
                         "give each environment its own [env.NAME.state] key")


def with_environments(schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a desired file (``schema``, of one stack) with ``[vars]`` and ``[env.NAME]``:
    an env's tables are those of the file, each key optional (an env overrides what it names)."""
    tables = schema["properties"]
    variables = {"type": "object", "description": "Values for ${var.NAME}: NAME = a string, integer or boolean.",
                 "propertyNames": {"pattern": VAR_NAME_RE.pattern},
                 "additionalProperties": {"type": ["string", "integer", "boolean"]}}
    env = {"type": "object", "additionalProperties": False,
           "properties": {**{name: _optional(table) for name, table in tables.items()}, "vars": variables}}
    return {**schema, "required": [],
            "description": schema["description"] + " [vars] gives values for ${var.NAME}; [env.NAME] tables "
                           "override the rest of the file for one environment (tables merged key by key).",
            "properties": {**tables, "vars": variables,
                           "env": {"type": "object", "description": "Environments: --env NAME or RECON_ENV.",
                                   "propertyNames": {"pattern": ENV_NAME_RE.pattern}, "additionalProperties": env}}}


def _optional(schema: Any) -> Any:
    """``schema`` with no key required in any table an env merges into (arrays replace whole: their
    items keep their required keys)."""
    if not isinstance(schema, dict):
        return schema
    out = {key: value for key, value in schema.items() if key != "required"}
    for key in ("properties", "patternProperties"):
        if isinstance(out.get(key), dict):
            out[key] = {name: _optional(value) for name, value in out[key].items()}
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _optional(out["additionalProperties"])
    if isinstance(out.get("anyOf"), list):
        out["anyOf"] = [_optional(value) for value in out["anyOf"]]
    return out
