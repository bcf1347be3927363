"""Side-by-side micro-benchmarks for the performance chapter: each fast method against the plain
one it replaces, on the same input, with a check that both give the same answer.

Every function returns one row::

    {"task", "fast", "slow", "fast_seconds", "slow_seconds", "speedup", "check", "check_value",
     "size"}

``*_seconds`` is the best of ``repeats`` wall-clock runs (``time.perf_counter``): the minimum is
the least disturbed by other work on a shared machine. ``speedup = slow_seconds /
fast_seconds``. ``check`` says in words what ``check_value`` measures (a discrepancy between the
two methods' answers, 0 for an exact match).

- :func:`hessian_top_eigenvalues`: the top ``k`` Hessian eigenvalues of a trained tanh MLP on the
  digits, by Lanczos on Hessian-vector products (``hessian.top_eigenpairs``) against the dense
  Hessian (``hessian.hessian_matrix``, ``d`` HVPs) and ``numpy.linalg.eigvalsh``.
- :func:`ensemble_vs_loop`: ``train.train_ensemble`` over ``S`` seeds at once against the same
  call once per seed in a Python loop.
- :func:`matching_vs_brute_force`: weight matching over the permutations (``align.align``, one
  linear assignment per hidden layer, Ainsworth et al. 2023) against the exhaustive search over
  all ``n!`` relabellings of a one-hidden-layer net's units.
"""

import itertools
import math
import time
from collections.abc import Callable

import numpy as np
import torch

from ghost_optima.core import data, mlp, train
from ghost_optima.landscape import hessian
from ghost_optima.symmetry import align, group


def best_time(run: Callable[[], object], repeats: int) -> tuple[object, float]:
    """``(result of the last run, least wall-clock seconds over repeats)``."""
    times, result = [], None
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return result, min(times)


def _row(task, fast, slow, times, check, value, size) -> dict:
    fast_s, slow_s = times
    return {
        "task": task,
        "fast": fast,
        "slow": slow,
        "fast_seconds": fast_s,
        "slow_seconds": slow_s,
        "speedup": slow_s / fast_s,
        "check": check,
        "check_value": float(value),
        "size": size,
    }


def trained_loss(hidden: int, n_samples: int, weight_decay: float, seed: int):
    """``(loss_fn, theta)``: L2-regularised cross-entropy of a 64-``hidden``-10 tanh MLP on
    ``n_samples`` digits (float64), as a function of the flat parameters ``(d,)``, and a minimum
    of it found by L-BFGS from ``init_mlp`` with generator ``seed``. With the decay the Hessian
    at the minimum is positive semi-definite, so its top eigenvalues are also the largest."""
    digits = data.digits(seed=seed)
    x = digits.x_train[:n_samples].double()
    y = digits.y_train[:n_samples]
    params = mlp.init_mlp((64, hidden, 10), seed, dtype=torch.float64)
    theta0, unflatten = hessian.flatten_params(params)

    def loss_fn(theta: torch.Tensor) -> torch.Tensor:
        out = mlp.mlp_forward(unflatten(theta), x, "tanh")
        ce = torch.nn.functional.cross_entropy(out, y)
        return ce + 0.5 * weight_decay * (theta * theta).sum()

    theta = theta0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [theta], max_iter=300, tolerance_grad=1e-9, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure():
        opt.zero_grad()
        loss = loss_fn(theta)
        loss.backward()
        return loss

    opt.step(closure)
    return loss_fn, theta.detach()


def hessian_top_eigenvalues(
    hidden: int, n_samples: int, k: int, *, seed: int = 0, repeats: int = 1
) -> dict:
    """Lanczos (``top_eigenpairs``, tolerance 1e-8) against dense ``eigvalsh`` for the top ``k``
    eigenvalues; the check is the largest relative difference between the two lists."""
    loss_fn, theta = trained_loss(hidden, n_samples, 1e-2, seed)
    lanczos, fast = best_time(
        lambda: hessian.top_eigenpairs(loss_fn, theta, k, tol=1e-8, seed=seed)[0].numpy(), repeats
    )
    dense, slow = best_time(
        lambda: np.linalg.eigvalsh(hessian.hessian_matrix(loss_fn, theta).numpy())[::-1][:k],
        repeats,
    )
    error = np.max(np.abs(lanczos - dense) / np.abs(dense))
    return _row(
        "top Hessian eigenvalues",
        f"Lanczos, top {k}",
        "dense Hessian + eigvalsh",
        (fast, slow),
        "largest relative difference of the eigenvalues",
        error,
        f"{theta.numel()} parameters",
    )


