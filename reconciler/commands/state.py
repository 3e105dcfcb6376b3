"""``recon state …``: inspect the state recon keeps, and edit it without touching the cloud.

``rm`` and ``mv`` run under the state lock, write the state with its serial one higher (its
lineage kept), and the backend keeps the state they replace as a backup.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Callable

import typer

from ..engine import Workspace
from ..errors import ReconError
from .common import DEFAULT_CONFIG, ConfigOpt, EnvChoice, EnvOpt, Format, FormatOpt, LockTimeoutOpt, VarOpt, fail, term

if TYPE_CHECKING:   # the rest is loaded where used: every command loads every command's module
    from ..state.model import State

app = typer.Typer(help="Inspect the state recon keeps, and edit it without touching the cloud.",
                  no_args_is_help=True)

AddressArg = Annotated[str, typer.Argument(metavar="ADDRESS", help="KIND.NAME, or KIND.NAME[N] for one instance.",
                                           show_default=False)]


@app.command("list")
def state_list(config: ConfigOpt = DEFAULT_CONFIG, env: EnvOpt = None, var: VarOpt = None) -> None:
    """List the addresses in state, one per line."""
    try:
        ws = Workspace.open(config, EnvChoice.given(env, var))
        state = ws.backend.read()
    except ReconError as exc:
        fail(exc)
    for address in sorted(state.resources):
        term.line(str(address))


@app.command("show")
def state_show(address: AddressArg, config: ConfigOpt = DEFAULT_CONFIG, env: EnvOpt = None, var: VarOpt = None,
               format: FormatOpt = Format.text) -> None:
    """Show one resource in state: its cloud id, outputs and last-applied attributes."""
    from .. import state_edits

    try:
        ws = Workspace.open(config, EnvChoice.given(env, var))
        found = state_edits.find(ws.backend.read(), address, where=ws.backend.describe())
    except ReconError as exc:
        fail(exc)
    entry = found.entry
    if format is Format.json:
        document = {"address": found.label, **({"index": found.index} if found.index is not None else {}),
                    **entry.to_json(), "outputs": found.outputs()}
        if found.index is not None:
            document.pop("attrs")
        term.write(json.dumps(document, indent=2) + "\n")
        return
    term.line(f"{found.label}  (id {entry.id})")
    for key, value in found.outputs().items():
        term.line(f"    {key} = {json.dumps(value)}")
    if found.index is None:
        term.line("  last applied:")
        for key, value in sorted(entry.attrs.items()):
            term.line(f"    {key} = {json.dumps(value)}")
        if entry.depends_on:
            term.line(f"  depends on: {', '.join(str(a) for a in entry.depends_on)}")
        for item in entry.deposed:
            term.line(f"  deposed (replaced, not yet deleted): {item['id']}")


@app.command("rm")
def state_rm(addresses: Annotated[list[str], typer.Argument(metavar="ADDRESS...", show_default=False,
                                                            help="What to forget, KIND.NAME.")],
             config: ConfigOpt = DEFAULT_CONFIG, env: EnvOpt = None, var: VarOpt = None,
             lock_timeout: LockTimeoutOpt = None) -> None:
    """Forget resources: they stay in the cloud as they are, and recon no longer manages them."""
    def forget(ws: Workspace, state: State) -> str:
        from .. import state_edits

        where = ws.backend.describe()
        found = [state_edits.find(state, text, where) for text in addresses]
        for item in found:
            state_edits.whole(item, where, "forget")
        gone = list(dict.fromkeys(item.address for item in found))
        state_edits.remove(state, gone)
        for address in gone:
            if address in ws.stack.resources:
                term.warn(f"{address} is still in {ws.stack.path.name}: the next apply finds it in the cloud by its "
                          "name and manages it again; remove its block to leave it unmanaged")
        return f"Removed {', '.join(str(a) for a in gone)} from state; the cloud is unchanged."

    _edit(config, EnvChoice.given(env, var), lock_timeout, "state rm", forget)


@app.command("mv")
def state_mv(source: Annotated[str, typer.Argument(metavar="FROM", show_default=False,
                                                   help="The address in state, KIND.NAME.")],
             dest: Annotated[str, typer.Argument(metavar="TO", show_default=False,
                                                 help="Its new address, KIND.NEW_NAME (a renamed block).")],
             config: ConfigOpt = DEFAULT_CONFIG, env: EnvOpt = None, var: VarOpt = None,
             lock_timeout: LockTimeoutOpt = None) -> None:
    """Move a resource to another address (a renamed block keeps its resource); the cloud is unchanged."""
    def move(ws: Workspace, state: State) -> str:
        from .. import state_edits

        where = ws.backend.describe()
        found = state_edits.find(state, source, where)
        state_edits.whole(found, where, "move")
        moved = state_edits.move(state, found.address, dest, where)
        problem = state_edits.file_disagrees(ws.stack, moved, state.resources[moved])
        if problem:
            term.warn(problem)
        if found.address in ws.stack.resources:
            term.warn(f"{ws.stack.path.name} still has the block {found.address}: rename it to {moved}, or the next "
                      f"plan makes {found.address} anew")
        return f"Moved {found.address} to {moved}; the cloud is unchanged."

    _edit(config, EnvChoice.given(env, var), lock_timeout, "state mv", move)


def _edit(config: Path, choice: EnvChoice, lock_timeout: float | None, operation: str,
          change: Callable[[Workspace, State], str]) -> None:
    """Read the state under its lock, change it, write it (serial + 1, the previous one kept as a backup)."""
    try:
        ws = Workspace.open(config, choice, warn=term.warn, lock_timeout=lock_timeout or 0.0)
        with ws.backend.lock(operation):
            state = ws.backend.read()
            done = change(ws, state)
            ws.backend.write(state)
    except ReconError as exc:
        fail(exc)
    term.line(f"{done} State serial {state.serial} written to {ws.backend.describe()}; the previous state is "
              "kept as its backup.")
