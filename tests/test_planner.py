"""The planner from JSON fixtures: desired file + live + state → expected changes.

Each fixture in fixtures/planner/ has ``desired`` (TOML text), ``live`` (kind → cloud
name → normalized attributes), optional ``state`` (entries, with ``deposed``), ``partial`` (state's
changes under way) and ``targets``, and either
``expect`` (the actionable changes, fields compared when given) or ``error``; optional
``summary`` (the plan's add/change/destroy counts).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.addresses import Address
from reconciler.config import build
from reconciler.errors import PlanError
from reconciler.planner import make_plan
from reconciler.render.json_out import change_json
from reconciler.state.model import Entry, State

import tomllib

FIXTURES = Path(__file__).parent / "fixtures" / "planner"


def load_fixture(path: Path):
    fixture = json.loads(path.read_text())
    text = fixture["desired"]
    stack = build(tomllib.loads(text), text, path.with_suffix(".toml"))
    state = State(stack=stack.name)
    for address, entry in fixture.get("state", {}).items():
        addr = Address.parse(address)
        state.resources[addr] = Entry(addr, entry["id"], entry["attrs"],
                                      [Address.parse(a) for a in entry.get("depends_on", [])],
                                      entry.get("deposed", []))
    state.partial = {Address.parse(address): item for address, item in fixture.get("partial", {}).items()}
    targets = [Address.parse(t) for t in fixture.get("targets", [])]
    return fixture, stack, state, targets


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_planner_fixture(path: Path) -> None:
    fixture, stack, state, targets = load_fixture(path)
    if "error" in fixture:
        with pytest.raises(PlanError) as info:
            make_plan(stack, fixture["live"], state, targets=targets)
        assert fixture["error"] in str(info.value)
        return
    plan = make_plan(stack, fixture["live"], state, targets=targets)
    got = [change_json(c) | {"drift": c.drift} for c in plan.actionable]
    assert [g["address"] for g in got] == [e["address"] for e in fixture["expect"]]
    for expected, actual in zip(fixture["expect"], got):
        for key, value in expected.items():
            assert actual[key] == value, f"{expected['address']}.{key}"
    assert [str(a) for a in plan.forget] == fixture.get("forget", [])
    if "summary" in fixture:
        assert plan.summary() == fixture["summary"]


def test_fixtures_exist() -> None:
    assert len(list(FIXTURES.glob("*.json"))) >= 20
