"""The desired-state file's dependency graph checked: references, ``depends_on`` and cycles.

A resource follows what it references (``${KIND.NAME.ATTR}``), what it lists in ``depends_on``
and the blocks its literal names match (names.py). :func:`check_references` records a problem
for every reference or ``depends_on`` that names nothing in the file (with the nearest match),
and, when there is none, for a cycle among them.
"""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter
from typing import TYPE_CHECKING, Mapping

from .addresses import Address, Reference
from .resources import KINDS
from .schema import Problems, nearest
from .toml_lines import quote_key

if TYPE_CHECKING:
    from .config import ResourceSpec


def check_references(resources: Mapping[Address, ResourceSpec], problems: Problems) -> None:
    """Every reference and depends_on names a resource of this file, and they form no cycle."""
    graph = {address: _edges(address, spec, resources, problems) for address, spec in resources.items()}
    if not problems:
        _check_cycles(graph, resources, problems)


def _edges(address: Address, spec: ResourceSpec, resources: Mapping[Address, ResourceSpec],
           problems: Problems) -> set[Address]:
    """The resources this one follows: its valid references, depends_on and literal names."""
    key = f"{address.kind}.{quote_key(address.name)}"
    edges: set[Address] = set()
    for ref in spec.references():
        problem = _reference_problem(ref, address, resources)
        if problem is not None:
            problems.add(key, *problem)
        else:
            edges.add(ref.address)
    for dep in spec.depends_on:
        if dep not in resources:
            problems.add(f"{key}.depends_on", f"{dep} is not in this file")
        else:
            edges.add(dep)
    edges.update(target for named in spec.names for target in named.targets)
    return edges


def _reference_problem(ref: Reference, address: Address, resources: Mapping[Address, ResourceSpec]
                       ) -> tuple[str, str | None] | None:
    """What is wrong with a reference made by ``address`` (message and hint), if anything."""
    target = ref.address
    if target not in resources:
        kind = KINDS.get(target.kind)
        known = [str(a) for a in resources if a.kind == target.kind]
        guess = nearest(str(target), known) if kind else nearest(target.kind, list(KINDS))
        return (f"{ref} refers to {target}, which is not in this file",
                f"did you mean {guess!r}?" if guess else None)
    kind = KINDS[target.kind]
    if ref.attr not in kind.outputs:
        guess = nearest(ref.attr, list(kind.outputs))
        return (f"{ref}: {target.kind} has no attribute {ref.attr!r}",
                f"did you mean {guess!r}?" if guess else
                f"attributes: {', '.join(sorted(kind.outputs)) or 'none'}")
    if target == address:
        return (f"{ref} refers to the resource itself", None)
    return None


def _check_cycles(graph: Mapping[Address, set[Address]], resources: Mapping[Address, ResourceSpec],
                  problems: Problems) -> None:
    """A cycle among the resources, naming the literal names that take part in it."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        nodes = exc.args[1]  # each one is depended on by the next
        cycle = " -> ".join(str(a) for a in nodes)
        literal = [named.describe(user) + f" names {used}" for used, user in zip(nodes, nodes[1:])
                   for named in resources[user].names if used in named.targets]
        problems.add(str(nodes[0]), f"reference cycle: {cycle}"
                     + (f" ({'; '.join(literal)}: a literal name orders like a reference)" if literal else ""))
