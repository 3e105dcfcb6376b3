"""Benchmark: `recon apply` of 200 independent changes, one at a time and ten at a time.

    python bench/apply_parallel.py [--latency 0.05] [--groups 120] [--keypairs 80] [--parallelism 1,10]

The stack is 200 resources that depend on nothing: 120 security groups (each made with
CreateSecurityGroup, CreateTags and AuthorizeSecurityGroupIngress) and 80 key pairs (ImportKeyPair).
For each ``--parallelism`` a fresh sandbox cloud is started (``reconciler.sandbox.start_child``) behind
the test suite's fault proxy (``tests/faultproxy.py``) configured with no faults and a fixed
``--latency`` per request, as a cloud across a network would add; then ``recon apply --auto-approve
--parallelism N --stats`` (the real CLI, a subprocess) makes the 200 changes. Printed per run: the
wall time of the command, recon's own apply phase (``--stats``), the cloud calls; then the speed-up
of the apply phase. Each run is checked: 200 resources in the cloud, each once, and a second plan
with nothing to do.

Why ten workers do not give ten times: the sandbox is one Python process (moto) that answers one
request at a time, and on a small machine it shares the cores with recon and the proxy; a security
group is three calls in a row. recon's own share is small: state saves are group commits (changes
finishing together are written by one save), so the fsyncs do not serialize the workers.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the fault proxy lives with the tests that use it most

from faultproxy import FaultProxy  # noqa: E402

from reconciler.demo import plain_client  # noqa: E402
from reconciler.sandbox import start_child  # noqa: E402

STACK = "parallel.toml"
PUBLIC_KEY = (ROOT / "examples" / "keys" / "docker-admin.pub").read_text().strip()


def stack(groups: int, keypairs: int) -> str:
    out = ['[stack]\nname = "parallel"\n\n[cloud]\neucalyptus_version = "4.0"\n']
    for g in range(groups):
        out.append(f'[security_groups.g{g:03d}]\ndescription = "parallel bench {g}"\n'
                   f'ingress = [{{ protocol = "tcp", ports = "{10000 + g}", cidr = "10.0.0.0/8" }}]\n')
    for k in range(keypairs):
        out.append(f'[keypairs.k{k:03d}]\npublic_key = "{PUBLIC_KEY}"\n')
    return "\n".join(out)


def recon(env: dict[str, str], cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=1800)
    return proc, time.perf_counter() - started


def one_run(parallelism: int, args, base: Path) -> dict:
    work = base / f"p{parallelism}"
    work.mkdir(parents=True)
    (work / STACK).write_text(stack(args.groups, args.keypairs))
    with start_child(work / "sandbox", timeout=60) as cloud:
        proxy = FaultProxy(cloud.url, latency=args.latency)
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EC2_", "EUCA", "S3_"))}
            env.update(proxy.env(cloud.env))
            env["NO_COLOR"] = "1"
            proc, seconds = recon(env, work, "apply", "-c", STACK, "--auto-approve", "--parallelism",
                                  str(parallelism), "--stats")
            if proc.returncode != 0:
                raise SystemExit(f"apply --parallelism {parallelism} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            stats = re.search(r"stats: (\d+) cloud calls \((\d+) retried\); (.*)", proc.stderr)
            phases = dict(part.rsplit(" ", 1) for part in stats.group(3).split(", "))
            apply_phase = float(phases["apply"].rstrip("s"))
            requests = sum(proxy.requests.values())
        finally:
            proxy.close()
        # Checked straight against the cloud, without the latency.
        groups = Counter(g["GroupName"] for g in plain_client(cloud.env, "ec2").describe_security_groups()
                         ["SecurityGroups"] if g["GroupName"].startswith("g"))
        keys = Counter(k["KeyName"] for k in plain_client(cloud.env, "ec2").describe_key_pairs()["KeyPairs"])
        if len(groups) != args.groups or set(groups.values()) != {1} or len(keys) != args.keypairs:
            raise SystemExit(f"after --parallelism {parallelism}: {len(groups)} groups, {len(keys)} key pairs")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EC2_", "EUCA", "S3_"))}
        env.update(cloud.env)
        again, _ = recon(env, work, "plan", "-c", STACK, "--detailed-exitcode")
        if again.returncode != 0:
            raise SystemExit(f"after --parallelism {parallelism} the plan is not clean:\n{again.stdout[-2000:]}")
        cloud.stop()
    return {"parallelism": parallelism, "wall": seconds, "apply": apply_phase, "calls": int(stats.group(1)),
            "requests": requests}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every request")
    parser.add_argument("--groups", type=int, default=120)
    parser.add_argument("--keypairs", type=int, default=80)
    parser.add_argument("--parallelism", default="1,10")
    args = parser.parse_args()
    levels = [int(p) for p in args.parallelism.split(",")]
    changes = args.groups + args.keypairs
    print(f"{changes} independent changes ({args.groups} security groups, {args.keypairs} key pairs), "
          f"{args.latency * 1000:.0f} ms added to every request")
    with tempfile.TemporaryDirectory(prefix="recon-bench-parallel-") as base:
        rows = [one_run(level, args, Path(base)) for level in levels]
    print()
    print(f"{'parallelism':>11} {'calls':>6} {'apply s':>8} {'wall s':>7} {'speed-up':>9}")
    for row in rows:
        print(f"{row['parallelism']:>11} {row['calls']:>6} {row['apply']:>8.2f} {row['wall']:>7.2f} "
              f"{rows[0]['apply'] / row['apply']:>8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
