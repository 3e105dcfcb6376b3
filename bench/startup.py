"""Benchmark: what a short recon command costs from start to exit.

    python bench/startup.py [--runs 20] [--example loadbalancer.toml]

Each command runs ``--runs`` times as a child process (the real CLI, ``python -m reconciler``),
the commands taking turns so that other load on the machine hits them alike; the median wall time
and the median CPU (user + system) are printed. Bytecode caching is on (``benchlib.python_env``)
and one run of each warms it first. For reference, the same for Python doing nothing
(``python -c pass``: the interpreter's own start-up) and for importing typer, the command line's
library, alone (``import typer``, and ``typer._adapters``: recent typers coerce every option through
pydantic, which recon avoids for its plain option types, ``reconciler/commands/coercion.py``).

- ``recon --version`` and ``recon version``: answered before the command line is imported
  (``reconciler/entry.py``);
- ``recon validate -c examples/EXAMPLE``: the file read, checked, and the ``[cloud]`` table resolved,
  with no cloud call; neither botocore, cryptography (unless the file has a key pair to check),
  pydantic nor rich is imported.

Targets, checked and printed: ``recon --version`` at most 0.15 s, ``recon validate`` at most 0.3 s
(wall, median).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import machine, python_env, run  # noqa: E402

TARGETS = {"recon --version": 0.15, "recon validate": 0.3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--example", default="loadbalancer.toml", help="a file in examples/ that validates")
    args = parser.parse_args()
    env = python_env() | {"PYTHONPATH": str(ROOT)}
    recon = [sys.executable, "-m", "reconciler"]
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import typer'": [sys.executable, "-c", "import typer"],
        "python -c 'import typer._adapters'": [sys.executable, "-c", "import typer._adapters"],
        "recon --version": recon + ["--version"],
        "recon version": recon + ["version"],
        "recon validate": recon + ["validate", "-c", args.example],
    }
    cwd = ROOT / "examples"
    print(f"machine: {machine()}")
    samples: dict[str, list] = {name: [] for name in commands}
    for attempt in range(args.runs + 1):
        for name, argv in commands.items():
            done = run(argv, env=env, cwd=cwd, timeout=120)
            if done.code != 0:
                raise SystemExit(f"{name} failed (exit {done.code}):\n{done.out[-2000:]}\n{done.err[-2000:]}")
            if attempt:  # the first round warms the bytecode and page caches
                samples[name].append(done)
    print(f"\n{'command':<36} {'wall s':>7} {'cpu s':>7} {'peak MiB':>9}")
    for name, runs in samples.items():
        print(f"{name:<36} {statistics.median(r.seconds for r in runs):>7.3f} "
              f"{statistics.median(r.cpu for r in runs):>7.3f} {max(r.peak_mib for r in runs):>9.0f}")
    print(f"machine at the end: {machine()}\n\ntargets:")
    ok = True
    for name, limit in TARGETS.items():
        wall = statistics.median(r.seconds for r in samples[name])
        met = wall <= limit
        ok &= met
        print(f"  [{'met' if met else 'MISSED'}] {name} <= {limit:g}s: {wall:.3f}s wall")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
