"""Plans from JSON fixtures, shared by the planner's fixtures (fixtures/planner/) and the kinds'
(kinds/<kind>/).

A fixture has ``desired`` (TOML text; files it names are read beside the fixture), ``live`` (kind →
cloud name → normalized attributes), optional ``state`` (address → ``id``, ``attrs``, optional
``depends_on`` and ``deposed``), ``partial`` (state's changes under way) and ``targets``, and either
``expect`` (the actionable changes in plan order, each compared on the fields it gives) or
``error``; optional ``forget`` (addresses dropped from state) and ``summary`` (the plan's counts).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from reconciler.addresses import Address
from reconciler.config import Stack, build
from reconciler.engine import Workspace
from reconciler.errors import PlanError
from reconciler.plan import Plan
from reconciler.planner import make_plan
from reconciler.render.json_out import change_json
from reconciler.state.model import Entry, State


def load_fixture(path: Path, *, prepare: bool = False) -> tuple[dict[str, Any], Stack, State, list[Address]]:
    """The fixture, its stack (``prepare``: with each kind's local work done, as plan does it), state, targets."""
    fixture = json.loads(path.read_text())
    text = fixture["desired"]
    stack = build(tomllib.loads(text), text, path.with_suffix(".toml"))
    if prepare:
        stack = Workspace(stack, {}).prepared()
    state = State(stack=stack.name)
    for address, entry in fixture.get("state", {}).items():
        addr = Address.parse(address)
        state.resources[addr] = Entry(addr, entry["id"], entry["attrs"],
                                      [Address.parse(a) for a in entry.get("depends_on", [])],
                                      entry.get("deposed", []))
    state.partial = {Address.parse(address): item for address, item in fixture.get("partial", {}).items()}
    targets = [Address.parse(t) for t in fixture.get("targets", [])]
    return fixture, stack, state, targets


def plan_fixture(path: Path, *, prepare: bool = False) -> tuple[dict[str, Any], Stack, State, Plan | None]:
    """The fixture's plan, checked against what it expects (None for a fixture that expects an error)."""
    fixture, stack, state, targets = load_fixture(path, prepare=prepare)
    if "error" in fixture:
        with pytest.raises(PlanError) as info:
            make_plan(stack, fixture["live"], state, targets=targets)
        assert fixture["error"] in str(info.value)
        return fixture, stack, state, None
    plan = make_plan(stack, fixture["live"], state, targets=targets)
    got = [change_json(c) | {"drift": c.drift} for c in plan.actionable]
    assert [g["address"] for g in got] == [e["address"] for e in fixture["expect"]]
    for expected, actual in zip(fixture["expect"], got):
        for key, value in expected.items():
            assert actual[key] == value, f"{expected['address']}.{key}"
    assert [str(a) for a in plan.forget] == fixture.get("forget", [])
    if "summary" in fixture:
        assert plan.summary() == fixture["summary"]
    return fixture, stack, state, plan


def apply_plan(plan: Plan, state: State, stack: Stack, cloud: Any, env: dict[str, str] | None = None) -> list:
    """Apply ``plan`` one change at a time (a fixed order) through ``cloud``; the outcomes.

    ``state`` is changed in place, as the applier records each change."""
    from reconciler.apply import Applier
    from reconciler.resources.base import CloudContext

    ctx = CloudContext(cloud, stack.name, stack.base_dir, env=env or {})
    return Applier(plan, state, lambda saved: None, ctx, parallelism=1).run()
