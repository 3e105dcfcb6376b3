"""``recon import ADDR ID``: adopt a live resource — write its block into the desired
file and record it in state, so that the next plan shows no change for it.

The file is edited as text so that everything else in it stays byte for byte, each kind
saying how (``Kind.add_to_file``: a table appended at the end by default, a key added to
its table for a table-wide kind). The result is checked to parse to the old data plus the
new block, and to load; otherwise the file is left untouched.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Mapping

from .addresses import Address
from .config import read_text
from .errors import ConfigError, ReconError
from .resources import KINDS
from .resources.abilities import adopt, import_block
from .schema import nearest
from .atomic import write_atomic
from .state.model import Entry


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
        text = kind.add_to_file(original, address.name, block)
        expected = tomllib.loads(original)
        expected.setdefault(address.kind, {})[address.name] = kind.file_entry(block)
        if tomllib.loads(text) != expected:  # pragma: no cover - a safety net for the text edit
            raise ReconError("could not add the block without changing the rest of the file", where=str(path))
        write_atomic(path, text, mode=path.stat().st_mode & 0o777)
        try:
            stack = ws.reload()
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
        attrs = ws.prepared().resources[address].attrs     # as a plan prepares it (an image's linked kernel)
        live = adopt(kind, ws.context(), address.name, cloud_id, attrs)
        state.resources[address] = Entry(address, str(kind.live_name(address.name, attrs)),
                                         kind.state_attrs(address.name, attrs, live, None),
                                         sorted(spec.dependencies()))
        ws.backend.write(state)
    return address
