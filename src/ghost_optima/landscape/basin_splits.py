"""Which pairs of seeds lie in different basins, at every barrier scale at once.

Basins among ``n`` seeds (``ghost_optima.landscape.basins``) are the connected components of the
graph whose edges are the pairs with a low aligned barrier ``B_ij <= s``, for a scale ``s``. Two
seeds are joined at ``s`` exactly when some chain of seeds joins them whose every barrier is at
most ``s``, that is when their *merge height*, the minimax barrier

    ``H_ij = min over chains i = k_0, k_1, ..., k_m = j of max_l B_{k_l k_{l+1}}``,

is at most ``s`` (the height at which single-linkage clustering merges them; Gower and Ross
1969). :func:`merge_heights` computes ``H`` on a subset of seeds by the minimax form of the
Floyd-Warshall recursion, ``H <- min(H, max(H[:, k], H[k, :]))`` over the intermediate seeds
``k``; :func:`split_shares` turns it into the share of scales ``s_1..s_K`` at which a pair is
split, ``mean_k [H_ij > s_k]``, a ``(n, n)`` matrix of pair values.

Why pairs and not a count of basins per seed: a statistic of the seeds of a bootstrap resample
that divides by the number of *distinct* seeds drawn (about ``0.63 n``) is not centred on the
estimate (with one basin among 16 seeds every resample counts at least 1/16 basin per seed). A
mean over pairs of distinct seeds weighted by the resample's counts (``stats.pair_means``) gives
every pair the same expected weight, and a share that is 0 (one basin) stays exactly 0 on every
resample: no floating-point residue can decide which side of 0 it lies.
"""

from collections.abc import Sequence

import numpy as np


def merge_heights(heights: np.ndarray, members: np.ndarray) -> np.ndarray:
    """The minimax height ``H`` ``(n, n)`` of every pair of ``members`` (boolean ``(n,)`` or
    indices) over chains through ``members`` only, from the pair values ``heights`` ``(n, n)``
    (symmetric; NaN is an edge never taken, ``inf``). NaN on the diagonal and wherever either
    seed is not a member; ``inf`` between members no chain joins."""
    h = np.asarray(heights, dtype=float)
    n = len(h)
    chosen = np.zeros(n, dtype=bool)
    chosen[np.asarray(members)] = True
    h = np.fmin(h, h.T)  # either way; NaN only where both are
    h = np.where(np.isnan(h) | ~(chosen[:, None] & chosen[None]), np.inf, h)
    for k in np.flatnonzero(chosen):
        h = np.minimum(h, np.maximum(h[:, k, None], h[None, k, :]))
    h[~(chosen[:, None] & chosen[None])] = np.nan
    np.fill_diagonal(h, np.nan)
    return h


def split_shares(heights: np.ndarray, members: np.ndarray, scales: Sequence[float]) -> np.ndarray:
    """``(n, n)``: for every pair of distinct ``members``, the share of ``scales`` at which its
    two seeds lie in different components of the graph ``heights <= s`` on the members
    (``mean_s [H_ij > s]`` with ``H`` the :func:`merge_heights`); NaN elsewhere. With one scale
    it is 1 for a split pair and 0 for a joined one."""
    scales = np.asarray(scales, dtype=float).reshape(-1)
    if len(scales) == 0:
        raise ValueError("split_shares needs at least one scale")
    h = merge_heights(heights, members)
    out = (h[..., None] > scales).mean(-1)
    return np.where(np.isnan(h), np.nan, out)
