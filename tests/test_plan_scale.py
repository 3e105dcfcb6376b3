"""No step of reading and planning grows faster than the stack: counts at 1,000 and 5,000 blocks.

The stack is security groups, each with a CIDR rule and every tenth with a rule from the group
before it (a reference, so the blocks are ordered). The cloud is a scripted one (cloud_double.py)
whose one DescribeSecurityGroups reply holds every group as the file asks for it, so the plan has
nothing to do. Counted, never timed: the cloud calls of the read (one, whatever the size), the
Python function calls of the read and of the plan (cProfile's count, which is deterministic), and
the passes made over the stack's blocks. Five times the blocks may cost at most a little over five
times the function calls, and the same number of passes.
"""

from __future__ import annotations

import cProfile
import dataclasses
import pstats
import tomllib
from pathlib import Path

from cloud_double import ScriptedCloud
from reconciler.config import build
from reconciler.planner import make_plan
from reconciler.resources import KINDS
from reconciler.resources.base import CloudContext
from reconciler.state.model import State

SIZES = (1000, 5000)
SLACK = 1.15  # over the size ratio: what a linear step may add (longer names, deeper sorts)


def stack_text(n: int) -> str:
    out = ['[stack]\nname = "scale"\n']
    for i in range(n):
        rules = [f'{{ protocol = "tcp", ports = "{1000 + i % 5000}", cidr = "10.0.0.0/8" }}']
        if i % 10 == 9:
            rules.append(f'{{ protocol = "tcp", ports = "22", group = "${{security_groups.g{i - 1}.name}}" }}')
        out.append(f'[security_groups.g{i}]\ndescription = "group {i}"\ningress = [{", ".join(rules)}]\n')
    return "\n".join(out)


def described(n: int) -> list[dict]:
    """DescribeSecurityGroups' groups for the stack, as botocore gives them."""
    groups = []
    for i in range(n):
        permissions = [{"IpProtocol": "tcp", "FromPort": 1000 + i % 5000, "ToPort": 1000 + i % 5000,
                        "IpRanges": [{"CidrIp": "10.0.0.0/8"}], "UserIdGroupPairs": []}]
        if i % 10 == 9:
            permissions.append({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [],
                                "UserIdGroupPairs": [{"GroupId": f"sg-{i - 1:08x}", "UserId": "000000000001"}]})
        groups.append({"GroupName": f"g{i}", "GroupId": f"sg-{i:08x}", "Description": f"group {i}",
                       "IpPermissions": permissions,
                       "Tags": [{"Key": "recon:stack", "Value": "scale"},
                                {"Key": "recon:address", "Value": f"security_groups.g{i}"}]})
    return groups


class CountingBlocks(dict):
    """The stack's blocks, counting the passes made over all of them."""

    passes = 0

    def __iter__(self):
        CountingBlocks.passes += 1
        return super().__iter__()

    def keys(self):
        CountingBlocks.passes += 1
        return super().keys()

    def items(self):
        CountingBlocks.passes += 1
        return super().items()

    def values(self):
        CountingBlocks.passes += 1
        return super().values()


def function_calls(profile: cProfile.Profile) -> int:
    return pstats.Stats(profile).total_calls


def read_and_plan(n: int, tmp_path: Path) -> dict[str, int]:
    text = stack_text(n)
    built = build(tomllib.loads(text), text, tmp_path / f"scale{n}.toml")
    stack = dataclasses.replace(built, resources=CountingBlocks(built.resources))
    cloud = ScriptedCloud([{"call": "ec2.describe_security_groups", "params": {},
                            "reply": {"SecurityGroups": described(n)}}])
    ctx = CloudContext(cloud=cloud, stack="scale", base_dir=tmp_path)
    wanted = {address.name: spec.attrs for address, spec in built.resources.items()}

    reading = cProfile.Profile()
    live = {"security_groups": reading.runcall(KINDS["security_groups"].read, ctx, wanted)}
    cloud.check_done()
    CountingBlocks.passes = 0
    planning = cProfile.Profile()
    plan = planning.runcall(make_plan, stack, live, State(stack="scale"))
    assert len(plan.changes) == n and not plan.actionable, [str(c.address) for c in plan.actionable[:3]]
    stats = pstats.Stats(planning).stats
    compared = sum(calls[1] for (file, _, name), calls in stats.items()
                   if name == "changed_paths" and file.endswith("diff.py"))
    return {"cloud calls": len(cloud.made), "read calls": function_calls(reading),
            "plan calls": function_calls(planning), "passes": CountingBlocks.passes, "compared": compared}


def test_reading_and_planning_grow_linearly(tmp_path: Path) -> None:
    small, large = (read_and_plan(n, tmp_path) for n in SIZES)
    ratio = SIZES[1] / SIZES[0]
    assert small["cloud calls"] == large["cloud calls"] == 1
    assert (small["compared"], large["compared"]) == SIZES  # one comparison a block
    assert large["passes"] == small["passes"], (small, large)
    for counted in ("read calls", "plan calls"):
        assert large[counted] <= small[counted] * ratio * SLACK, (counted, small, large)
