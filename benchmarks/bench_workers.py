"""Benchmark: the whole quick book built cold with ``--workers 1`` and with ``--workers 2``.

Run from the repository root::

    .venv/bin/python benchmarks/bench_workers.py [--profile quick] [--workers 1 2] [--only NAME ...]

Each worker count gets its own fresh copy of the files git tracks (no results, no cache, no
built book), and ``ghost-optima build --profile P --workers N`` runs there from cold: every
notebook and every replication of the profile (``profiles.yml`` settings) as tasks, then the
book. Printed side by side: wall seconds of each build, the sum of the tasks' own seconds (from
provenance), the speed-up over the first count, and whether the recorded numbers (values,
claims, parameters, seeds, threads) are identical, as they must be. The builds run one after
the other, so they do not compete with each other; on a machine shared with other work the
ratio is only as steady as the machine (the cores are printed, compare within one run).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ghost_optima.book.build.bench import tracked_copy

ROOT = Path(__file__).resolve().parents[1]


def recorded(root: Path) -> dict:
    """Every claim notebook's numbers, without where, when and how fast it ran. A result that
    records no claim (the performance chapter, whose numbers are timings) is left out: timings
    differ from run to run by nature, the science must not."""
    found = {}
    for path in sorted((root / "results").rglob("[0-9]*.json")):
        record = json.loads(path.read_text())
        if not record.get("claims"):
            continue
        provenance = record.pop("provenance")
        found[path.relative_to(root).as_posix()] = {
            "values": record.get("values"),
            "claims": record.get("claims"),
            **{k: provenance.get(k) for k in ("parameters", "seeds", "threads", "replication")},
        }
    return found


def task_seconds(root: Path) -> float:
    return sum(
        json.loads(p.read_text())["provenance"]["wall_seconds"]
        for p in (root / "results").rglob("[0-9]*.json")
    )


def build(root: Path, profile: str, workers: int, only: list[str]) -> float:
    command = [sys.executable, "-m", "ghost_optima.book.build.cli", "--root", str(root), "build"]
    command += ["--profile", profile, "--workers", str(workers)]
    command += ["--only", *only] if only else []
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"--workers {workers}: build failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="+", default=[], help="only these notebooks (faster)")
    args = parser.parse_args()
    print(f"profile {args.profile}, {os.cpu_count()} cores; cold builds of fresh copies")
    print(f"{'workers':>8} {'wall s':>9} {'tasks s':>9} {'speed-up':>9}  identical numbers")
    first, reference = None, None
    with tempfile.TemporaryDirectory(prefix="ghost-optima-bench-workers-") as scratch:
        roots = {workers: Path(scratch) / f"workers-{workers}" for workers in args.workers}
        for root in roots.values():  # every copy before any build: the same sources for all
            tracked_copy(ROOT, root)
        for workers, root in roots.items():
            seconds = build(root, args.profile, workers, args.only)
            numbers = recorded(root)
            first = first or seconds
            reference = reference or numbers
            differ = sorted(
                k for k in reference.keys() | numbers.keys() if reference.get(k) != numbers.get(k)
            )
            same = "yes" if not differ else "NO: " + ", ".join(differ)
            print(
                f"{workers:>8} {seconds:>9.1f} {task_seconds(root):>9.1f} "
                f"{first / seconds:>8.2f}x  {same}",
                flush=True,
            )


if __name__ == "__main__":
    main()
