"""Uncertainty over the units that vary: one resampling kernel and its percentile intervals.

One bootstrap serves the whole book. The units that vary in an experiment (seeds, teachers,
data draws, flip draws, mask or polynomial draws, chains, directions) are resampled with
replacement ``n_boot`` times, a statistic is evaluated on every resample, and the interval is the
``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of the resampled values: the *percentile
interval* (Efron and Tibshirani 1993, ch. 13). It is chosen over BCa because many statistics
here are pairwise (means over pairs of distinct seeds) or non-smooth (medians, maxima), where
BCa's jackknife acceleration is unstable with 8-16 seeds. ``scipy.stats.bootstrap(...,
method="percentile")`` draws the same resamples for the same generator and is the tests'
reference; it is not called here because its NaN policy is not this one.

The *design* says what is resampled: ``n`` (one group of ``n`` units), a sequence of groups
resampled independently of each other (crossed: e.g. the seeds of each data set, every group's
indices handed to the statistic), or :class:`Nested` levels (``Nested(D, S)``: ``D`` data draws,
and inside every resampled draw its ``S`` seeds drawn afresh). :func:`resample` lists the
resamples, row 0 the identity; :func:`counts` turns them into counts per unit, so that a
statistic is a product of count vectors with the data, evaluated on every resample at once
(:func:`pair_means`, :func:`weighted_auroc`; :func:`slope` of a batch of rows);
:func:`nested_mean` averages a statistic over the resampled outer units of a nested design;
:func:`intervals` turns the values into :class:`Estimate` objects, and :func:`bootstrap` does
all of it for a statistic of one resample (a Python loop) or of all of them (``batched=True``).

NaN policy, one for every caller: a resample whose statistic is not finite (a pair mean on a
resample of one distinct seed, a slope over equal abscissae) is dropped and the interval is taken
over the rest; when fewer than half of the resamples remain, the bootstrap refuses with an error.
The generator is seeded explicitly, so an interval is a deterministic function of its inputs.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ghost_optima.core import timing


@dataclass(frozen=True)
class Estimate:
    """A point value with a percentile-bootstrap interval ``[lo, hi]`` from ``n`` units."""

    value: float
    lo: float
    hi: float
    n: int

    def as_dict(self) -> dict:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "n": self.n}


@dataclass(frozen=True, init=False)
class Nested:
    """Units nested in units, outermost first: ``Nested(4, 8)`` is 4 outer units (teachers, data
    draws) each holding 8 inner units of its own (seeds); ``Nested(3, 4, 8)`` adds a level.

    A resample draws the outer units with replacement, then, inside every drawn outer unit (a
    *slot*), its inner units afresh: an outer unit drawn twice brings two independent resamples
    of what it holds (the two-stage bootstrap, Davison and Hinkley 1997, sec. 3.8).
    """

    sizes: tuple[int, ...]

    def __init__(self, *sizes: int):
        object.__setattr__(self, "sizes", tuple(int(s) for s in sizes))


Group = int | Nested
Indices = np.ndarray | tuple[np.ndarray, ...]


def _groups(design: Group | Sequence[Group]) -> list[Group]:
    groups = [design] if isinstance(design, int | np.integer | Nested) else list(design)
    groups = [g if isinstance(g, Nested) else int(g) for g in groups]
    sizes = [_sizes(g) for g in groups]
    if not groups or any(not s or min(s) < 1 for s in sizes):
        raise ValueError(f"every group needs at least one unit, got {groups}")
    return groups


def _sizes(group: Group) -> tuple[int, ...]:
    return group.sizes if isinstance(group, Nested) else (group,)


def _rows(drawn: list[Indices], rows: int | slice) -> list[Indices]:
    """The same rows (resamples) of every group."""
    return [tuple(lv[rows] for lv in d) if isinstance(d, tuple) else d[rows] for d in drawn]


def resample(design: Group | Sequence[Group], *, n_boot: int, seed: int = 0) -> list[Indices]:
    """The resamples of ``design``, one entry per group, row 0 the identity.

    A group of ``n`` units: ``(n_boot + 1, n)`` indices, rows ``1..n_boot`` drawn as
    ``rng.integers(0, n, (n_boot, n))`` with ``rng = np.random.default_rng(seed)``, groups in
    order (the draws of ``scipy.stats.bootstrap`` for the same generator). A :class:`Nested`
    group ``(n_1, ..., n_L)``: a tuple of ``L`` arrays, level ``l`` of shape
    ``(n_boot + 1, n_1, ..., n_l)``: ``[r, j_1, ..., j_l]`` is the unit drawn into slot ``j_l``
    of the unit in slot ``(j_1, ..., j_{l-1})``; level ``l`` drawn as
    ``rng.integers(0, n_l, (n_boot, n_1, ..., n_l))`` after level ``l - 1``.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    rng = np.random.default_rng(seed)
    out: list[Indices] = []
    for group in _groups(design):
        sizes = _sizes(group)
        levels = []
        for depth, n in enumerate(sizes, start=1):
            shape = sizes[:depth]
            identity = np.broadcast_to(np.arange(n), shape)[None]
            levels.append(np.concatenate([identity, rng.integers(0, n, (n_boot, *shape))]))
        out.append(tuple(levels) if isinstance(group, Nested) else levels[0])
    return out


