"""Teacher-student ReLU population loss, its derivatives, and the spurious-minimum check."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from ghost_optima.landscape import spurious as sp


def single(W, V):
    """A Descent of the given students, as they are (no steps)."""
    grad = sp.population_gradient(W, V).flatten(1).norm(dim=1)
    return sp.Descent(W, sp.population_loss(W, V), grad, torch.zeros(len(W), dtype=torch.long))


def test_loss_matches_monte_carlo_and_closed_forms():
    V = sp.orthonormal_teacher(3, 4)
    W = sp.gaussian_students(2, 3, 4, seed=0)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(400_000, 4, generator=gen, dtype=torch.float64)
    for i in range(2):
        mc = 0.5 * ((torch.relu(x @ W[i].T).sum(1) - torch.relu(x @ V.T).sum(1)) ** 2).mean()
        assert sp.population_loss(W[i : i + 1], V).item() == pytest.approx(mc.item(), rel=0.02)
    assert sp.population_loss(V.unsqueeze(0), V).item() == pytest.approx(0.0, abs=1e-14)
    # orthogonal units: K(w, w) = |w|^2 / 2, K(w, v) = |w| |v| / (2 pi)
    w = torch.tensor([[[3.0, 0.0]]], dtype=torch.float64)
    v = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    expected = 0.5 * (9 / 2 - 2 * 3 / (2 * math.pi) + 1 / 2)
    assert sp.population_loss(w, v).item() == pytest.approx(expected, rel=1e-12)


def test_gradient_matches_finite_differences_of_the_loss():
    V = sp.orthonormal_teacher(4)
    W = sp.gaussian_students(1, 5, 4, seed=3)
    g = sp.population_gradient(W, V)
    h = 1e-6
    fd = torch.zeros_like(W)
    for idx in np.ndindex(*W.shape):
        e = torch.zeros_like(W)
        e[idx] = h
        fd[idx] = (sp.population_loss(W + e, V) - sp.population_loss(W - e, V)).item() / (2 * h)
    assert (g - fd).abs().max().item() < 1e-8


def test_hessian_gives_the_second_order_term_of_the_loss():
    V = sp.orthonormal_teacher(4)
    W = sp.gaussian_students(1, 4, 4, seed=5)[0]
    H = sp.hessian(W, V)
    assert torch.allclose(H, H.T)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        delta = torch.randn(W.shape, generator=gen, dtype=torch.float64)
        h = 1e-3
        second = (
            sp.population_loss((W + h * delta)[None], V)
            + sp.population_loss((W - h * delta)[None], V)
            - 2 * sp.population_loss(W[None], V)
        ).item() / h**2
        assert second == pytest.approx((delta.reshape(-1) @ H @ delta.reshape(-1)).item(), rel=1e-4)


def test_planted_saddle_of_two_coinciding_units_is_called_a_saddle():
    """Teacher e1, e2; both student units at c (e1 + e2) with c = (1 + 3 pi / 4) / (2 pi): each
    unit's gradient w - sum_j grad K(w, e_j) vanishes there, and pulling the units apart towards
    e1 and e2 lowers the loss (a clearly negative Hessian eigenvalue)."""
    V = sp.orthonormal_teacher(2)
    c = (1 + 3 * math.pi / 4) / (2 * math.pi)
    W = torch.full((1, 2, 2), c, dtype=torch.float64)
    descent = single(W, V)
    assert descent.grad_norm.item() < 1e-14 and descent.loss.item() > 0.05
    [row] = sp.classify(descent, V, loss_tol=1e-3, grad_tol=1e-6, eig_tol=1e-5)
    assert row["kind"] == "saddle" and row["lambda_min"] < -0.5


def test_planted_local_minimum_and_global_minimum_are_told_apart():
    """One student unit for a two-unit teacher: at c (e1 + e2), c = (1 + 3 pi / 4) / pi, a
    positive-loss critical point with a positive definite Hessian (spurious); the teacher
    itself is global; a random point is not converged."""
    V = sp.orthonormal_teacher(2)
    c = (1 + 3 * math.pi / 4) / math.pi
    rows = sp.classify(
        single(torch.full((1, 1, 2), c, dtype=torch.float64), V),
        V, loss_tol=1e-3, grad_tol=1e-6, eig_tol=1e-5,
    )  # fmt: skip
    assert rows[0]["kind"] == "spurious" and rows[0]["lambda_min"] > 0.1
    assert (
        sp.classify(single(V[None], V), V, loss_tol=1e-3, grad_tol=1e-6, eig_tol=1e-5)[0]["kind"]
        == "global"
    )
    W = sp.gaussian_students(1, 2, 2, seed=0)
    row = sp.classify(single(W, V), V, loss_tol=1e-3, grad_tol=1e-6, eig_tol=1e-5)[0]
    assert row["kind"] == "unconverged"


def test_descent_reaches_the_teacher_for_a_small_net_and_stops_each_restart():
    V = sp.orthonormal_teacher(3)
    run = sp.descend(
        sp.gaussian_students(8, 3, 3, seed=0), V, lr=0.3, max_steps=20000, grad_tol=1e-8
    )
    assert (run.grad_norm <= 1e-8).all()
    assert (run.loss < 1e-10).sum() >= 6  # k = 3: no spurious minima (Safran and Shamir)
    assert run.steps.min() < run.steps.max()  # restarts stop on their own


def reference_descent(W0, V, *, lr, max_steps, grad_tol, loss_stop):
    """One restart at a time, the loss and the gradient from the public functions."""
    ends, steps = [], []
    for w in W0:
        w, moved = w[None].clone(), 0
        while moved < max_steps:
            g = sp.population_gradient(w, V)
            if g.norm() <= grad_tol or sp.population_loss(w, V).item() <= loss_stop:
                break
            w, moved = w - lr * g, moved + 1
        ends.append(w[0])
        steps.append(moved)
    return torch.stack(ends), torch.tensor(steps)


@pytest.mark.parametrize("teacher", ["basis", "rotated"])
def test_batched_descent_matches_one_restart_at_a_time(teacher):
    """The batched loop (shared angles, the moving restarts compacted only when some stop)
    against the plain loop; the same bits for the standard-basis teacher, whose products are
    exact, and rounding-level agreement for a rotated one."""
    V = sp.orthonormal_teacher(4)
    if teacher == "rotated":
        V = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(2),
                                        dtype=torch.float64))[0]  # fmt: skip
    W0 = sp.gaussian_students(6, 5, 4, seed=7)
    kwargs = dict(lr=0.3, max_steps=400, grad_tol=1e-4, loss_stop=1e-5)
    run = sp.descend(W0, V, **kwargs)
    W_ref, steps_ref = reference_descent(W0, V, **kwargs)
    assert torch.equal(run.steps, steps_ref)
    assert 0 < run.steps.min() < run.steps.max()  # restarts stop at different steps
    if teacher == "basis":
        assert torch.equal(run.W, W_ref)
    else:
        assert torch.allclose(run.W, W_ref, rtol=0, atol=1e-12)
    assert torch.equal(run.loss, sp.population_loss(run.W, V))


def test_wilson_interval_known_values():
    assert sp.wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert sp.wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    for n in (7, 60, 200):  # the interval holds the estimate, to the last bit
        assert sp.wilson_interval(0, n)[0] == 0.0 and sp.wilson_interval(n, n)[1] == 1.0
    with pytest.raises(ValueError):
        sp.wilson_interval(3, 2)


@pytest.mark.parametrize(("n", "d"), [(14, 14), (16, 14), (7, 6)])
def test_glorot_uniform_start_has_torchs_xavier_bound_and_is_uniform(n, d):
    """Against torch's own Xavier-uniform initialiser (the same bound for a layer of ``d`` inputs
    and ``n`` units) and a Kolmogorov-Smirnov test of uniformity; variance 1/d when n = d."""
    W = sp.glorot_uniform_students(400, n, d, seed=1)
    reference = torch.nn.init.xavier_uniform_(torch.empty(n, d, dtype=torch.float64))
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(reference)
    a = math.sqrt(6.0 / (fan_in + fan_out))
    assert W.shape == (400, n, d) and W.dtype == torch.float64
    assert W.abs().max() <= a and reference.abs().max() <= a
    assert W.abs().max() > 0.999 * a  # the whole interval is used
    assert stats.kstest(W.flatten().numpy(), "uniform", args=(-a, 2 * a)).pvalue > 1e-3
    if n == d:
        assert W.var().item() == pytest.approx(1 / d, rel=0.02)
    assert torch.equal(W, sp.glorot_uniform_students(400, n, d, seed=1))  # seeded


def test_gaussian_start_has_variance_one_over_d():
    W = sp.gaussian_students(400, 14, 14, seed=2)
    assert W.mean().item() == pytest.approx(0.0, abs=0.01)
    assert W.var().item() == pytest.approx(1 / 14, rel=0.02)
    assert stats.kstest(W.flatten().numpy() * math.sqrt(14), "norm").pvalue > 1e-3


def test_newcombe_difference_matches_the_published_example_and_holds_its_estimate():
    """Newcombe (1998), Statistics in Medicine 17:873, method 10 on 56/70 against 48/80."""
    assert sp.newcombe_difference(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    for a, b in [(0, 0), (0, 200), (200, 0), (124, 149), (13, 40)]:
        lo, hi = sp.newcombe_difference(a, 200, b, 200)
        assert -1 <= lo <= (a - b) / 200 <= hi <= 1
    lo, hi = sp.newcombe_difference(124, 200, 149, 200)
    assert (lo, hi) == pytest.approx(
        tuple(-x for x in sp.newcombe_difference(149, 200, 124, 200))[::-1]
    )


def test_a_step_too_large_for_the_start_is_called_diverged_and_stops():
    """Four students of a two-unit teacher with step 20: gradient descent blows up (the units'
    common direction has curvature about n/2), the blown-up restarts stop on their own and are
    sorted as diverged, never as minima."""
    V = sp.orthonormal_teacher(2)
    run = sp.descend(sp.gaussian_students(5, 4, 2, seed=0), V, lr=20.0, max_steps=5000,
                     grad_tol=1e-9, loss_stop=1e-6)  # fmt: skip
    kinds = [r["kind"] for r in sp.classify(run, V, loss_tol=1e-3, grad_tol=1e-9, eig_tol=1e-5)]
    assert kinds == ["diverged"] * 5
    assert (run.steps < 5000).all()


def test_published_counts_hold_what_the_2018_abstract_says():
    """Safran and Shamir's own counts (their results files): every k = n from 6 to 20, 1000 runs
    each; spurious ends grow with k (their abstract: "increasing with the network size") and one
    extra student unit makes them rarer at every k where both rows exist."""
    counts = sp.published_counts()
    square = {k: counts[(k, k)] for k in range(6, 21)}
    assert all(runs == 1000 and 0 <= hits <= runs for hits, runs in counts.values())
    assert all(n in (k, k + 1) for k, n in counts)
    hits = [square[k][0] for k in range(6, 21)]
    assert hits == sorted(hits) and hits[0] < 50 < 900 < hits[-1]
    for (k, n), (over, _) in counts.items():
        if n == k + 1:
            assert over < square[k][0]
