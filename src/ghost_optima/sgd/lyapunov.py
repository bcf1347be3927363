"""SGD's full stationary covariance near a minimum: the discrete Lyapunov equation (claim T4).

Linearised SGD, ``theta_{t+1} - theta* = (I - eta H)(theta_t - theta*) - eta xi_t`` with
``Cov xi_t = s C / B`` (``C`` the population covariance of per-example gradients at
``theta*``, ``s`` the finite-population factor of :func:`ghost_optima.sgd.stationary.
finite_population_factor`), has a stationary covariance ``Sigma`` that solves ::

    Sigma = (I - eta H) Sigma (I - eta H) + eta^2 s C / B

(a discrete Lyapunov equation). In the eigenbasis of ``H = Q diag(lambda) Q^T`` it is solved
entry by entry, exactly, since ``I - eta H`` is diagonal there ::

    Sigma'_ij = eta^2 s C'_ij / B / (1 - (1 - eta lambda_i)(1 - eta lambda_j)),   C' = Q^T C Q

whose diagonal is :func:`ghost_optima.sgd.stationary.stationary_variance`; off the diagonal it is
non-zero whenever ``C`` does not commute with ``H``. :func:`lyapunov_eigenbasis` computes it
(``O(d^2)`` given the eigenbasis), :func:`lyapunov_covariance` returns ``Q Sigma' Q^T`` or, with
``method="scipy"``, solves the same equation with :func:`scipy.linalg.solve_discrete_lyapunov`
(``O(d^3)``, the tests' reference).

Measuring it: :func:`run_with_snapshots` runs the chain engine in segments and keeps the
iterates every ``every`` steps; :func:`compare_covariance` sets their covariance against the
prediction with bootstrap intervals over chains (:func:`ghost_optima.core.stats.bootstrap`), and
:func:`compare_across_networks` averages its two summaries over several trained networks with a
two-stage bootstrap (networks, then the chains of each).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from ghost_optima.core.stats import (
    Estimate,
    Nested,
    bootstrap,
    counts,
    intervals,
    nested_mean,
    resample,
)
from ghost_optima.sgd.chains import ChainRecord, Gradient, Schedule, Watch, run_chains
from ghost_optima.sgd.stationary import check_eta_lam, finite_population_factor

__all__ = [
    "ChainMoments",
    "CovarianceComparison",
    "compare_across_networks",
    "compare_covariance",
    "gradient_covariance",
    "lyapunov_covariance",
    "lyapunov_eigenbasis",
    "noisy_directions",
    "run_with_snapshots",
]


def gradient_covariance(per_sample_grads: Tensor | np.ndarray) -> np.ndarray:
    """``C = (1/n) sum_j (g_j - gbar)(g_j - gbar)^T`` (population covariance), ``(d, d)``."""
    G = np.asarray(per_sample_grads, dtype=np.float64)
    if G.ndim != 2 or G.shape[0] < 2:
        raise ValueError(f"per_sample_grads must be (n >= 2, d), got {G.shape}")
    Gc = G - G.mean(axis=0)
    return Gc.T @ Gc / G.shape[0]


def lyapunov_eigenbasis(
    eta: float, lam: np.ndarray, C_eig: np.ndarray, batch_size: int, *, n: int | None = None
) -> np.ndarray:
    """``Sigma'_ij = eta^2 s C'_ij / B / (1 - (1 - eta lambda_i)(1 - eta lambda_j))``.

    ``lam``: ``(k,)`` eigenvalues with ``0 < eta lambda_i < 2``; ``C_eig``: ``(k, k)`` the noise
    covariance in the same eigenbasis, ``Q^T C Q``; ``n`` as in
    :func:`ghost_optima.sgd.stationary.stationary_variance`. Exact for the linearised dynamics
    (each entry of the Lyapunov equation decouples in the eigenbasis of ``H``).
    """
    lam = np.asarray(lam, dtype=np.float64).reshape(-1)
    C_eig = np.asarray(C_eig, dtype=np.float64)
    if C_eig.shape != (lam.size, lam.size):
        raise ValueError(f"C_eig must be ({lam.size}, {lam.size}), got {C_eig.shape}")
    a = 1.0 - check_eta_lam(eta, lam)
    s = finite_population_factor(batch_size, n)
    return eta**2 * s * C_eig / batch_size / (1.0 - np.outer(a, a))


def lyapunov_covariance(
    eta: float,
    H: np.ndarray,
    C: np.ndarray,
    batch_size: int,
    *,
    n: int | None = None,
    method: str = "eigen",
) -> np.ndarray:
    """The solution ``Sigma`` of ``Sigma = (I - eta H) Sigma (I - eta H) + eta^2 s C / B``.

    ``H``, ``C``: ``(d, d)`` symmetric, in the same basis; the result is in that basis.
    ``method="eigen"``: :func:`lyapunov_eigenbasis` after ``numpy.linalg.eigh(H)``;
    ``method="scipy"``: :func:`scipy.linalg.solve_discrete_lyapunov` (``A X A^T - X + Q = 0``
    with ``A = I - eta H``, ``Q = eta^2 s C / B``). Both need ``0 < eta lambda_i < 2``.
    """
    H = np.asarray(H, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64)
    if method == "eigen":
        lam, Q = np.linalg.eigh(H)
        return Q @ lyapunov_eigenbasis(eta, lam, Q.T @ C @ Q, batch_size, n=n) @ Q.T
    if method == "scipy":
        check_eta_lam(eta, np.linalg.eigvalsh(H))
        s = finite_population_factor(batch_size, n)
        A = np.eye(H.shape[0]) - eta * H
        return scipy.linalg.solve_discrete_lyapunov(A, eta**2 * s * C / batch_size)
    raise ValueError(f"method must be 'eigen' or 'scipy', got {method!r}")


def noisy_directions(C_diag: np.ndarray, rel_tol: float) -> np.ndarray:
    """Indices ``i`` with ``C_i > rel_tol * max_j C_j``: directions along which SGD has noise.

    Along the others (e.g. the weights of an input that is zero in every example) the
    per-example gradients all agree and the cloud has no spread to compare.
    """
    C_diag = np.asarray(C_diag, dtype=np.float64)
    return np.flatnonzero(C_diag > rel_tol * C_diag.max())


def run_with_snapshots(
    gradient: Gradient,
    n_data: int,
    start: Tensor,
    schedule: Schedule,
    generator: torch.Generator,
    watch: Watch,
    every: int,
) -> tuple[ChainRecord, Tensor]:
    """:func:`ghost_optima.sgd.chains.run_chains` in segments of ``every`` steps after burn-in.

    Returns the record of the whole run (time averages over the post-burn-in steps, every step
    counted, as one call would give; no trace) and the iterates at the end of every segment,
    ``(T, C, d)`` with ``T = (n_steps - burn_in) // every`` (the steps that do not fill a
    segment are not run).
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    n_seg = (schedule.n_steps - schedule.burn_in) // every
    if n_seg < 2:
        raise ValueError("need at least two snapshots after burn-in")
    theta = start
    if schedule.burn_in:
        burn = Schedule(
            schedule.eta,
            schedule.batch_size,
            schedule.burn_in,
            schedule.burn_in - 1,
            schedule.replacement,
        )
        theta = run_chains(gradient, n_data, theta, burn, generator, Watch(watch.centre)).final
    segment = Schedule(schedule.eta, schedule.batch_size, every, 0, schedule.replacement)
    plain = Watch(watch.centre, watch.directions)
    sums: list[Tensor] | None = None
    snaps = []
    for _ in range(n_seg):
        rec = run_chains(gradient, n_data, theta, segment, generator, plain)
        parts = [rec.proj_mean, rec.proj_sq, rec.msd]
        sums = parts if sums is None else [a + b for a, b in zip(sums, parts, strict=True)]
        theta = rec.final
        snaps.append(theta.clone())
    assert sums is not None
    mean, sq, msd = (x / n_seg for x in sums)
    empty = torch.zeros(start.shape[0], 0, dtype=start.dtype)
    record = ChainRecord(
        mean, sq, msd, empty, torch.zeros(0, dtype=torch.long), n_seg * every, theta
    )
    return record, torch.stack(snaps)


