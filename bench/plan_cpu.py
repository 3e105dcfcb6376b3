"""Benchmark: recon's own CPU for a plan, with the cloud's replies served instantly.

    python bench/plan_cpu.py [--sizes 100,1000,5000] [--runs 5] [--work DIR] [--profile DIR]
    python bench/plan_cpu.py --replay DIR [--sizes ...] [--runs 5] [--profile DIR]

The stack of each size is the one ``bench/plan_scale.py`` grows (mostly Docker host instances,
plus security groups, load balancers, properties, a key pair and an image lookup), made in one
sandbox cloud by ``recon apply``. For each size, one ``recon plan`` goes to the sandbox through a
loopback proxy that records every reply under its request (method, path, body); then the recorded
replies are served from a loopback server that answers at once (``bench/benchlib.py``), and
``recon plan --stats`` runs ``--runs`` times against it. The sandbox's own time (moto building the
replies) is then out of the figure: what is left is recon -- Python start-up, imports, parsing the
replies, normalizing, planning, rendering -- and the loopback server's few microseconds.

Printed per size: the calls of one plan, the median run's CPU (user + system seconds of the recon
process), wall time, recon's read and diff phases (``--stats``) and peak RSS. Each replayed plan
must say "No changes" and ask for nothing that was not recorded, else the benchmark stops.
``--profile DIR`` also writes a cProfile of one replayed plan per size to DIR (the main thread only:
the reads run in worker threads). With ``--work DIR`` the recorded replies are kept there
(``replies-N.pickle``, with the stack, state and the sandbox's variables), and ``--replay DIR`` plans
again against them without a sandbox: what to run after changing recon's reading or planning.

Target, checked and printed: at most 2 s of recon CPU for the 5,000-resource plan.
Bytecode caching is on for the runs (``benchlib.python_env``), as for an installed recon.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import CLOUD_VARIABLES, CountingProxy, ReplayServer, machine, python_env, recon, run, work_folder  # noqa: E402
from plan_scale import STACK, Composition, add_companions, parse_stats  # noqa: E402

from reconciler.sandbox import start_child  # noqa: E402

TARGET_CPU = 2.0
TARGET_SIZE = 5000
STATE = "state/scale.json"  # where the stack's local state is kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="stack sizes, growing")
    parser.add_argument("--runs", type=int, default=5, help="replayed plans per size (the median is reported)")
    parser.add_argument("--work", type=Path, help="keep the stack, state and sandbox here")
    parser.add_argument("--profile", type=Path, help="write a cProfile of one replayed plan per size here")
    parser.add_argument("--replay", type=Path, help="replay the replies an earlier --work DIR kept, no sandbox")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if sizes != sorted(sizes):
        parser.error("--sizes must grow: one stack is grown through them")
    if args.replay:
        print(f"machine: {machine()}")
        rows = []
        for size in sizes:
            saved = pickle.loads((args.replay / f"replies-{size}.pickle").read_bytes())
            (args.replay / STACK).write_text(saved["stack"])
            (args.replay / STATE).parent.mkdir(exist_ok=True)
            (args.replay / STATE).write_bytes(saved["state"])
            rows.append(replay(args, saved["replies"], saved["url"], recorded_cloud(saved["env"]), args.replay, size))
        return report(rows)
    with work_folder(args.work, "recon-bench-cpu-") as work:
        return bench(args, sizes, work)


def bench(args, sizes: list[int], work: Path) -> int:
    add_companions(work)
    print(f"machine: {machine()}")
    rows = []
    with start_child(work / "sandbox", timeout=60, lb_image_installed=True) as cloud:   # its stacks make load balancers
        direct = python_env() | cloud.env | {"RECON_WAIT_INTERVAL": "0.2"}
        for size in sizes:
            (work / STACK).write_text(Composition.of(size).toml())
            applied = recon("apply", "-c", STACK, "--auto-approve", env=direct, cwd=work)
            if applied.code != 0:
                raise SystemExit(f"apply at {size} failed:\n{applied.out[-3000:]}\n{applied.err[-3000:]}")
            replies = record(cloud, direct, work, size)
            if args.work:
                (work / f"replies-{size}.pickle").write_bytes(pickle.dumps(
                    {"replies": replies, "url": cloud.url, "env": direct, "stack": (work / STACK).read_text(),
                     "state": (work / STATE).read_bytes()}))
            rows.append(replay(args, replies, cloud.url, direct, work, size))
            print(f"  {size:>5} resources: apply {applied.seconds:.1f}s, replayed plan cpu {rows[-1]['cpu']:.2f}s",
                  flush=True)
        cloud.stop()
    return report(rows)


def recorded_cloud(recorded: dict[str, str]) -> dict[str, str]:
    """This process's environment with the recorded run's cloud variables: the replay runs the recon
    that is here now, not the one (or the ``PYTHONPATH``) the recording was made with."""
    return python_env() | {k: v for k, v in recorded.items() if k.startswith((*CLOUD_VARIABLES, "RECON_"))}


def report(rows: list[dict]) -> int:
    print(f"\n{'resources':>9} {'calls':>6} {'cpu s':>6} {'wall s':>7} {'read s':>7} {'diff s':>7} {'peak MiB':>9}")
    for row in rows:
        print(f"{row['size']:>9} {row['calls']:>6} {row['cpu']:>6.2f} {row['wall']:>7.2f} {row['read']:>7.2f} "
              f"{row['diff']:>7.3f} {row['peak']:>9.0f}")
    print(f"machine at the end: {machine()}")
    last = next((row for row in rows if row["size"] == TARGET_SIZE), None)
    if last is None:
        return 0
    met = last["cpu"] <= TARGET_CPU
    print(f"\ntarget:\n  [{'met' if met else 'MISSED'}] recon CPU for a {TARGET_SIZE}-resource plan with replayed "
          f"replies <= {TARGET_CPU:g}s: {last['cpu']:.2f}s")
    return 0 if met else 1


def record(cloud, direct: dict[str, str], work: Path, size: int):
    """The replies of one in-sync plan, by request."""
    proxy = CountingProxy(cloud.url, record=True)
    try:
        run = recon("plan", "-c", STACK, "--detailed-exitcode", env=direct | proxy.env(cloud.env, cloud.url),
                    cwd=work)
    finally:
        proxy.close()
    if run.code != 0:
        raise SystemExit(f"the plan at {size} is not clean (exit {run.code}):\n{run.out[-3000:]}\n{run.err[-3000:]}")
    return proxy.recorded


def replay(args, replies, url: str, direct: dict[str, str], work: Path, size: int) -> dict:
    server = ReplayServer(replies)
    env = direct | server.env(direct, url)
    try:
        runs = []
        for attempt in range(args.runs + 1):  # the first one warms the bytecode cache and the page cache
            plan = recon("plan", "-c", STACK, "--stats", env=env, cwd=work)
            if plan.code != 0 or "No changes" not in plan.out or server.misses:
                raise SystemExit(f"replayed plan at {size} failed (requests not recorded: {dict(server.misses)}):"
                                 f"\n{plan.out[-2000:]}\n{plan.err[-2000:]}")
            if attempt:
                runs.append(plan)
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            run([sys.executable, "-m", "cProfile", "-o", str(args.profile / f"plan-{size}.prof"), "-m",
                      "reconciler", "plan", "-c", STACK], env=env, cwd=work)
    finally:
        server.close()
    median = sorted(runs, key=lambda r: r.cpu)[len(runs) // 2]
    calls, phases, _ = parse_stats(median.err)
    return {"size": size, "calls": calls, "cpu": median.cpu, "wall": statistics.median(r.seconds for r in runs),
            "read": phases.get("read", 0.0), "diff": phases.get("diff", 0.0), "peak": median.peak_mib}


if __name__ == "__main__":
    sys.exit(main())
