"""Tests of ghost_optima.cloud against independent references (autograd, brute force, numpy)."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ghost_optima import cloud, mlp, symmetry
from ghost_optima.hessian import per_sample_grads

DT = torch.float64


@pytest.fixture(scope="module")
def problem():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(60, 5, generator=gen, dtype=DT)
    y = torch.randint(0, 3, (60,), generator=gen)
    params = mlp.init_mlp([5, 4, 3], gen)
    obj, theta = cloud.mlp_objective(params, X, y, weight_decay=0.05)
    return X, y, params, obj, theta


def _reference_step(obj, theta, X, y, idx, eta):
    """One SGD step by autograd on the batch ``idx`` (the independent reference)."""
    th = theta.clone().requires_grad_(True)
    out = mlp.mlp_forward(obj.unflatten(th), X[idx], "tanh")
    loss = F.cross_entropy(out, y[idx]) + 0.5 * obj.weight_decay * (th * th).sum()
    (g,) = torch.autograd.grad(loss, th)
    return (theta - eta * g).detach()


def test_objective_matches_torch_cross_entropy(problem):
    X, y, params, obj, theta = problem
    out = mlp.mlp_forward(params, X, "tanh")
    expected = F.cross_entropy(out, y) + 0.025 * (theta * theta).sum()
    assert float(obj.loss(theta)) == pytest.approx(float(expected), rel=1e-14)
    G = per_sample_grads(obj.per_sample_loss, theta, X, y)
    full = torch.func.grad(obj.loss)(theta)
    np.testing.assert_allclose(G.mean(0) + 0.05 * theta, full, atol=1e-14)


@pytest.mark.parametrize("replacement", [True, False])
def test_sgd_chains_follow_autograd_step_by_step(problem, replacement):
    X, y, _, obj, theta = problem
    eta, B, steps, chains = 0.3, 7, 4, 3
    out = cloud.mlp_sgd_chains(
        obj,
        theta,
        X,
        y,
        eta=eta,
        batch_size=B,
        n_steps=steps,
        n_chains=chains,
        burn_in=0,
        generator=torch.Generator().manual_seed(5),
        directions=torch.eye(theta.numel(), dtype=DT)[:, :4],
        replacement=replacement,
        record_every=1,
    )
    gen = torch.Generator().manual_seed(5)  # replay the same batches
    states = theta.expand(chains, -1).clone()
    sums, squares, msd, traces = 0, 0, 0, [torch.zeros(chains, dtype=DT)]
    for _ in range(steps):
        if replacement:
            idx = torch.randint(0, len(X), (chains * B,), generator=gen).view(chains, B)
        else:
            idx = torch.rand(chains, len(X), generator=gen).topk(B, dim=1, largest=False).indices
            assert all(len(set(row.tolist())) == B for row in idx)
        states = torch.stack(
            [_reference_step(obj, states[c], X, y, idx[c], eta) for c in range(chains)]
        )
        diff = states - theta
        sums, squares = sums + diff[:, :4], squares + diff[:, :4] ** 2
        msd = msd + (diff**2).sum(1)
        traces.append((diff**2).sum(1))
    np.testing.assert_allclose(out.final, states, atol=1e-13)
    np.testing.assert_allclose(out.proj_mean, sums / steps, atol=1e-13)
    np.testing.assert_allclose(out.proj_sq, squares / steps, atol=1e-13)
    np.testing.assert_allclose(out.msd, msd / steps, atol=1e-13)
    np.testing.assert_allclose(out.trace, torch.stack(traces, 1), atol=1e-13)
    assert out.steps.tolist() == list(range(steps + 1))


def test_full_batch_is_gradient_descent(problem):
    X, y, _, obj, theta = problem
    out = cloud.mlp_sgd_chains(
        obj,
        theta,
        X,
        y,
        eta=0.5,
        batch_size=len(X),
        n_steps=5,
        n_chains=1,
        burn_in=0,
        generator=torch.Generator().manual_seed(0),
    )
    ref = theta.clone()
    g = torch.func.grad(obj.loss)
    for _ in range(5):
        ref = ref - 0.5 * g(ref)
    np.testing.assert_allclose(out.final[0], ref, atol=1e-13)


def test_var_per_chain_is_centred_on_the_pooled_mean():
    ch = cloud.MLPChains(
        proj_mean=torch.tensor([[1.0], [3.0]]),
        proj_sq=torch.tensor([[2.0], [10.0]]),
        msd=torch.zeros(2),
        trace=torch.zeros(2, 0),
        steps=torch.zeros(0),
        n_samples=1,
        final=torch.zeros(2, 1),
    )
    # pooled mean 2: E[(u - 2)^2] = E[u^2] - 4 E[u] + 4
    np.testing.assert_allclose(ch.var_per_chain().numpy(), [[2 - 4 + 4], [10 - 12 + 4]])


def test_minimize_reaches_a_small_gradient(problem):
    X, y, _, obj, theta = problem
    ts, gn, it = cloud.minimize(obj.loss, theta, grad_tol=1e-10)
    assert gn < 1e-8 and it > 0
    assert float(obj.loss(ts)) < float(obj.loss(theta))


def _brute_force_nearest(params, activation):
    widths = mlp.mlp_widths(params)
    spec = symmetry.mlp_permutation_spec(len(widths) - 2)
    signs = (1.0, -1.0) if activation == "tanh" else (1.0,)
    best = math.inf
    for layer in range(1, len(widths) - 1):
        n = widths[layer]
        for i, j in itertools.combinations(range(n), 2):
            for s in signs:
                perm = torch.arange(n)
                perm[i], perm[j] = j, i
                perms = {f"P{k}": torch.arange(widths[k]) for k in range(1, len(widths) - 1)}
                perms[f"P{layer}"] = perm
                sg = {f"P{k}": torch.ones(widths[k], dtype=DT) for k in range(1, len(widths) - 1)}
                sg[f"P{layer}"][[i, j]] = s
                copy = symmetry.apply_transform(params, spec, symmetry.Transform(perms, signs=sg))
                d = math.sqrt(sum(float((params[k] - copy[k]).pow(2).sum()) for k in params))
                best = min(best, d)
    return best


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("widths", [[3, 4, 2], [2, 3, 5, 1]])
def test_nearest_ghost_matches_brute_force(activation, widths):
    params = mlp.init_mlp(widths, 3)
    ghost = cloud.nearest_ghost(params, activation)
    assert ghost.distance == pytest.approx(_brute_force_nearest(params, activation), rel=1e-12)
    d = math.sqrt(sum(float((params[k] - ghost.params[k]).pow(2).sum()) for k in params))
    assert d == pytest.approx(ghost.distance, rel=1e-12)
    x = torch.randn(20, widths[0], dtype=DT, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(
        mlp.mlp_forward(ghost.params, x, activation),
        mlp.mlp_forward(params, x, activation),
        atol=1e-13,
    )


def test_direction_slope_recovers_a_power_law():
    x = np.logspace(-2, 1, 12)
    exact = cloud.direction_slope(x, 3.0 * x**-0.7, n_boot=200)
    assert exact.value == pytest.approx(-0.7) and exact.lo == pytest.approx(-0.7)
    rng = np.random.default_rng(0)
    y = 2.0 * x**0.4 * np.exp(0.3 * rng.standard_normal(x.size))
    est = cloud.direction_slope(x, y, n_boot=500)
    assert est.value == pytest.approx(np.polyfit(np.log(x), np.log(y), 1)[0])
    assert est.lo < est.value < est.hi


def test_ratio_summary_against_hand_computation():
    V = np.array([[1.0, 4.0, 2.0], [3.0, 2.0, 2.0]])
    pred = np.array([2.0, 2.0, 1.0])
    s = cloud.ratio_summary(V, pred, n_boot=300)
    np.testing.assert_allclose([e.value for e in s.per_direction], [1.0, 1.5, 2.0])
    assert s.max_dev.value == pytest.approx(1.0)
    assert s.median.value == pytest.approx(1.5)
    assert s.max_dev.lo <= s.max_dev.value <= s.max_dev.hi


def test_unit_partner_distances_and_distinct_ghost_skip_duplicates():
    params = mlp.init_mlp([3, 5, 2], 4)
    # make unit 3 a sign-flipped duplicate of unit 1 (exact for tanh)
    params["W1"][3], params["b1"][3], params["W2"][:, 3] = (
        -params["W1"][1],
        -params["b1"][1],
        -params["W2"][:, 1],
    )
    d = cloud.unit_partner_distances(params, "tanh")
    U = torch.cat([params["W1"], params["b1"][:, None], params["W2"].T], 1)
    brute = [
        min(min(float((U[i] - s * U[j]).norm()) for s in (1, -1)) for j in range(5) if j != i)
        for i in range(5)
    ]
    np.testing.assert_allclose(d, brute, atol=1e-14)
    assert d[1] == 0 and d[3] == 0
    assert cloud.nearest_ghost(params, "tanh").distance == 0.0
    distinct = cloud.nearest_ghost(params, "tanh", exclude_below=1e-9)
    others = sorted(x for x in brute if x > 0)
    assert distinct.distance == pytest.approx(math.sqrt(2) * others[0])
    assert cloud.nearest_ghost(params, "tanh", exclude_below=1e9) is None


def test_trained_minimum_reaches_a_small_gradient():
    from ghost_optima import data

    ds, _ = data.teacher_student(80, 10, 4, [3, 3], "classification", seed=2)
    obj, trained, star, gn = cloud.trained_minimum(
        ds, 4, seed=0, weight_decay=0.01, epochs=3, grad_tol=1e-9
    )
    g = torch.func.grad(obj.loss)(star)
    assert float(g.norm()) == pytest.approx(gn) and gn < 1e-7
    assert float(obj.loss(star)) <= float(obj.loss(trained))
    assert obj.widths == (4, 4, 3) and obj.weight_decay == 0.01
