"""Tests of ghost_optima.sgd.stationary (closed forms) and ghost_optima.sgd.known_problems
(simulators vs them)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ghost_optima.landscape.gradient_noise import projected_noise_variance
from ghost_optima.sgd.chains import Schedule
from ghost_optima.sgd.fits import loglog_slope
from ghost_optima.sgd.known_problems import (
    NoisyQuadratic,
    simulate_linear_regression_sgd,
    simulate_quadratic_sgd,
)
from ghost_optima.sgd.stationary import (
    brief_eps_power_for_agreement,
    brief_variance,
    finite_population_factor,
    stationary_variance,
)

DT = torch.float64

# eta * lambda = 0.1, 0.5, 1.0, 1.5: the exact AR(1) variance is 1.05, 1.33, 2 and 4 times the
# small-step limit there.
ETA = 1.0
LAM = np.array([0.1, 0.5, 1.0, 1.5])
CQ = np.array([1.0, 2.0, 0.5, 1.0])
B = 4


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def quad_run():
    return simulate_quadratic_sgd(
        NoisyQuadratic(LAM, CQ), Schedule(ETA, B, 3000, 200), 256, _gen(0)
    )


# ----------------------------------------------------------------------------- closed forms


def test_stationary_variance_values():
    # hand-computed: eta C / (B lam (2 - eta lam)) and eta C / (2 B lam)
    assert stationary_variance(0.1, 2.0, 3.0, 5) == pytest.approx(0.1 * 3 / (5 * 2 * 1.8))
    assert stationary_variance(0.1, 2.0, 3.0, 5, exact=False) == pytest.approx(0.3 / 20)
    s = (100 - 5) / 99
    assert stationary_variance(0.1, 2.0, 3.0, 5, n=100) == pytest.approx(s * 0.3 / 18)
    assert stationary_variance(0.1, 2.0, 3.0, 100, n=100) == 0.0  # full batch: no noise
    out = stationary_variance(ETA, LAM, CQ, B)
    assert isinstance(out, np.ndarray) and out.shape == (4,)
    np.testing.assert_allclose(
        out / stationary_variance(ETA, LAM, CQ, B, exact=False), 2 / (2 - ETA * LAM)
    )
    # accepts tensors
    np.testing.assert_allclose(
        stationary_variance(ETA, torch.tensor(LAM), torch.tensor(CQ), B), out
    )
    assert finite_population_factor(5, None) == 1.0


@pytest.mark.parametrize("lam", [2.0, 2.5, [0.5, 3.0]])
def test_stationary_variance_rejects_divergence(lam):
    with pytest.raises(ValueError, match="SGD diverges along direction"):
        stationary_variance(1.0, lam, 1.0, 1)


@pytest.mark.parametrize(
    ("eta", "lam", "kw"),
    [(1.0, 0.0, {}), (1.0, -0.3, {}), (0.0, 1.0, {}), (0.5, 1.0, {"n": 3})],
)
def test_stationary_variance_rejects_other_bad_input(eta, lam, kw):
    with pytest.raises(ValueError):
        stationary_variance(eta, lam, 1.0, 4, **kw)  # flat/negative curvature, eta<=0, B>n


@settings(max_examples=200, deadline=None)
@given(
    eta_lam=st.floats(1e-6, 1.999),
    eta=st.floats(1e-4, 10.0),
    C=st.floats(1e-6, 1e6),
    batch=st.integers(1, 512),
)
def test_exact_at_least_small_step_limit(eta_lam, eta, C, batch):
    lam = eta_lam / eta
    exact = stationary_variance(eta, lam, C, batch)
    limit = stationary_variance(eta, lam, C, batch, exact=False)
    assert exact >= limit > 0
    assert exact / limit == pytest.approx(2 / (2 - eta * lam), rel=1e-9)


def test_brief_agreement_and_lambda_independence():
    n, eta, batch = 1000, 0.05, 10
    lam = np.array([3.0, 1.0, 0.2])
    C = np.array([0.7, 2.0, 0.1])
    for exact in (True, False):
        for fpc in (True, False):
            E = brief_eps_power_for_agreement(
                eta, lam, C, batch, n, exact=exact, finite_population=fpc
            )
            np.testing.assert_allclose(
                brief_variance(eta, E, n),
                stationary_variance(eta, lam, C, batch, exact=exact, n=n if fpc else None),
            )
    # small-step: E_i = n C_i / (B lambda_i)
    np.testing.assert_allclose(
        brief_eps_power_for_agreement(eta, lam, C, batch, n, exact=False), n * C / (batch * lam)
    )
    # with C = kappa * H the standard variance loses its lambda dependence, like the brief's
    kappa = 0.3
    v = stationary_variance(eta, lam, kappa * lam, batch, exact=False)
    np.testing.assert_allclose(v, brief_variance(eta, n * kappa / batch, n) * np.ones(3))


# ----------------------------------------------------------------------------- simulators


def test_quadratic_simulator_matches_exact_not_small_step(quad_run):
    r = quad_run
    assert r.var.shape == (4,) and r.var_per_chain.shape == (256, 4) and r.n_samples == 2800
    exact = stationary_variance(ETA, LAM, CQ, B)
    limit = stationary_variance(ETA, LAM, CQ, B, exact=False)
    ratio = r.var.numpy() / exact
    np.testing.assert_allclose(ratio, 1.0, atol=0.03)
    # at eta*lam >= 0.5 the small-step limit is off by a third or more
    assert np.all(np.abs(r.var.numpy()[1:] / limit[1:] - 1) > 0.25)
    # the per-direction bootstrap intervals over chains cover the closed form
    for est, v in zip(r.estimates(seed=0, n_boot=500, level=0.99), exact, strict=True):
        assert est.lo <= v <= est.hi and est.n == 256


def test_quadratic_simulator_full_noise_matrix_and_fpc():
    # non-commuting noise: the per-direction marginal is still the exact AR(1) form
    rng = np.random.default_rng(0)
    A = rng.standard_normal((3, 3))
    Cm = A @ A.T + 0.1 * np.eye(3)
    lam = np.array([0.2, 0.6, 1.2])
    n = 16  # B = 4 of n = 16 without replacement: factor 12/15
    problem = NoisyQuadratic(lam, Cm, n=n)
    r = simulate_quadratic_sgd(
        problem, Schedule(1.0, 4, 3000, 200, replacement=False), 256, _gen(1)
    )
    pred = stationary_variance(1.0, lam, np.diag(Cm), 4, n=n)
    np.testing.assert_allclose(r.var.numpy() / pred, 1.0, atol=0.04)
    assert np.all(r.var.numpy() / stationary_variance(1.0, lam, np.diag(Cm), 4) < 0.88)
    # with replacement the same n is ignored: s = 1
    r1 = simulate_quadratic_sgd(problem, Schedule(1.0, 4, 3000, 200), 256, _gen(1))
    pred1 = stationary_variance(1.0, lam, np.diag(Cm), 4)
    np.testing.assert_allclose(r1.var.numpy() / pred1, 1.0, atol=0.04)


def test_quadratic_simulator_deterministic():
    # 300 steps: one full noise block of 256 steps and a partial one
    problem, schedule = NoisyQuadratic(LAM, CQ), Schedule(ETA, B, 300, 10)
    a = simulate_quadratic_sgd(problem, schedule, 8, _gen(7))
    b = simulate_quadratic_sgd(problem, schedule, 8, _gen(7))
    c = simulate_quadratic_sgd(problem, schedule, 8, _gen(8))
    assert torch.equal(a.var_per_chain, b.var_per_chain) and torch.equal(a.var, b.var)
    assert not torch.equal(a.var_per_chain, c.var_per_chain)


def test_quadratic_simulator_validates():
    with pytest.raises(ValueError):
        simulate_quadratic_sgd(NoisyQuadratic(LAM, CQ[:3]), Schedule(ETA, B, 10), 2, _gen(0))
    with pytest.raises(ValueError, match="burn_in"):
        Schedule(ETA, B, 10, burn_in=10)
    with pytest.raises(ValueError, match="SGD diverges along direction 3"):
        simulate_quadratic_sgd(NoisyQuadratic(LAM, CQ), Schedule(1.4, B, 10), 2, _gen(0))


def _regression_data(n: int, seed: int):
    g = _gen(seed)
    X = torch.randn(n, 3, generator=g, dtype=DT) * torch.tensor([1.0, 0.7, 0.5], dtype=DT)
    y = X @ torch.tensor([1.0, -2.0, 0.5], dtype=DT) + torch.randn(n, generator=g, dtype=DT)
    return X, y


@pytest.fixture(scope="module")
def regression_run():
    X, y = _regression_data(40, 3)
    schedule = Schedule(0.3, 20, 3000, 200, replacement=False)
    res = simulate_linear_regression_sgd(X, y, schedule, 128, _gen(4))
    return X, y, res


def test_linear_regression_quantities_against_numpy(regression_run):
    X, y, r = regression_run
    Xn, yn = X.numpy(), y.numpy()
    theta_star = np.linalg.lstsq(Xn, yn, rcond=None)[0]
    np.testing.assert_allclose(r.theta_star.numpy(), theta_star, rtol=1e-10)
    lam, Q = np.linalg.eigh(Xn.T @ Xn / len(yn))
    np.testing.assert_allclose(r.lam.numpy(), lam[::-1], rtol=1e-10)
    G = Xn * (Xn @ theta_star - yn)[:, None]  # per-sample gradients at theta*
    Cref = np.einsum("di,de,ei->i", Q[:, ::-1], np.cov(G, rowvar=False, bias=True), Q[:, ::-1])
    np.testing.assert_allclose(r.noise_C.numpy(), Cref, rtol=1e-8)
    torch.testing.assert_close(r.noise_C, projected_noise_variance(torch.from_numpy(G), r.eigvecs))


def test_linear_regression_sgd_matches_fpc_prediction(regression_run):
    X, y, r = regression_run
    n = X.shape[0]
    assert r.var_per_chain.shape == (128, 3)
    with_fpc = stationary_variance(0.3, r.lam, r.noise_C, 20, n=n)  # factor 20/39
    without = stationary_variance(0.3, r.lam, r.noise_C, 20)
    np.testing.assert_allclose(r.var.numpy() / with_fpc, 1.0, atol=0.08)
    assert np.all(r.var.numpy() / without < 0.6)


def test_linear_regression_full_batch_stays_put_and_is_deterministic():
    X, y = _regression_data(12, 5)
    r = simulate_linear_regression_sgd(X, y, Schedule(0.3, 12, 50), 4, _gen(0))
    assert float(r.var.max()) < 1e-25  # B = n: plain gradient descent started at theta*
    schedule = Schedule(0.3, 3, 60, 5, replacement=False)
    a = simulate_linear_regression_sgd(X, y, schedule, 4, _gen(9))
    # same values at another memory alignment (LAPACK/BLAS paths may depend on it)
    buf = torch.empty(X.numel() + 1, dtype=DT)
    X_shifted = buf[1:].view_as(X)
    X_shifted.copy_(X)
    b = simulate_linear_regression_sgd(X_shifted, y, schedule, 4, _gen(9))
    assert torch.equal(a.var_per_chain, b.var_per_chain)
    c = simulate_linear_regression_sgd(X, y, schedule, 4, _gen(10))
    assert not torch.equal(a.var_per_chain, c.var_per_chain)


def test_linear_regression_with_replacement_has_no_fpc(regression_run):
    X, y, _ = regression_run
    r = simulate_linear_regression_sgd(X, y, Schedule(0.3, 20, 3000, 200), 128, _gen(6))
    pred = stationary_variance(0.3, r.lam, r.noise_C, 20)  # s = 1
    np.testing.assert_allclose(r.var.numpy() / pred, 1.0, atol=0.08)


def test_plateau_scales_like_eta_over_b():
    # the plateau sum_i Var_i ~ (eta / B) sum_i C_i / (2 lambda_i) for eta lambda << 1
    lam = np.array([0.01, 0.02, 0.05])
    problem = NoisyQuadratic(lam, np.ones(3))
    etas = np.array([0.5, 1.0, 2.0])
    batches = np.array([2, 4, 8])

    def plateau(eta, batch, seed):
        run = simulate_quadratic_sgd(problem, Schedule(eta, int(batch), 3000, 900), 32, _gen(seed))
        return float(run.var.sum())

    eta_rows = [[plateau(e, 4, 100 + seed) for e in etas] for seed in range(4)]
    b_rows = [[plateau(1.0, b, 200 + seed) for b in batches] for seed in range(4)]
    s_eta = loglog_slope(etas, eta_rows, seed=0, n_boot=500)
    s_b = loglog_slope(batches, b_rows, seed=0, n_boot=500)
    assert s_eta.n == 4 and s_eta.lo <= s_eta.value <= s_eta.hi
    assert s_eta.value == pytest.approx(1.0, abs=0.1)
    assert s_b.value == pytest.approx(-1.0, abs=0.1)
    # and the level is the exact law's
    exact = stationary_variance(1.0, lam, np.ones(3), 4).sum()
    assert np.mean([row[1] for row in eta_rows]) == pytest.approx(exact, rel=0.1)
