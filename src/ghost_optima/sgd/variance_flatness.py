"""Feng and Tu's variance-flatness protocol on SGD iterates (claim T5, beside the Hessian view).

Feng and Tu (2021, PNAS 118(9) e2015617118, "The inverse variance-flatness relation in
stochastic gradient descent is critical for finding flat minima") take the principal
components of the weights visited by SGD late in training, the variance ``sigma_i^2`` along
each, and the flatness ``F_i`` of the loss along each: the width of the interval around the
minimum within which the loss stays below a fixed multiple of its minimum. They find
``sigma_i^2 ~ F_i^{-psi}`` with ``psi > 0``: the cloud is *wider* along *sharper* directions.

* :func:`principal_directions`: eigenpairs of the covariance of the iterates, largest first;
* :func:`loss_widths`: ``F_i`` along many directions at once (bisection, vectorized with
  :func:`torch.func.vmap` over the loss, or :func:`mlp_line_loss` for a one-hidden-layer MLP);
* :func:`flatness_exponent`: ``psi`` as minus the slope of ``log sigma_i^2`` on ``log F_i``,
  with a bootstrap interval over directions (:func:`ghost_optima.core.stats.slope_ci`).

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

from ghost_optima.core.mlp import layer_activation, loss_per_example
from ghost_optima.core.stats import Estimate, slope_ci
from ghost_optima.sgd.network_chains import MLPObjective

__all__ = ["LineLoss", "flatness_exponent", "loss_widths", "mlp_line_loss", "principal_directions"]


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
    evaluate: Callable[[Tensor], Tensor], k: int, dtype, level: float, iters: int
) -> Tensor:
    """Smallest ``t > 0`` (to bisection accuracy) with ``evaluate(t)[i] >= level``, per column.

    ``evaluate``: ``t (k,) -> (k,)``, the loss at ``t_i`` along each of ``k`` directions."""

    def above(t: Tensor) -> Tensor:
        return evaluate(t) >= level

    lo = torch.zeros(k, dtype=dtype)
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


LineLoss = Callable[[Tensor, Tensor], Callable[[Tensor], Tensor]]
"""``line(theta, P)`` with ``P`` ``(d, k)``: a function ``t (k,) -> (loss(theta + t_i p_i))_i``."""


def mlp_line_loss(objective: MLPObjective) -> LineLoss:
    """The loss of a one-hidden-layer MLP objective along many directions, made cheap.

    Along ``p = (P_1, p_1, P_2, p_2)`` (the layers' weights and biases) the first layer's
    pre-activations are affine in ``t``: ``Z(t) = Z* + t Z_p`` with ``Z* = X W_1^T + b_1`` and
    ``Z_p = X P_1^T + p_1``, computed once per direction; each evaluation is then
    ``tanh``, the ``(n_h -> n_out)`` layer with ``W_2 + t P_2``, the mean cross-entropy and
    ``(wd / 2) (||theta||^2 + 2 t theta.p + t^2 ||p||^2)``: the same value as
    ``objective.loss(theta + t p)`` up to float rounding, without the ``n x n_in x n_h``
    product of every call. Other depths fall back to ``vmap(objective.loss)``.
    """

    def line(theta: Tensor, P: Tensor) -> Callable[[Tensor], Tensor]:
        if len(objective.widths) != 3:
            batched = vmap(objective.loss)
            return lambda t: batched(theta + (P * t).T)
        params = objective.unflatten(theta)
        names = list(params)
        sizes = [params[k].numel() for k in names]
        k = P.shape[1]
        parts = dict(zip(names, P.T.contiguous().split(sizes, dim=1), strict=True))
        n_h, n_in = params["W1"].shape
        n_out = params["W2"].shape[0]
        P1, p1 = parts["W1"].view(k, n_h, n_in), parts["b1"].view(k, 1, n_h)
        P2, p2 = parts["W2"].view(k, n_out, n_h), parts["b2"].view(k, 1, n_out)
        X, wd = objective.X, objective.weight_decay
        z_star = torch.addmm(params["b1"], X, params["W1"].T)
        z_dir = torch.matmul(X, P1.mT).add_(p1)
        act = layer_activation(objective.activation)
        sq, tp, pp = float(theta @ theta), P.T @ theta, (P * P).sum(0)

        def along(t: Tensor) -> Tensor:
            tt = t.view(k, 1, 1)
            h = torch.addcmul(z_star, tt, z_dir)
            if objective.activation == "tanh":  # NumPy's tanh, in place: several times faster
                np.tanh(h.numpy(), out=h.numpy())
            else:
                h = act(h, 1)
            out = torch.baddbmm(params["b2"] + tt * p2, h, (params["W2"] + tt * P2).mT)
            data = loss_per_example(out, objective.y, "classification").mean(-1)
            return data + 0.5 * wd * (sq + 2 * t * tp + t * t * pp) if wd else data

        return along

    return line


def loss_widths(
    loss: Callable[[Tensor], Tensor],
    theta: Tensor,
    directions: Tensor | np.ndarray,
    *,
    factor: float = 2.0,
    iters: int = 40,
    line: LineLoss | None = None,
) -> np.ndarray:
    """Width ``F_i = t_+ + t_-`` of ``{t : loss(theta + t q_i) < factor * loss(theta)}`` around
    ``theta`` along each unit column ``q_i`` of ``directions`` ``(d, k)``.

    ``t_+`` and ``t_-`` are the first crossings on either side, found by doubling from
    ``1e-3`` then ``iters`` bisections. ``loss`` must accept a ``(d,)`` tensor and work under
    :func:`torch.func.vmap`; ``line`` (e.g. :func:`mlp_line_loss`) evaluates the same losses
    along all directions at once more cheaply. Needs ``factor > 1`` and ``loss(theta) > 0``.
    """
    if not factor > 1:
        raise ValueError(f"factor must exceed 1, got {factor}")
    theta = theta.detach()
    P = torch.as_tensor(np.asarray(directions), dtype=theta.dtype)
    P = P / P.norm(dim=0, keepdim=True)
    level = factor * float(loss(theta))
    if not level > 0:
        raise ValueError("the loss at theta must be positive")
    if line is None:
        batched = vmap(loss)

        def line(th: Tensor, Q: Tensor) -> Callable[[Tensor], Tensor]:
            return lambda t: batched(th + (Q * t).T)

    along = line(theta, P)
    plus = _crossing(along, P.shape[1], theta.dtype, level, iters)
    minus = _crossing(lambda t: along(-t), P.shape[1], theta.dtype, level, iters)
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
