"""Record kind fixtures from the sandbox: ``python tests/kinds/record.py tests/kinds/KIND/CASE.json…``.

On one sandbox (one without an LB image for ``FRESH_KINDS``, one with it installed for the others),
for each fixture (in a copy of its folder) it applies the fixture's ``before`` (TOML, if any), then
plans its ``desired`` and applies that plan through a recording client. It writes back ``state``
(as ``before`` left it), ``live`` (the live read, kept to what the file, the state or the file's
text names; all a fixture that expects an ``error`` gets), ``expect`` (each actionable change's
address, actions, changed and replaced paths, replacements) and ``calls`` (every exchange with the
cloud, the sandbox's replies included; not for a ``plan_only`` fixture).
Then it deletes what it made and resets the properties it read.

Read the diff before committing it: a recorded fixture says what recon does today, which is not
always what it should.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from cloud_double import RecordingCloud, plain  # noqa: E402
from plan_fixtures import apply_plan  # noqa: E402
from reconciler.config import build  # noqa: E402
from reconciler.engine import Workspace  # noqa: E402
from reconciler.planner import make_plan  # noqa: E402
from reconciler.render.json_out import change_json  # noqa: E402
from reconciler.resources import KINDS  # noqa: E402
from reconciler.sandbox import start_child  # noqa: E402
from reconciler.state.model import State  # noqa: E402

EXPECTED = ("address", "actions", "changed_paths", "replace_paths", "replacements")


def workspace(path: Path, text: str, env: dict[str, str]) -> Workspace:
    """``text`` as the desired file ``path``, prepared as plan prepares it."""
    stack = build(tomllib.loads(text), text, path.with_suffix(".toml"))
    ws = Workspace(stack, env)
    return Workspace(ws.prepared(), env)


def kept(live: dict, ws: Workspace, state: State, texts: str) -> dict:
    """The live read, only what the file's blocks, the state's entries or the file's text name."""
    names: dict[str, set[str]] = {}
    for address, spec in ws.stack.resources.items():
        names.setdefault(address.kind, set()).add(str(KINDS[address.kind].live_name(address.name, spec.attrs)))
    for address, entry in state.resources.items():
        names.setdefault(address.kind, set()).add(entry.id)
    found = {kind: {name: attrs for name, attrs in sorted(items.items())
                    if name in names.get(kind, ()) or name in texts}
             for kind, items in live.items()}
    return {kind: items for kind, items in found.items() if items or kind in names}


def settle(path: Path, state: State, text: str, env: dict[str, str]) -> None:
    """Plan ``text`` against the cloud and ``state`` and apply it."""
    ws = workspace(path, text, env)
    outcomes = apply_plan(make_plan(ws.stack, ws.read_live(state), state), state, ws.stack, ws.cloud, env)
    assert all(o.status in ("done", "no-op") for o in outcomes), [(o.address, o.status, o.error) for o in outcomes]


def record_apply(fixture: dict, ws: Workspace, state: State, full: dict, env: dict[str, str]) -> None:
    """The fixture's plan from the kept live read, and the exchanges applying it makes."""
    plan = make_plan(ws.stack, fixture["live"], state)
    assert [change_json(c) for c in plan.actionable] == \
        [change_json(c) for c in make_plan(ws.stack, full, state).actionable], "the kept live read plans otherwise"
    fixture["expect"] = [{key: value for key, value in change_json(c).items()
                          if key in EXPECTED and (value or key in ("address", "actions"))}
                         for c in plan.actionable]
    cloud = RecordingCloud(ws.cloud)
    outcomes = apply_plan(plan, state, ws.stack, cloud, env)
    assert all(o.status in ("done", "no-op") for o in outcomes), [(o.address, o.status, o.error) for o in outcomes]
    if "plan_only" not in fixture:
        fixture["calls"] = cloud.made


def record(path: Path, env: dict[str, str], scratch: Path) -> None:
    """Record one fixture on the sandbox (working in a copy of its folder, in ``scratch``), and leave the
    sandbox as it found it."""
    fixture = json.loads(path.read_text())
    texts = fixture["desired"] + fixture.get("before", "")
    state = State(stack=tomllib.loads(fixture["desired"])["stack"]["name"])
    work = shutil.copytree(path.parent, scratch / f"{path.parent.name}-{path.stem}") / path.name
    ws = workspace(work, fixture["desired"], env)
    try:
        if fixture.get("before"):
            settle(work, state, fixture["before"], env)
        fixture["state"] = {str(address): {key: value for key, value in entry.to_json().items()
                                           if key not in ("kind", "name")}
                            for address, entry in sorted(state.resources.items())}
        full = ws.read_live(state)
        live = plain(kept(full, ws, state, texts))
        fixture["live"] = live
        if "error" not in fixture:   # (a plan refused: the live read is all it needs)
            record_apply(fixture, ws, state, full, env)
    finally:
        settle(work, state, f'[stack]\nname = "{state.stack}"\n', env)
        for name in fixture.get("live", {}).get("properties", {}):
            ws.cloud.modify_property(name, reset=True)
    path.write_text(json.dumps(fixture, indent=2, ensure_ascii=False) + "\n")
    print(f"{path}: {len(fixture.get('expect', []))} change(s), {len(fixture.get('calls', []))} call(s)", flush=True)


#: Kinds whose fixtures count the installed LB image versions: recorded on a cloud without any.
#: The others are recorded on a cloud with its default LB image installed, as an administrator's
#: is (a cloud without one refuses every load balancer).
FRESH_KINDS = frozenset({"lb_images"})


if __name__ == "__main__":
    os.environ.setdefault("RECON_WAIT_INTERVAL", "0.05")
    paths = [Path(name) for name in sys.argv[1:]]
    with tempfile.TemporaryDirectory() as scratch:
        for installed in (False, True):
            batch = [path for path in paths if (path.resolve().parent.name not in FRESH_KINDS) == installed]
            if not batch:
                continue
            folder = Path(scratch) / ("installed" if installed else "fresh")
            with start_child(folder, lb_image_installed=installed) as sandbox:
                for path in batch:
                    record(path, sandbox.env, Path(scratch))
