"""Saved plans: ``recon plan --out FILE`` and ``recon apply FILE``.

A plan file records what the plan was made from — recon's version, the stack, the
cloud and account (and whether ``--allow-other-cloud`` let it plan a state of another cloud),
the state's lineage and serial, the sha256 of the desired file and of every file it read, what
it was asked for beyond the file (``--target``, ``--replace``, ``--destroy``) —
and the plan itself as its (masked) JSON document. It holds no secret in clear text and
is written 0600.

``apply FILE`` refuses when any of those inputs moved. It then reads the cloud again and
plans; if that plan differs from the saved one (the cloud changed since the review) it
refuses too, naming the resources. Otherwise it applies: exactly the reviewed changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .config import Stack
from .errors import PlanError
from .identity import CloudIdentity
from .plan import Plan
from .redact import digest, redact
from .render.json_out import plan_document
from .atomic import write_atomic
from .state.model import State

FORMAT = 1


@dataclass(frozen=True)
class SavedPlan:
    path: Path
    data: dict[str, Any]

    @property
    def config(self) -> str:
        return self.data["config"]

    @property
    def env(self) -> str | None:
        """The environment of the file it was made for (``--env``), if the file has environments."""
        return self.data.get("env")

    @property
    def allow_other_cloud(self) -> bool:
        """Whether it was made with ``--allow-other-cloud`` (its review accepted the change of cloud)."""
        return bool(self.data.get("allow_other_cloud"))

    @property
    def request(self) -> Request:
        """What it was asked for (``--target``, ``--replace``, ``--destroy``): apply plans it again so."""
        made = self.data.get("request") or {}
        return Request(targets=tuple(made.get("targets", ())), replace=tuple(made.get("replace", ())),
                       destroy=bool(made.get("destroy")))


@dataclass(frozen=True)
class Request:
    """What a plan was asked for beyond the file: its ``--target`` and ``--replace`` addresses, and
    whether it destroys (``plan --destroy``)."""

    targets: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()
    destroy: bool = False


def inputs_of(stack: Stack) -> dict[str, str]:
    """The digests of what the plan was made from: the file, its companions, its vars' values."""
    values = {"vars": digest(stack.vars)} if stack.vars else {}
    return {stack.path.name: stack.digest, **stack.companions, **values}


def save(path: Path, plan: Plan, stack: Stack, state: State, config: str, *, allow_other_cloud: bool,
         request: Request = Request()) -> None:
    data = {
        "format": FORMAT,
        "recon_version": __version__,
        "stack": stack.name,
        "env": stack.env,
        "config": config,
        "cloud": plan.cloud.to_json() if plan.cloud else None,
        "allow_other_cloud": allow_other_cloud,
        "request": {"targets": list(request.targets), "replace": list(request.replace), "destroy": request.destroy},
        "lineage": state.lineage,
        "serial": state.serial,
        "inputs": inputs_of(stack),
        "plan": plan_document(plan),
    }
    write_atomic(path, redact(json.dumps(data, indent=2)) + "\n", mode=0o600)


def load(path: Path) -> SavedPlan:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError("plan file not found", where=str(path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanError(f"not a recon plan file ({exc})", where=str(path))
    if not isinstance(data, dict) or data.get("format") != FORMAT or "plan" not in data:
        raise PlanError("not a recon plan file (or one from an incompatible recon)", where=str(path))
    return SavedPlan(path, data)


def check_inputs(saved: SavedPlan, stack: Stack, state: State) -> None:
    """Refuse a plan whose stack, state or files moved since it was made."""
    data = saved.data
    moved = []
    if data["recon_version"] != __version__:
        moved.append(f"it was made by recon {data['recon_version']}, this is {__version__}")
    if data["stack"] != stack.name:
        moved.append(f"it is for stack {data['stack']!r}, the file is stack {stack.name!r}")
    if data["lineage"] != state.lineage and data["serial"] != 0:
        moved.append(f"the state was replaced (lineage {data['lineage']} is now {state.lineage})")
    elif data["serial"] != state.serial:
        moved.append(f"the state changed since the plan was made (serial {data['serial']} is now {state.serial}): "
                     "another apply ran")
    inputs = inputs_of(stack)
    for name in sorted(set(data["inputs"]) | set(inputs)):
        if data["inputs"].get(name) != inputs.get(name):
            moved.append(f"{name} changed since the plan was made" if name in inputs and name in data["inputs"]
                         else f"{name} is {'new' if name in inputs else 'no longer read'} since the plan was made")
    if moved:
        raise PlanError("refusing a stale plan: " + "; ".join(moved), where=str(saved.path),
                        hint="make a new plan with `recon plan --out FILE` and review it")


def check_cloud(saved: SavedPlan, current: CloudIdentity) -> None:
    """Refuse a plan made against another cloud or account than the one this run talks to."""
    made_for = CloudIdentity.from_json(saved.data["cloud"], str(saved.path)) if saved.data.get("cloud") else None
    difference = made_for.difference(current) if made_for is not None else None
    if difference is not None:
        raise PlanError(f"refusing the saved plan: it was made for cloud {made_for.describe()}, but this run talks "
                        f"to cloud {current.describe()}, {difference}", where=str(saved.path),
                        hint="source the eucarc of the cloud the plan was made for, or make a new plan here")


def check_same(saved: SavedPlan, plan: Plan) -> None:
    """Refuse when the cloud moved since the plan was made: the plan would not be the reviewed one."""
    def keyed(changes):
        return {f'{c["address"]} {c.get("deposed", "")}'.strip(): c for c in changes}

    before = keyed(saved.data["plan"]["resource_changes"])
    now = keyed(json.loads(redact(json.dumps(plan_document(plan))))["resource_changes"])   # as saved
    differing = sorted(a for a in set(before) | set(now) if before.get(a) != now.get(a))
    if differing:
        raise PlanError("refusing the saved plan: the cloud changed since it was made, so applying now would "
                        f"not do what was reviewed (differs for {', '.join(differing)})", where=str(saved.path),
                        hint="make a new plan with `recon plan --out FILE` and review it")
