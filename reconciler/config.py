"""Loading and validating the desired-state file.

The loader parses TOML, checks every table against the kinds' declared fields,
normalizes each block (reading companion files such as public keys), finds the values that
name another block by its cloud name (names.py), and checks the dependency graph (graph.py).
A file with ``[env.NAME]`` tables is loaded as one of its environments, its ``${var.NAME}``
values substituted (environments.py). Every problem is reported at once, each with the file,
the key path and, where it can be found, the line (toml_lines.py).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from .addresses import Address, Reference, references_in
from .cloud import CLOUD_FIELDS
from .environments import EnvChoice, Origin, check_apart, check_tables, chosen_env, resolve
from .errors import ConfigError, shown
from .file_problems import FileProblems, problems_error
from .graph import check_references
from .names import Named, infer
from .resources import KINDS
from .resources.abilities import split_table
from .resources.base import LoadContext
from .schema import Field, Problems, check_table, nearest, python_type_name
from .toml_lines import path_parts, quote_key
from .unowned import pattern_problem

MAX_FILE_BYTES = 4 << 20
MAX_DEPTH = 32            # arrays and tables inside one another; real files use < 8
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+=,/-]{0,254}$")
STACK_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")

STACK_FIELDS = {
    "name": Field("string", "Stack name: scopes ownership tags and the state file.", required=True,
                  references=False,
                  check=lambda v: None if STACK_NAME_RE.match(v) else
                  "must be 1-63 letters, digits, '-' or '_', starting with a letter or digit"),
    "description": Field("string", "Free text.", references=False),
    "lb_workers": Field("string", 'What recon does with load balancers\' worker VMs on another image, type or key '
                        'than the properties say, unless a load balancer says (its workers = …): "report" (the '
                        'default) or "roll" (replace them one at a time).', choices=("report", "roll"),
                        references=False),
}
STATE_FIELDS = {
    "backend": Field("string", 'Where state is kept: "local" (a file) or "s3" (the cloud\'s object storage).',
                     choices=("local", "s3"), references=False),
    "path": Field("string", "Local state folder, relative to this file (default: state).",
                  references=False),
    "bucket": Field("string", "s3: the bucket holding the state.", references=False),
    "key": Field("string", "s3: the state object's key (default: recon/STACK.json).", references=False),
    "lease_seconds": Field("integer", "s3: how long a lock lives unless its holder renews it (default 60).",
                           minimum=5, maximum=3600, references=False),
}
DRIFT_FIELDS = {
    "ignore": Field("list", 'What `recon drift` does not report: addresses or "ADDRESS.attribute.path", '
                    "with * and ? wildcards.", items=Field("string", references=False), references=False),
    "ignore_unmanaged": Field("list", "What `recon drift` does not report as unmanaged (with --all-unmanaged, "
                              'the account\'s too): "KIND.NAME" with * and ? wildcards ("keypairs.admin*").',
                              items=Field("string", references=False, check=pattern_problem), references=False),
}
TOP_LEVEL = {"stack": STACK_FIELDS, "cloud": CLOUD_FIELDS, "state": STATE_FIELDS, "drift": DRIFT_FIELDS}


@dataclass
class ResourceSpec:
    """One desired resource: its address, normalized attributes and where it was written."""

    address: Address
    attrs: dict[str, Any]
    depends_on: tuple[Address, ...] = ()
    line: int | None = None
    #: Values naming other resources without a reference, with the blocks of the file they match.
    names: tuple[Named, ...] = ()

    @property
    def kind(self) -> str:
        return self.address.kind

    @property
    def name(self) -> str:
        return self.address.name

    def references(self) -> list[Reference]:
        return references_in(self.attrs)

    def reasons(self) -> dict[Address, list[str]]:
        """Each resource this one depends on, with why: its references, literal names, depends_on."""
        found: dict[Address, list[str]] = {}
        for ref in self.references():
            found.setdefault(ref.address, []).append(f"references {ref}")
        for named in self.names:
            for target in named.targets:
                found.setdefault(target, []).append(f"names {target}")
        for dep in self.depends_on:
            found.setdefault(dep, []).append("depends_on")
        return {address: list(dict.fromkeys(why)) for address, why in sorted(found.items())}

    def dependencies(self) -> set[Address]:
        return set(self.reasons())


@dataclass
class Stack:
    """A loaded, valid desired-state file."""

    path: Path
    name: str
    cloud: dict[str, Any]
    state: dict[str, Any]
    resources: dict[Address, ResourceSpec]
    digest: str
    #: sha256 of the companion files the stack read (public keys, cloud-init…), by path.
    companions: dict[str, str] = field(default_factory=dict)
    #: ``[drift] ignore`` patterns.
    drift_ignore: tuple[str, ...] = ()
    #: ``[drift] ignore_unmanaged`` patterns.
    drift_ignore_unmanaged: tuple[str, ...] = ()
    #: Per-kind settings that are not resources (e.g. ``[properties] reset = […]``).
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The environment of the file this stack is (``[env.NAME]``), and the values of its vars.
    env: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def source(self) -> str:
        """The file, and which of its environments this is, for messages."""
        return f"{self.path} (env {self.env})" if self.env else str(self.path)


def read_text(path: Path) -> str:
    """The desired file's text: bounded, UTF-8, with errors that name the file."""
    where = str(path)
    try:
        with path.open("rb") as handle:   # bounded: /dev/zero or a runaway pipe is refused, not read whole
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("file not found", where=where,
                          hint="give the file with -c FILE (default: recon.toml in this folder)")
    except IsADirectoryError:
        raise ConfigError("is a folder, not a file", where=where)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", where=where)
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"file is larger than {MAX_FILE_BYTES} bytes", where=where)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"not valid UTF-8 (byte {exc.start})", where=f"{where}:{line}")
    if text.startswith("\ufeff"):
        raise ConfigError("starts with a byte order mark (U+FEFF), which TOML does not allow", where=f"{where}:1",
                          hint="save the file as UTF-8 without a BOM")
    return text


