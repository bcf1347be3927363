"""Feng and Tu's variance-flatness protocol on SGD iterates (claim T5, beside the Hessian view).

Feng and Tu (2021, PNAS 118(9) e2015617118, "The inverse variance-flatness relation in
stochastic gradient descent is critical for finding flat minima") take the principal
components of the weights visited by SGD late in training, the variance ``sigma_i^2`` along
each, and the flatness ``F_i`` of the loss along each: the width of the interval around the
minimum within which the loss stays below a fixed multiple of its minimum. They find
``sigma_i^2 ~ F_i^{-psi}`` with ``psi > 0``: the cloud is *wider* along *sharper* directions.

* :func:`principal_directions`: eigenpairs of the covariance of the iterates, largest first;
* :func:`loss_widths`: ``F_i`` along many directions at once (bisection, vectorized with
  :func:`torch.func.vmap` over the loss);
* :func:`flatness_exponent`: ``psi`` as minus the slope of ``log sigma_i^2`` on ``log F_i``,
  with a bootstrap interval over directions (:func:`ghost_optima.stats.slope_ci`).

For a quadratic loss ``L0 + kappa x^2 / 2`` along a direction, the loss reaches ``f L0`` at
``x = sqrt(2 (f - 1) L0 / kappa)``, so ``F ~ kappa^{-1/2}`` and ``psi`` is twice the slope of
``log sigma^2`` on the curvature ``log kappa``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor
from torch.func import vmap

from ghost_optima.stats import Estimate, slope_ci

__all__ = ["flatness_exponent", "loss_widths", "principal_directions"]


def principal_directions(iterates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` principal components of ``iterates`` ``(N, d)`` (rows are samples).

    Returns ``(variances (k,), directions (d, k))``, variances in decreasing order, from the
    eigendecomposition of the population covariance about the mean.
    """
    X = np.asarray(iterates, dtype=np.float64)
    if X.ndim != 2 or not 1 <= k <= X.shape[1]:
        raise ValueError(f"need iterates (N, d) and 1 <= k <= d, got {X.shape}, k={k}")
    Xc = X - X.mean(axis=0)
    var, vec = np.linalg.eigh(Xc.T @ Xc / X.shape[0])
    order = np.argsort(var)[::-1][:k]
    return var[order], vec[:, order]


def _crossing(
    loss: Callable[[Tensor], Tensor], theta: Tensor, P: Tensor, level: float, iters: int
) -> Tensor:
    """Smallest ``t > 0`` (to bisection accuracy) with ``loss(theta + t p) >= level``, by column."""
    batched = vmap(loss)

    def above(t: Tensor) -> Tensor:
        return batched(theta + (P * t).T) >= level

    lo = torch.zeros(P.shape[1], dtype=theta.dtype)
    hi = torch.full_like(lo, 1e-3)
    for _ in range(80):
        grow = ~above(hi)
        if not grow.any():
            break
        lo = torch.where(grow, hi, lo)
        hi = torch.where(grow, 2 * hi, hi)
    else:
        raise ValueError("the loss never reached the level along some direction")
    for _ in range(iters):
        mid = (lo + hi) / 2
        hit = above(mid)
        hi = torch.where(hit, mid, hi)
        lo = torch.where(hit, lo, mid)
    return (lo + hi) / 2


def loss_widths(
    loss: Callable[[Tensor], Tensor],
    theta: Tensor,
    directions: Tensor | np.ndarray,
    *,
    factor: float = 2.0,
    iters: int = 40,
) -> np.ndarray:
    """Width ``F_i = t_+ + t_-`` of ``{t : loss(theta + t q_i) < factor * loss(theta)}`` around
    ``theta`` along each unit column ``q_i`` of ``directions`` ``(d, k)``.

    ``t_+`` and ``t_-`` are the first crossings on either side, found by doubling from
    ``1e-3`` then ``iters`` bisections. ``loss`` must accept a ``(d,)`` tensor and work under
    :func:`torch.func.vmap`. Needs ``factor > 1`` and ``loss(theta) > 0``.
    """
    if not factor > 1:
        raise ValueError(f"factor must exceed 1, got {factor}")
    theta = theta.detach()
    P = torch.as_tensor(np.asarray(directions), dtype=theta.dtype)
    P = P / P.norm(dim=0, keepdim=True)
    level = factor * float(loss(theta))
    if not level > 0:
        raise ValueError("the loss at theta must be positive")
    plus = _crossing(loss, theta, P, level, iters)
    minus = _crossing(loss, theta, -P, level, iters)
    return (plus + minus).numpy()


def flatness_exponent(
    variances: np.ndarray, widths: np.ndarray, *, n_boot: int = 2000, seed: int = 0
) -> Estimate:
    """``psi`` in ``sigma_i^2 ~ F_i^{-psi}``: the slope of ``-log sigma_i^2`` on ``log F_i``,
    with a percentile-bootstrap interval over directions."""
    v = np.asarray(variances, dtype=np.float64)
    w = np.asarray(widths, dtype=np.float64)
    if np.any(v <= 0) or np.any(w <= 0):
        raise ValueError("variances and widths must be positive")
    return slope_ci(np.log(w), -np.log(v), n_boot=n_boot, seed=seed)
