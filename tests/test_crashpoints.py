"""The test-only crash points: SIGKILL right after the chosen call returned, never before."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from reconciler.crashpoints import CrashPoints
from reconciler.errors import ConfigError

CALLS = [("ec2", "DescribeImages"), ("ec2", "RunInstances"), ("ec2", "DescribeInstances"),
         ("ec2", "RunInstances"), ("elb", "RegisterInstancesWithLoadBalancer")]


def calls_survived(env: dict[str, str]) -> tuple[int, int]:
    """Make CALLS through the crash points in a child process: (exit code, calls that returned)."""
    script = (
        "import sys\n"
        "from reconciler.crashpoints import CrashPoints\n"
        f"points = CrashPoints.from_env({env!r})\n"
        f"for service, api in {CALLS!r}:\n"
        "    points.after(service, api)\n"
        "    print(api, flush=True)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    return proc.returncode, len(proc.stdout.split())


@pytest.mark.parametrize("env, survived", [
    ({}, 5),
    ({"RECON_CRASH_AFTER": "ec2.RunInstances"}, 1),
    ({"RECON_CRASH_AFTER": "ec2.RunInstances:2"}, 3),
    ({"RECON_CRASH_AFTER": "elb.DeleteLoadBalancer"}, 5),
    ({"RECON_CRASH_AFTER_MUTATIONS": "3"}, 4),
    ({"RECON_CRASH_AFTER_MUTATIONS": "2"}, 3),
])
def test_crash_after(env, survived) -> None:
    code, returned = calls_survived(env)
    assert returned == survived
    assert code == (0 if survived == len(CALLS) else -signal.SIGKILL)


@pytest.mark.parametrize("env", [{"RECON_CRASH_AFTER": "RunInstances"}, {"RECON_CRASH_AFTER": "ec2.RunInstances:0"},
                                 {"RECON_CRASH_AFTER_MUTATIONS": "0"}, {"RECON_CRASH_AFTER_MUTATIONS": "many"}])
def test_bad_settings_are_config_errors(env) -> None:
    with pytest.raises(ConfigError) as info:
        CrashPoints.from_env(env)
    assert next(iter(env)) in str(info.value)