def counts(idx: np.ndarray, n: int) -> np.ndarray:
    """``(..., n)`` float: how many times each of ``n`` units is drawn in every row of ``idx``
    ``(..., m)`` (a resample as a count vector)."""
    idx = np.asarray(idx, dtype=np.int64)
    flat = idx.reshape(-1, idx.shape[-1])
    offsets = flat + n * np.arange(len(flat))[:, None]
    out = np.bincount(offsets.ravel(), minlength=len(flat) * n).astype(float)
    return out.reshape(*idx.shape[:-1], n)


def intervals(values, n: int, *, level: float = 0.95) -> list[Estimate]:
    """One :class:`Estimate` per column of ``values`` ``(R,)`` or ``(R, K)``: row 0 the point (the
    statistic on the identity), the percentiles of the finite values of rows ``1..R-1`` the
    interval (the module's NaN policy); ``R == 1`` (nothing resampled) collapses to the point."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    values = np.asarray(values, dtype=float)
    columns = values[:, None] if values.ndim == 1 else values
    out = []
    for column in columns.T:
        point = float(column[0])
        if len(column) == 1:
            out.append(Estimate(point, point, point, n))
            continue
        boots = column[1:][np.isfinite(column[1:])]
        if 2 * len(boots) < len(column) - 1:
            raise ValueError(
                f"only {len(boots)} of {len(column) - 1} bootstrap resamples gave a finite value"
            )
        lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
        out.append(Estimate(point, float(lo), float(hi), n))
    return out


def bootstrap(
    statistic: Callable[..., float | np.ndarray],
    design: Group | Sequence[Group],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    batched: bool = False,
) -> Estimate | list[Estimate]:
    """Percentile bootstrap of ``statistic`` over the resamples of ``design`` (:func:`resample`).

    ``statistic`` takes one argument per group: its indices on one resample (``(n,)``, or for a
    :class:`Nested` group the tuple of its levels without the resample axis), or with
    ``batched=True`` on every resample at once (the arrays :func:`resample` returns, row 0 the
    identity). It returns a float (an :class:`Estimate` comes back) or a vector ``(K,)``, batched
    ``(R,)`` or ``(R, K)`` (a list of ``K`` Estimates). ``Estimate.n`` is the smallest group (the
    outermost level of a nested one). When every group has a single unit, only the identity is
    evaluated and the interval collapses to the point.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    sizes = [_sizes(g) for g in _groups(design)]
    drawn = resample(design, n_boot=n_boot, seed=seed)
    if max(max(s) for s in sizes) == 1:
        drawn = _rows(drawn, slice(0, 1))
    with timing.kernel("resampling"):
        if batched:
            values = np.asarray(statistic(*drawn), dtype=float)
        else:
            first = drawn[0][0] if isinstance(drawn[0], tuple) else drawn[0]
            rows = range(len(first))
            values = np.array([statistic(*_rows(drawn, r)) for r in rows], dtype=float)
    found = intervals(values, min(s[0] for s in sizes), level=level)
    return found[0] if values.ndim == 1 else found


