"""``recon import``: adopt a live resource into the file and the state.

Its options are the registry's: each kind declares what its import needs
(:attr:`~reconciler.resources.base.Kind.import_options`), and :func:`command` gives the
command one option per declaration, in the registry's order, its help naming the kind.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any, Callable, Mapping, Optional

import typer

from ..engine import Workspace
from ..errors import ReconError
from ..resources.base import Kind
from .common import DEFAULT_CONFIG, ConfigOpt, EnvChoice, EnvOpt, LockTimeoutOpt, VarOpt, fail, term


def run(address: str, cloud_id: str, config: Path, choice: EnvChoice, lock_timeout: float | None,
        options: Mapping[str, Any]) -> None:
    """Import, and say what was written where (a file with environments: its base blocks, which
    every environment shares)."""
    from ..importer import import_resource

    try:
        ws = Workspace.open(config, choice, warn=term.warn, lock_timeout=lock_timeout or 0.0)
        imported = import_resource(ws, address, cloud_id, options)
    except ReconError as exc:
        fail(exc)
    term.line(f"Imported {cloud_id} as {imported}: its block is in {config} and it is recorded in state. "
              "`recon plan` shows no change for it.")


def _cloud_id_help(kinds: Mapping[str, Kind]) -> str:
    notes = "; ".join(f"{name}: {kind.import_ids}" for name, kind in sorted(kinds.items()) if kind.import_ids)
    return f"What the cloud calls it: a name or an id{f' ({notes})' if notes else ''}."


def _kind_options(kinds: Mapping[str, Kind]) -> list[inspect.Parameter]:
    """One ``--flag`` per import option a kind declares."""
    params: dict[str, inspect.Parameter] = {}
    for kind in kinds.values():
        for key, option in kind.import_options.items():
            if key in params:
                raise ValueError(f"import option {key!r} of {kind.name} is declared by another kind too")
            params[key] = inspect.Parameter(
                key, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                annotation=Annotated[Optional[str], typer.Option(option.flag, help=f"{kind.name}: {option.help}")])
    return list(params.values())


def command(kinds: Mapping[str, Kind]) -> Callable[..., None]:
    """The ``import`` command with the options of ``kinds``; each reaches import_block in ``options``."""
    def param(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                                 annotation=annotation)

    def import_(address: str, cloud_id: str, config: Path = DEFAULT_CONFIG, env: str | None = None,
                var: list[str] | None = None, lock_timeout: float | None = None, **options: str | None) -> None:
        """Adopt a live resource: write its block into the file (comments kept) and record it in state."""
        run(address, cloud_id, config, EnvChoice.given(env, var), lock_timeout, options)

    import_.__signature__ = inspect.Signature([
        param("address", Annotated[str, typer.Argument(help="The address to give it, KIND.NAME.")]),
        param("cloud_id", Annotated[str, typer.Argument(help=_cloud_id_help(kinds))]),
        param("config", ConfigOpt, DEFAULT_CONFIG),
        param("env", EnvOpt, None),
        param("var", VarOpt, None),
        *_kind_options(kinds),
        param("lock_timeout", LockTimeoutOpt, None),
    ], return_annotation=None)
    return import_
