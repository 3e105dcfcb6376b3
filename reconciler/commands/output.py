"""``recon output [NAME]``: the outputs of what state holds (ids, DNS names, instance ids and addresses),
for people and for scripts. Read from the state only: no cloud call.

NAME is an address (``load_balancers.web``, ``docker_hosts.web[1]``) or one output of it
(``load_balancers.web.dns_name``); one output prints bare in text (a list one item per line), so
that ``$(recon output load_balancers.web.dns_name)`` is the name itself.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..engine import Workspace
from ..errors import ReconError, StateError
from .common import DEFAULT_CONFIG, ConfigOpt, EnvChoice, EnvOpt, Format, FormatOpt, VarOpt, fail, term

if TYPE_CHECKING:   # the rest is loaded where used: every command loads every command's module
    from ..state.model import State


def output(
    name: Annotated[Optional[str], typer.Argument(
        metavar="NAME", show_default=False,
        help="An address (KIND.NAME, KIND.NAME[N]) or one of its outputs (KIND.NAME.OUTPUT); default: all.")] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    env: EnvOpt = None,
    var: VarOpt = None,
    format: FormatOpt = Format.text,
) -> None:
    """Show the outputs of the resources in state: ids, DNS names, instance ids and addresses."""
    from .. import state_edits

    try:
        ws = Workspace.open(config, EnvChoice.given(env, var))
        state = ws.backend.read()
        where = ws.backend.describe()
        if name is None:
            values: Any = {str(a): state_edits.Found(a, e).outputs() for a, e in sorted(state.resources.items())}
        else:
            values = _named(state, name, where)
    except ReconError as exc:
        fail(exc)
    if format is Format.json:
        term.write(json.dumps(values, indent=2) + "\n")
    elif name is not None and not isinstance(values, dict):
        for line in values if isinstance(values, list) else [values]:
            term.line(line if isinstance(line, str) else json.dumps(line))
    else:
        outputs = {name: values} if name is not None else values
        for address, items in outputs.items():
            for key, value in items.items():
                term.line(f"{address}.{key} = {json.dumps(value)}")


def _named(state: State, name: str, where: str) -> Any:
    """The outputs of the address ``name`` names, or the one output it names."""
    from .. import state_edits

    try:
        return state_edits.find(state, name, where).outputs()
    except StateError as not_an_address:
        head, dot, attr = name.rpartition(".")
        if not dot or "[" in attr:
            raise
        try:
            found = state_edits.find(state, head, where)
        except StateError:
            raise not_an_address from None
    outputs = found.outputs()
    if attr not in outputs:
        raise StateError(f"{found.label} has no output {attr!r}", where=where,
                         hint=f"its outputs: {', '.join(outputs) or 'none'}")
    if outputs[attr] is None:
        raise StateError(f"{found.label}.{attr} has no value in state", where=where,
                         hint="apply first: it is known once the resource exists")
    return outputs[attr]
