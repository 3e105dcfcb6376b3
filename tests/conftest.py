from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the e2e helpers module


@pytest.fixture
def sandbox(tmp_path):
    """A fresh sandbox cloud in a child process, on a free loopback port."""
    from e2e import start_child

    with start_child(tmp_path / "sandbox") as cloud:
        yield cloud
