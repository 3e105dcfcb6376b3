"""``recon import ADDR ID``: adopt a live resource — write its block into the desired
file and record it in state, so that the next plan shows no change for it.

The file is edited as text so that everything else in it stays byte for byte: a block is
appended at the end (TOML allows a kind's tables to be apart), a property is inserted
after the last key of ``[properties]``. The result is checked to parse to the old data
plus the new block, and to load; otherwise the file is left untouched.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Mapping

import tomlkit

from .addresses import Address
from .config import load, quote_key, read_text
from .errors import ConfigError, ReconError
from .resources import KINDS
from .resources.abilities import adopt, import_block, prepare
from .schema import nearest
from .state.local import write_atomic
from .state.model import Entry

KEY_LINE = re.compile(r'^\s*("(?:[^"\\]|\\.)*"|[A-Za-z0-9_.-]+)\s*=')
HEADER_LINE = re.compile(r"^\s*\[")


def _toml_value(value: Any) -> Any:
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        table.update({key: _toml_value(item) for key, item in value.items()})
        return table
    if isinstance(value, list):
        array = tomlkit.array()
        for item in value:
            array.append(_toml_value(item))
        if any(isinstance(item, dict) for item in value):
            array.multiline(True)
        return array
    return value


def block_text(address: Address, block: Mapping[str, Any]) -> str:
    table = tomlkit.table()
    for key, value in block.items():
        table.add(key, _toml_value(value))
    return f"[{address.kind}.{quote_key(address.name)}]\n" + tomlkit.dumps(table)


def _insert_property(text: str, name: str, value: str) -> str:
    line = f"{quote_key(name)} = {tomlkit.dumps({'v': value}).split('=', 1)[1].strip()}\n"
    lines = text.splitlines(keepends=True)
    header = next((i for i, l in enumerate(lines) if re.match(r"^\s*\[\s*properties\s*\]", l)), None)
    if header is None:
        return text + ("" if text.endswith("\n") or not text else "\n") + "\n[properties]\n" + line
    last = header
    for index in range(header + 1, len(lines)):
        if HEADER_LINE.match(lines[index]):
            break
        if KEY_LINE.match(lines[index]):
            last = index
    if not lines[last].endswith("\n"):
        lines[last] += "\n"
    lines.insert(last + 1, line)
    return "".join(lines)


def new_text(text: str, address: Address, block: Mapping[str, Any]) -> str:
    if address.kind == "properties":
        return _insert_property(text, address.name, block["value"])
    separator = "" if text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
    return text + separator + block_text(address, block)


def import_resource(ws, address_text: str, cloud_id: str, options: Mapping[str, Any]) -> Address:
    """Adopt ``cloud_id`` as ``address_text`` into ws's file and state. Raises ReconError."""
    try:
        address = Address.parse(address_text)
    except ValueError as exc:
        raise ReconError(str(exc), where="import")
    kind = KINDS.get(address.kind)
    if kind is None:
        guess = nearest(address.kind, list(KINDS))
        raise ReconError(f"unknown kind {address.kind!r}", where="import",
                         hint=f"did you mean {guess!r}?" if guess else f"kinds: {', '.join(KINDS)}")
    path: Path = ws.stack.path
    if address in ws.stack.resources:
        return _adopt(ws, kind, address, cloud_id)
    with ws.backend.lock("import"):
        state = ws.backend.read()
        ws.check_cloud(state)
        if address in state.resources:
            raise ReconError(f"{address} is already in state (id {state.resources[address].id})", where="import",
                             hint="it is managed already; add its block to the file by hand or remove it from state")
        block, live_name = import_block(kind, ws.context(), address.name, cloud_id, options)
        original = read_text(path)
        text = new_text(original, address, block)
        expected = tomllib.loads(original)
        expected.setdefault(address.kind, {})[address.name] = block["value"] if address.kind == "properties" else block
        if tomllib.loads(text) != expected:  # pragma: no cover - a safety net for the text edit
            raise ReconError("could not add the block without changing the rest of the file", where=str(path))
        write_atomic(path, text, mode=path.stat().st_mode & 0o777)
        try:
            stack = load(path)
        except ConfigError:
            write_atomic(path, original, mode=path.stat().st_mode & 0o777)
            raise
        spec = stack.resources[address]
        live = ws.read_live(state)
        attrs = kind.finalize(address.name, spec.attrs) if not spec.references() else spec.attrs
        entry_attrs = kind.state_attrs(address.name, attrs, live.get(address.kind, {}).get(live_name, {}), None)
        state.resources[address] = Entry(address, live_name, entry_attrs, sorted(spec.dependencies()))
        ws.backend.write(state)
    return address


def _adopt(ws, kind, address: Address, cloud_id: str) -> Address:
    """The block is in the file already: make ``cloud_id`` that resource (kinds that can say so)."""
    with ws.backend.lock("import"):
        state = ws.backend.read()
        ws.check_cloud(state)
        if address in state.resources:
            raise ReconError(f"{address} is already managed (id {state.resources[address].id})", where="import")
        spec = ws.stack.resources[address]
        attrs = prepare(kind, address.name, spec.attrs, ws.stack.base_dir)
        live = adopt(kind, ws.context(), address.name, cloud_id, attrs)
        state.resources[address] = Entry(address, str(kind.live_name(address.name, attrs)),
                                         kind.state_attrs(address.name, attrs, live, None),
                                         sorted(spec.dependencies()))
        ws.backend.write(state)
    return address
