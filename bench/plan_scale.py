"""Benchmark: how `recon plan` scales with the size of a stack.

    python bench/plan_scale.py [--sizes 10,100,1000,5000] [--runs 3] [--work DIR]

One sandbox cloud (a child process, ``reconciler.sandbox.start_child``) holds one stack, ``scale``,
that grows through the sizes. A stack of N resources is mostly Docker host instances, plus security
groups (N/50), load balancers (N/100, each of the first ones registering one hosts block's
instances), three cloud properties, a key pair and an image lookup:

    N      properties keypairs images security_groups load_balancers docker_hosts (instances)
    5000   3          1        1      100             50             10 blocks, 4845 instances

Every instance counts as one resource (each has its own address, ``docker_hosts.hB[i]``).

How the stack gets into the cloud: by recon itself. For each size the file is rewritten and
``recon apply --auto-approve`` makes the difference (the 5,000 step launches about 3,900 instances
through RunInstances, one per index, with recon's own tags and ClientTokens). That is the honest way
-- the cloud holds exactly what recon made and the state is recon's own -- and with the sandbox's
O(1) tag lookup it takes about a minute. A ``recon plan --detailed-exitcode`` then has to say "no
changes" (exit 0), else the benchmark stops: a plan that is not in sync would time something else.

Then ``recon plan --stats`` runs ``--runs`` times (a subprocess, the real CLI); the run with the
median wall time is reported:

- calls: HTTP requests recon sent (``--stats``); "fixed": the calls minus the extra pages of
  paginated operations (DescribeInstances, 100 reservations a page in moto; DescribeSecurityGroups,
  DescribeLoadBalancers) and batches (ELB DescribeTags takes 20 names a call) beyond the smallest
  size's -- what grows with anything but pagination. Operations whose count changes are listed;
- read s / diff s: recon's own phase timers (``--stats``);
- total s: wall time of the whole command, Python start-up included; cpu s: the user + system CPU
  seconds of the recon process (the rest of the wall time is waiting for the cloud);
- peak MiB: the recon process's peak RSS (wait4).

Targets, checked and printed: fixed calls the same at every size, only paginated operations growing; diff under 10% of the plan's wall
time at the largest size; wall time growing no faster than linearly (each step's time ratio at most
its size ratio). Most of the read time is the sandbox (moto) answering DescribeInstances, 100
instances a page; the figures are for the sandbox, not for a real Eucalyptus front end.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import Run, machine, python_env, recon, work_folder  # noqa: E402

from reconciler.sandbox import start_child  # noqa: E402

EXAMPLES = ROOT / "examples"
ZONE = "ViciousLiesAndDangerousRumors"
STACK = "scale.toml"
HOSTS_PER_BLOCK = 500
#: Operations whose repeated calls are pages (or batches the API limits), not per-resource calls.
BATCHED = {"elb.DescribeTags"}


@dataclass
class Composition:
    size: int
    properties: int = 3
    keypairs: int = 1
    images: int = 1
    security_groups: int = 0
    load_balancers: int = 0
    blocks: list[int] = field(default_factory=list)  # instances per docker_hosts block

    @classmethod
    def of(cls, size: int) -> "Composition":
        comp = cls(size, security_groups=max(1, size // 50), load_balancers=max(1, size // 100))
        hosts = size - comp.properties - comp.keypairs - comp.images - comp.security_groups - comp.load_balancers
        if hosts < 1:
            raise SystemExit(f"size {size} is too small for the stack's fixed part")
        count = math.ceil(hosts / HOSTS_PER_BLOCK)
        comp.blocks = [hosts // count + (1 if i < hosts % count else 0) for i in range(count)]
        return comp

    @property
    def instances(self) -> int:
        return sum(self.blocks)

    def toml(self) -> str:
        out = ['[stack]\nname = "scale"\n\n[cloud]\neucalyptus_version = "4.0"\n',
               "[properties]",
               '"loadbalancing.loadbalancer_vm_keyname" = "${keypairs.scale.name}"',
               '"loadbalancing.loadbalancer_instance_type" = "m1.medium"',
               '"loadbalancing.loadbalancer_num_vm" = 1\n',
               '[keypairs.scale]\npublic_key_file = "keys/docker-admin.pub"\n',
               '[images.rootfs]\nname = "ubuntu-raring-docker-rootfs"\n']
        for g in range(self.security_groups):
            out.append(f'[security_groups.sg{g}]\ndescription = "scale group {g}"\ningress = [\n'
                       '  { protocol = "tcp", ports = "22", cidr = "0.0.0.0/0" },\n'
                       f'  {{ protocol = "tcp", ports = "{8000 + g}", cidr = "10.0.0.0/8" }},\n]\n')
        for b in range(self.load_balancers):
            out.append(f'[load_balancers.lb{b}]\nzones = ["{ZONE}"]\n'
                       'listeners = [{ lb_port = 80, protocol = "HTTP", instance_port = 80, instance_protocol = "HTTP" }]\n'
                       'health_check = { target = "HTTP:80/", interval = 30, timeout = 5, healthy_threshold = 2, '
                       'unhealthy_threshold = 3 }')
            if b < len(self.blocks):
                out.append(f'instances = "${{docker_hosts.h{b}.instance_ids}}"')
            out.append("")
        for b, count in enumerate(self.blocks):
            out.append(f'[docker_hosts.h{b}]\nimage = "${{images.rootfs.id}}"\ninstance_type = "m1.small"\n'
                       f'key_name = "${{keypairs.scale.name}}"\nzone = "{ZONE}"\n'
                       f'security_groups = ["${{security_groups.sg0.name}}"]\ncount = {count}\n'
                       'cloud_init = "cloud-init.yaml"\n')
        return "\n".join(out)


def run_recon(env: dict[str, str], cwd: Path, *args: str, timeout: float = 1800) -> Run:
    """The real CLI in a child process; its wall time, CPU and peak RSS (wait4)."""
    return recon(*args, env=env, cwd=cwd, timeout=timeout)


_STATS = re.compile(r"^stats: (\d+) cloud calls \((\d+) retried\); (.*)$", re.M)
_OPERATION = re.compile(r"^stats:\s+(\S+\.\S+) (\d+)$", re.M)


def parse_stats(err: str) -> tuple[int, dict[str, float], dict[str, int]]:
    match = _STATS.search(err)
    if not match:
        raise SystemExit(f"no --stats line in:\n{err[-2000:]}")
    phases = {name: float(seconds[:-1]) for name, seconds in
              (part.rsplit(" ", 1) for part in match.group(3).split(", ") if part)}
    return int(match.group(1)), phases, {op: int(n) for op, n in _OPERATION.findall(err)}


def paginated_operations() -> set[str]:
    """``service.ApiName`` of every operation botocore paginates, for the services recon reads."""
    import botocore.session

    session = botocore.session.get_session()
    found = set()
    for service in ("ec2", "elb", "s3"):
        client = session.create_client(service, region_name="eucalyptus", aws_access_key_id="x",
                                       aws_secret_access_key="y")
        for method, api in client.meta.method_to_api_mapping.items():
            if client.can_paginate(method):
                found.add(f"{service}.{api}")
    return found


@dataclass
class Row:
    size: int
    comp: Composition
    calls: int
    fixed: int
    read: float
    diff: float
    total: float
    cpu: float
    peak_mib: float
    setup: float
    operations: dict[str, int]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000,5000", help="stack sizes, growing")
    parser.add_argument("--runs", type=int, default=3, help="timed plans per size (the median is reported)")
    parser.add_argument("--work", type=Path, help="keep the stack, state and sandbox here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if sizes != sorted(sizes):
        parser.error("--sizes must grow: one stack is grown through them")

    with work_folder(args.work, "recon-bench-scale-") as work:
        return run(args, sizes, work)


def add_companions(work: Path) -> None:
    """The files a Composition stack names: its key and its cloud-init document."""
    (work / "keys").mkdir(exist_ok=True)
    shutil.copy(EXAMPLES / "keys" / "docker-admin.pub", work / "keys" / "docker-admin.pub")
    shutil.copy(EXAMPLES / "cloud-init-docker.yaml", work / "cloud-init.yaml")


def run(args, sizes: list[int], work: Path) -> int:
    add_companions(work)
    paginated = paginated_operations() | BATCHED
    print(f"machine: {machine()}")
    if args.work:
        print(f"work folder: {work}")
    rows: list[Row] = []
    bench_started = time.perf_counter()
    with start_child(work / "sandbox", timeout=60, lb_image_installed=True) as cloud:   # its stacks make load balancers
        env = python_env() | cloud.env | {"RECON_WAIT_INTERVAL": "0.2"}
        for size in sizes:
            comp = Composition.of(size)
            (work / STACK).write_text(comp.toml())
            applied = run_recon(env, work, "apply", "-c", STACK, "--auto-approve")
            if applied.code != 0:
                raise SystemExit(f"apply at {size} failed:\n{applied.out[-3000:]}\n{applied.err[-3000:]}")
            check = run_recon(env, work, "plan", "-c", STACK, "--detailed-exitcode")
            if check.code != 0:
                raise SystemExit(f"the plan at {size} is not clean (exit {check.code}):\n{check.out[-3000:]}"
                                 f"\n{check.err[-3000:]}")
            runs = []
            for _ in range(args.runs):
                run = run_recon(env, work, "plan", "-c", STACK, "--stats")
                if run.code != 0 or "No changes" not in run.out:
                    raise SystemExit(f"plan at {size} failed or found changes:\n{run.out[-2000:]}\n{run.err[-2000:]}")
                runs.append(run)
            run = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
            calls, phases, operations = parse_stats(run.err)
            base = rows[0].operations if rows else operations
            fixed = calls - sum(n - base.get(op, 0) for op, n in operations.items() if op in paginated)
            rows.append(Row(size, comp, calls, fixed, phases.get("read", 0.0), phases.get("diff", 0.0),
                            run.seconds, run.cpu, run.peak_mib, applied.seconds, operations))
            print(f"  {size:>5} resources ({comp.instances} instances in {len(comp.blocks)} blocks, "
                  f"{comp.security_groups} groups, {comp.load_balancers} load balancers): apply {applied.seconds:.1f}s, "
                  f"plan {statistics.median(r.seconds for r in runs):.2f}s", flush=True)
        cloud.stop()

    print()
    print(f"{'resources':>9} {'calls':>6} {'fixed':>6} {'read s':>7} {'diff s':>7} {'total s':>8} {'cpu s':>6} "
          f"{'peak MiB':>9}")
    for row in rows:
        print(f"{row.size:>9} {row.calls:>6} {row.fixed:>6} {row.read:>7.2f} {row.diff:>7.3f} {row.total:>8.2f} "
              f"{row.cpu:>6.2f} {row.peak_mib:>9.0f}")
    last = rows[-1]
    print(f"\ncalls at {last.size}: " + ", ".join(f"{op} {n}" for op, n in sorted(last.operations.items())))
    grown = sorted({op for row in rows for op, n in row.operations.items() if n != rows[0].operations.get(op)})
    for op in grown:
        kind = "paginated" if op in paginated and op not in BATCHED else "batched" if op in BATCHED else "PER RESOURCE"
        print(f"  {op} ({kind}): " + " -> ".join(str(row.operations.get(op, 0)) for row in rows))

    print("\ntargets:")
    ok = True
    same = len({row.fixed for row in rows}) == 1 and all(op in paginated for op in grown)
    ok &= same
    print(f"  [{'met' if same else 'MISSED'}] calls independent of the resource count apart from pagination: "
          f"calls other than extra pages {sorted({row.fixed for row in rows})}, growing only in "
          f"{', '.join(grown) or 'nothing'}")
    share = last.diff / last.total if last.total else 0
    ok &= share < 0.10
    print(f"  [{'met' if share < 0.10 else 'MISSED'}] diff under 10% of plan time at {last.size}: "
          f"{last.diff:.3f}s of {last.total:.2f}s = {share:.1%}")
    linear = True
    for before, after in zip(rows, rows[1:]):
        time_ratio, size_ratio = after.total / before.total, after.size / before.size
        step_ok = time_ratio <= size_ratio
        linear &= step_ok
        print(f"  [{'met' if step_ok else 'MISSED'}] {before.size} -> {after.size}: time x{time_ratio:.2f} "
              f"for size x{size_ratio:.0f}")
    ok &= linear
    print(f"  [{'met' if linear else 'MISSED'}] total growing no faster than linearly")
    print(f"\nwhole benchmark: {time.perf_counter() - bench_started:.0f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
