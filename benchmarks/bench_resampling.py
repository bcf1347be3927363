"""Benchmark: the resampling kernel against the loop over resamples it replaced (prints a table).

Run: ``PYTHONPATH=src python benchmarks/bench_resampling.py``. Each row times one interval the
book computes, both ways, on the same resamples (``stats.resample``, 2000 of them):

* ``loop``: the statistic evaluated once per resample in Python, as the code before the kernel
  did (``protocol.mean_pairwise`` on the resampled submatrix; ``pairwise.pair_mean``, a count
  vector per resample; ``scores.resampled_auroc``; the slope of pair means at every width);
* ``kernel``: every resample at once from its counts per unit (``stats.pair_means``,
  ``stats.weighted_auroc``, ``stats.slope`` of a batch),

with the wall time (best of ``REPEATS``), the speed-up and the largest difference between the
two intervals' ends (rounding only: the same estimator on the same resamples). Wall times on a
shared machine also count the time other jobs held the cores.
"""

import time

import numpy as np

from ghost_optima.core import stats

REPEATS = 3
N_BOOT = 2000


def best_time(fn):
    """``(best wall seconds, result)`` over ``REPEATS`` runs."""
    best, result = float("inf"), None
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def ordered_pair_mean(matrix, idx):
    """Before the kernel (``protocol.mean_pairwise``): the resampled submatrix, distinct seeds."""
    keep = idx[:, None] != idx[None, :]
    return float(matrix[np.ix_(idx, idx)][keep].mean()) if keep.any() else float("nan")


def count_pair_mean(matrix, idx):
    """Before the kernel (``pairwise.pair_mean``): one count vector per resample."""
    valid = ~np.isnan(matrix)
    np.fill_diagonal(valid, False)
    c = np.bincount(idx, minlength=len(matrix)).astype(float)
    weight = c @ valid @ c
    return float(c @ np.where(valid, matrix, 0.0) @ c / weight) if weight else float("nan")


def looped_auroc(scores, positive, idx):
    """Before the kernel (``scores.resampled_auroc``): one resample's tie-group counts."""
    tie = np.unique(scores, return_inverse=True)[1]
    w = np.bincount(idx, minlength=len(scores))
    pos = np.bincount(tie, weights=w * positive)
    neg = np.bincount(tie, weights=w * ~positive)
    if pos.sum() == 0 or neg.sum() == 0:
        return float("nan")
    return float(pos @ (np.cumsum(neg) - neg + 0.5 * neg) / (pos.sum() * neg.sum()))


def cases(rng):
    """``(name, n units, loop statistic of one resample, batched statistic of all)``."""
    n = 16
    m = rng.random((n, n))
    m = (m + m.T) / 2
    mats = np.stack([m * (1 + k / 10) for k in range(8)])  # 8 widths
    x = np.log2(2.0 ** np.arange(3, 11))
    n_ex = 2000
    positive = rng.random(n_ex) < 0.2
    scores = rng.normal(size=n_ex).round(2) + positive
    pair_mean = lambda i: stats.pair_means(m, stats.counts(i, n))  # noqa: E731
    return [
        ("pair mean (submatrix)", n, lambda i: ordered_pair_mean(m, i), pair_mean),
        ("pair mean (counts)", n, lambda i: count_pair_mean(m, i), pair_mean),
        (
            "slope of 8 pair means",
            n,
            lambda i: stats.slope(x, [count_pair_mean(k, i) for k in mats]),
            lambda i: stats.slope(x, stats.pair_means(mats, stats.counts(i, n))),
        ),
        (
            "AUROC, 2000 examples",
            n_ex,
            lambda i: looped_auroc(scores, positive, i),
            lambda i: stats.weighted_auroc(scores, positive, stats.counts(i, n_ex)),
        ),
    ]


def main() -> None:
    head = f"{'statistic':<24} {'units':>6} {'loop s':>9} {'kernel s':>9} {'speed-up':>9}"
    print(f"{head} {'max diff':>9}")
    boot = {"n_boot": N_BOOT, "seed": 0}
    for name, n, loop, batched in cases(np.random.default_rng(0)):
        t_loop, slow = best_time(lambda loop=loop, n=n: stats.bootstrap(loop, n, **boot))
        t_fast, fast = best_time(
            lambda batched=batched, n=n: stats.bootstrap(batched, n, batched=True, **boot)
        )
        diff = max(abs(slow.value - fast.value), abs(slow.lo - fast.lo), abs(slow.hi - fast.hi))
        speed = f"{t_loop / t_fast:.1f}x"
        print(f"{name:<24} {n:>6} {t_loop:>9.4f} {t_fast:>9.4f} {speed:>9} {diff:>9.1e}")


if __name__ == "__main__":
    main()
