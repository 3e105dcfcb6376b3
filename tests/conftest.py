from __future__ import annotations

import itertools
import json
import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the e2e helpers module


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a whole story on the sandbox, ten seconds or more (each worker "
                                       "runs its share of them first; deselect with -m 'not slow')")
    _runner_uses_the_built_command()
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        from forkserver import ZYGOTES   # the xdist controller: one fork server of each for all its workers

        for zygote in ZYGOTES.values():
            zygote.share()


def pytest_collection_modifyitems(config, items):
    """Under xdist, each worker starts with its share of the modules that have slow tests.

    The scheduler hands each of the N workers one contiguous slice of the collection, then moves tests
    from the end of a long queue to a worker that has run out. A slow test near the end of a slice
    starts late and the whole run waits for it. So the modules with slow tests are dealt out, heaviest
    first, to the slice with the least slow work so far, and put at the slices' fronts, slow tests first,
    each module whole (its module-wide fixtures are then made once); the other tests fill the slices in
    their order. Every worker computes the same order (xdist requires it) from the worker count it is given."""
    def slow(item) -> bool:
        return item.get_closest_marker("slow") is not None

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(item.module.__name__, []).append(item)
    heavy = {name: sorted(group, key=lambda item: not slow(item))
             for name, group in modules.items() if any(map(slow, group))}
    if workers < 2 or not heavy:
        return
    fronts: list[list] = [[] for _ in range(workers)]
    load = [0] * workers
    for group in sorted(heavy.values(), key=lambda group: -sum(map(slow, group))):
        lightest = load.index(min(load))
        fronts[lightest] += group
        load[lightest] += sum(map(slow, group))
    rest = iter([item for item in items if item.module.__name__ not in heavy])
    ordered, left = [], len(items)
    for worker in range(workers):
        size = left // (workers - worker)   # the slice this worker is first sent (xdist's worksteal split)
        ordered += fronts[worker] + list(itertools.islice(rest, max(0, size - len(fronts[worker]))))
        left -= size
    ordered += list(rest)
    assert sorted(map(id, ordered)) == sorted(map(id, items))
    items[:] = ordered


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
    """With ``RECON_TEST_CPU_LOG=FILE``, each test's CPU in this process goes to FILE, with its worker and
    wall-clock start and end (its children's CPU is written there by the fork server): where the suite's
    time goes, and whether a worker sat idle at the end."""
    log = os.environ.get("RECON_TEST_CPU_LOG")
    started, began = time.process_time(), time.time()
    yield
    if log:
        with open(log, "a") as ledger:
            ledger.write(json.dumps({"test": item.nodeid, "module": "pytest", "worker": os.environ.get(
                "PYTEST_XDIST_WORKER", "-"), "cpu": round(time.process_time() - started, 3),
                "start": round(began, 2), "end": round(time.time(), 2)}) + "\n")


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
