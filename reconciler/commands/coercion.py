"""Option values converted without pydantic, as typer would convert them.

Recent typers coerce every option's value through a pydantic ``TypeAdapter`` built on first use: importing
pydantic and building the adapters costs a short command more than everything else it does. recon's
options have a few plain types (str, bool, Path, list[str], enums, a bounded int, a parser function); for those,
a value is converted here exactly as typer's adapter converts it. A value this does not take as it is (an
int written "+5", a choice not in the list, a value the parser refuses) goes to typer's own coercion, which
converts it or reports it: the messages stay typer's. Typers that coerce through click's types have none of
this, and :func:`install` leaves them alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional, get_origin

#: An int the way typer's adapter surely reads it the same (pydantic also takes "+5", "05", "5_0", " 5").
PLAIN_INT = re.compile(r"0|-?[1-9][0-9]{0,17}")


class NotPlain(Exception):
    """The value is not one this module converts: typer's coercion has it."""


def _as_str(value: Any, info, param, ctx) -> str:
    if type(value) is not str:
        raise NotPlain
    return value


def _as_bool(value: Any, info, param, ctx) -> bool:
    if type(value) is not bool:
        raise NotPlain
    return value


def _as_str_list(value: Any, info, param, ctx) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(type(item) is str for item in value):
        raise NotPlain
    return list(value)


def _as_int(value: Any, info, param, ctx) -> int:
    if info.clamp:
        raise NotPlain
    if isinstance(value, str) and PLAIN_INT.fullmatch(value):
        value = int(value)
    if type(value) is not int or (info.min is not None and value < info.min) or \
            (info.max is not None and value > info.max):
        raise NotPlain
    return value


def _converter(annotation: Any, info) -> Optional[Callable]:
    """How to convert a value of ``annotation`` here, or None: typer's coercion does it all."""
    from typer import _param_types

    if info.parser is not None:
        return (lambda value, info, param, ctx: info.parser(value)) if get_origin(annotation) is None else None
    if annotation in (str, int, bool, list[str]):
        return {str: _as_str, int: _as_int, bool: _as_bool, list[str]: _as_str_list}[annotation]
    if _param_types.lenient_issubclass(annotation, Enum):
        return lambda value, info, param, ctx: _param_types.coerce_cli_choice(
            value, choices=list(annotation), case_sensitive=info.case_sensitive, ctx=ctx)
    if annotation is Path and info.path_type is None and _param_types.routes_to_path(annotation, info):
        return _as_path
    return None


def _as_path(value: Any, info, param, ctx) -> Any:
    from typer import _param_types

    if type(value) is str:
        value = Path(value)   # what pydantic makes of a str for a Path
    if not isinstance(value, Path):
        raise NotPlain
    return _param_types.coerce_cli_path(value, info, path_type=Path, param=param, ctx=ctx)


def install() -> None:
    """Have typer's parameters convert plain values here (typers with pydantic coercion only)."""
    try:
        from typer import _coercion
        from typer.core import _TyperParameter
    except ImportError:
        return

    @dataclass(frozen=True)
    class PlainFirst(_coercion.RuntimeParam):
        """A plain value converted here; any other by typer's own runtime parameter, built then."""

        descriptor: Any = None
        convert: Callable = None

        def _coerce_value(self, value: Any, param, ctx) -> Any:
            try:
                return self.convert(value, self.parameter_info, param, ctx)
            except Exception:   # noqa: BLE001 -- typer's coercion converts it or says what is wrong
                return _coercion.build_runtime_param(self.descriptor)._coerce_value(value, param=param, ctx=ctx)

    def get_runtime_param(self):
        if self._runtime_param is None:
            descriptor = self.type_descriptor
            convert = None if descriptor.file_annotation is not None else \
                _converter(descriptor.annotation, descriptor.parameter_info)
            self._runtime_param = _coercion.build_runtime_param(descriptor) if convert is None else \
                PlainFirst(descriptor.parameter_info, descriptor.annotation, descriptor, convert)
        return self._runtime_param

    _TyperParameter.get_runtime_param = get_runtime_param
