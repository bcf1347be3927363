"""Benchmark: Lanczos vs power iteration for the top Hessian eigenvalues, and the vectorized
SGD-chain simulators vs a per-chain Python loop.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_hessian_sgd.py [--threads 2]

Part 1. A 64-32-10 tanh MLP (2410 parameters) is trained to a minimum of the L2-regularized
cross-entropy on 500 sklearn-digits images (full-batch L-BFGS), so ``H >= 0`` and the top-10
eigenvalues are also the largest in magnitude (the ones power iteration finds). The reference is
``numpy.linalg.eigh`` of the full Hessian (2410 vmapped Hessian-vector products). Each method is
run at a sweep of its own stopping tolerance, loosest first, and the first setting whose 10
eigenvalues are all within ``--target`` relative error of the reference is reported: equal
accuracy, each method at its cheapest. Every setting tried is printed.

Part 2. :func:`ghost_optima.sgd.known_problems.simulate_quadratic_sgd` with 256 chains at once (one
run of the
chain engine :func:`ghost_optima.sgd.chains.run_chains`) against the same function called once per
chain in a Python loop (same steps, same burn-in), and likewise for
:func:`ghost_optima.sgd.known_problems.simulate_linear_regression_sgd`.

Timings are wall-clock seconds (``time.perf_counter``) on ``--threads`` torch threads; the
machine may be shared, so compare ratios within one run.
"""

from __future__ import annotations

import os

# Idle OpenMP workers sleep instead of spinning. On a shared 2-core machine spinning workers
# made 2-thread Hessian-vector products ~10x slower; must be set before torch loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from torch import nn  # noqa: E402

from ghost_optima.landscape.hessian import (  # noqa: E402
    hessian_matrix,
    hvp,
    make_flat_loss,
    power_iteration_top_k,
    top_eigenpairs,
)
from ghost_optima.sgd.chains import Schedule  # noqa: E402
from ghost_optima.sgd.known_problems import (  # noqa: E402
    NoisyQuadratic,
    simulate_linear_regression_sgd,
    simulate_quadratic_sgd,
)
from ghost_optima.sgd.stationary import stationary_variance  # noqa: E402

DT = torch.float64


def trained_mlp_loss(n_samples: int, hidden: int, alpha: float, seed: int):
    """L2-regularized cross-entropy of a trained MLP on digits, as a flat-vector loss."""
    X, y = load_digits(return_X_y=True)
    rows = np.random.default_rng(seed).choice(len(y), size=n_samples, replace=False)
    X = (X - X.mean(0)) / (X.std(0) + 1e-8)
    Xt = torch.tensor(X[rows], dtype=DT)
    yt = torch.tensor(y[rows])
    torch.manual_seed(seed)  # benchmark script only: fixes the module's initial weights
    model = nn.Sequential(nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, 10)).to(DT)
    ce_fn, theta0, _ = make_flat_loss(model, nn.CrossEntropyLoss(), Xt, yt)

    def loss_fn(theta: torch.Tensor) -> torch.Tensor:
        return ce_fn(theta) + 0.5 * alpha * (theta * theta).sum()

    th = theta0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [th],
        lr=1,
        max_iter=500,
        tolerance_grad=1e-8,
        tolerance_change=0,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        loss = loss_fn(th)
        loss.backward()
        return loss

    for _ in range(4):
        opt.step(closure)
    theta = th.detach()
    gnorm = float(torch.func.grad(loss_fn)(theta).norm())
    return loss_fn, theta, float(loss_fn(theta)), gnorm


def sweep(name, run, tols, ref, target):
    """Run ``run(tol)`` for each tol until the max relative eigenvalue error <= target."""
    rows, chosen = [], None
    for tol in tols:
        t0 = time.perf_counter()
        vals, _, n_hvp = run(tol)
        sec = time.perf_counter() - t0
        err = float(np.max(np.abs(vals.numpy() / ref - 1)))
        rows.append((name, tol, n_hvp, sec, err))
        print(f"  {name:<16} tol={tol:<8.0e} HVPs={n_hvp:>6d}  {sec:8.2f} s  max rel err={err:.2e}")
        if err <= target:
            chosen = rows[-1]
            break
    return chosen


