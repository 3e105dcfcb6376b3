"""The planner from JSON fixtures: desired file + live + state → expected changes.

The fixtures in fixtures/planner/ are described in plan_fixtures.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plan_fixtures import plan_fixture

FIXTURES = Path(__file__).parent / "fixtures" / "planner"


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_planner_fixture(path: Path) -> None:
    plan_fixture(path)


def test_fixtures_exist() -> None:
    assert len(list(FIXTURES.glob("*.json"))) >= 20