@dataclass(frozen=True)
class ChainMoments:
    """What every bootstrap of the chains' covariance against a prediction ``P`` needs, ``C``
    chains and ``k`` directions: ``gram`` ``(C, C)``, ``<M_c - P, M_d - P>_F`` with ``M_c``
    chain ``c``'s second moment; ``variances`` ``(C, k)``, the diagonals of the ``M_c``;
    ``predicted_variances`` ``(k,)`` and ``predicted_norm``, ``diag P`` and ``||P||_F``.

    A resample is a count vector ``w`` per chain (rows of ``(..., C)``,
    :func:`ghost_optima.core.stats.counts`); the two statistics take a batch of them."""

    gram: np.ndarray
    variances: np.ndarray
    predicted_variances: np.ndarray
    predicted_norm: float

    def rel_error(self, w: np.ndarray) -> np.ndarray:
        """``sqrt(sum_{c != d} w_c w_d G_cd / sum_{c != d} w_c w_d) / ||P||_F``, NaN where a
        resample holds one distinct chain (no pair)."""
        return _pair_error(self.gram, w) / self.predicted_norm

    def ratio_median(self, w: np.ndarray) -> np.ndarray:
        """Median over directions of the resampled mean variance over the predicted one."""
        mean = (w @ self.variances) / w.sum(axis=-1, keepdims=True)
        return np.median(mean / self.predicted_variances, axis=-1)