def load(path: Path | str, choice: EnvChoice | None = None, environ: Mapping[str, str] | None = None) -> Stack:
    """Load and validate a desired-state file (the environment ``choice`` names, with its vars;
    ``environ`` holds the RECON_VAR_ ones); raises ConfigError listing every problem."""
    path = Path(path)
    text, document = parse(path)
    return build(document, text, path, choice, environ)


def load_every(path: Path | str, choice: EnvChoice | None = None,
               environ: Mapping[str, str] | None = None) -> list[Stack]:
    """The environment ``choice`` names, or else every environment of the file (the file itself if it
    has none); raises ConfigError listing the problems of all of them."""
    path = Path(path)
    choice = choice or EnvChoice()
    text, document = parse(path)
    problems = Problems()
    names = check_tables(document, problems)
    if choice.env is not None or not names or problems:
        return [build(document, text, path, choice, environ)]
    stacks: list[Stack] = []
    found: list[Located] = []
    for name in names:
        try:
            stacks.append(build(document, text, path, replace(choice, env=name), environ))
        except FileProblems as exc:
            found.extend(exc.entries)
    if found:
        raise FileProblems(path, found)
    return stacks


def parse(path: Path) -> tuple[str, dict[str, Any]]:
    """The file's text and its TOML document; errors name the file and line."""
    where = str(path)
    text = read_text(path)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        loc = f"{where}:{match.group(1)}:{match.group(2)}" if match else where
        if "(at end of document)" in message:
            loc = f"{where}:{max(1, len(text.splitlines()))}"
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        raise ConfigError(f"invalid TOML: {message}", where=loc)
    except RecursionError:
        raise ConfigError(f"invalid TOML: arrays or tables nested more than {MAX_DEPTH} deep", where=where) from None
    return text, document


def _too_deep(document: Mapping[str, Any]) -> str | None:
    """The key path of a value nested deeper than MAX_DEPTH (checked without recursion), else None."""
    pending: list[tuple[Any, str, int]] = [(document, "", 0)]
    while pending:
        value, where, depth = pending.pop()
        if depth > MAX_DEPTH:
            return where
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            inner = f"{where}[{key}]" if isinstance(key, int) else f"{where}.{quote_key(str(key))}".lstrip(".")
            pending.append((item, inner, depth + 1))
    return None


def build(document: Mapping[str, Any], text: str, path: Path, choice: EnvChoice | None = None,
          environ: Mapping[str, str] | None = None) -> Stack:
    """Validate a parsed document (as the environment ``choice`` names) and build the Stack."""
    choice = choice or EnvChoice()
    problems = Problems()
    deep = _too_deep(document)
    if deep is not None:
        problems.add(deep.split("[", 1)[0], f"arrays or tables nested more than {MAX_DEPTH} deep")
    names = check_tables(document, problems) if not problems else []
    if problems:
        raise problems_error(problems, text, path, Origin())
    env = chosen_env(names, choice, str(path))
    resolved = resolve(document, env, choice, environ or {}, problems)
    found_in_vars = len(problems.items)
    if env is not None:
        check_apart(document, names, env, problems)
    document = resolved.document
    _check_tables(document, problems)
    _check_state(document.get("state"), problems)
    if "stack" not in document:
        problems.add("stack", "missing [stack] table", 'add [stack] with name = "…"')

    stack_table = document.get("stack") if isinstance(document.get("stack"), dict) else {}
    stack_name = str(stack_table.get("name", ""))
    ctx = LoadContext(base_dir=path.parent, source=str(path), stack=stack_name, stack_table=dict(stack_table))
    resources, kind_settings = _read_resources(document, ctx, problems)
    for address, names in infer(resources).items():
        resources[address].names = names
    if not problems:
        check_references(resources, problems)
    if problems:
        raise problems_error(_without_echoes(problems, found_in_vars), text, path, resolved.origin)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return Stack(path=path, name=stack_name, cloud=dict(document.get("cloud", {})),
                 state=dict(document.get("state", {})), resources=resources, digest=digest,
                 companions=dict(ctx.companions),
                 drift_ignore=tuple(document.get("drift", {}).get("ignore", ())),
                 drift_ignore_unmanaged=tuple(document.get("drift", {}).get("ignore_unmanaged", ())),
                 settings=kind_settings, env=env, vars=resolved.vars)


