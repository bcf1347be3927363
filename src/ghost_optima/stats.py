"""Uncertainty over seeds: percentile bootstrap intervals.

Every figure the book reports from several seeds carries a bootstrap interval: resample the
per-seed values with replacement ``n_boot`` times, take the statistic of each resample, and
report the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles (Efron and Tibshirani 1993,
ch. 13, the percentile interval). The generator is seeded explicitly, so an interval is a
deterministic function of its inputs.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A point value with a percentile-bootstrap interval ``[lo, hi]`` from ``n`` samples."""

    value: float
    lo: float
    hi: float
    n: int

    def as_dict(self) -> dict:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "n": self.n}


def bootstrap_ci(
    samples,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Percentile bootstrap interval of ``statistic`` over the first axis of ``samples``.

    ``samples`` has shape ``(n, ...)``: one row per seed (or per paired unit). ``statistic``
    maps an array of that shape to a float. With ``n == 1`` the interval collapses to the value.
    """
    values = np.asarray(samples, dtype=float)
    if values.ndim == 0 or len(values) == 0:
        raise ValueError("bootstrap_ci needs at least one sample along axis 0")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    point = float(statistic(values))
    n = len(values)
    if n == 1:
        return Estimate(point, point, point, 1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    boots = np.array([statistic(values[i]) for i in idx])
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return Estimate(point, float(lo), float(hi), n)