def sample_estimate(
    samples,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """:func:`bootstrap` of ``statistic(samples[idx])``, resampling the rows of ``samples``
    ``(n, ...)``: one row per unit (seed, chain, paired unit)."""
    values = np.asarray(samples, dtype=float)
    if values.ndim == 0 or len(values) == 0:
        raise ValueError("sample_estimate needs at least one sample along axis 0")
    return bootstrap(
        lambda idx: statistic(values[idx]), len(values), n_boot=n_boot, level=level, seed=seed
    )


def nested_mean(statistic: Callable[[tuple, np.ndarray], np.ndarray], levels) -> np.ndarray:
    """``(R, ...)``: on every resample of a :class:`Nested` group, the mean over its outer slots
    (recursively, over the slots of every level) of ``statistic(path, idx)``.

    ``levels`` is one group of :func:`resample` (``(R, n_1)``, ..., ``(R, n_1, ..., n_L)``).
    ``statistic(path, idx)`` gets the original units ``path = (u_1, ..., u_{L-1})`` leading to
    one group of innermost units and ``idx`` ``(M, n_L)``, the innermost indices of ``M`` slots
    holding that group, and returns ``(M, ...)``. Vectorised over resamples and slots; a loop
    over the original outer units only.
    """
    return _slot_mean(statistic, tuple(np.asarray(lv) for lv in levels), ())


def _slot_mean(statistic, levels: tuple[np.ndarray, ...], path: tuple) -> np.ndarray:
    outer, inner = levels[0], levels[1:]
    if not inner:
        raise ValueError("a nested mean needs at least two levels")
    total = None
    for unit in range(outer.shape[-1]):
        rows, slots = np.nonzero(outer == unit)
        if len(rows) == 0:
            continue
        sub = tuple(lv[rows, slots] for lv in inner)
        if len(sub) == 1:
            value = np.asarray(statistic((*path, unit), sub[0]), dtype=float)
        else:
            value = _slot_mean(statistic, sub, (*path, unit))
        if total is None:
            total = np.zeros((len(outer), *value.shape[1:]))
        np.add.at(total, rows, value)
    return total / outer.shape[-1]


def pair_means(matrices: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Means over pairs of distinct units of every matrix ``(K, n, n)`` (or one ``(n, n)``) on
    every weight row ``(R, n)``: ``(R, K)`` (or ``(R,)``).

    With ``c`` a resample's counts (:func:`counts`), ``M`` a matrix with NaN and the diagonal
    set to 0 and ``W`` the indicator of its valid entries, ``(c^T M c) / (c^T W c)``: the mean of
    ``M[i, j]`` over the pairs of positions of the resample holding two *different* original
    units (a unit drawn twice is never compared with itself), NaN where no such pair is drawn.
    Every pair of distinct units ``k, l`` enters with weight ``c_k c_l``, whose expectation over
    resamples, ``(n - 1) / n``, is the same for every pair: the resampled means are centred on the
    estimate (up to the ratio's ``O(1/n)`` bias), which a statistic that divides by the number of
    *distinct* units drawn is not.
    """
    m = np.asarray(matrices, dtype=float)
    single = m.ndim == 2
    m = m[None] if single else m
    n = m.shape[-1]
    valid = ~np.isnan(m)
    valid[:, np.arange(n), np.arange(n)] = False
    c = np.asarray(weights, dtype=float)
    num = np.einsum("bkj,bj->bk", np.einsum("bi,kij->bkj", c, np.where(valid, m, 0.0)), c)
    den = np.einsum("bkj,bj->bk", np.einsum("bi,kij->bkj", c, valid.astype(float)), c)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out[:, 0] if single else out


def slope(x, y) -> float | np.ndarray:
    """Least-squares slope of ``y`` on ``x`` along the last axis:
    ``sum (x - xbar)(y - ybar) / sum (x - xbar)^2``.

    ``x``: ``(m,)``; ``y``: ``(m,)`` (a float comes back) or ``(..., m)``, e.g. one row per
    resample (an array ``(...)``). NaN when every ``x`` is equal (no slope), so that a bootstrap
    drops such a resample.
    """
    x = np.asarray(x, dtype=float).reshape(-1)
    y = np.asarray(y, dtype=float)
    if y.ndim == 0 or y.shape[-1] != len(x):
        raise ValueError(f"x and y must have the same length, got {x.shape} and {y.shape}")
    xc = x - x.mean()
    ss = float(xc @ xc)
    if y.ndim == 1:
        return float((y - y.mean()) @ xc / ss) if ss > 0 else float("nan")
    if ss == 0:
        return np.full(y.shape[:-1], np.nan)
    return (y - y.mean(-1, keepdims=True)) @ xc / ss


def finite_slope(x, y) -> np.ndarray:
    """:func:`slope` of every row of ``y`` ``(..., m)`` over that row's finite entries only:
    ``(...)``, NaN where fewer than two distinct ``x`` remain (e.g. a resample that drew no pair
    at some abscissa), without a warning.
    """
    x = np.asarray(x, dtype=float).reshape(-1)
    y = np.asarray(y, dtype=float)
    if y.ndim == 0 or y.shape[-1] != len(x):
        raise ValueError(f"x and y must have the same length, got {x.shape} and {y.shape}")
    seen = np.isfinite(y)
    n = seen.sum(-1, keepdims=True)
    xs, ys = np.where(seen, x, 0.0), np.where(seen, y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        xc = np.where(seen, xs - xs.sum(-1, keepdims=True) / n, 0.0)
        yc = np.where(seen, ys - ys.sum(-1, keepdims=True) / n, 0.0)
        return (xc * yc).sum(-1) / (xc * xc).sum(-1)


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


def weighted_auroc(scores, positive, weights) -> np.ndarray:
    """Area under the ROC curve of ``scores`` ``(n,)`` for the examples with ``positive`` true,
    example ``j`` counted ``weights[r, j]`` times on row ``r`` of ``weights`` ``(R, n)``: ``(R,)``.

    With ``p_g``, ``q_g`` the weighted positives and negatives of the ``g``-th distinct score (in
    increasing order), ``sum_g p_g (sum_{h < g} q_h + q_g / 2) / (P Q)``: the probability that a
    positive scores above a negative, ties one half (Mann-Whitney; ``O(R n)``, no sort per row).
    NaN on a row without positives or without negatives.
    """
    tie = np.unique(np.asarray(scores, dtype=float), return_inverse=True)[1].reshape(-1)
    positive = np.asarray(positive, dtype=bool)
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    n_rows, n_groups = len(w), int(tie.max()) + 1 if len(tie) else 0
    bins = (tie + n_groups * np.arange(n_rows)[:, None]).ravel()

    def per_group(mask: np.ndarray) -> np.ndarray:
        return np.bincount(bins, weights=(w * mask).ravel(), minlength=n_rows * n_groups).reshape(
            n_rows, n_groups
        )

    pos, neg = per_group(positive), per_group(~positive)
    n_pos, n_neg = pos.sum(-1), neg.sum(-1)
    below = np.cumsum(neg, -1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (pos * (below + 0.5 * neg)).sum(-1) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), out, np.nan)