def _check_tables(document: Mapping[str, Any], problems: Problems) -> None:
    """Every top-level key is a known table; the fixed ones are checked against their fields."""
    valid_tables = sorted([*TOP_LEVEL, *KINDS, "env", "vars"])
    for key, value in document.items():
        if key in TOP_LEVEL:
            if not isinstance(value, dict):
                problems.add(key, "must be a table")
                continue
            check_table(value, TOP_LEVEL[key], key, problems)
        elif key in KINDS:
            if not isinstance(value, dict):
                problems.add(key, "must be a table of resources")
        else:
            guess = nearest(key, valid_tables)
            problems.add(key, f"unknown table {shown(key)}",
                         f"did you mean {guess!r}?" if guess else
                         f"valid tables: {', '.join(valid_tables)}")


def _check_state(state_table: Any, problems: Problems) -> None:
    """The [state] keys that go together with the chosen backend."""
    if not isinstance(state_table, dict):
        return
    if state_table.get("backend") == "s3" and "bucket" not in state_table:
        problems.add("state.bucket", 'backend = "s3" needs a bucket')
    if state_table.get("backend", "local") == "local":
        for key in ("bucket", "key", "lease_seconds"):
            if key in state_table:
                problems.add(f"state.{key}", f'{key} is for backend = "s3"')


def _read_resources(document: Mapping[str, Any], ctx: LoadContext, problems: Problems
                    ) -> tuple[dict[Address, ResourceSpec], dict[str, dict[str, Any]]]:
    """The valid resource blocks of every kind's table, and each kind's table-wide settings."""
    resources: dict[Address, ResourceSpec] = {}
    kind_settings: dict[str, dict[str, Any]] = {}
    for kind_name, kind in KINDS.items():
        table = document.get(kind_name)
        if not isinstance(table, dict):
            continue
        blocks, settings = split_table(kind, table, problems)
        if settings:
            kind_settings[kind_name] = settings
        for name, block in blocks.items():
            spec = _read_block(Address(kind_name, name), block, ctx, problems)
            if spec is not None:
                resources[spec.address] = spec
    return resources, kind_settings


def _read_block(address: Address, block: Any, ctx: LoadContext, problems: Problems) -> ResourceSpec | None:
    """One resource block checked and normalised, or None once its problems are recorded."""
    kind, name = KINDS[address.kind], address.name
    key = f"{address.kind}.{quote_key(name)}"
    if not NAME_RE.match(name):
        problems.add(key, f"invalid name {shown(name, 300)}: use letters, digits and ._:@+=,/- (at most 255)")
        return None
    if not isinstance(block, dict):
        problems.add(key, f"must be a table, got {python_type_name(block)}")
        return None
    block = dict(block)
    depends_raw = block.pop("depends_on", [])
    before = len(problems.items)
    check_table(block, kind.fields, key, problems)
    depends = _check_depends(depends_raw, key, problems)
    if len(problems.items) > before:
        return None
    try:
        attrs = kind.normalize(name, block, ctx)
    except ConfigError as exc:
        problems.add(exc.where or key, exc.message, exc.hint)
        return None
    return ResourceSpec(address, attrs, depends)


def _check_depends(raw: Any, key: str, problems: Problems) -> tuple[Address, ...]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        problems.add(f"{key}.depends_on", "expected an array of addresses (KIND.NAME)")
        return ()
    out = []
    for index, item in enumerate(raw):
        try:
            out.append(Address.parse(item))
        except ValueError as exc:
            problems.add(f"{key}.depends_on[{index}]", str(exc))
    return tuple(out)


def _without_echoes(problems: Problems, found_in_vars: int) -> Problems:
    """The problems, less those that later checks found in a value whose var was not set (its
    ``${var.NAME}`` is left in place, and is no reference either): the first ``found_in_vars``
    problems came from the var substitution."""
    first, later = problems.items[:found_in_vars], problems.items[found_in_vars:]
    var_paths = {key_path for key_path, _, _ in first}
    return Problems([*first, *(item for item in later if item[0] not in var_paths)])
