import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ghost_optima.core import draws
from ghost_optima.core.stats import slope
from ghost_optima.symmetry.pairwise import pair_mean


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4), st.integers(2, 5))
def test_pair_means_against_a_loop(seed, n_draws, n_seeds):
    rng = np.random.default_rng(seed)
    a = rng.random((3, n_draws, n_seeds, n_seeds))
    pairs = a + a.transpose(0, 1, 3, 2)
    draw_idx = rng.integers(0, n_draws, n_draws)
    seed_idx = rng.integers(0, n_seeds, n_seeds)
    got = draws.pair_means(pairs, draw_idx, seed_idx)
    for q in range(3):
        per = [pair_mean(pairs[q, d], seed_idx) for d in draw_idx]
        if np.isnan(per).all():
            assert np.isnan(got[q])
        else:
            np.testing.assert_allclose(got[q], np.mean(per))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_seed_stats_and_slopes_against_numpy(seed):
    rng = np.random.default_rng(seed)
    values = rng.random((2, 3, 4))
    d, s = rng.integers(0, 3, 3), rng.integers(0, 4, 4)
    for q in range(2):
        stds = [np.std(values[q, k][s], ddof=1) for k in d]
        np.testing.assert_allclose(draws.seed_stat(values, d, s, "std")[q], np.mean(stds))
        means = [values[q, k][s].mean() for k in d]
        np.testing.assert_allclose(draws.seed_stat(values, d, s, "mean")[q], np.mean(means))
    x = np.array([0.0, 0.1, 0.2, 0.4])
    y = rng.random((3, 4))
    np.testing.assert_allclose(draws.slopes(x, y), [slope(x, row) for row in y])