def _pair_error(gram: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``sqrt(max(0, sum_{c != d} w_c w_d G_cd / sum_{c != d} w_c w_d))`` per row of ``w``."""
    pairs = w.sum(axis=-1) ** 2 - (w * w).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = (np.einsum("...c,cd,...d->...", w, gram, w) - (w * w) @ np.diag(gram)) / pairs
    return np.sqrt(np.maximum(cross, 0.0))


@dataclass(frozen=True)
class CovarianceComparison:
    """The chains' covariance against a predicted one, in a fixed basis of ``k`` directions.

    ``measured``: ``(k, k)`` covariance of the pooled snapshots about their pooled mean.
    ``rel_error``: ``||Sigma - predicted||_F / ||predicted||_F`` for the chains' stationary
    covariance ``Sigma``, estimated without the sampling-noise bias of the plug-in value: the
    squared error is the mean over pairs of *distinct* chains ``c != d`` of
    ``<M_c - P, M_d - P>_F`` (``M_c`` chain ``c``'s covariance), whose expectation is
    ``||Sigma - P||_F^2`` because independent chains' sampling errors are uncorrelated (a
    negative mean, possible by chance, reads as 0). ``plug_in_error``: the same norm of
    ``measured - predicted``, biased upwards by sampling noise; ``noise_floor``: half the
    relative Frobenius distance between the covariances of the two halves of the chains, about
    the part of ``plug_in_error`` that sampling alone gives. ``diag_only_error``: the debiased
    error of the prediction's diagonal alone (the law without its off-diagonal covariances),
    ``||Sigma - diag(predicted)||_F``, divided by the same ``||predicted||_F`` (the whole
    matrix's norm, not the diagonal's), so that the two errors are on one scale.
    ``ratio_median``: median over directions of measured / predicted variance; ``ratio``:
    ``(k,)`` those ratios. Intervals resample chains. ``moments``: what they were resampled
    from, for :func:`compare_across_networks`.
    """

    measured: np.ndarray
    rel_error: Estimate
    plug_in_error: float
    noise_floor: float
    diag_only_error: Estimate
    ratio_median: Estimate
    ratio: np.ndarray
    moments: ChainMoments


def _resampled(statistic, n_chains: int, n_boot: int, seed: int) -> Estimate:
    """:func:`ghost_optima.core.stats.bootstrap` over chains of a statistic of count vectors."""
    return bootstrap(
        lambda idx: statistic(counts(idx, n_chains)),
        n_chains,
        n_boot=n_boot,
        seed=seed,
        batched=True,
    )


def compare_covariance(
    snapshots: np.ndarray, predicted: np.ndarray, *, n_boot: int = 2000, seed: int = 0
) -> CovarianceComparison:
    """Compare the covariance of ``snapshots`` ``(T, C, k)`` (already in the basis of
    ``predicted``, ``(k, k)``) with ``predicted``, bootstrapping over the ``C >= 2`` chains.

    Each chain's second moment about the pooled mean, ``M_c``, is formed once; a resample with
    chain counts ``w`` has the cross-chain squared error ``sum_{c != d} w_c w_d G_cd`` over its
    pairs of distinct chains, with ``G_cd = <M_c - P, M_d - P>``: the bootstrap costs
    ``C x C`` work per resample, not ``k^2``.
    """
    M, P = _chain_moments(snapshots, predicted)
    n_chains = len(M)
    norm_p = float(np.linalg.norm(P))
    diag_p = np.diag(P)
    moments = ChainMoments(_gram(M, P), np.einsum("cii->ci", M), diag_p, norm_p)
    diag_only = _gram(M, np.diag(diag_p))
    half = n_chains // 2
    floor = float(np.linalg.norm(M[:half].mean(0) - M[half : 2 * half].mean(0)) / 2 / norm_p)
    measured = M.mean(axis=0)
    return CovarianceComparison(
        measured=measured,
        rel_error=_resampled(moments.rel_error, n_chains, n_boot, seed),
        plug_in_error=float(np.linalg.norm(measured - P) / norm_p),
        noise_floor=floor,
        diag_only_error=_resampled(
            lambda w: _pair_error(diag_only, w) / norm_p, n_chains, n_boot, seed
        ),
        ratio_median=_resampled(moments.ratio_median, n_chains, n_boot, seed),
        ratio=np.diag(measured) / diag_p,
        moments=moments,
    )


def _gram(M: np.ndarray, P: np.ndarray) -> np.ndarray:
    """``<M_c - P, M_d - P>_F`` for every pair of chains, ``(C, C)``."""
    D = M - P
    return np.einsum("cij,dij->cd", D, D, optimize=True)


def _chain_moments(snapshots: np.ndarray, predicted: np.ndarray):
    """Chain ``c``'s second moment ``M_c`` about the pooled mean, ``(C, k, k)``, of snapshots
    ``(T, C >= 2, k)``, and ``predicted`` as float64; ValueError on shapes that do not fit."""
    U = np.asarray(snapshots, dtype=np.float64)
    P = np.asarray(predicted, dtype=np.float64)
    if U.ndim != 3 or P.shape != (U.shape[2], U.shape[2]) or U.shape[1] < 2:
        raise ValueError(
            f"need snapshots (T, C >= 2, k) and predicted (k, k), got {U.shape}, {P.shape}"
        )
    U = U - U.reshape(-1, U.shape[2]).mean(axis=0)
    return np.einsum("tci,tcj->cij", U, U, optimize=True) / U.shape[0], P


def compare_across_networks(
    comparisons: list[CovarianceComparison], *, n_boot: int = 2000, seed: int = 0
) -> tuple[Estimate, Estimate]:
    """``rel_error`` and ``ratio_median`` of ``N`` networks' :func:`compare_covariance`
    results, each averaged over the networks, every network with the same ``C >= 2`` chains
    (the number of directions may differ).

    The interval is the two-stage bootstrap of :class:`ghost_optima.core.stats.Nested`
    ``(N, C)``: the networks drawn with replacement, then the chains of every drawn network
    afresh, so it holds the spread between networks (their minima, data splits and
    initialisations) as well as the chains' sampling noise; each drawn network's statistics
    are those of its :class:`ChainMoments`. The point is the mean over networks of each
    network's value on all its chains.
    """
    if not comparisons:
        raise ValueError("need at least one network")
    n_chains = {len(c.moments.gram) for c in comparisons}
    if len(n_chains) != 1:
        raise ValueError(f"every network needs the same number of chains, got {sorted(n_chains)}")
    (n_chains,) = n_chains

    def statistic(path: tuple, idx: np.ndarray) -> np.ndarray:
        moments = comparisons[path[0]].moments
        w = counts(idx, n_chains)
        return np.stack([moments.rel_error(w), moments.ratio_median(w)], axis=1)

    (levels,) = resample(Nested(len(comparisons), n_chains), n_boot=n_boot, seed=seed)
    rel_error, ratio_median = intervals(nested_mean(statistic, levels), len(comparisons))
    return rel_error, ratio_median