def ensemble_vs_loop(
    n_seeds: int, hidden: int, epochs: int, *, seed: int = 0, repeats: int = 1
) -> dict:
    """``train_ensemble`` on the digits (64-``hidden``-10 tanh, SGD, batch 64, float32) with
    seeds ``seed .. seed + n_seeds - 1`` at once, against one call per seed; the check is the
    largest absolute difference of any final parameter between the two."""
    digits = data.digits(seed=seed)
    config = train.TrainConfig(epochs=epochs, batch_size=64, lr=0.05)
    widths, seeds = (64, hidden, 10), list(range(seed, seed + n_seeds))
    together, fast = best_time(
        lambda: train.train_ensemble(digits, widths, "tanh", seeds, config).params, repeats
    )
    one_by_one, slow = best_time(
        lambda: [train.train_ensemble(digits, widths, "tanh", [s], config).params for s in seeds],
        repeats,
    )
    gap = max(
        float((together[name][i] - alone[name][0]).abs().max())
        for i, alone in enumerate(one_by_one)
        for name in together
    )
    return _row(
        "training an ensemble",
        f"{n_seeds} seeds at once",
        "one seed at a time",
        (fast, slow),
        "largest difference of a final weight",
        gap,
        f"{n_seeds} nets, epochs: {epochs}",
    )


def matching_score(params_a: dict, params_b: dict) -> np.ndarray:
    """``S[i, j]``: the inner product gained by putting ``b``'s hidden unit ``j`` at ``a``'s
    position ``i`` in a one-hidden-layer net, ``W1a W1b^T + b1a b1b^T + W2a^T W2b``; the
    objective of a relabelling ``p`` is ``sum_i S[i, p(i)]`` plus a constant."""
    a = {k: v.double().numpy() for k, v in params_a.items()}
    b = {k: v.double().numpy() for k, v in params_b.items()}
    return a["W1"] @ b["W1"].T + np.outer(a["b1"], b["b1"]) + a["W2"].T @ b["W2"]


def brute_force_matching(score: np.ndarray) -> tuple[np.ndarray, float]:
    """The best relabelling over all ``n!``, by enumeration (chunks of 40320); and its score."""
    n = len(score)
    best, best_perm = -math.inf, None
    perms = itertools.permutations(range(n))
    rows = np.arange(n)
    while chunk := list(itertools.islice(perms, 40320)):
        chunk = np.array(chunk)
        totals = score[rows, chunk].sum(1)
        i = int(np.argmax(totals))
        if totals[i] > best:
            best, best_perm = float(totals[i]), chunk[i]
    return best_perm, best


def matching_vs_brute_force(width: int, *, seed: int = 0, repeats: int = 1) -> dict:
    """Weight matching of two random 16-``width``-4 tanh nets against exhaustive search; the
    check is the brute-force optimum minus the score weight matching reached (0 when it found
    the optimum, as it must for one hidden layer: the problem is one linear assignment)."""
    a = mlp.init_mlp((16, width, 4), seed, dtype=torch.float64)
    b = mlp.init_mlp((16, width, 4), seed + 1, dtype=torch.float64)
    score = matching_score(a, b)
    spec = group.mlp_permutation_spec(1)
    found, fast = best_time(lambda: align.align(a, b, spec, seed=seed), repeats)
    (_, best), slow = best_time(lambda: brute_force_matching(score), repeats)
    reached = float(score[np.arange(width), found.perms["P1"].numpy()].sum())
    return _row(
        "aligning two networks",
        "weight matching",
        f"all {width}! relabellings",
        (fast, slow),
        "optimum minus the score reached",
        best - reached,
        f"{width} hidden units",
    )


def matmul_gflops(size: int = 512, *, seed: int = 0, repeats: int = 5) -> float:
    """This machine's rate for a plain ``size x size`` single-precision matrix product, in
    GFLOP/s (``2 size^3`` flops, best of ``repeats`` runs of 10 products), with the threads of
    this run: the peak the performance page sets each kernel's throughput against."""
    gen = torch.Generator().manual_seed(seed)
    a, b = (torch.randn(size, size, generator=gen) for _ in range(2))
    out = torch.empty(size, size)

    def products():
        for _ in range(10):
            torch.matmul(a, b, out=out)

    _, seconds = best_time(products, repeats)
    return 10 * 2 * size**3 / seconds / 1e9
