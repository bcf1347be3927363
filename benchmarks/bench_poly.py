"""Benchmark: training with per-unit polynomial activations, by hand against autograd (not a test).

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_poly.py [--repeats 3] [--epochs 2]

What runs. ``train_ensemble`` on MNIST-1D (4000 training signals), two hidden layers of the
sizes the remedy chapters use (32 units, minibatches of 64) and the MNIST-1D recipe (128 units,
minibatches of 100), 18 members at once (a learning-rate search: 6 rates times 3 seeds), Adam,
one thread, with the activations of the polynomial arms: a distinct random Legendre row of
degrees 1 to 4 per unit and member (``random_pattern``), and one row shared by every unit
(``shared_pattern``).

Now: ``PolyActivation.value_and_slope``, which the trainer's hand-written backward multiplies in
place (``ghost_optima.core.mlp``). Before: ``ghost_optima/remedies/orthopoly.py`` at commit
``PREVIOUS``, loaded from git into a temporary module: its activation has no
``value_and_slope``, so the same trainer differentiates it by autograd (one node per layer) and
Clenshaw's recurrence allocates a tensor per degree. The time is the trainer's own
``step_seconds`` (the minibatch loop, no evaluation), best of ``--repeats``; the final weights
of both are compared bit for bit.
"""

from __future__ import annotations

import argparse
import os
import sys
from types import ModuleType

import torch
from bench_trainer import module_at

from ghost_optima.core.data import mnist1d
from ghost_optima.core.train import TrainConfig, train_ensemble
from ghost_optima.remedies import orthopoly

# the last commit that differentiated polynomial activations by autograd
PREVIOUS = "729137b25944c2927815ef44f5aad57d66e2f40a"
RATES, SELECT_SEEDS = (0.00125, 0.0025, 0.005, 0.01, 0.02, 0.04), (500, 501, 502)
SIZES = [(32, 64), (128, 100)]  # (hidden units, minibatch): the chapters', the recipe's


def activations(module: ModuleType, width: int, n_members: int) -> dict:
    """The distinct and the shared pattern of ``module``, the same rows whichever module."""
    gen = torch.Generator().manual_seed(0)
    distinct = [
        torch.stack([orthopoly.random_pattern(width, 4, generator=gen) for _ in range(n_members)])
        for _ in range(2)
    ]
    shared = [orthopoly.shared_pattern(width, 4, generator=gen) for _ in range(2)]
    return {
        "distinct": module.PolyActivation(tuple(distinct)),
        "shared": module.PolyActivation(tuple(shared)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--previous", default=PREVIOUS, help="commit of the autograd version")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}, ")
    print(f"load average at start {os.getloadavg()[0]:.2f}")
    data = mnist1d(seed=0)
    previous = module_at(args.previous, "src/ghost_optima/remedies/orthopoly.py")
    seeds = [s for s in SELECT_SEEDS for _ in RATES]
    rates = [r for _ in SELECT_SEEDS for r in RATES]
    print("units batch pattern | ms/step now  ms/step before | speedup  same weights")
    for width, batch in SIZES:
        config = TrainConfig(args.epochs, batch, "adam", rates, record_every=args.epochs)
        widths = (data.n_in, width, width, data.n_out)
        now, before = (
            activations(orthopoly, width, len(seeds)),
            activations(previous, width, len(seeds)),
        )
        for pattern in now:
            best, params = {}, {}
            for _ in range(args.repeats):
                for name, act in (("now", now[pattern]), ("before", before[pattern])):
                    run = train_ensemble(data, widths, act, seeds, config)
                    per_step = run.step_seconds / run.n_steps
                    best[name] = min(best.get(name, float("inf")), per_step)
                    params[name] = run.params
            same = all(torch.equal(params["now"][k], params["before"][k]) for k in params["now"])
            print(
                f"{width:>5} {batch:>5} {pattern:>8} | {1e3 * best['now']:11.2f} "
                f"{1e3 * best['before']:14.2f} | {best['before'] / best['now']:6.2f}x  {same}"
            )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
