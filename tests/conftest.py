from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the e2e helpers module


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a whole story on the sandbox (deselect with -m 'not slow')")
    _runner_uses_the_built_command()


def _runner_uses_the_built_command() -> None:
    """typer's test runner builds the click command from the app on every call (a tenth of a second
    each, for hundreds of calls); for recon's app it gets the one ``reconciler.cli.command()`` built,
    help texts kept as written exactly as ``recon`` runs it. Other apps (a test's own) are built as before."""
    import typer.testing

    from reconciler import cli

    build = typer.testing._get_command
    typer.testing._get_command = lambda app: cli.command() if app is cli.app else build(app)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """With ``RECON_TEST_CPU_LOG=FILE``, each test's CPU in this process goes to FILE (its children's
    is written there by the fork server): where the suite's time goes."""
    log = os.environ.get("RECON_TEST_CPU_LOG")
    started = time.process_time()
    yield
    if log:
        with open(log, "a") as ledger:
            ledger.write(json.dumps({"test": item.nodeid, "module": "pytest",
                                     "cpu": round(time.process_time() - started, 3)}) + "\n")


@pytest.fixture
def sandbox(tmp_path):
    """A fresh sandbox cloud in a child process, on a free loopback port."""
    from e2e import start_child

    with start_child(tmp_path / "sandbox") as cloud:
        yield cloud


@pytest.fixture
def installed_sandbox(tmp_path):
    """A fresh sandbox cloud as its administrator leaves it: the default load-balancer image installed
    (v1) and enabled, so that load balancers get worker VMs. A plain ``sandbox`` has no LB image and
    refuses every load balancer, as a cloud does before that install."""
    from e2e import start_child

    with start_child(tmp_path / "sandbox", lb_image_installed=True) as cloud:
        yield cloud


@pytest.fixture(scope="module")
def shared_sandbox(tmp_path_factory):
    """One sandbox cloud for a whole module, whose tests keep out of each other's way."""
    from e2e import start_child

    with start_child(tmp_path_factory.mktemp("sandbox")) as cloud:
        yield cloud


@pytest.fixture(scope="module")
def shared_installed_sandbox(tmp_path_factory):
    """``shared_sandbox`` with the default load-balancer image installed (see ``installed_sandbox``)."""
    from e2e import start_child

    with start_child(tmp_path_factory.mktemp("sandbox"), lb_image_installed=True) as cloud:
        yield cloud


@pytest.fixture
def contract_env(shared_installed_sandbox, monkeypatch):
    """The module's sandbox environment (the LB image installed: the contracts make load balancers),
    and no other cloud's variables in this process's, for commands run in this process (typer's runner)."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "EC2_", "EUCA", "S3_")):
            monkeypatch.delenv(name)
    for name, value in {"RECON_WAIT_INTERVAL": "0.05", "RECON_RETRY_INITIAL": "0.05", "RECON_RETRY_MAX": "0.2",
                        "NO_COLOR": "1"}.items():
        monkeypatch.setenv(name, value)
    return shared_installed_sandbox.env
