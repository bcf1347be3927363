"""Nearer a copy? Iterates against the copies of a minimum, and the minimum itself (claim T6).

* **The nearest copy of an iterate.** For one hidden layer the squared distance from an
  iterate ``theta_t`` to the copy ``g theta*`` that maps unit ``p(i)`` of ``theta*``, times
  ``s_i = +-1``, onto unit ``i`` is ``sum_i ||v_i - s_i u_p(i)||^2`` plus terms no copy
  changes (``v``, ``u`` the unit vectors of ``theta_t`` and ``theta*``), so the nearest of all
  the ``n! 2^n`` copies is one linear assignment (:func:`nearest_copy`). An iterate is *nearer
  a distinct copy* (:func:`nearer_distinct_copy`) when that copy is nearer than ``theta*`` and
  maps some unit onto one it has not merged with. Unlike a spread, this count cannot grow by
  drift alone: an iterate counts only when it is closer to a copy than to ``theta*``.
* **Is ``theta*`` polished?** :func:`polish_shift` polishes a minimum further and says how far
  it moves, in units of a copy's distance; :func:`smallest_eigenvalue` gives the slowest
  relaxation rate ``eta lambda_min`` of the linearised chains.
* **Along the way.** :func:`segment_summaries` runs chains in segments and summarises the
  states, so one long run gives every shorter chain as a prefix; :func:`cloud_figures` and
  :func:`radius_growth` turn the summaries into the chapter's figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.sparse.linalg import LinearOperator, eigsh
from torch import Tensor

from ghost_optima.core.mlp import Params, activation
from ghost_optima.core.stats import Estimate, bootstrap
from ghost_optima.landscape.hessian import HessianOperator
from ghost_optima.sgd.chains import Schedule, Watch
from ghost_optima.sgd.network_chains import MLPObjective, ValueAndGrad, minimize, mlp_sgd_chains
from ghost_optima.symmetry.ghosts import unit_vectors

__all__ = [
    "CopyMatch",
    "PolishShift",
    "cloud_figures",
    "gaussian_share_past_midpoint",
    "nearer_distinct_copy",
    "nearest_copy",
    "polish_shift",
    "radius_growth",
    "segment_summaries",
    "smallest_eigenvalue",
]


@dataclass(frozen=True)
class CopyMatch:
    """The copy of ``centre`` nearest a point, for a network with one hidden layer.

    ``perm[i]``: the unit of ``centre`` that the copy puts at unit ``i``; ``signs[i]``: its
    sign (``+-1``); ``distance``: from the point to that copy; ``centre_distance``: from the
    point to ``centre`` itself; ``moved``: the largest ``||u_i - s_i u_perm[i]||`` over the units
    of ``centre`` (0 for the identity), which says whether the copy is distinct.
    """

    perm: np.ndarray
    signs: np.ndarray
    distance: float
    centre_distance: float
    moved: float


def nearest_copy(centre: Params, point: Params, activation_name: str) -> CopyMatch:
    """The nearest of all copies of ``centre`` (permutations of hidden units, with sign flips
    for odd activations) to ``point``, exactly, by one linear assignment.

    Only for one hidden layer (``W1, b1, W2, b2``), where the squared distance from ``point``
    to a copy is ``||b2 - b2*||^2 + sum_i ||v_i - s_i u_p(i)||^2`` (``v``, ``u`` the unit
    vectors of ``point`` and ``centre``, :func:`ghost_optima.symmetry.ghosts.unit_vectors`).
    """
    if len(centre) != 4 or len(point) != 4:
        raise ValueError("nearest_copy needs one hidden layer (W1, b1, W2, b2)")
    U = unit_vectors(centre, 1).double()
    V = unit_vectors(point, 1).double()
    signs = (1.0, -1.0) if activation(activation_name).symmetry == "odd" else (1.0,)
    costs = torch.stack([torch.cdist(V, s * U).pow(2) for s in signs])  # (S, n, n)
    best, which = costs.min(dim=0)
    rows, cols = linear_sum_assignment(best.numpy())
    chosen = torch.as_tensor(np.array(signs))[which[rows, cols]].numpy()
    rest = float((point["b2"].double() - centre["b2"].double()).pow(2).sum())
    copy_sq = float(best[rows, cols].sum()) + rest
    own_sq = float((V - U).pow(2).sum()) + rest
    perm = np.empty(len(rows), dtype=int)
    perm[rows] = cols
    sgn = np.empty(len(rows))
    sgn[rows] = chosen
    moved = (U - torch.as_tensor(sgn)[:, None] * U[torch.as_tensor(perm)]).norm(dim=1)
    return CopyMatch(
        perm=perm,
        signs=sgn,
        distance=math.sqrt(max(copy_sq, 0.0)),
        centre_distance=math.sqrt(own_sq),
        moved=float(moved.max()),
    )


def nearer_distinct_copy(
    centre: Params, points: list[Params], activation_name: str, *, merged_below: float
) -> np.ndarray:
    """For each point: is the nearest copy of ``centre`` (:func:`nearest_copy`) strictly nearer
    than ``centre`` itself, and distinct (it maps some unit ``u_p(i)`` onto a unit ``u_i`` with
    ``||u_i - s_i u_p(i)|| >= merged_below``, so it is not ``centre`` up to merged units)?"""
    out = np.zeros(len(points), dtype=bool)
    for k, point in enumerate(points):
        match = nearest_copy(centre, point, activation_name)
        out[k] = match.distance < match.centre_distance and match.moved >= merged_below
    return out


@dataclass(frozen=True)
class PolishShift:
    """What a further polish of a minimum did: the new point, its gradient norm, the iterations
    it took, and the displacement in units of ``distance`` (a copy's distance): its norm
    (``shift``) and its component along the unit vector ``direction`` (``along``)."""

    theta: Tensor
    grad_norm: float
    iterations: int
    shift: float
    along: float


def polish_shift(
    loss: Callable[[Tensor], Tensor],
    theta: Tensor,
    grad_tol: float,
    direction: Tensor,
    distance: float,
    *,
    max_iter: int = 5000,
    value_and_grad: ValueAndGrad | None = None,
) -> PolishShift:
    """Polish ``theta`` further (:func:`ghost_optima.sgd.network_chains.minimize`: L-BFGS until
    no gradient entry exceeds ``grad_tol``, at most ``max_iter`` iterations, on
    ``value_and_grad`` when given) and measure how far it moved, over ``distance``."""
    if not (distance > 0 and math.isfinite(distance)):
        raise ValueError(f"distance must be positive and finite, got {distance}")
    new, grad_norm, iterations = minimize(
        loss, theta, grad_tol=grad_tol, max_iter=max_iter, value_and_grad=value_and_grad
    )
    step = new - theta
    e = direction / direction.norm()
    return PolishShift(
        theta=new,
        grad_norm=grad_norm,
        iterations=iterations,
        shift=float(step.norm()) / distance,
        along=float(step @ e) / distance,
    )


def smallest_eigenvalue(
    loss: Callable[[Tensor], Tensor], theta: Tensor, largest: float, *, tol: float, seed: int = 0
) -> tuple[float, int]:
    """The algebraically smallest eigenvalue of the Hessian of ``loss`` at ``theta``, and the
    Hessian-vector products it took.

    Lanczos (``scipy.sparse.linalg.eigsh``, ``which="LA"``) on ``largest * I - H``, whose top
    eigenvalue is ``largest - lambda_min`` (``largest``: at least the Hessian's largest
    eigenvalue); ``tol`` is ARPACK's relative tolerance on that shifted value, so the error on
    ``lambda_min`` is about ``tol * largest``. Start vector ``N(0, I)`` from ``seed``.
    """
    op = HessianOperator(loss, theta)
    d = op.shape[0]
    shifted = LinearOperator(
        (d, d),
        matvec=lambda x: largest * np.asarray(x).reshape(-1) - op.matvec(x).reshape(-1),
        dtype=np.float64,
    )
    v0 = np.random.default_rng(seed).standard_normal(d)
    vals = eigsh(shifted, k=1, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
    return largest - float(vals[0]), op.n_matvec


def segment_summaries(
    objective: MLPObjective,
    schedule: Schedule,
    n_chains: int,
    generator: torch.Generator,
    centre: Tensor,
    every: int,
    summarise: Callable[[Tensor], dict[str, np.ndarray]],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Constant-step SGD chains from ``centre`` (no burn-in), stopped every ``every`` steps to
    summarise the states.

    ``summarise(states (C, d)) -> {name: (C,) array}`` is called at steps ``every, 2 every, ...
    <= n_steps``; the states are those of one uninterrupted run (the batches are drawn from
    ``generator`` in the same order), so a prefix of the run is a shorter chain. Returns the
    step numbers ``(S,)`` and, per name, the summaries ``(C, S)``.
    """
    if not 1 <= every <= schedule.n_steps:
        raise ValueError(f"need 1 <= every <= {schedule.n_steps}, got {every}")
    n_seg = schedule.n_steps // every
    seg = Schedule(schedule.eta, schedule.batch_size, every, 0, schedule.replacement)
    state: Tensor | None = None
    out: dict[str, list[np.ndarray]] = {}
    for _ in range(n_seg):
        state = mlp_sgd_chains(objective, seg, n_chains, generator, Watch(centre), state).final
        for name, value in summarise(state).items():
            out.setdefault(name, []).append(np.asarray(value, dtype=float).reshape(n_chains))
    steps = every * np.arange(1, n_seg + 1)
    return steps, {name: np.stack(v, axis=1) for name, v in out.items()}


def gaussian_share_past_midpoint(ratio: float) -> float:
    """The share of a Gaussian cloud centred on ``theta*``, with projected ratio ``ratio`` (its
    standard deviation along ``e`` over the copy's distance ``delta``), whose projection passes
    ``delta / 2``: ``P(Z > 0.5 / ratio) = erfc(0.5 / (ratio sqrt 2)) / 2``."""
    if not ratio > 0:
        raise ValueError(f"ratio must be positive, got {ratio}")
    return 0.5 * math.erfc(0.5 / (ratio * math.sqrt(2.0)))


def cloud_figures(
    proj: np.ndarray, nearer: np.ndarray, distance: float, *, n_boot: int, seed: int
) -> dict[str, Estimate]:
    """The cloud along the direction to a copy, from kept iterates ``(C, T)`` of ``C`` chains.

    ``proj``: projections ``(theta_t - theta*) . e``; ``nearer``: whether each iterate lies
    nearer a distinct copy (:func:`nearer_distinct_copy`). Returns, each with a percentile
    bootstrap over chains: ``projected`` (root mean square projection over ``distance``),
    ``mean`` (mean projection over ``distance``, signed) and ``nearer`` (share of iterates).
    """
    P = np.asarray(proj, dtype=float) / distance
    N = np.asarray(nearer, dtype=float)
    if P.ndim != 2 or P.shape != N.shape or P.shape[1] == 0:
        raise ValueError(f"need proj and nearer of one shape (C, T >= 1), got {P.shape}, {N.shape}")
    if not (distance > 0 and math.isfinite(distance)):
        raise ValueError(f"distance must be positive and finite, got {distance}")
    sq, mean, share = (P * P).mean(axis=1), P.mean(axis=1), N.mean(axis=1)
    n = len(P)
    return dict(
        projected=bootstrap(lambda i: math.sqrt(sq[i].mean()), n, n_boot=n_boot, seed=seed),
        mean=bootstrap(lambda i: float(mean[i].mean()), n, n_boot=n_boot, seed=seed),
        nearer=bootstrap(lambda i: float(share[i].mean()), n, n_boot=n_boot, seed=seed),
    )


def radius_growth(
    sq: np.ndarray,
    steps: np.ndarray,
    length: int,
    burn_in_frac: float,
    *,
    n_boot: int,
    seed: int,
) -> Estimate:
    """Is the cloud still growing at the end of a chain of ``length`` steps?

    ``sq``: ``(C, S)`` squared distances to ``theta*`` at ``steps`` ``(S,)``. The kept part,
    after ``burn_in_frac * length``, is split in two equal halves; returns the mean squared
    distance over the later half over that over the earlier half (1 for a stationary cloud),
    with a percentile bootstrap over chains.
    """
    sq = np.asarray(sq, dtype=float)
    steps = np.asarray(steps)
    start = burn_in_frac * length
    middle = start + (length - start) / 2
    early = (steps > start) & (steps <= middle)
    late = (steps > middle) & (steps <= length)
    if not early.any() or not late.any():
        raise ValueError("both halves of the kept part need at least one snapshot")
    a, b = sq[:, early].mean(axis=1), sq[:, late].mean(axis=1)
    return bootstrap(lambda i: float(b[i].mean() / a[i].mean()), len(sq), n_boot=n_boot, seed=seed)
