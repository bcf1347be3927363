"""The resampling kernel (ghost_optima.core.stats) against scipy, sklearn, brute-force loops over
resamples and closed forms."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from ghost_optima.core.stats import (
    Nested,
    bootstrap,
    counts,
    finite_slope,
    intervals,
    nested_mean,
    pair_means,
    resample,
    sample_estimate,
    slope,
    slope_ci,
    weighted_auroc,
)


def test_percentile_interval_matches_scipy():
    sample = np.random.default_rng(1).exponential(size=25)
    ours = sample_estimate(sample, np.median, n_boot=20000, seed=3)
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
    est = sample_estimate(sample, n_boot=10000, seed=1)
    half = sps.t.ppf(0.975, 199) * sample.std(ddof=1) / np.sqrt(200)
    assert est.lo == pytest.approx(sample.mean() - half, rel=0.02)
    assert est.hi == pytest.approx(sample.mean() + half, rel=0.02)
    assert est.n == 200


def test_a_single_unit_collapses_the_interval():
    assert sample_estimate([2.5]) == sample_estimate([2.5], seed=9)
    est = sample_estimate([2.5])
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
        sample_estimate([1.0, 2.0], level=1.5)
    with pytest.raises(ValueError, match="at least one"):
        sample_estimate([])
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


def _pair_mean_loop(matrix, idx):
    """The mean of ``matrix[idx[a], idx[b]]`` over positions ``a < b`` holding different seeds."""
    values = [
        matrix[idx[a], idx[b]]
        for a in range(len(idx))
        for b in range(a + 1, len(idx))
        if idx[a] != idx[b] and not np.isnan(matrix[idx[a], idx[b]])
    ]
    return np.mean(values) if values else np.nan


def _symmetric(rng, k, n):
    m = rng.normal(size=(k, n, n))
    return (m + m.transpose(0, 2, 1)) / 2


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 12), n_boot=st.integers(2, 60), seed=st.integers(0, 10**6))
def test_resamples_are_scipys_and_the_statistic_its_bootstrap_distribution(n, n_boot, seed):
    """The rows ``resample`` draws are those ``scipy.stats.bootstrap`` draws for the same
    generator (fed the indices themselves as data), so a batched statistic reproduces scipy's
    bootstrap distribution value for value, and the interval its percentile interval."""
    values = np.random.default_rng(seed + 1).normal(size=n)
    idx = resample(n, n_boot=n_boot, seed=seed)[0]
    assert idx.shape == (n_boot + 1, n) and (idx[0] == np.arange(n)).all()
    ref = sps.bootstrap(
        (np.arange(n),),
        lambda i, axis: values[i].mean(axis),
        n_resamples=n_boot,
        vectorized=True,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    np.testing.assert_array_equal(values[idx[1:]].mean(-1), ref.bootstrap_distribution)
    est = bootstrap(lambda i: values[i].mean(-1), n, n_boot=n_boot, seed=seed, batched=True)
    assert est.value == values.mean()
    low, high = ref.confidence_interval
    assert est.lo == pytest.approx(low, rel=1e-9, abs=1e-12)
    assert est.hi == pytest.approx(high, rel=1e-9, abs=1e-12)


def test_independent_groups_are_drawn_as_scipy_draws_several_samples():
    a, b = np.random.default_rng(0).normal(size=(2, 7))
    ref = sps.bootstrap(
        (np.arange(7), np.arange(5)),
        lambda i, j, axis: a[i].mean(axis) - b[j].mean(axis),
        n_resamples=300,
        vectorized=True,
        method="percentile",
        rng=np.random.default_rng(3),
    )
    i, j = resample([7, 5], n_boot=300, seed=3)
    np.testing.assert_array_equal(a[i[1:]].mean(-1) - b[j[1:]].mean(-1), ref.bootstrap_distribution)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 8), groups=st.integers(1, 3), seed=st.integers(0, 10**6))
def test_batched_and_looped_bootstraps_agree_on_pair_means(n, groups, seed):
    """Pair means of every resample at once (counts) equal the loop over resamples and over
    pairs of positions; a vector statistic gives one Estimate per component."""
    rng = np.random.default_rng(seed)
    mats = _symmetric(rng, groups, n)
    missing = np.triu(rng.random((n, n)) < 0.15, 1)
    mats[0][missing | missing.T] = np.nan  # missing pairs are skipped
    drawn = resample(n, n_boot=40, seed=seed)[0]
    batched = pair_means(mats, counts(drawn, n))
    loop = np.array([[_pair_mean_loop(m, i) for m in mats] for i in drawn])
    np.testing.assert_allclose(batched, loop, rtol=1e-12, atol=1e-12)
    if (np.isfinite(loop[1:]).sum(0) * 2 < 40).any():
        return
    fast = bootstrap(
        lambda i: pair_means(mats, counts(i, n)), n, n_boot=40, seed=seed, batched=True
    )
    slow = bootstrap(lambda i: [_pair_mean_loop(m, i) for m in mats], n, n_boot=40, seed=seed)
    assert len(fast) == len(slow) == groups
    for f, s in zip(fast, slow, strict=True):
        np.testing.assert_allclose([f.value, f.lo, f.hi], [s.value, s.lo, s.hi], rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 9), seed=st.integers(0, 10**6), diagonal=st.floats(-1e9, 1e9))
def test_pair_means_never_compare_a_seed_with_itself(n, seed, diagonal):
    """The diagonal never enters (any value, NaN included); a resample of one distinct seed,
    however often drawn, has no pair (NaN); two distinct seeds give exactly their pair."""
    rng = np.random.default_rng(seed)
    m = _symmetric(rng, 1, n)[0]
    w = counts(rng.integers(0, n, (5, n)), n)
    base = pair_means(m, w)
    for d in (diagonal, np.nan):
        np.fill_diagonal(m, d)
        np.testing.assert_array_equal(pair_means(m, w), base)
    only = np.zeros((1, n))
    only[0, rng.integers(n)] = n
    assert np.isnan(pair_means(m, only)).all()
    if n >= 2:
        both = np.zeros((1, n))
        both[0, :2] = [3, 1]
        assert pair_means(m, both)[0] == pytest.approx(m[0, 1])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=25),
    st.integers(0, 10**6),
)
def test_intervals_of_means_contain_their_estimate(values, seed):
    """The resampled mean lies below the mean when some unit above it is never drawn, and above
    it when some unit below it is: each happens with probability at least about
    ``(1 - 1/n)^n >= 1/4``, so with 1000 resamples the 95% interval holds the point."""
    x = np.array(values)
    est = bootstrap(lambda i: x[i].mean(-1), len(x), n_boot=1000, seed=seed, batched=True)
    assert est.lo <= est.value <= est.hi


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 12), seed=st.integers(0, 10**6))
def test_intervals_of_pair_means_contain_their_estimate(n, seed):
    """Every pair of distinct seeds enters a resample with weight ``c_k c_l``, of equal
    expectation for all pairs: the resampled pair means are centred on the estimate."""
    rng = np.random.default_rng(seed)
    m = np.abs(_symmetric(rng, 1, n)[0]) ** rng.uniform(0.2, 4)  # skewed pair values
    est = bootstrap(lambda i: pair_means(m, counts(i, n)), n, n_boot=1000, seed=seed, batched=True)
    assert est.lo <= est.value <= est.hi


def test_counts_are_bincounts_of_every_row():
    idx = np.random.default_rng(0).integers(0, 6, (3, 4, 6))
    got = counts(idx, 6)
    assert got.shape == (3, 4, 6)
    for r in np.ndindex(3, 4):
        np.testing.assert_array_equal(got[r], np.bincount(idx[r], minlength=6))


def test_a_nested_design_draws_each_level_inside_every_slot():
    """Level by level from one generator: the outer units, then the inner units of every slot."""
    outer, inner = resample(Nested(3, 4), n_boot=50, seed=7)[0]
    rng = np.random.default_rng(7)
    np.testing.assert_array_equal(outer[1:], rng.integers(0, 3, (50, 3)))
    np.testing.assert_array_equal(inner[1:], rng.integers(0, 4, (50, 3, 4)))
    assert (outer[0] == np.arange(3)).all() and (inner[0] == np.arange(4)).all()


@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 4), s=st.integers(2, 6), seed=st.integers(0, 10**6))
def test_nested_mean_against_a_loop_over_resamples_and_slots(d, s, seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(d, s))
    mats = _symmetric(rng, d, s)
    outer, inner = resample(Nested(d, s), n_boot=30, seed=seed)[0]

    def stat(path, idx):  # (M, s) inner indices of the slots holding outer unit path[0]
        w = counts(idx, s)
        return np.stack([values[path[0]][idx].mean(-1), pair_means(mats[path[0]], w)], -1)

    got = nested_mean(stat, (outer, inner))
    for r in range(31):
        slots = [
            (values[o][i].mean(), _pair_mean_loop(mats[o], i))
            for o, i in zip(outer[r], inner[r], strict=True)
        ]
        np.testing.assert_allclose(got[r], np.mean(slots, axis=0), rtol=1e-12, atol=1e-12)


def test_three_levels_average_over_every_slot():
    rng = np.random.default_rng(2)
    values = rng.normal(size=(2, 3, 4))
    levels = resample(Nested(2, 3, 4), n_boot=20, seed=1)[0]
    got = nested_mean(lambda path, idx: values[path][idx].mean(-1), levels)
    a, b, c = levels
    for r in range(21):
        want = np.mean(
            [[values[a[r, i], b[r, i, j]][c[r, i, j]].mean() for j in range(3)] for i in range(2)]
        )
        assert got[r] == pytest.approx(want, rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 9), k=st.integers(1, 5), seed=st.integers(0, 10**6))
def test_nested_resampling_reduces_to_the_flat_one_with_one_group(n, k, seed):
    """One outer unit holding ``n`` seeds resamples as ``n`` seeds do (same rows, same
    interval); ``k`` outer units of one inner unit each resample as ``k`` flat units."""
    values = np.random.default_rng(seed).normal(size=n)
    outer, inner = resample(Nested(1, n), n_boot=200, seed=seed)[0]
    flat = resample(n, n_boot=200, seed=seed)[0]
    np.testing.assert_array_equal(inner[:, 0], flat)
    nested = bootstrap(
        lambda g: nested_mean(lambda _, i: values[i].mean(-1), g),
        Nested(1, n),
        n_boot=200,
        seed=seed,
        batched=True,
    )
    alone = bootstrap(lambda i: values[i].mean(-1), n, n_boot=200, seed=seed, batched=True)
    assert (nested.value, nested.lo, nested.hi) == pytest.approx((alone.value, alone.lo, alone.hi))
    outer, _ = resample(Nested(k, 1), n_boot=200, seed=seed)[0]
    np.testing.assert_array_equal(outer, resample(k, n_boot=200, seed=seed)[0])


def test_a_looped_statistic_gets_each_level_of_a_nested_resample():
    values = np.arange(6.0).reshape(2, 3)
    looped = bootstrap(
        lambda lv: np.mean([values[o][i].mean() for o, i in zip(*lv, strict=True)]),
        Nested(2, 3),
        n_boot=100,
    )
    batched = bootstrap(
        lambda lv: nested_mean(lambda p, i: values[p[0]][i].mean(-1), lv),
        Nested(2, 3),
        n_boot=100,
        batched=True,
    )
    assert looped.n == 2 and looped.value == pytest.approx(2.5)
    np.testing.assert_allclose([looped.lo, looped.hi], [batched.lo, batched.hi], rtol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 40), st.integers(1, 4))
def test_weighted_auroc_is_sklearns_auroc_of_each_resample(seed, n, levels):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels + 1, n).astype(float)  # few levels: many ties
    positive = rng.random(n) < 0.4
    idx = rng.integers(0, n, (6, n))
    got = weighted_auroc(scores, positive, counts(idx, n))
    for row, i in zip(got, idx, strict=True):
        if positive[i].all() or not positive[i].any():
            assert np.isnan(row)
        else:
            assert row == pytest.approx(roc_auc_score(positive[i], scores[i]), abs=1e-12)


def test_weighted_auroc_takes_real_weights_as_sklearn_does():
    rng = np.random.default_rng(1)
    scores, positive, w = rng.normal(size=30).round(1), rng.random(30) < 0.5, rng.random((2, 30))
    for row, weight in zip(weighted_auroc(scores, positive, w), w, strict=True):
        assert row == pytest.approx(roc_auc_score(positive, scores, sample_weight=weight))


def test_slope_of_a_batch_is_the_slope_of_every_row():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=6), rng.normal(size=(4, 3, 6))
    got = slope(x, y)
    assert got.shape == (4, 3)
    for r in np.ndindex(4, 3):
        assert got[r] == pytest.approx(sps.linregress(x, y[r]).slope, rel=1e-12)
    assert np.isnan(slope(np.ones(6), y)).all()
    with pytest.raises(ValueError, match="same length"):
        slope(x, y[..., :5])


def test_finite_slope_is_the_slope_over_each_rows_finite_entries():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=7), rng.normal(size=(50, 7))
    y[rng.random(y.shape) < 0.4] = np.nan
    y[0] = np.nan
    y[1, 1:] = np.nan  # a single point: no slope
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = finite_slope(x, y)
    for r in range(len(y)):
        keep = np.isfinite(y[r])
        if keep.sum() < 2:
            assert np.isnan(got[r])
        else:
            assert got[r] == pytest.approx(sps.linregress(x[keep], y[r, keep]).slope, rel=1e-9)
    full = rng.normal(size=(3, 7))
    np.testing.assert_allclose(finite_slope(x, full), slope(x, full), rtol=1e-12)


def test_intervals_follow_the_nan_policy_and_collapse_without_resamples():
    values = np.array([[1.0, 2.0], [0.5, np.nan], [1.5, np.nan], [np.nan, np.nan], [1.0, 3.0]])
    with pytest.raises(ValueError, match="only 1 of 4"):
        intervals(values, 3)
    first = intervals(values[:, 0], 3)[0]
    assert (first.value, first.n) == (1.0, 3) and first.lo < first.hi
    assert intervals(np.array([[2.0, 4.0]]), 1) == [
        type(first)(2.0, 2.0, 2.0, 1),
        type(first)(4.0, 4.0, 4.0, 1),
    ]


def test_pair_means_under_the_bootstrap_drop_resamples_without_a_pair():
    """All pairs equal 1: every resample with two distinct seeds gives exactly 1, and those with
    one distinct seed (NaN) are dropped, so the interval is the closed form [1, 1]."""
    m = np.ones((3, 3))
    est = bootstrap(lambda i: pair_means(m, counts(i, 3)), 3, n_boot=200, batched=True)
    assert (est.value, est.lo, est.hi) == (1.0, 1.0, 1.0)
