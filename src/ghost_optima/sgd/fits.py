"""Fits of measured SGD clouds against the stationary law, with bootstrap intervals.

Three summaries of measured stationary variances ``Var_i`` (from
:mod:`ghost_optima.sgd.known_problems` or
:mod:`ghost_optima.sgd.network_chains`) against the law of :mod:`ghost_optima.sgd.stationary`:

* :func:`fit_log_variance`: the plane ``log Var_i = a + b log lambda_i + c log C_i`` (ordinary
  least squares, ``numpy.linalg.lstsq``); the law predicts ``b = -1``, ``c = 1``;
* :func:`loglog_slope`: the slope of ``log`` (mean over seeds of ``y``) on ``log x``, e.g. of
  the plateau of ``||theta - theta*||^2`` on ``eta`` or ``B`` (the law: ``+1`` and ``-1``);
* :func:`ratio_summary`: measured over predicted variance, per direction and summarised.

Every interval is a percentile bootstrap of :mod:`ghost_optima.core.stats` (resampling directions,
chains or seeds, as each function says), and every slope is :func:`ghost_optima.core.stats.slope`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from ghost_optima.core.stats import Estimate, bootstrap, sample_estimate, slope
from ghost_optima.sgd.stationary import ArrayLike, as_numpy

__all__ = ["LogVarianceFit", "RatioSummary", "fit_log_variance", "loglog_slope", "ratio_summary"]


@dataclass(frozen=True)
class LogVarianceFit:
    """``log Var_i = a + b log lambda_i + c log C_i``, each coefficient with an interval.

    The standard small-step form predicts ``b = -1``, ``c = 1``, ``a = log(eta s / (2 B))``;
    the brief's (with ``eps`` fixed across directions) predicts ``b = 0``. ``resampled`` says
    what the bootstrap resampled: ``"directions"`` or ``"chains"``.
    """

    a: Estimate
    b: Estimate
    c: Estimate
    n_directions: int
    resampled: str


def _lstsq_coef(logv: np.ndarray, loglam: np.ndarray, logC: np.ndarray) -> np.ndarray:
    A = np.column_stack([np.ones_like(loglam), loglam, logC])
    coef, *_ = np.linalg.lstsq(A, logv, rcond=None)
    return coef


def _positive_log(x: np.ndarray, name: str) -> np.ndarray:
    if np.any(~np.isfinite(x)) or np.any(x <= 0):
        raise ValueError(f"{name} must be finite and positive to take logs")
    return np.log(x)


def fit_log_variance(
    var: ArrayLike,
    lam: ArrayLike,
    C: ArrayLike,
    *,
    seed: int = 0,
    n_boot: int = 2000,
    level: float = 0.95,
) -> LogVarianceFit:
    """Least-squares fit of ``log Var_i = a + b log lambda_i + c log C_i`` with bootstrap CIs.

    Two designs, chosen by the shape of ``var``:

    * ``var`` of shape ``(k,)`` (one variance per direction): the fit is ordinary least squares
      over the ``k`` directions, and the percentile bootstrap resamples *directions* (triples
      ``(Var_i, lambda_i, C_i)``), so the interval reflects scatter about the fitted plane.
    * ``var`` of shape ``(n_chains, k)`` (per-chain or per-seed variances, e.g.
      :attr:`ChainVariance.var_per_chain`), ``lam`` and ``C`` of shape ``(k,)``: the point
      estimate fits the log of the *mean over chains*; the bootstrap resamples *chains* (rows),
      re-averages and re-fits, so the interval reflects seed-to-seed variation of the
      simulation, the uncertainty a reader rerunning it with other seeds would see. (Averaging
      before the log avoids the Jensen bias of averaging per-chain logs.)
      If ``lam`` and ``C`` are ``(n_chains, k)`` too (each seed its own problem), each resample
      is fitted by pooled least squares over all its ``(seed, direction)`` triples.

    Each of ``a``, ``b``, ``c`` is a :class:`~ghost_optima.core.stats.Estimate` from
    :func:`~ghost_optima.core.stats.sample_estimate` with the same ``seed`` (hence the same
    resamples).
    Needs ``k >= 3`` directions with ``log lambda`` and ``log C`` not collinear (if ``C`` is
    proportional to a power of ``lambda``, ``b`` and ``c`` are not separately identifiable and a
    ``ValueError`` is raised).
    """
    V = as_numpy(var)
    L = as_numpy(lam)
    Cn = as_numpy(C)
    if V.ndim == 1:
        if L.shape != V.shape or Cn.shape != V.shape:
            raise ValueError("var, lam and C must have the same shape (k,)")
        rows = np.column_stack(
            [_positive_log(V, "var"), _positive_log(L, "lam"), _positive_log(Cn, "C")]
        )
        resampled = "directions"

        def coefs(r: np.ndarray) -> np.ndarray:
            return _lstsq_coef(r[:, 0], r[:, 1], r[:, 2])

        k = V.shape[0]
        design_L, design_C = rows[:, 1], rows[:, 2]
    elif V.ndim == 2:
        k = V.shape[1]
        resampled = "chains"
        _positive_log(V, "var")
        if L.ndim == 1 and Cn.ndim == 1:
            if L.shape != (k,) or Cn.shape != (k,):
                raise ValueError("lam and C must have shape (k,) matching var's columns")
            logL, logC = _positive_log(L, "lam"), _positive_log(Cn, "C")
            rows = V

            def coefs(r: np.ndarray) -> np.ndarray:
                return _lstsq_coef(np.log(r.mean(axis=0)), logL, logC)

            design_L, design_C = logL, logC
        elif L.shape == V.shape and Cn.shape == V.shape:
            rows = np.stack(
                [np.log(V), _positive_log(L, "lam"), _positive_log(Cn, "C")], axis=-1
            )  # (n_chains, k, 3)

            def coefs(r: np.ndarray) -> np.ndarray:
                flat = r.reshape(-1, 3)
                return _lstsq_coef(flat[:, 0], flat[:, 1], flat[:, 2])

            design_L, design_C = rows[..., 1].ravel(), rows[..., 2].ravel()
        else:
            raise ValueError("lam and C must be (k,) or have var's shape (n_chains, k)")
    else:
        raise ValueError(f"var must be (k,) or (n_chains, k), got shape {V.shape}")
    A = np.column_stack([np.ones_like(design_L), design_L, design_C])
    if k < 3 or np.linalg.matrix_rank(A) < 3:
        raise ValueError(
            "log lambda and log C are collinear (or fewer than 3 directions): "
            "b and c are not identifiable"
        )
    ests = [
        sample_estimate(
            rows, lambda r, j=j: float(coefs(r)[j]), n_boot=n_boot, level=level, seed=seed
        )
        for j in range(3)
    ]
    return LogVarianceFit(a=ests[0], b=ests[1], c=ests[2], n_directions=k, resampled=resampled)


def loglog_slope(
    x: ArrayLike, y_per_seed: ArrayLike, *, seed: int = 0, n_boot: int = 2000, level: float = 0.95
) -> Estimate:
    """Slope of ``log y`` against ``log x`` with a bootstrap interval over seeds.

    ``x``: ``(m,)`` positive abscissae (e.g. learning rates or batch sizes).
    ``y_per_seed``: ``(n_seeds, m)`` positive values (e.g. MSD plateaus), one row per seed, or
    ``(m,)`` for a single seed (the interval then collapses to the value).

    The point estimate is :func:`ghost_optima.core.stats.slope` of ``log(mean over seeds of y)`` on
    ``log x`` (averaging before the log avoids the Jensen bias of averaging per-seed logs);
    :func:`ghost_optima.core.stats.bootstrap` resamples seeds (rows), so the interval reflects
    seed-to-seed variation. For claim T6 the small-step law predicts slope ``+1`` in ``eta``
    and ``-1`` in ``B``.
    """
    lx = _positive_log(as_numpy(x).reshape(-1), "x")
    Y = as_numpy(y_per_seed)
    if Y.ndim == 1:
        Y = Y[None, :]
    if Y.ndim != 2 or Y.shape[1] != lx.shape[0]:
        raise ValueError(f"y_per_seed must be (n_seeds, {lx.shape[0]}), got {Y.shape}")
    if lx.shape[0] < 2 or np.ptp(lx) == 0:
        raise ValueError("need at least two distinct x values")
    _positive_log(Y, "y_per_seed")
    return bootstrap(
        lambda rows: slope(lx, np.log(Y[rows].mean(axis=0))),
        len(Y),
        n_boot=n_boot,
        level=level,
        seed=seed,
    )


@dataclass(frozen=True)
class RatioSummary:
    """Measured over predicted variance per direction, bootstrapped over chains.

    ``per_direction``: one :class:`Estimate` per direction of ``mean_c Var_ci / pred_i``;
    ``max_dev``: of ``max_i |ratio_i - 1|``; ``median``: of ``median_i ratio_i``.

    ``max_dev``'s interval is not a percentile bootstrap of the maximum: resampling inflates a
    maximum of noisy deviations, so that interval can miss its own point. It is the range of
    ``max_i |r_i - 1|`` over every ``r`` inside simultaneous (Bonferroni, level ``1 - a/k``)
    per-direction intervals ``[l_i, h_i]``: ``lo = max_i dist(1, [l_i, h_i])``,
    ``hi = max_i max(|l_i - 1|, |h_i - 1|)``, which covers with probability at least ``1 - a``
    whenever the per-direction intervals do, and contains the point whenever they contain theirs.
    """

    per_direction: list[Estimate]
    max_dev: Estimate
    median: Estimate


def ratio_summary(
    var_per_chain: np.ndarray | Tensor,
    predicted: np.ndarray | Tensor | Sequence[float],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> RatioSummary:
    """Ratios of measured (mean over chains) to predicted variance, with chain-bootstrap CIs.

    ``var_per_chain``: ``(n_chains, k)``; ``predicted``: ``(k,)``. Every statistic is computed
    on the same resamples of chains (same ``seed``).
    """
    V = np.asarray(var_per_chain, dtype=float)
    P = np.asarray(predicted, dtype=float).reshape(-1)
    if V.ndim != 2 or V.shape[1] != P.shape[0] or np.any(P <= 0):
        raise ValueError("need var_per_chain (n_chains, k) and positive predicted (k,)")
    per = [
        sample_estimate(
            V[:, i], lambda v, p=P[i]: float(v.mean() / p), n_boot=n_boot, level=level, seed=seed
        )
        for i in range(V.shape[1])
    ]
    simultaneous = [
        sample_estimate(
            V[:, i],
            lambda v, p=P[i]: float(v.mean() / p),
            n_boot=n_boot,
            level=1 - (1 - level) / len(P),
            seed=seed,
        )
        for i in range(len(P))
    ]
    ratios = V.mean(axis=0) / P
    max_dev = Estimate(
        float(np.max(np.abs(ratios - 1))),
        max(max(e.lo - 1, 1 - e.hi, 0.0) for e in simultaneous),
        max(max(abs(e.lo - 1), abs(e.hi - 1)) for e in simultaneous),
        len(V),
    )
    median = sample_estimate(
        V, lambda v: float(np.median(v.mean(axis=0) / P)), n_boot=n_boot, level=level, seed=seed
    )
    return RatioSummary(per, max_dev, median)
