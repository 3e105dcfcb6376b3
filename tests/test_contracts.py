"""The contract every registered kind keeps, on the sandbox, through the real command line.

Each kind's folder kinds/<kind>/ has a ``contract.toml``:

- ``address``: the resource the contract is about; ``block``: a minimal file for it (TOML without
  ``[stack]``; files it names sit in the folder); ``update``: the same file with one change that
  apply makes (in place or by replacement); optional ``removed``: what is left of the file once the
  resource leaves it (default: nothing);
- ``[import]``: ``id`` (what ``recon import`` is given) and ``args`` (its options), or ``skip``
  (why the round trip cannot be made for this kind), for a kind that supports import;
- optional ``[absent]``: fixture cases (test_kinds.py) the kind cannot have, and why.

The contract: apply creates it → a plan shows no change (what was read back equals the file) →
the update plans a change of it → apply → no change → (import: a file and state that know nothing
of it import it, and that plans clean) → removed from the file, apply deletes it → state forgets it
and asking for it again plans to make it anew.

One sandbox serves the module (conftest's ``contract_env``); each kind works in its own stack. The
commands run in this process (typer's runner: the real CLI, minus the interpreter's start), talking
HTTP to the sandbox.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.resources import KINDS
from reconciler.resources.abilities import Importable
from reconciler.resources.base import Kind

KINDS_DIR = Path(__file__).parent / "kinds"


def supports_import(kind: Kind) -> bool:
    """Whether ``recon import`` can write a block for the kind's resources."""
    return isinstance(kind, Importable)


class Folder:
    """A folder with a desired file and its local state, and the recon commands run on it."""

    def __init__(self, path: Path, kind: str, fixtures: Path, env: dict[str, str]):
        """``fixtures``: the kind's folder, whose files (keys, cloud-init documents…) are copied in."""
        self.path, self.env = path, env
        path.mkdir(parents=True)
        for item in fixtures.iterdir():
            if item.suffix != ".json" and item.name != "contract.toml":
                (shutil.copytree if item.is_dir() else shutil.copy)(item, path / item.name)
        self.head = f'[stack]\nname = "contract-{kind.replace("_", "-")}"\n\n'

    def write(self, body: str) -> None:
        (self.path / "recon.toml").write_text(self.head + body)

    def recon(self, *args: str, code: int = 0) -> str:
        """Run ``recon ARGS`` on this folder's file; its standard output."""
        result = CliRunner().invoke(app, [*args, "--config", str(self.path / "recon.toml")], env=self.env)
        assert result.exit_code == code, f"recon {' '.join(args)}: exit {result.exit_code}\n{result.output}"
        return result.stdout

    def changes(self, code: int) -> dict[str, list[str]]:
        """The plan's actions by address (``code``: what --detailed-exitcode must say)."""
        document = json.loads(self.recon("plan", "--format", "json", "--detailed-exitcode", code=code))
        return {item["address"]: item["actions"] for item in document["resource_changes"]
                if item["actions"] != ["no-op"]}

    def state(self) -> dict:
        return json.loads(next((self.path / "state").glob("*.json")).read_text())["resources"]


def test_every_kind_has_a_contract() -> None:
    missing = [kind for kind in KINDS if not (KINDS_DIR / kind / "contract.toml").exists()]
    assert not missing, f"no tests/kinds/<kind>/contract.toml for {', '.join(missing)}"


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_kind_contract(kind: str, contract_env, tmp_path: Path) -> None:
    run_contract(kind, KINDS_DIR / kind, contract_env, tmp_path)


def run_contract(kind: str, fixtures: Path, env: dict[str, str], tmp_path: Path) -> None:
    """The contract of ``kind`` (registered), as ``fixtures``/contract.toml gives it."""
    spec = tomllib.loads((fixtures / "contract.toml").read_text())
    address, removed = spec["address"], spec.get("removed", "")
    folder = Folder(tmp_path / "managed", kind, fixtures, env)

    folder.write(spec["block"])
    folder.recon("validate")
    assert address in folder.changes(code=2)
    folder.recon("apply", "--auto-approve")
    assert address in folder.state()
    assert folder.changes(code=0) == {}, "what apply made does not read back as the file says"

    folder.write(spec["update"])
    assert set(folder.changes(code=2)) == {address}
    folder.recon("apply", "--auto-approve")
    assert folder.changes(code=0) == {}, "the update does not read back as the file says"

    imported = None
    if supports_import(KINDS[kind]):
        imported = import_round_trip(spec, fixtures, env, tmp_path / "imported")
    folder.write(removed)
    assert folder.changes(code=2) == {address: ["delete"]}
    folder.recon("apply", "--auto-approve")
    assert address not in folder.state()
    assert folder.changes(code=0) == {}
    if imported is not None:   # the block import wrote wants it back
        assert address in imported.changes(code=2)
    folder.write(spec["update"])
    assert address in folder.changes(code=2), "the deleted resource still reads back as the file says"


def import_round_trip(spec: dict, fixtures: Path, env: dict[str, str], path: Path) -> "Folder | None":
    """Import what the contract made into a file and state that know nothing of it: that plans clean."""
    how = spec.get("import")
    kind = spec["address"].split(".", 1)[0]
    assert how, f"{kind} supports import: its contract.toml needs [import] (id, args) or [import] skip"
    if "skip" in how:
        return None
    other = Folder(path, kind, fixtures, env)
    other.write("")
    other.recon("import", spec["address"], how["id"], *how.get("args", []))
    assert spec["address"] in other.state()
    assert other.changes(code=0) == {}, (path / "recon.toml").read_text()
    return other
