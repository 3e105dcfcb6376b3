"""Each kind from its JSON fixtures in kinds/<kind>/: desired + live + state → the expected plan,
then that plan applied against a scripted cloud → exactly the expected cloud calls.

A fixture is a planner fixture (see plan_fixtures.py) plus ``calls``: the exchanges applying its
plan makes, in order (see cloud_double.py), with the replies the sandbox gave when it was recorded;
or ``plan_only``: why its calls cannot be scripted (they differ on every run). ``before`` (TOML
applied first) is what kinds/record.py starts from to record it again. Files the desired file names
sit beside the fixture; the fixture runs in a copy of its folder (plans may cache local work there).
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

from cloud_double import ScriptedCloud
from plan_fixtures import apply_plan, plan_fixture
from reconciler.resources import KINDS

KINDS_DIR = Path(__file__).parent / "kinds"
CASES = sorted(KINDS_DIR.glob("*/*.json"))
#: The cases every kind has, unless its contract.toml's [absent] says why one cannot exist.
REQUIRED = ("create", "noop", "update", "replace", "delete")


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_kind_fixture(path: Path, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECON_WAIT_INTERVAL", "0")   # the script says when an instance runs
    check_fixture(path, tmp_path)


def check_fixture(path: Path, tmp_path: Path) -> None:
    """The fixture's plan, and exactly its cloud calls when that plan is applied."""
    folder = shutil.copytree(path.parent, tmp_path / path.parent.name)
    fixture, stack, state, plan = plan_fixture(folder / path.name, prepare=True)
    if plan is None or "plan_only" in fixture:
        assert "calls" not in fixture
        return
    cloud = ScriptedCloud(fixture["calls"])
    outcomes = apply_plan(plan, state, stack, cloud)
    cloud.check_done()
    assert [(str(o.address), o.status, o.error) for o in outcomes if o.status not in ("done", "no-op")] == []


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_has_its_cases(kind: str) -> None:
    folder = KINDS_DIR / kind
    have = {path.stem for path in folder.glob("*.json")}
    absent = tomllib.loads((folder / "contract.toml").read_text()).get("absent", {})
    missing = [case for case in REQUIRED if case not in have and case not in absent]
    assert not missing, f"tests/kinds/{kind} has no {', '.join(missing)} case (nor says why in contract.toml [absent])"
    assert not have & set(absent), f"tests/kinds/{kind}: a case listed as absent exists"


def test_a_call_the_fixture_does_not_list_fails(tmp_path: Path) -> None:
    fixture = json.loads((KINDS_DIR / "keypairs" / "create.json").read_text())
    fixture["calls"][0]["params"]["KeyName"] = "other"
    changed = tmp_path / "keypairs" / "create.json"
    changed.parent.mkdir()
    changed.write_text(json.dumps(fixture))
    shutil.copy(KINDS_DIR / "keypairs" / "a.pub", changed.parent)
    with pytest.raises(AssertionError, match="unexpected cloud call #1"):
        check_fixture(changed, tmp_path / "run")


def test_a_call_the_fixture_lists_and_the_kind_does_not_make_fails(tmp_path: Path) -> None:
    fixture = json.loads((KINDS_DIR / "keypairs" / "delete.json").read_text())
    fixture["calls"].append(fixture["calls"][0])
    changed = tmp_path / "keypairs" / "delete.json"
    changed.parent.mkdir()
    changed.write_text(json.dumps(fixture))
    with pytest.raises(AssertionError, match="1 expected cloud call"):
        check_fixture(changed, tmp_path / "run")
