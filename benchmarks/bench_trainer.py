"""Benchmark: throughput of the ensemble trainer against the machine's fp32 matmul (not a test).

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_trainer.py [--threads 2 1] [--repeats 5]

What runs. ``train_ensemble`` on MNIST-1D (4000 training signals of 40 samples, 10 classes),
64 seeds at once, one tanh hidden layer of width 64, 256 and 512, minibatches of 64, SGD with
momentum 0.9 (and Adam at width 256), one epoch per run (63 steps). The time is the trainer's
own ``step_seconds`` (the minibatch loop, without the per-epoch evaluation).

How FLOPs are counted. Forward ``2 N fan_in fan_out`` per layer and the backward twice that,
so ``6 E N sum_l n_{l-1} n_l`` per epoch for ``E`` members and ``N`` examples: the usual
convention. The trainer does not form the input's own gradient, so it executes
``1 - n_0 n_1 / (3 sum_l n_{l-1} n_l)`` of that (0.73 here).

The peak. Back-to-back fp32 ``1024 x 1024`` matmuls (``torch.mm``) in the same process and
thread count, in a window as long as the trainer run just before it, so that both see the same
load; "%peak" is the trainer's GFLOP/s over the matmul's, per second of wall clock, and "%cpu"
the same per second of process CPU time (which time slicing by other processes leaves alone;
with 2 threads it includes the time a thread spins waiting for the other). Every figure is the
best of ``--repeats``.

The previous implementation (autograd through ``ensemble_forward``, per-tensor optimizer
updates) is ``src/ghost_optima/train.py`` at commit ``PREVIOUS``, loaded from git into a
temporary module and run on the same data, seeds and settings, with its final weights compared.

The machine may be shared: ratios within one run are what this measures; the load average is
printed at the start and the end, with the CPU seconds per step of the process.
"""

from __future__ import annotations

import argparse
import importlib.util
import os

# Idle OpenMP workers sleep instead of spinning (set before torch loads libgomp). On the shared
# 2-core machine, spinning made 2-thread runs 5-10x slower: a thread waits at every kernel's
# barrier for its partner while another process holds that core.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import torch

from ghost_optima.core import train
from ghost_optima.core.data import mnist1d

PREVIOUS = "f83fcf279df4f940a6b0bd55c8d5183505739865"  # the autograd trainer (last before #14)
SEEDS, BATCH = tuple(range(64)), 64
RUNS = [(64, "sgd"), (256, "sgd"), (512, "sgd"), (256, "adam")]


def module_at(commit: str, path: str, replace: dict[str, str] | None = None) -> ModuleType:
    """The module in ``path`` (from the repository root) as it was at ``commit``, loaded from
    git into a temporary file under its own name (its imports are today's modules), each key of
    ``replace`` in its source replaced by its value first."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "show", f"{commit}:{path}"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    for old, new in (replace or {}).items():
        source = source.replace(old, new)
    name = f"previous_{Path(path).stem}"
    file = Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def previous_trainer(commit: str) -> ModuleType | None:
    """``ghost_optima.core.train`` as it was at ``commit`` (it imports today's
    ``ghost_optima.core.mlp``)."""
    moved = {f"ghost_optima.{m} ": f"ghost_optima.core.{m} " for m in ("mlp", "data")}
    try:  # the flat modules of then live in core/ now
        return module_at(commit, "src/ghost_optima/train.py", moved)
    except (subprocess.CalledProcessError, ImportError, OSError) as err:
        print(f"previous trainer at {commit[:10]} unavailable: {err}")
        return None


def matmul_gflops(seconds: float, n: int = 1024) -> tuple[float, float]:
    """fp32 GFLOP/s of back-to-back ``n x n`` matmuls (``2 n^3`` FLOPs each) over a window of
    about ``seconds`` (as long as a trainer run, so both see the same kind of load): per second
    of wall clock and per second of process CPU time."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    count, wall, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds or count < 3:
        torch.mm(a, b)
        count += 1
    flops = 2 * n**3 * count
    return flops / (time.perf_counter() - wall) / 1e9, flops / (time.process_time() - cpu) / 1e9


def run(module: ModuleType, data, width: int, optimizer: str):
    """One epoch of the trainer in ``module``; its result (``step_seconds``, ``params``)."""
    lr, momentum = (0.05, 0.9) if optimizer == "sgd" else (1e-3, 0.0)
    config = module.TrainConfig(1, BATCH, optimizer, lr, momentum)
    return module.train_ensemble(data, (data.n_in, width, data.n_out), "tanh", SEEDS, config)


def bench(threads: int, repeats: int, data, previous: ModuleType | None) -> None:
    """Best-of-``repeats`` GFLOP/s (wall and CPU) of each trainer and of the matmul, printed."""
    torch.set_num_threads(threads)
    modules = {"now": train} | ({"previous": previous} if previous else {})
    wall: dict[tuple, float] = {}
    cpu: dict[tuple, float] = {}
    peak, max_diff = [0.0, 0.0], {}
    run(train, data, 64, "sgd")  # warm-up
    for _ in range(repeats):
        for width, optimizer in RUNS:
            results = {}
            for name, module in modules.items():
                result = results[name] = run(module, data, width, optimizer)
                key = (name, width, optimizer)
                wall[key] = min(wall.get(key, float("inf")), result.step_seconds)
                cpu[key] = min(cpu.get(key, float("inf")), result.step_cpu_seconds)
            if previous:
                now, old = results["now"].params, results["previous"].params
                diff = max((now[k] - old[k]).abs().max().item() for k in now)
                max_diff[width, optimizer] = max(max_diff.get((width, optimizer), 0.0), diff)
            window = matmul_gflops(results["now"].step_seconds)
            peak = [max(p, w) for p, w in zip(peak, window, strict=True)]
    n = len(data.x_train)
    print(f"\n{threads} thread(s): fp32 matmul {peak[0]:.1f} GFLOP/s per wall second, ", end="")
    print(f"{peak[1]:.1f} per CPU second (1024^2, best window)")
    print("width  opt | GF/s now  %peak  %cpu  ms/step | GF/s prev  %peak  %cpu | speedup  max|dW|")
    for width, optimizer in RUNS:
        flops = 6 * len(SEEDS) * n * (data.n_in * width + width * data.n_out)
        steps = -(-n // BATCH)
        cells = [f"{width:>5} {optimizer:>4} |"]
        for name in modules:
            gflops = flops / wall[name, width, optimizer] / 1e9
            per_cpu = flops / cpu[name, width, optimizer] / 1e9
            cells.append(
                f"{gflops:8.1f} {100 * gflops / peak[0]:5.1f}% {100 * per_cpu / peak[1]:4.0f}%"
            )
            if name == "now":
                cells.append(f"{1e3 * wall[name, width, optimizer] / steps:7.2f} |")
        if previous:
            speedup = wall["previous", width, optimizer] / wall["now", width, optimizer]
            cells.append(f"| {speedup:6.2f}x {max_diff[width, optimizer]:8.1e}")
        print(" ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--previous", default=PREVIOUS, help="commit of the previous trainer")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}, ")
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, ", end="")
    print(f"load average at start {os.getloadavg()[0]:.2f}")
    data = mnist1d(seed=0)
    previous = previous_trainer(args.previous) if args.previous else None
    for threads in args.threads:
        bench(threads, args.repeats, data, previous)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}. GF/s counts the usual 3x forward")
    print("FLOPs (the trainer executes 0.73 of them); %peak: of the matmul per wall second;")
    print("%cpu: per CPU second of the process (robust to time slicing by other processes).")


if __name__ == "__main__":
    main()
