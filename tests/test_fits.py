"""Tests of ghost_optima.sgd.fits against closed forms, numpy and hand computation."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ghost_optima.core.stats import sample_estimate
from ghost_optima.sgd.chains import Schedule
from ghost_optima.sgd.fits import fit_log_variance, loglog_slope, ratio_summary
from ghost_optima.sgd.known_problems import NoisyQuadratic, simulate_quadratic_sgd


def test_fit_log_variance_recovers_exact_plane():
    rng = np.random.default_rng(0)
    lam = np.exp(rng.uniform(-3, 1, 20))
    C = np.exp(rng.uniform(-2, 2, 20))
    var = np.exp(0.3) * lam**-1.0 * C**0.8
    fit = fit_log_variance(var, lam, C, seed=0, n_boot=300)
    assert fit.resampled == "directions" and fit.n_directions == 20
    for est, truth in ((fit.a, 0.3), (fit.b, -1.0), (fit.c, 0.8)):
        assert est.value == pytest.approx(truth, abs=1e-10)
        assert est.hi - est.lo < 1e-8
    with pytest.raises(ValueError, match="collinear"):
        fit_log_variance(var, lam, 2 * lam, seed=0, n_boot=10)


def test_fit_log_variance_per_chain_on_simulation():
    lam = np.array([0.002, 0.005, 0.01, 0.02, 0.05, 0.01])
    C = np.array([1.0, 0.3, 3.0, 1.0, 0.5, 0.2])
    eta, batch = 1.0, 2
    r = simulate_quadratic_sgd(
        NoisyQuadratic(lam, C),
        Schedule(eta, batch, 4000, 1500),
        64,
        torch.Generator().manual_seed(5),
    )
    fit = fit_log_variance(r.var_per_chain, lam, C, seed=0, n_boot=400)
    assert fit.resampled == "chains" and fit.a.n == 64
    # small-step theory: a = log(eta / (2 B)), b = -1, c = 1
    assert fit.b.value == pytest.approx(-1.0, abs=0.1)
    assert fit.c.value == pytest.approx(1.0, abs=0.1)
    assert fit.a.value == pytest.approx(np.log(eta / (2 * batch)), abs=0.2)
    for est in (fit.a, fit.b, fit.c):
        assert est.lo <= est.value <= est.hi
    # per-seed problems (2-D lam and C): pooled fit
    lam2 = np.tile(lam, (64, 1))
    fit2 = fit_log_variance(r.var_per_chain, lam2, np.tile(C, (64, 1)), seed=0, n_boot=100)
    assert fit2.b.value == pytest.approx(-1.0, abs=0.1)


def test_loglog_slope_exact_power_law():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    rng = np.random.default_rng(1)
    y = 3.0 * x**-0.7 * np.exp(rng.normal(0, 0.05, (6, 4)))
    est = loglog_slope(x, y, seed=0, n_boot=500)
    assert est.value == pytest.approx(-0.7, abs=0.05) and est.lo < -0.7 < est.hi
    # independent reference: numpy's degree-1 polyfit of log(mean y) on log x
    ref = np.polyfit(np.log(x), np.log(y.mean(axis=0)), 1)[0]
    assert est.value == pytest.approx(ref, rel=1e-12)
    single = loglog_slope(x, 2 * x**1.5)
    assert single.value == pytest.approx(1.5) and single.lo == single.hi and single.n == 1
    with pytest.raises(ValueError):
        loglog_slope(x, -y)


def test_ratio_summary_against_hand_computation():
    V = np.array([[1.0, 4.0, 2.0], [3.0, 2.0, 2.0]])
    pred = np.array([2.0, 2.0, 1.0])
    s = ratio_summary(V, pred, n_boot=300)
    np.testing.assert_allclose([e.value for e in s.per_direction], [1.0, 1.5, 2.0])
    assert s.max_dev.value == pytest.approx(1.0)
    assert s.median.value == pytest.approx(1.5)
    assert s.max_dev.lo <= s.max_dev.value <= s.max_dev.hi


@given(
    st.integers(2, 6),
    st.integers(3, 12),
    st.floats(0.05, 2.0),
    st.integers(0, 2**16),
)
@settings(max_examples=40, deadline=None)
def test_ratio_max_dev_interval_is_the_range_over_simultaneous_intervals(k, n, noise, seed):
    rng = np.random.default_rng(seed)
    pred = rng.uniform(0.5, 2.0, k)
    V = pred * np.exp(noise * rng.standard_normal((n, k)))
    s = ratio_summary(V, pred, n_boot=200, seed=seed)
    assert s.max_dev.lo <= s.max_dev.value <= s.max_dev.hi  # contains its point
    # brute force: the extremes of max_i |r_i - 1| over a grid of r inside the boxes
    simultaneous = [
        sample_estimate(
            V[:, i],
            lambda v, p=pred[i]: float(v.mean() / p),
            n_boot=200,
            level=1 - 0.05 / k,
            seed=seed,
        )
        for i in range(k)
    ]
    grids = [
        np.append(np.linspace(e.lo, e.hi, 41), 1.0 if e.lo <= 1 <= e.hi else e.lo)
        for e in simultaneous
    ]
    lo = max(np.min(np.abs(g - 1)) for g in grids)
    hi = max(np.max(np.abs(g - 1)) for g in grids)
    assert s.max_dev.lo == pytest.approx(lo, abs=1e-12)
    assert s.max_dev.hi == pytest.approx(hi, abs=1e-12)
