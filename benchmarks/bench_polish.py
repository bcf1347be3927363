"""Benchmark: the L-BFGS polish on the hand-written loss and gradient against autograd (not a test).

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_polish.py [--repeats 3] [--iterations 300]

What runs. The polish of chapters 10, 30 and 40: ``network_chains.minimize`` (L-BFGS, strong
Wolfe, history 50, float64) on the weight-decayed cross-entropy of a one-hidden-layer tanh
classifier on the handwritten digits (1438 training images), at the widths those chapters
polish, one thread. The start is a network trained by SGD as there (20 epochs, weight decay
0.01).

Now: ``MLPObjective.value_and_grad``, the hand-written pass of ``ghost_optima.core.mlp``
(``ensemble_value_and_grad``, one member). Before: reverse-mode autograd through
``MLPObjective.loss`` (``autograd_value_and_grad``, what ``minimize`` did before it took a
``value_and_grad``). Two figures per width, best of ``--repeats``: one loss-and-gradient
evaluation at the start, and the wall time per L-BFGS iteration over ``--iterations``
iterations with the gradient tolerance at 0 (so that both run about the same number of
iterations; the two gradients differ in rounding, so their paths part after a while and a run
to a tolerance would compare different work). The largest difference of the two gradients at the
start, relative to its largest entry, is printed beside.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from bench_align import best_time

from ghost_optima.core.data import digits
from ghost_optima.core.train import TrainConfig, member, train_ensemble
from ghost_optima.sgd import network_chains

WIDTHS = (16, 64, 128, 256)


def measure(objective, theta, value_and_grad, repeats: int, iterations: int) -> tuple[float, float]:
    """Seconds of one evaluation of ``value_and_grad`` at ``theta`` and per L-BFGS iteration of a
    polish from ``theta`` on it (gradient tolerance 0, at most ``iterations`` iterations)."""
    value_and_grad(theta)  # warm-up
    evaluation = best_time(lambda: value_and_grad(theta), repeats)[0]
    wall, _, (_, _, iterations_run) = best_time(
        lambda: network_chains.minimize(
            objective.loss, theta, grad_tol=0.0, max_iter=iterations, value_and_grad=value_and_grad
        ),
        repeats,
    )
    return evaluation, wall / iterations_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = digits(seed=0)
    config = TrainConfig(20, batch_size=64, lr=0.1, momentum=0.9, weight_decay=0.01)
    python = sys.version.split()[0]
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, 1 thread, python {python}")
    print(
        "| width | parameters | eval autograd (ms) | eval by hand (ms) | speedup "
        "| ms/iteration autograd | by hand | speedup | gradient difference |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for width in WIDTHS:
        trained = train_ensemble(data, (data.n_in, width, data.n_out), "tanh", [100], config)
        start = {k: v.double() for k, v in member(trained.params, 0).items()}
        objective, theta = network_chains.mlp_objective(
            start, data.x_train.double(), data.y_train, weight_decay=0.01
        )
        autograd = network_chains.autograd_value_and_grad(objective.loss)
        by_hand = objective.value_and_grad
        eval_a, iter_a = measure(objective, theta, autograd, args.repeats, args.iterations)
        eval_h, iter_h = measure(objective, theta, by_hand, args.repeats, args.iterations)
        reference = autograd(theta)[1]
        difference = float((by_hand(theta)[1] - reference).abs().max() / reference.abs().max())
        print(
            f"| {width} | {theta.numel()} | {1e3 * eval_a:.2f} | {1e3 * eval_h:.2f} "
            f"| {eval_a / eval_h:.2f}x | {1e3 * iter_a:.2f} | {1e3 * iter_h:.2f} "
            f"| {iter_a / iter_h:.2f}x | {difference:.1e} |"
        )


if __name__ == "__main__":
    main()
