"""Tests of ghost_optima.sgd.epistemic: the eta x B grid and the sandwich covariance."""

import numpy as np
import pytest
import torch

from ghost_optima.core import mlp
from ghost_optima.sgd import epistemic, network_chains
from ghost_optima.sgd.chains import Schedule
from ghost_optima.sgd.known_problems import NoisyQuadratic, simulate_quadratic_sgd
from ghost_optima.sgd.stationary import stationary_variance

DT = torch.float64


def test_grid_of_an_exact_eta_over_b_law():
    etas, batches = [0.1, 0.2, 0.4], [8, 16, 32, 64]
    rng = np.random.default_rng(0)
    law = 3.0 * np.array(etas)[:, None] / np.array(batches)[None, :]
    P = law[None] * rng.uniform(0.9, 1.1, size=(6, 1, 1))  # chain factors common to all cells
    grid = epistemic.plateau_grid(P, etas, batches, (1, 1), n_boot=200, seed=0)
    assert grid.eta_exponent.value == pytest.approx(1.0)
    assert grid.batch_exponent.value == pytest.approx(-1.0)
    assert grid.exponent_sum.value == pytest.approx(0.0, abs=1e-12)
    for a in range(3):
        for b in range(4):
            assert grid.relative[a][b].value == pytest.approx(1.0)
            assert grid.ratio[a][b].value == pytest.approx(3.0 * P[:, 0, 0].mean() / law[0, 0])
            assert grid.plateau[a][b].lo <= grid.plateau[a][b].value <= grid.plateau[a][b].hi
    with pytest.raises(ValueError):
        epistemic.plateau_grid(P[:, :1], etas[:1], batches, (0, 0), n_boot=10, seed=0)


def test_grid_on_the_noisy_quadratic_matches_the_stationary_law():
    lam, C = np.array([0.5, 2.0, 8.0]), np.array([1.0, 4.0, 2.0])
    etas, batches = [0.02, 0.05, 0.1], [2, 8]
    n_chains = 16
    P = np.empty((n_chains, len(etas), len(batches)))
    exact = np.empty((len(etas), len(batches)))
    for a, eta in enumerate(etas):
        for b, B in enumerate(batches):
            steps = int(round(400 / eta))
            run = simulate_quadratic_sgd(
                NoisyQuadratic(lam, C),
                Schedule(eta, B, steps, steps // 5),
                n_chains,
                torch.Generator().manual_seed(10 * a + b),
            )
            P[:, a, b] = run.var_per_chain.sum(dim=1).numpy()
            exact[a, b] = stationary_variance(eta, lam, C, B).sum()
    grid = epistemic.plateau_grid(P, etas, batches, (1, 0), n_boot=300, seed=0)
    for a, eta in enumerate(etas):
        for b, B in enumerate(batches):
            ratio = grid.ratio[a][b]
            assert ratio.value == pytest.approx(exact[a, b] / (eta / B), rel=0.05)
    # the exact law: batch exponent -1, eta exponent a little above 1 from 2 / (2 - eta lambda)
    log_eta, log_b = np.meshgrid(np.log(etas), np.log(batches), indexing="ij")
    p, q, _ = epistemic._exponents(log_eta, log_b, exact)
    assert q == pytest.approx(-1.0)
    assert 1.0 < p < 1.2
    assert grid.eta_exponent.value == pytest.approx(p, abs=0.05)
    assert grid.batch_exponent.value == pytest.approx(-1.0, abs=0.05)
    assert grid.eta_exponent.lo <= grid.eta_exponent.value <= grid.eta_exponent.hi


def test_sandwich_covariance_of_least_squares_matches_the_refits_on_resamples():
    # heteroscedastic noise: the sandwich differs from the classical sigma^2 (X^T X)^-1
    g = torch.Generator().manual_seed(0)
    n, d = 1500, 3
    X = torch.randn(n, d, generator=g, dtype=DT) * torch.tensor([1.0, 2.0, 0.5], dtype=DT)
    noise = torch.randn(n, generator=g, dtype=DT) * (0.3 + X[:, 0].abs())
    y = X @ torch.tensor([1.0, -2.0, 0.5], dtype=DT) + noise
    beta = torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1)
    H = X.T @ X / n
    G = X * (X @ beta - y).unsqueeze(1)  # gradients of (x^T b - y)^2 / 2 at the fit
    cov = epistemic.sandwich_covariance(H, G)
    refits = epistemic.refits_on_resamples(
        lambda idx: torch.linalg.lstsq(X[idx], y[idx].unsqueeze(1)).solution.squeeze(1),
        n,
        2000,
        torch.Generator().manual_seed(1),
    )
    boot = torch.cov(refits.T, correction=0)
    torch.testing.assert_close(cov, boot, rtol=0.12, atol=0.12 * float(cov.diag().max()))
    classical = float((X @ beta - y).pow(2).mean()) * torch.linalg.inv(X.T @ X)
    assert float(cov[0, 0]) > 1.5 * float(classical[0, 0])  # the sandwich is the one that holds
    total = epistemic.spread(refits, beta, n_boot=300, seed=0)
    assert total.value == pytest.approx(epistemic.sandwich_spread(cov), rel=0.08)
    e = torch.tensor([1.0, 1.0, 0.0], dtype=DT)
    along = epistemic.spread(refits, beta, e, n_boot=300, seed=0)
    assert along.value == pytest.approx(epistemic.sandwich_spread(cov, e), rel=0.08)
    assert along.lo <= along.value <= along.hi
    with pytest.raises(ValueError):
        epistemic.sandwich_covariance(-H, G)


def test_mlp_refit_on_the_whole_training_set_returns_the_minimum():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 3, generator=g, dtype=DT)
    y = (X[:, 0] > 0).long()
    params = {k: v.double() for k, v in mlp.init_mlp([3, 4, 2], 0).items()}
    objective, theta = network_chains.mlp_objective(params, X, y, weight_decay=0.01)
    theta_star, _, _ = network_chains.minimize(objective.loss, theta, grad_tol=1e-10)
    refit = epistemic.mlp_refit(objective, theta_star, grad_tol=1e-10)
    torch.testing.assert_close(refit(torch.arange(40)), theta_star, atol=1e-7, rtol=0)
    moved = epistemic.refits_on_resamples(refit, 40, 2, torch.Generator().manual_seed(0))
    assert moved.shape == (2, theta_star.numel())
    assert float((moved - theta_star).norm(dim=1).min()) > 1e-4
