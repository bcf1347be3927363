"""The one bootstrap and the one slope, against scipy and closed forms."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from ghost_optima.core.stats import bootstrap, bootstrap_ci, slope, slope_ci


def test_percentile_interval_matches_scipy():
    sample = np.random.default_rng(1).exponential(size=25)
    ours = bootstrap_ci(sample, np.median, n_boot=20000, seed=3)
    ref = sps.bootstrap(
        (sample,),
        np.median,
        n_resamples=20000,
        method="percentile",
        vectorized=False,
        rng=np.random.default_rng(4),
    ).confidence_interval
    width = ref.high - ref.low
    assert ours.value == np.median(sample)
    assert abs(ours.lo - ref.low) < 0.1 * width and abs(ours.hi - ref.high) < 0.1 * width


def test_interval_of_a_normal_mean_is_close_to_the_t_interval():
    sample = np.random.default_rng(0).normal(3.0, 2.0, size=200)
    est = bootstrap_ci(sample, n_boot=10000, seed=1)
    half = sps.t.ppf(0.975, 199) * sample.std(ddof=1) / np.sqrt(200)
    assert est.lo == pytest.approx(sample.mean() - half, rel=0.02)
    assert est.hi == pytest.approx(sample.mean() + half, rel=0.02)
    assert est.n == 200


def test_a_single_unit_collapses_the_interval():
    assert bootstrap_ci([2.5]) == bootstrap_ci([2.5], seed=9)
    est = bootstrap_ci([2.5])
    assert (est.lo, est.value, est.hi) == (2.5, 2.5, 2.5)


def test_non_finite_resamples_are_dropped_and_too_many_refused():
    values = np.arange(6.0)

    def distinct_mean(idx):  # a pairwise-style statistic: undefined with one distinct unit
        return values[idx].mean() if len(np.unique(idx)) > 1 else np.nan

    est = bootstrap(distinct_mean, 6, n_boot=500)
    assert est.lo <= est.value <= est.hi
    with pytest.raises(ValueError, match="finite"):
        bootstrap(lambda idx: np.nan, 6, n_boot=100)


def test_groups_are_resampled_independently():
    a, b = np.zeros(5), np.arange(50.0)
    est = bootstrap(lambda i, j: a[i].mean() + b[j].mean(), [5, 50], n_boot=2000)
    alone = bootstrap(lambda j: b[j].mean(), 50, n_boot=2000)
    assert est.value == alone.value and est.n == 5
    assert est.hi - est.lo == pytest.approx(alone.hi - alone.lo, rel=0.2)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1.0, 2.0], level=1.5)
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="at least one unit"):
        bootstrap(np.mean, [3, 0])


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=30, unique=True),
    st.floats(-5, 5),
    st.floats(-5, 5),
)
def test_slope_equals_scipy_linregress(xs, a, b):
    x = np.array(xs)
    y = a * x + b + np.sin(x)
    assert slope(x, y) == pytest.approx(sps.linregress(x, y).slope, rel=1e-9, abs=1e-9)


def test_slope_of_equal_abscissae_is_nan():
    assert np.isnan(slope([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def test_slope_ci_over_points_and_over_seeds():
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, 40)
    pairs = slope_ci(x, 2.0 * x + 0.1 * rng.normal(size=40), n_boot=1000)
    assert pairs.lo < 2.0 < pairs.hi and pairs.n == 40
    per_seed = -1.0 * x + rng.normal(size=(8, 1)) * x  # seeds differ in slope, sd 1
    seeds = slope_ci(x, per_seed, n_boot=1000)
    assert seeds.n == 8 and seeds.value == pytest.approx(slope(x, per_seed.mean(0)))
    assert seeds.hi - seeds.lo > 0.5
    with pytest.raises(ValueError, match="distinct x"):
        slope_ci(np.ones(3), np.ones((4, 3)))
