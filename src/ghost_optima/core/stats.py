"""Uncertainty over the units that vary (seeds, pairs of seeds, chains, directions): the bootstrap.

One bootstrap serves the whole book. Resample the units with replacement ``n_boot`` times,
evaluate the statistic on each resample, and report the ``(1 - level) / 2`` and
``(1 + level) / 2`` percentiles of the resampled values: the *percentile interval* (Efron and
Tibshirani 1993, ch. 13). It is chosen over BCa because many of the book's statistics are
pairwise (mean over pairs of distinct seeds) or non-smooth (medians, maxima), where BCa's
jackknife acceleration is unstable with 8-16 seeds; ``scipy.stats.bootstrap(...,
method="percentile")`` computes the same interval and is the tests' reference.

NaN policy, one for every caller: a resample whose statistic is not finite (a pairwise
statistic on a resample of one distinct seed, a slope over equal abscissae) is dropped and the
interval is taken over the rest; when fewer than half of the resamples remain, the bootstrap
refuses with an error. Each group of units is resampled independently (e.g. the seeds of each
data set). The generator is seeded explicitly, so an interval is a deterministic function of
its inputs.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A point value with a percentile-bootstrap interval ``[lo, hi]`` from ``n`` units."""

    value: float
    lo: float
    hi: float
    n: int

    def as_dict(self) -> dict:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "n": self.n}


def bootstrap(
    statistic: Callable[..., float],
    n_units: int | Sequence[int],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Percentile bootstrap of ``statistic`` over resampled unit indices.

    ``n_units`` is the number of units (one group) or a sequence of counts (independent
    groups). ``statistic`` takes one ``(n,)`` integer index array per group and returns a
    float; its value on the identity indices ``arange(n)`` is the point estimate. Group ``g``
    is resampled as ``rng.integers(0, n_g, (n_boot, n_g))`` with ``rng =
    np.random.default_rng(seed)``, groups in order. ``Estimate.n`` is the smallest group.
    With a single unit in every group the interval collapses to the point.
    """
    counts = [n_units] if isinstance(n_units, int | np.integer) else list(n_units)
    if not counts or any(int(n) < 1 for n in counts):
        raise ValueError(f"every group needs at least one unit, got {counts}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    point = float(statistic(*(np.arange(n) for n in counts)))
    n_min = int(min(counts))
    if max(counts) == 1:
        return Estimate(point, point, point, n_min)
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, n, size=(n_boot, n)) for n in counts]
    boots = np.array([statistic(*(d[b] for d in draws)) for b in range(n_boot)], dtype=float)
    boots = boots[np.isfinite(boots)]
    if 2 * len(boots) < n_boot:
        raise ValueError(f"only {len(boots)} of {n_boot} bootstrap resamples gave a finite value")
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return Estimate(point, float(lo), float(hi), n_min)


def bootstrap_ci(
    samples,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """:func:`bootstrap` of ``statistic(samples[idx])``, resampling the rows of ``samples``.

    ``samples`` has shape ``(n, ...)``: one row per unit (seed, chain, paired unit).
    """
    values = np.asarray(samples, dtype=float)
    if values.ndim == 0 or len(values) == 0:
        raise ValueError("bootstrap_ci needs at least one sample along axis 0")
    return bootstrap(
        lambda idx: statistic(values[idx]), len(values), n_boot=n_boot, level=level, seed=seed
    )


def slope(x, y) -> float:
    """Least-squares slope of ``y`` on ``x``: ``sum (x - xbar)(y - ybar) / sum (x - xbar)^2``.

    ``x``, ``y``: ``(m,)``. NaN when every ``x`` is equal (no slope), so that a bootstrap drops
    such a resample.
    """
    x, y = np.asarray(x, dtype=float).reshape(-1), np.asarray(y, dtype=float).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.shape} and {y.shape}")
    xc = x - x.mean()
    ss = float(xc @ xc)
    return float(xc @ (y - y.mean()) / ss) if ss > 0 else float("nan")


def slope_ci(x, y, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Estimate:
    """:func:`slope` of ``y`` on ``x`` with an interval.

    ``y`` of shape ``(m,)``: the units are the points ``(x_i, y_i)``, resampled in pairs (the
    interval reflects their scatter about the line). ``y`` of shape ``(n_seeds, m)``: the units
    are the seeds (rows); the slope is of the mean over seeds, so the interval reflects
    seed-to-seed variation at fixed ``x``.
    """
    x = np.asarray(x, dtype=float).reshape(-1)
    y = np.asarray(y, dtype=float)
    if y.ndim == 1:
        if len(y) != len(x) or len(x) < 3:
            raise ValueError(f"need at least 3 points (x, y) of equal length, got {len(x)}")
        return bootstrap(lambda i: slope(x[i], y[i]), len(x), n_boot=n_boot, level=level, seed=seed)
    if y.ndim != 2 or y.shape[1] != len(x):
        raise ValueError(f"y must be (m,) or (n_seeds, {len(x)}), got {y.shape}")
    if np.ptp(x) == 0:
        raise ValueError("need at least two distinct x values")
    return bootstrap(
        lambda i: slope(x, y[i].mean(axis=0)), len(y), n_boot=n_boot, level=level, seed=seed
    )
