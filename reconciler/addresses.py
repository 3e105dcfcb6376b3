"""Resource addresses (``KIND.NAME``) and references (``${KIND.NAME.ATTR}``).

A NAME may itself contain dots (property names do), so an address is split at its
first dot and a reference at its first and last dots.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Collection

REF_RE = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True, order=True)
class Address:
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}.{self.name}"

    @classmethod
    def parse(cls, text: str) -> "Address":
        kind, sep, name = text.partition(".")
        if not sep or not kind or not name:
            raise ValueError(f"{text!r} is not an address of the form KIND.NAME")
        return cls(kind, name)


@dataclass(frozen=True, order=True)
class SubAddress:
    """A resource, or one part of it (``docker_hosts.docker[1]``: the host at index 1), as
    ``--replace`` names it; the kind says what its parts are."""

    address: Address
    part: str | None = None

    def __str__(self) -> str:
        return str(self.address) if self.part is None else f"{self.address}[{self.part}]"

    @classmethod
    def parse(cls, text: str, known: "Collection[Address]") -> "SubAddress":
        """``KIND.NAME`` of ``known``, or ``KIND.NAME[PART]`` (a NAME of ``known`` then a part). Raises
        ValueError naming what is wrong."""
        address = Address.parse(text)
        if address in known or not text.endswith("]") or "[" not in text:
            return cls(address)
        base, _, part = text[:-1].rpartition("[")
        whole = Address.parse(base)
        if whole not in known or not part:
            return cls(address)
        return cls(whole, part)


@dataclass(frozen=True)
class Reference:
    """``${KIND.NAME.ATTR}``: the ATTR output of the resource KIND.NAME."""

    address: Address
    attr: str

    def __str__(self) -> str:
        return f"${{{self.address}.{self.attr}}}"

    @classmethod
    def parse(cls, inner: str) -> "Reference":
        kind, sep, rest = inner.partition(".")
        name, sep2, attr = rest.rpartition(".")
        if not (sep and sep2 and kind and name and attr):
            raise ValueError(f"${{{inner}}} is not a reference of the form ${{KIND.NAME.ATTR}}")
        return cls(Address(kind, name), attr)


def references_in(value: object) -> list[Reference]:
    """Every reference inside a (nested) value. Raises ValueError on a malformed one."""
    found: list[Reference] = []
    if isinstance(value, str):
        found.extend(Reference.parse(m.group(1)) for m in REF_RE.finditer(value))
        if "${" in REF_RE.sub("", value):
            raise ValueError("'${' without its closing '}': write references as ${KIND.NAME.ATTR}")
    elif isinstance(value, dict):
        for item in value.values():
            found.extend(references_in(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(references_in(item))
    return found


def is_whole_reference(value: object) -> bool:
    """True for a string that is exactly one ``${…}`` and nothing else."""
    return isinstance(value, str) and REF_RE.fullmatch(value) is not None
