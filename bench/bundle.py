"""Benchmark: recon's bundler against ``tar | gzip -6 | openssl enc -aes-128-cbc | split -b 10M``.

    python bench/bundle.py [--image PATH] [--size-mib 1024] [--sparse-gib 4] [--runs 2] [--work DIR]

Without ``--image`` it makes a test disk image of ``--size-mib`` (default 1 GiB) laid out like the
load-balancer image: an MBR, and an ext4 partition at sector 2048 filled by ``mkfs.ext4 -d`` with
about 45% real files copied from this host's /usr (programs, libraries, text: the bulk of a Linux
root file system), 10% incompressible bytes (a seeded pseudo-random file, standing in for
compressed packages), and free space (zeros) for the rest. Host files differ between machines, so
the figures are for this machine's /usr; pass ``--image`` to bench a real image. First, unless
``--sparse-gib 0``, a sparse image (an MBR and an empty ext4 file system, nearly all holes) of
``--sparse-gib`` GiB (default 4) is benched the same way: recon reads its holes as holes.

Both sides read the same file, compress at the same level (6, gzip's default; recon stores the
blocks that do not compress), encrypt with AES-128-CBC and write 10 MiB part files into a folder. Runs alternate (pipeline, recon, ...) so
that other load on the machine hits both alike; the best run of each is reported, with its CPU
time (user + system, of all the pipeline's processes), which other load changes less than wall time. recon's bundler
runs in a child process whose peak RSS is read with wait4 (started by benchlib's launcher, not by this
process). Afterwards recon's parts are decrypted with openssl and checked: exactly one gzip member (and ``gzip -t`` passes), and the tar stream's
SHA1 is the bundle's image digest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import run  # noqa: E402

from reconciler.bundle.writer import GZIP_LEVEL, BundleKey, DirectorySink, bundle_image  # noqa: E402
from reconciler.imagebuild.disk import SECTOR, find_tool  # noqa: E402
from reconciler.imagebuild.testimage import PARTITION_START, mbr_sector  # noqa: E402

MIB = 1 << 20
HOST_TREES = ("/usr/bin", "/usr/lib", "/usr/share", "/usr/libexec", "/usr/sbin")


def _stage_host_files(root: Path, budget: int) -> int:
    """Copy (or hard-link) regular files from the host's /usr into ``root`` until ``budget`` bytes."""
    total = 0
    for tree in HOST_TREES:
        for folder, dirs, files in os.walk(tree):
            dirs.sort()
            for name in sorted(files):
                source = Path(folder) / name
                if source.is_symlink() or not source.is_file():
                    continue
                size = source.stat().st_size
                if size > 64 * MIB or total + size > budget:
                    continue
                target = root / source.relative_to("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(source, target)
                except OSError:
                    try:
                        shutil.copyfile(source, target)
                    except OSError:
                        continue
                total += size
                if total >= budget - MIB:
                    return total
    return total


def make_image(path: Path, size_mib: int) -> str:
    """Write the benchmark disk image; a line that says what is in it."""
    fs_bytes = (size_mib - 1) * MIB
    with tempfile.TemporaryDirectory(prefix="recon-bench-stage-", dir=path.parent) as tmp:
        root = Path(tmp)
        files = _stage_host_files(root / "files", int(fs_bytes * 0.45))
        noise = int(fs_bytes * 0.10)
        generator = random.Random(4)
        with open(root / "noise.bin", "wb") as f:
            for _ in range(noise // MIB):
                f.write(generator.randbytes(MIB))
        path.unlink(missing_ok=True)
        subprocess.run([find_tool("mkfs.ext4", "e2fsprogs"), "-q", "-F", "-t", "ext4",
                        "-E", f"offset={PARTITION_START * SECTOR}", "-d", str(root), str(path), f"{size_mib - 1}M"],
                       check=True, capture_output=True)
    with open(path, "r+b") as f:
        f.write(mbr_sector(PARTITION_START, fs_bytes // SECTOR))
    return (f"{size_mib} MiB disk image: MBR + ext4 at sector 2048 with {files / MIB:.0f} MiB of host files "
            f"from /usr, {noise / MIB:.0f} MiB pseudo-random bytes, the rest free space")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_pipeline(image: Path, out: Path, key: BundleKey) -> tuple[float, float]:
    """(seconds, CPU seconds) taken by the shell pipeline, writing parts into ``out``."""
    out.mkdir()
    script = (f'tar -C "$1" -cf - "$2" | gzip -{GZIP_LEVEL} | '
              f'openssl enc -aes-128-cbc -K {key.key.hex()} -iv {key.iv.hex()} | split -b 10M -d - "$3/image.part."')
    start, cpu = time.perf_counter(), children_cpu()
    subprocess.run(["bash", "-o", "pipefail", "-c", script, "bench", str(image.parent), image.name, str(out)],
                   check=True)
    return time.perf_counter() - start, children_cpu() - cpu


def run_recon(image: Path, out: Path) -> tuple[float, float, int, dict]:
    """(seconds, CPU seconds, peak RSS in bytes, the child's report) for recon's bundler in a child process."""
    done = run([sys.executable, __file__, "--child", str(image), str(out)], env=dict(os.environ), cwd=Path.cwd())
    if done.code != 0:
        raise SystemExit(f"recon's bundler failed with exit status {done.code}:\n{done.err[-2000:]}")
    return done.seconds, done.cpu, done.peak_kib * 1024, json.loads(done.out)


def child(image: Path, out: Path) -> None:
    key = BundleKey(bytes(range(16)), bytes(range(16, 32)))
    bundle = bundle_image(image, "image", key, DirectorySink(out))
    print(json.dumps({"digest": bundle.digest, "bundled_size": bundle.bundled_size, "parts": len(bundle.parts),
                      "key": key.key.hex(), "iv": key.iv.hex()}))


def check_recon_output(out: Path, report: dict) -> str:
    """Decrypt recon's parts with openssl; check one gzip member, gzip -t and the image digest."""
    parts = sorted(out.glob("image.part.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
    decrypt = f'cat "$@" | openssl enc -d -aes-128-cbc -K {report["key"]} -iv {report["iv"]}'
    subprocess.run(["bash", "-o", "pipefail", "-c", decrypt + " | gzip -t", "check", *map(str, parts)], check=True)
    reader = subprocess.Popen(["bash", "-o", "pipefail", "-c", decrypt, "check", *map(str, parts)],
                              stdout=subprocess.PIPE)
    assert reader.stdout is not None
    gunzip, sha1, trailing = zlib.decompressobj(16 + zlib.MAX_WBITS), hashlib.sha1(), 0
    while chunk := reader.stdout.read(MIB):
        if gunzip.eof:
            trailing += len(chunk)
            continue
        data = chunk
        while data:
            sha1.update(gunzip.decompress(data, 16 * MIB))
            data = gunzip.unconsumed_tail
        trailing += len(gunzip.unused_data)
    if reader.wait() != 0 or not gunzip.eof or trailing:
        raise SystemExit("recon's output is not exactly one complete gzip member")
    if sha1.hexdigest() != report["digest"]:
        raise SystemExit("recon's tar stream does not match its image digest")
    return "one gzip member (gzip -t passes), tar SHA1 = image digest"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    tools = [subprocess.run(command, capture_output=True, text=True).stdout.splitlines()[0]
             for command in (["gzip", "--version"], ["openssl", "version"])]
    return (f"{os.cpu_count()} cores, {cpu}; Python {platform.python_version()}, zlib {zlib.ZLIB_RUNTIME_VERSION}, "
            + ", ".join(tools))


def make_sparse_image(path: Path, size_gib: int) -> str:
    """A ``size_gib`` disk image that is nearly all holes: an MBR and an empty ext4 file system."""
    size = size_gib << 30
    path.unlink(missing_ok=True)
    subprocess.run([find_tool("mkfs.ext4", "e2fsprogs"), "-q", "-F", "-t", "ext4",
                    "-E", f"offset={PARTITION_START * SECTOR}", str(path), f"{(size >> 20) - 1}M"],
                   check=True, capture_output=True)
    with open(path, "r+b") as f:
        f.truncate(size)
        f.write(mbr_sector(PARTITION_START, (size - MIB) // SECTOR))
    allocated = os.stat(path).st_blocks * 512
    return f"{size_gib} GiB sparse disk image: MBR + empty ext4, {allocated / MIB:.0f} MiB allocated"


def bench(image: Path, described: str, work: Path, runs: int, target: str) -> None:
    """Alternate runs of the pipeline and recon on ``image``; print the best of each and check recon's output."""
    size = image.stat().st_size
    print(f"\nimage:    {described}", flush=True)
    key = BundleKey(bytes(range(16)), bytes(range(16, 32)))
    pipeline_times, recon_times, peaks, pipeline_cpu, recon_cpu = [], [], [], [], []
    for run in range(runs):
        shutil.rmtree(work / "pipeline", ignore_errors=True)
        shutil.rmtree(work / "recon", ignore_errors=True)
        seconds, cpu = run_pipeline(image, work / "pipeline", key)
        pipeline_times.append(seconds)
        pipeline_cpu.append(cpu)
        seconds, cpu, peak, report = run_recon(image, work / "recon")
        recon_times.append(seconds)
        recon_cpu.append(cpu)
        peaks.append(peak)
        print(f"run {run + 1}: pipeline {pipeline_times[-1]:.1f} s ({pipeline_cpu[-1]:.1f} s CPU), "
              f"recon {seconds:.1f} s ({cpu:.1f} s CPU); load average {os.getloadavg()[0]:.1f}", flush=True)
    pipeline_bytes = sum(p.stat().st_size for p in (work / "pipeline").iterdir())
    best_pipeline, best_recon = min(pipeline_times), min(recon_times)
    print(f"pipeline: tar | gzip -{GZIP_LEVEL} | openssl enc -aes-128-cbc | split -b 10M: {best_pipeline:.1f} s, "
          f"{size / MIB / best_pipeline:.1f} MiB/s, {min(pipeline_cpu):.1f} s CPU, "
          f"{pipeline_bytes / MIB:.1f} MiB of parts")
    print(f"recon:    bundle_image (level {GZIP_LEVEL}, {os.cpu_count()} deflate threads): {best_recon:.2f} s, "
          f"{size / MIB / best_recon:.1f} MiB/s, {min(recon_cpu):.1f} s CPU, {report['bundled_size'] / MIB:.1f} MiB in "
          f"{report['parts']} parts, peak RSS {max(peaks) / MIB:.0f} MiB")
    print(f"ratio:    recon is {best_pipeline / best_recon:.2f}x the pipeline's throughput (target: {target})")
    print(f"check:    {check_recon_output(work / 'recon', report)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, help="bench this image instead of making one")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--sparse-gib", type=int, default=4, help="also bench a sparse image this big (0: not)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)

    work = Path(tempfile.mkdtemp(prefix="recon-bench-", dir=args.work))
    try:
        print(f"machine:  {machine()}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
        if args.sparse_gib:
            sparse = work / "sparse.img"
            bench(sparse, make_sparse_image(sparse, args.sparse_gib), work, args.runs, "recon within 5 s")
            sparse.unlink()
        if args.image:
            image, described = args.image.resolve(), f"{args.image} ({args.image.stat().st_size / MIB:.0f} MiB)"
        else:
            image = work / "lb.img"
            started = time.perf_counter()
            described = make_image(image, args.size_mib)
            described += f" (made in {time.perf_counter() - started:.0f} s)"
        bench(image, described, work, args.runs, ">= 2x, peak RSS <= 150 MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
