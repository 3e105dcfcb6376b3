"""One contract for every state backend, run against local state (a folder) and remote state (the
sandbox's S3): reading, writing with a growing serial and a backup, refusing another stack's state,
an exclusive lock released however its context is left, and force-unlock of an abandoned lock.

Each backend is opened as a run opens it (``Workspace.open(...).backend`` on a desired file whose
[state] table names it). The S3 cases start a sandbox each, so each test checks several points.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_remote_state import BUCKET, STACK, objects, use_remote_state

from e2e import cli_env, client, copy_examples
from reconciler.addresses import Address
from reconciler.engine import Workspace
from reconciler.errors import LockError, StateError
from reconciler.state import Backend, Unlocked
from reconciler.state.model import Entry, State

STACK_NAME = "loadbalancer"   # [stack] name of the example file
STATE_KEY = "stacks/lb.json"  # the key use_remote_state sets
LB = Address("load_balancers", "web")
GROUP = Address("security_groups", "web")

#: Takes the lock of the desired file argv[1] names, says its id and exits without releasing it.
ABANDON = """
import os, sys
from reconciler.engine import Workspace
with Workspace.open(sys.argv[1]).backend.lock("apply") as held:
    print(held.id, flush=True)
    os._exit(0)
"""


@dataclass
class Store:
    """Where one test's state is kept, and how to open backends on it."""

    kind: str
    desired: Path
    env: dict[str, str]
    cloud_env: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def backend(self) -> Backend:
        """A backend on the state, opened as a run of its own opens it."""
        return Workspace.open(self.desired, env=self.env, warn=self.warnings.append).backend

    def backup(self, serial: int) -> State:
        """The backup of the state of ``serial``, from where this kind of backend keeps it."""
        if self.kind == "local":
            text = (self.desired.parent / "state" / f"{STACK_NAME}.json.backup").read_text()
        else:
            text = objects(self.cloud_env)[f"{STATE_KEY}.backup.{serial}"].decode()
        return State.loads(text, "backup")

    def abandon_lock(self) -> str:
        """The id of a lock taken by a process that exited without releasing it."""
        child = subprocess.run([sys.executable, "-c", ABANDON, str(self.desired)], env=self.env, text=True,
                               capture_output=True, timeout=300)
        assert child.returncode == 0, child.stderr
        return child.stdout.strip()


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path: Path) -> Store:
    work = copy_examples(tmp_path / "repo")
    if request.param == "local":
        return Store("local", work / STACK, cli_env({}))
    sandbox = request.getfixturevalue("sandbox")
    client(sandbox.env, "s3").create_bucket(Bucket=BUCKET)
    use_remote_state(work)
    return Store("s3", work / STACK, cli_env(sandbox.env), cloud_env=sandbox.env)


def test_state_round_trips_with_a_growing_serial_and_a_backup(store: Store) -> None:
    backend = store.backend()
    assert isinstance(backend, Backend)
    state = backend.read()
    assert (state.stack, state.serial, state.resources) == (STACK_NAME, 0, {})
    with backend.lock("apply"):
        state.resources = {LB: Entry(LB, "web-lb", {"listeners": [{"port": 80}]})}
        backend.write(state)
        assert state.serial == 1
        state.resources[GROUP] = Entry(GROUP, "sg-1", {"description": "web"}, depends_on=[LB])
        backend.write(state)
        assert state.serial == 2

    again = store.backend().read()
    assert (again.stack, again.lineage, again.serial) == (STACK_NAME, state.lineage, 2)
    assert again.resources == state.resources
    previous = store.backup(1)
    assert (previous.lineage, previous.serial, list(previous.resources)) == (state.lineage, 1, [LB])

    # A state of another stack where this one's is kept is refused, naming where it is.
    with backend.lock("apply"):
        backend.write(dataclasses.replace(state, stack="other"))
    with pytest.raises(StateError, match="belongs to stack 'other'") as refused:
        store.backend().read()
    assert refused.value.where == backend.describe()
    assert store.warnings == []


def test_the_lock_is_exclusive_and_released_however_its_context_is_left(store: Store) -> None:
    first, second = store.backend(), store.backend()
    with first.lock("apply") as held:
        assert held is not None and held.operation == "apply"
        first.check_held("changing the cloud")
        with pytest.raises(LockError, match="state is locked by") as refused:
            with second.lock("plan"):
                pytest.fail("a second run took a lock that is held")
        assert held.who in refused.value.message and held.id in refused.value.message
        assert refused.value.where == second.describe()
        first.check_held("saving the state")
        with Unlocked(second).lock("plan") as none:   # --lock=false: no lock, the same state
            assert none is None
            assert second.read().stack == STACK_NAME

    with pytest.raises(RuntimeError):
        with second.lock("apply"):   # released on leaving the context: taken at once
            raise RuntimeError("the apply failed")
    with first.lock("apply"):        # released when the context is left by an exception too
        pass
    with pytest.raises(LockError, match="state is not locked"):
        first.force_unlock(held.id)
    assert store.warnings == []      # no lock was left behind to be taken over


def test_force_unlock_frees_an_abandoned_lock_with_its_id_only(store: Store) -> None:
    lock_id = store.abandon_lock()
    backend = store.backend()
    with pytest.raises(LockError, match="does not match") as wrong:
        backend.force_unlock(f"not-{lock_id}")
    assert lock_id in wrong.value.message

    holder = backend.force_unlock(lock_id)   # the lock was still there
    assert (holder.id, holder.operation) == (lock_id, "apply")
    with pytest.raises(LockError, match="state is not locked"):
        backend.force_unlock(lock_id)
    with backend.lock("apply") as held:
        assert held is not None and held.id != lock_id
    assert store.warnings == []              # taken, not taken over