def part1(args) -> None:
    print("=" * 78)
    print("Part 1: top-10 Hessian eigenvalues of a trained MLP (sklearn digits)")
    t0 = time.perf_counter()
    loss_fn, theta, loss, gnorm = trained_mlp_loss(500, 32, 1e-2, seed=0)
    print(
        f"  MLP 64-32-10 tanh, d={theta.numel()}, n=500, L2 1e-2: loss={loss:.4f}, "
        f"|grad|={gnorm:.1e}, trained in {time.perf_counter() - t0:.1f} s"
    )
    k = 10
    v = torch.randn(theta.numel(), generator=torch.Generator().manual_seed(0), dtype=DT)
    for mode in ("fwd", "rev"):
        hvp(loss_fn, theta, v, mode=mode)
        t0 = time.perf_counter()
        for _ in range(20):
            hvp(loss_fn, theta, v, mode=mode)
        print(f"  one HVP ({mode}-over-reverse): {(time.perf_counter() - t0) / 20 * 1e3:.2f} ms")
    t0 = time.perf_counter()
    H = hessian_matrix(loss_fn, theta, chunk_size=256).numpy()
    w = np.linalg.eigvalsh(H)[::-1]
    ref = w[:k]
    print(
        f"  reference: full Hessian + eigh in {time.perf_counter() - t0:.1f} s; "
        f"top-{k} = {np.array2string(ref, precision=4)}"
    )
    print(
        f"  lambda_min = {w[-1]:.2e} (H >= 0: top-{k} are the largest in magnitude); "
        f"worst ratio lambda_(i+1)/lambda_i for i <= {k}: {np.max(w[1 : k + 1] / w[:k]):.4f}"
    )
    target = args.target
    print(f"  target: max_i |lambda_i / lambda_i_ref - 1| <= {target:g}")
    e = sweep(
        "eigsh (Lanczos)",
        lambda tol: top_eigenpairs(loss_fn, theta, k, tol=tol, seed=0),
        [1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 1e-4, 1e-6],
        ref,
        target,
    )
    p = sweep(
        "power+deflation",
        lambda tol: power_iteration_top_k(loss_fn, theta, k, tol=tol, max_iter=20000, seed=0),
        [1e-4, 3e-5, 1e-5, 3e-6, 1e-6, 3e-7, 1e-7, 1e-8],
        ref,
        target,
    )
    print()
    print(f"  {'method':<18}{'tol':>8}{'HVPs':>8}{'seconds':>10}{'max rel err':>14}")
    for r in (e, p):
        if r is None:
            continue
        print(f"  {r[0]:<18}{r[1]:>8.0e}{r[2]:>8d}{r[3]:>10.2f}{r[4]:>14.2e}")
    if e is None or p is None:
        print("  (a method did not reach the target in its sweep; no ratio)")
        return
    print(
        f"  power / eigsh: {p[2] / e[2]:.1f}x the HVPs, {p[3] / e[3]:.1f}x the seconds "
        f"(target >= 5x HVPs: {'met' if p[2] / e[2] >= 5 else 'NOT met'})"
    )


def loop_quadratic(problem, schedule, n_chains, gen):
    vpc = [simulate_quadratic_sgd(problem, schedule, 1, gen).var_per_chain for _ in range(n_chains)]
    return torch.cat(vpc)


def loop_regression(X, y, schedule, n_chains, gen):
    vpc = [
        simulate_linear_regression_sgd(X, y, schedule, 1, gen).var_per_chain
        for _ in range(n_chains)
    ]
    return torch.cat(vpc)


def part2(args) -> None:
    print("=" * 78)
    n_chains = args.chains
    print(f"Part 2: SGD chain simulators, {n_chains} chains, vectorized vs per-chain loop")
    rows = []

    # noisy quadratic, d = 10
    lam = np.geomspace(0.05, 1.0, 10)
    C = np.linspace(0.5, 2.0, 10)
    eta, B, steps, burn = 1.0, 8, 2000, 400
    exact = stationary_variance(eta, lam, C, B)
    problem, schedule = NoisyQuadratic(lam, C), Schedule(eta, B, steps, burn)
    t0 = time.perf_counter()
    vec = simulate_quadratic_sgd(
        problem, schedule, n_chains, torch.Generator().manual_seed(0)
    ).var_per_chain
    t_vec = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop = loop_quadratic(problem, schedule, n_chains, torch.Generator().manual_seed(0))
    t_loop = time.perf_counter() - t0
    rows.append(("quadratic d=10", steps, t_vec, t_loop, vec, loop, exact))

    # least squares, n = 200, p = 5
    g = torch.Generator().manual_seed(1)
    X = torch.randn(200, 5, generator=g, dtype=DT) * torch.linspace(1.0, 0.4, 5, dtype=DT)
    y = X @ torch.ones(5, dtype=DT) + torch.randn(200, generator=g, dtype=DT)
    eta, B, steps, burn = 0.2, 20, 600, 200
    schedule = Schedule(eta, B, steps, burn, replacement=False)
    t0 = time.perf_counter()
    res = simulate_linear_regression_sgd(X, y, schedule, n_chains, torch.Generator().manual_seed(0))
    t_vec = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop = loop_regression(X, y, schedule, n_chains, torch.Generator().manual_seed(0))
    t_loop = time.perf_counter() - t0
    exact = stationary_variance(eta, res.lam, res.noise_C, B, n=200)
    rows.append(("least squares p=5", steps, t_vec, t_loop, res.var_per_chain, loop, exact))

    print(
        f"  {'problem':<20}{'steps':>6}{'vectorized s':>14}{'loop s':>10}{'speed-up':>10}"
        f"{'  var/exact (vec, loop), mean over dirs'}"
    )
    for name, steps, t_vec, t_loop, vec, loop, exact in rows:
        rv = float(np.mean(vec.mean(0).numpy() / exact))
        rl = float(np.mean(loop.mean(0).numpy() / exact))
        print(
            f"  {name:<20}{steps:>6d}{t_vec:>14.3f}{t_loop:>10.2f}{t_loop / t_vec:>9.1f}x"
            f"    {rv:.3f}, {rl:.3f}"
        )
    print("  (target: >= 10x on the quadratic simulator)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--target", type=float, default=1e-4, help="relative eigenvalue error")
    ap.add_argument("--chains", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, {os.cpu_count()} CPUs"
    )
    t0 = time.perf_counter()
    part1(args)
    part2(args)
    print("=" * 78)
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
