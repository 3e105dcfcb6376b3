from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the e2e helpers module


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a whole story on the sandbox (deselect with -m 'not slow')")


@pytest.fixture
def sandbox(tmp_path):
    """A fresh sandbox cloud in a child process, on a free loopback port."""
    from reconciler.sandbox import start_child

    with start_child(tmp_path / "sandbox") as cloud:
        yield cloud
