"""Tests of ghost_optima.landscape.hessian and gradient_noise against references (autograd,
numpy)."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from ghost_optima.landscape.gradient_noise import per_sample_grads, projected_noise_variance
from ghost_optima.landscape.hessian import (
    HessianOperator,
    flatten_params,
    hessian_matrix,
    hvp,
    make_flat_loss,
    power_iteration_top_k,
    top_eigenpairs,
)

DT = torch.float64


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)  # test-only: fixes the module's initial weights
    return nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)).to(DT)


@pytest.fixture(scope="module")
def problem():
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(40, 3, generator=gen, dtype=DT)
    y = torch.randn(40, 2, generator=gen, dtype=DT)
    model = _mlp()

    def criterion(out, target):  # mean squared error written out: forward AD works through it
        return ((out - target) ** 2).mean()

    loss_fn, theta0, unflatten = make_flat_loss(model, criterion, X, y)
    H = torch.autograd.functional.hessian(loss_fn, theta0)  # independent reference
    return {
        "model": model,
        "criterion": criterion,
        "X": X,
        "y": y,
        "loss_fn": loss_fn,
        "theta": theta0,
        "unflatten": unflatten,
        "H": H,
    }


def test_flatten_roundtrip_and_loss_matches_module(problem):
    model = problem["model"]
    params = dict(model.named_parameters())
    theta, unflatten = flatten_params(params)
    assert theta.shape == (sum(p.numel() for p in params.values()),) == (38,)
    back = unflatten(theta)
    for k, p in params.items():
        assert torch.equal(back[k], p.detach())
    with torch.no_grad():
        direct = problem["criterion"](model(problem["X"]), problem["y"])
    assert torch.allclose(problem["loss_fn"](theta), direct)
    with pytest.raises(ValueError):
        unflatten(theta[:-1])


def test_hvp_matches_autograd_hessian(problem):
    H = problem["H"]
    gen = torch.Generator().manual_seed(2)
    for _ in range(3):
        v = torch.randn(H.shape[0], generator=gen, dtype=DT)
        torch.testing.assert_close(
            hvp(problem["loss_fn"], problem["theta"], v), H @ v, rtol=1e-10, atol=1e-12
        )


@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_hvp_modes_agree(problem, mode):
    v = torch.linspace(-1, 1, problem["theta"].numel(), dtype=DT)
    torch.testing.assert_close(
        hvp(problem["loss_fn"], problem["theta"], v, mode=mode),
        problem["H"] @ v,
        rtol=1e-10,
        atol=1e-12,
    )


def test_hvp_falls_back_when_forward_ad_fails(problem):
    # nn.MSELoss() breaks jvp(grad(.)) in torch 2.13 (pytorch/pytorch#123996); "auto" must
    # still give the right product, via reverse-over-reverse.
    loss_fn, theta, _ = make_flat_loss(problem["model"], nn.MSELoss(), problem["X"], problem["y"])
    v = torch.linspace(-1, 1, theta.numel(), dtype=DT)
    ref = problem["H"] @ v  # same loss, written out
    torch.testing.assert_close(hvp(loss_fn, theta, v), ref, rtol=1e-10, atol=1e-12)
    vals, _, _ = top_eigenpairs(loss_fn, theta, 2)
    ref_vals = np.linalg.eigvalsh(problem["H"].numpy())[::-1][:2]
    np.testing.assert_allclose(vals.numpy(), ref_vals, rtol=1e-6)


def test_hessian_matrix_matches_autograd(problem):
    Hm = hessian_matrix(problem["loss_fn"], problem["theta"], chunk_size=16)
    torch.testing.assert_close(Hm, problem["H"], rtol=1e-10, atol=1e-12)


def test_hessian_operator_float64_and_counts(problem):
    op = HessianOperator(problem["loss_fn"], problem["theta"])
    d = problem["theta"].numel()
    assert op.shape == (d, d) and op.dtype == np.float64 and op.n_matvec == 0
    rng = np.random.default_rng(0)
    x = rng.standard_normal(d)
    Hn = problem["H"].numpy()
    np.testing.assert_allclose(op @ x, Hn @ x, rtol=1e-10, atol=1e-12)
    assert op.n_matvec == 1
    M = rng.standard_normal((d, 3))
    np.testing.assert_allclose(op @ M, Hn @ M, rtol=1e-10, atol=1e-12)
    assert op.n_matvec == 4
    np.testing.assert_allclose(op.T @ x, Hn @ x, rtol=1e-10, atol=1e-12)


def test_top_eigenpairs_matches_eigh(problem):
    k = 5
    ref_vals, ref_vecs = np.linalg.eigh(problem["H"].numpy())
    ref_vals, ref_vecs = ref_vals[::-1][:k], ref_vecs[:, ::-1][:, :k]
    assert np.min(np.abs(np.diff(ref_vals))) > 1e-4 * abs(ref_vals[0])  # distinct: vecs defined
    vals, vecs, n_hvp = top_eigenpairs(problem["loss_fn"], problem["theta"], k, seed=0)
    assert vals.shape == (k,) and vecs.shape == (problem["theta"].numel(), k)
    assert torch.all(vals[:-1] >= vals[1:])
    np.testing.assert_allclose(vals.numpy(), ref_vals, rtol=1e-6)
    overlap = np.abs(np.sum(vecs.numpy() * ref_vecs, axis=0))  # |q . q_ref|, sign-free
    np.testing.assert_allclose(overlap, 1.0, atol=1e-6)
    assert n_hvp > 0
    # deterministic given the seed
    vals2, vecs2, n2 = top_eigenpairs(problem["loss_fn"], problem["theta"], k, seed=0)
    assert torch.equal(vals, vals2) and torch.equal(vecs, vecs2) and n2 == n_hvp


def test_top_eigenpairs_rejects_bad_k(problem):
    with pytest.raises(ValueError):
        top_eigenpairs(problem["loss_fn"], problem["theta"], problem["theta"].numel())


def test_power_iteration_on_psd_quadratic():
    gen = torch.Generator().manual_seed(3)
    d, k = 30, 4
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=DT))
    lam = torch.cat([torch.tensor([10.0, 7.0, 5.0, 3.0], dtype=DT), torch.linspace(1, 0.01, d - 4)])
    A = (Q * lam) @ Q.T
    A = 0.5 * (A + A.T)

    def loss_fn(theta):
        return 0.5 * theta @ A @ theta

    theta = torch.randn(d, generator=gen, dtype=DT)
    vals, vecs, n_hvp = power_iteration_top_k(loss_fn, theta, k, tol=1e-12, max_iter=2000, seed=0)
    np.testing.assert_allclose(vals.numpy(), lam[:k].numpy(), rtol=1e-8)
    overlap = (vecs * Q[:, :k]).sum(0).abs()
    torch.testing.assert_close(overlap, torch.ones(k, dtype=DT), atol=1e-5, rtol=0)
    assert n_hvp > k
    # against eigsh on the same operator
    v2, _, _ = top_eigenpairs(loss_fn, theta, k)
    np.testing.assert_allclose(vals.numpy(), v2.numpy(), rtol=1e-8)


def test_power_iteration_warns_when_not_converged():
    A = torch.diag(torch.tensor([1.0, 0.999, 0.5], dtype=DT))
    with pytest.warns(RuntimeWarning, match="did not reach"):
        power_iteration_top_k(
            lambda t: 0.5 * t @ A @ t, torch.zeros(3, dtype=DT), 1, tol=1e-14, max_iter=5
        )


def test_per_sample_grads_match_loop(problem):
    model, crit = problem["model"], problem["criterion"]
    X, y, theta = problem["X"], problem["y"], problem["theta"]
    unflatten = problem["unflatten"]

    def f(theta, x, t):  # one example through the module, batch axis of one
        return crit(functional_call(model, unflatten(theta), (x.unsqueeze(0),)), t.unsqueeze(0))

    G = per_sample_grads(f, theta, X, y)
    assert G.shape == (X.shape[0], theta.numel())
    rows = []
    for j in range(X.shape[0]):  # independent reference: autograd on the module itself
        model.zero_grad()
        loss = crit(model(X[j : j + 1]), y[j : j + 1])
        gs = torch.autograd.grad(loss, list(model.parameters()))
        rows.append(torch.cat([g.reshape(-1) for g in gs]))
    torch.testing.assert_close(G, torch.stack(rows), rtol=1e-10, atol=1e-12)
    # chunked vmap gives the same; the mean of per-sample grads is the full-batch gradient
    torch.testing.assert_close(per_sample_grads(f, theta, X, y, chunk_size=7), G)
    full = torch.func.grad(problem["loss_fn"])(theta)
    torch.testing.assert_close(G.mean(0), full, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("unbiased", [False, True])
def test_projected_noise_variance_matches_np_cov(unbiased):
    rng = np.random.default_rng(4)
    G = rng.standard_normal((50, 8)) @ rng.standard_normal((8, 8)) + rng.standard_normal(8)
    Q = rng.standard_normal((8, 3))
    C = np.cov(G, rowvar=False, bias=not unbiased)
    ref = np.einsum("di,de,ei->i", Q, C, Q)
    got = projected_noise_variance(torch.from_numpy(G), torch.from_numpy(Q), unbiased=unbiased)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10)
    one = projected_noise_variance(
        torch.from_numpy(G), torch.from_numpy(Q[:, 0]), unbiased=unbiased
    )
    np.testing.assert_allclose(float(one), ref[0], rtol=1e-10)
