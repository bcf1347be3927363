"""Critical points of small losses: refine one to machine precision, read its Hessian (claim T3).

Gradient descent converges to minima; to reach a saddle as well, we solve ``grad L = 0``
directly. :func:`refine_critical_point` takes Levenberg-Marquardt steps on the residual
``g(theta) = grad L(theta)``, whose Jacobian is the Hessian ``H`` ::

    (H^2 + mu I) delta = -H g,       theta <- theta + delta   if ||g|| decreases

with ``mu`` divided by 3 after an accepted step and multiplied by 4 after a rejected one
(Levenberg 1944; Marquardt 1963; Nocedal and Wright, *Numerical Optimization*, 2nd ed., ch. 10).
Near a non-degenerate critical point of any index it is Newton's method on ``g`` and converges
quadratically; far from one it is gradient descent on ``||g||^2 / 2``. The full Hessian is formed
(:func:`torch.func.hessian`), so this is for networks with at most a few hundred parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CriticalPoint", "hessian_spectrum", "morse_index", "refine_critical_point"]


@dataclass(frozen=True)
class CriticalPoint:
    """Result of :func:`refine_critical_point`: the point, ``||grad L||`` there, the loss, the
    number of iterations, and whether ``||grad L|| <= tol`` was reached."""

    theta: Tensor
    grad_norm: float
    loss: float
    n_iter: int
    converged: bool


def refine_critical_point(
    loss: Callable[[Tensor], Tensor],
    theta0: Tensor,
    *,
    tol: float = 1e-12,
    max_iter: int = 100,
    mu0: float = 1e-3,
) -> CriticalPoint:
    """Levenberg-Marquardt on ``grad L(theta) = 0`` from ``theta0`` (see the module docstring).

    ``loss``: scalar function of a flat ``(d,)`` vector; ``theta0`` should be float64 to reach
    ``tol`` near ``1e-12``. Stops when ``||grad L|| <= tol``, after ``max_iter`` iterations, or
    when ``mu`` exceeds ``1e12`` (no step reduces the gradient norm).
    """
    grad_fn = torch.func.grad(loss)
    hess_fn = torch.func.hessian(loss)
    theta = theta0.detach().clone()
    g = grad_fn(theta)
    gn = float(g.norm())
    eye = torch.eye(theta.numel(), dtype=theta.dtype)
    mu = mu0
    it = 0
    while it < max_iter and gn > tol and mu < 1e12:
        it += 1
        H = hess_fn(theta)
        H = 0.5 * (H + H.T)
        step = torch.linalg.solve(H @ H + mu * eye, -(H @ g))
        trial = theta + step
        g_trial = grad_fn(trial)
        gn_trial = float(g_trial.norm())
        if gn_trial < gn:
            theta, g, gn = trial, g_trial, gn_trial
            mu = max(mu / 3.0, 1e-15)
        else:
            mu *= 4.0
    return CriticalPoint(theta, gn, float(loss(theta)), it, gn <= tol)


def hessian_spectrum(loss: Callable[[Tensor], Tensor], theta: Tensor) -> Tensor:
    """All eigenvalues of the (symmetrized) Hessian at ``theta``, ascending."""
    H = torch.func.hessian(loss)(theta.detach())
    return torch.linalg.eigvalsh(0.5 * (H + H.T))


def morse_index(eigenvalues: Tensor, rel_tol: float = 1e-9) -> tuple[int, int]:
    """``(negative, zero)`` eigenvalue counts: below ``-rel_tol * max|lambda|``, and within it.

    A critical point with ``negative == 0`` is a (possibly degenerate) minimum; one with
    ``negative > 0`` is a saddle of index ``negative``.
    """
    scale = float(eigenvalues.abs().max())
    neg = int((eigenvalues < -rel_tol * scale).sum())
    zero = int((eigenvalues.abs() <= rel_tol * scale).sum())
    return neg, zero
