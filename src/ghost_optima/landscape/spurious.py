"""Spurious local minima of two-layer ReLU teacher-student nets, counted (claim T3).

The setting of Safran and Shamir (2018): inputs ``x ~ N(0, I_d)``, a teacher
``g(x) = sum_j relu(v_j . x)`` with ``k`` orthonormal ``v_j``, a student
``f(x) = sum_i relu(w_i . x)`` with ``n`` units and output weights fixed to one, and the
population loss ``L(W) = E[(f(x) - g(x))^2] / 2`` in closed form through the arc-cosine kernel

    K(w, v) = E[relu(w.x) relu(v.x)] = |w| |v| (sin t + (pi - t) cos t) / (2 pi),

``t`` the angle between ``w`` and ``v``, whose gradient in ``w`` is
``(|v| sin t w/|w| + (pi - t) v) / (2 pi)``. Every function takes a batch of students
``W: (R, n, d)`` (``R`` restarts at once) and one teacher ``V: (k, d)``. Two starts:
:func:`glorot_uniform_students` (Glorot and Bengio's uniform "Xavier" initialisation) and
:func:`gaussian_students` (``N(0, 1/d)``, what Safran's published code for the 2021 follow-up
calls Xavier initialisation, as does the code of the 2018 paper).

:func:`descend` runs plain gradient descent on all restarts together until each one's gradient
norm falls below a tolerance; :func:`hessian` is the full Hessian of one student (central
differences of the closed-form gradient; the loss is twice continuously differentiable away
from ``w_i = 0``, also where two units coincide); :func:`classify` sorts the end points into
global minima, spurious local minima, saddles and runs that did not converge.
:func:`published_counts` reads Safran and Shamir's own counts, from the results files published
with their 2018 code, to set beside this module's.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch
from torch import Tensor

from ghost_optima.core import timing

__all__ = [
    "Descent",
    "classify",
    "descend",
    "hessian",
    "orthonormal_teacher",
    "population_gradient",
    "population_loss",
    "gaussian_students",
    "glorot_uniform_students",
    "newcombe_difference",
    "published_counts",
    "wilson_interval",
]


def orthonormal_teacher(k: int, d: int | None = None) -> Tensor:
    """``(k, d)``: the first ``k`` standard basis vectors of ``R^d`` (``d = k`` by default)."""
    d = k if d is None else d
    if d < k:
        raise ValueError(f"k = {k} orthonormal vectors need d >= k, got d = {d}")
    return torch.eye(k, d, dtype=torch.float64)


def gaussian_students(n_restarts: int, n: int, d: int, seed: int) -> Tensor:
    """``(R, n, d)``: i.i.d. ``N(0, 1/d)`` entries, float64.

    The start that the code of Safran and Shamir (2018) draws (``randn(d, k) / sqrt(d)`` in
    ``GD_code/findBadMinima.m``) and calls Xavier initialisation, as does the code Safran
    published for Safran, Yehudai and Shamir (COLT 2021,
    ``np.random.normal(size=(k, k)) / k ** 0.5``).
    """
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n_restarts, n, d, generator=gen, dtype=torch.float64) / math.sqrt(d)


def glorot_uniform_students(n_restarts: int, n: int, d: int, seed: int) -> Tensor:
    """``(R, n, d)``: i.i.d. entries uniform on ``[-a, a]``, ``a = sqrt(6 / (n + d))``, float64.

    Glorot and Bengio's (2010, eq. 16) normalised ("Xavier") initialisation of a layer with
    ``d`` inputs and ``n`` units: variance ``a^2 / 3 = 2 / (n + d)``, which is ``1/d`` when
    ``n = d`` (the variance of :func:`gaussian_students`).
    """
    gen = torch.Generator().manual_seed(seed)
    a = math.sqrt(6.0 / (n + d))
    u = torch.rand(n_restarts, n, d, generator=gen, dtype=torch.float64)
    return (2.0 * u - 1.0) * a


def _angles(A: Tensor, B: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    na = A.norm(dim=-1).clamp_min(1e-300)
    nb = B.norm(dim=-1).clamp_min(1e-300)
    cos = (A @ B.transpose(-1, -2) / (na.unsqueeze(-1) * nb.unsqueeze(-2))).clamp(-1.0, 1.0)
    t = torch.arccos(cos)
    return na, nb, cos, t


def _kernel_sum(A: Tensor, B: Tensor) -> Tensor:
    """``sum_{i, j} K(a_i, b_j)`` per batch element."""
    na, nb, cos, t = _angles(A, B)
    sin = (1 - cos * cos).clamp_min(0.0).sqrt()
    k = na.unsqueeze(-1) * nb.unsqueeze(-2) * (sin + (math.pi - t) * cos) / (2 * math.pi)
    return k.sum(dim=(-1, -2))


def _is_basis(V: Tensor) -> bool:
    """Whether ``V`` is the ``k x k`` identity (whose products are exact and can be skipped)."""
    return V.shape[0] == V.shape[1] and torch.equal(V, torch.eye(len(V), dtype=V.dtype))


def _gradient_and_loss(
    W: Tensor, V: Tensor, nv: Tensor, kvv: Tensor | None, basis: bool = False
) -> tuple[Tensor, Tensor | None]:
    """The gradient ``(R, n, d)`` and, when ``kvv = sum_{i, j} K(v_i, v_j)`` is given, the loss
    ``(R,)`` of the students ``W: (R, n, d)`` (or ``(n, d)``), from one set of angles.

    With ``c_ij = cos t_ij``, ``s_ij = sin t_ij`` the cosines and sines between ``w_i`` and the
    other students ``w_j`` (then the teachers ``v_j``, ``V: (k, d)``, row norms ``nv``), the
    gradient of :func:`population_loss` is ``sum_j (|w_j| s_ij w_i / |w_i| + (pi - t_ij) w_j)
    / (2 pi)`` minus the same sum over the teachers, and the loss is ``(sum K(w_i, w_j) - 2 sum
    K(w_i, v_j) + kvv) / 2`` with ``K = |a| |b| (s + (pi - t) c) / (2 pi)``: the kernel sums
    reuse the gradient's norms, cosines, angles and sines, with the operations of
    :func:`_kernel_sum`, so the loss has the same bits as :func:`population_loss` for an
    orthonormal teacher (whose products ``W V^T`` are exact) and agrees to rounding otherwise.
    ``basis``: ``V`` is the identity (:func:`orthonormal_teacher` with ``d = k``), so the
    products with it are skipped (they are exact).
    """
    na = W.norm(dim=-1).clamp_min(1e-300)
    wide = na.unsqueeze(-1)
    # student-student: A = B = W
    cos = (W @ W.transpose(-1, -2) / (wide * na.unsqueeze(-2))).clamp(-1.0, 1.0)
    rest = math.pi - torch.arccos(cos)
    sin = (1 - cos * cos).clamp_min(0.0).sqrt()
    radial = (na.unsqueeze(-2) * sin).sum(-1, keepdim=True) * W / wide
    g = (radial + rest @ W) / (2 * math.pi)
    kww = None if kvv is None else (wide * na.unsqueeze(-2) * (sin + rest * cos) / (2 * math.pi))
    # student-teacher: A = W, B = V
    cos = ((W if basis else W @ V.T) / (wide * nv)).clamp(-1.0, 1.0)
    rest_v = math.pi - torch.arccos(cos)
    sin = (1 - cos * cos).clamp_min(0.0).sqrt()
    radial = (nv * sin).sum(-1, keepdim=True) * W / wide
    g = g - (radial + (rest_v if basis else rest_v @ V)) / (2 * math.pi)
    if kvv is None:
        return g, None
    kwv = wide * nv * (sin + rest_v * cos) / (2 * math.pi)
    return g, 0.5 * (kww.sum(dim=(-1, -2)) - 2 * kwv.sum(dim=(-1, -2)) + kvv)


def population_loss(W: Tensor, V: Tensor) -> Tensor:
    """``(R,)``: ``E[(f_W(x) - g_V(x))^2] / 2`` for every student of the batch ``W``."""
    V = V.to(W.dtype).expand(*W.shape[:-2], *V.shape)
    return 0.5 * (_kernel_sum(W, W) - 2 * _kernel_sum(W, V) + _kernel_sum(V, V))


def population_gradient(W: Tensor, V: Tensor) -> Tensor:
    """``(R, n, d)``: the gradient of :func:`population_loss` in ``W``,
    ``sum_j grad_{w_i} K(w_i, w_j) - sum_j grad_{w_i} K(w_i, v_j)`` for every unit ``i``."""
    V = V.to(W.dtype)
    return _gradient_and_loss(W, V, V.norm(dim=-1).clamp_min(1e-300), None, _is_basis(V))[0]


@dataclass(frozen=True)
class Descent:
    """End points of :func:`descend`: students, losses, gradient norms, steps, each ``(R,)``."""

    W: Tensor
    loss: Tensor
    grad_norm: Tensor
    steps: Tensor


@timing.timed("training")
def descend(
    W0: Tensor, V: Tensor, *, lr: float, max_steps: int, grad_tol: float, loss_stop: float = 0.0
) -> Descent:
    """Plain gradient descent ``W <- W - lr grad L(W)`` on every restart at once.

    A restart stops moving once its gradient norm is at most ``grad_tol`` or its loss at most
    ``loss_stop`` (near a zero-loss minimum, where over-parameterised students converge
    slowly); the loop ends when all have stopped or after ``max_steps`` steps. Every step
    evaluates the gradient and (with ``loss_stop > 0``) the loss from one set of angles, on the
    restarts still moving, kept together in one tensor that is re-gathered only on the steps
    where some of them stop.
    """
    V = V.to(W0.dtype)
    nv = V.norm(dim=-1).clamp_min(1e-300)
    kvv = _kernel_sum(V, V) if loss_stop > 0 else None
    basis = _is_basis(V)
    W = W0.clone()
    steps = torch.full((len(W),), max_steps, dtype=torch.long)
    idx = torch.arange(len(W))
    Wa = W.clone()
    for step in range(max_steps):
        if len(idx) == 0:
            break
        g, loss = _gradient_and_loss(Wa, V, nv, kvv, basis)
        moving = g.flatten(1).norm(dim=1) > grad_tol
        if loss is not None:
            moving &= loss > loss_stop
        if not bool(moving.all()):
            W[idx[~moving]] = Wa[~moving]
            steps[idx[~moving]] = step
            idx, Wa, g = idx[moving], Wa[moving], g[moving]
        Wa -= lr * g
    W[idx] = Wa
    grad_norm = population_gradient(W, V).flatten(1).norm(dim=1)
    return Descent(W, population_loss(W, V), grad_norm, steps)


def hessian(W: Tensor, V: Tensor, *, eps: float = 1e-5) -> Tensor:
    """``(n d, n d)``: the Hessian of one student ``W: (n, d)`` by central differences of the
    closed-form gradient (all ``2 n d`` gradients in one batch), symmetrised."""
    n, d = W.shape
    m = n * d
    steps = eps * torch.eye(m, dtype=W.dtype).reshape(m, n, d)
    points = torch.cat([W + steps, W - steps])
    g = population_gradient(points, V).reshape(2, m, m)
    H = (g[0] - g[1]) / (2 * eps)
    return (H + H.T) / 2


def classify(
    descent: Descent,
    V: Tensor,
    *,
    loss_tol: float,
    grad_tol: float,
    eig_tol: float,
) -> list[dict]:
    """One row per restart: ``kind`` and the figures that decided it.

    ``"diverged"`` when the loss or the gradient is not finite (the step was too large for
    the start: gradient descent blew up); ``"global"`` when the loss is at most ``loss_tol``;
    otherwise ``"unconverged"`` when the gradient norm exceeds ``grad_tol``; otherwise, from the
    full Hessian's extreme eigenvalues, ``"saddle"`` when ``lambda_min < -eig_tol * lambda_max``
    (a clearly negative direction), and ``"spurious"`` (a spurious local minimum) when not.
    """
    rows = []
    for i in range(len(descent.W)):
        loss, grad_norm = float(descent.loss[i]), float(descent.grad_norm[i])
        row = dict(loss=loss, grad_norm=grad_norm, steps=int(descent.steps[i]),
                   lambda_min=math.nan, lambda_max=math.nan)  # fmt: skip
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            row["kind"] = "diverged"
        elif loss <= loss_tol:
            row["kind"] = "global"
        elif grad_norm > grad_tol:
            row["kind"] = "unconverged"
        else:
            eig = np.linalg.eigvalsh(hessian(descent.W[i], V).numpy())
            row.update(lambda_min=float(eig[0]), lambda_max=float(eig[-1]))
            row["kind"] = "saddle" if eig[0] < -eig_tol * eig[-1] else "spurious"
        rows.append(row)
    return rows


def wilson_interval(successes: int, n: int, *, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a proportion ``successes / n``."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes}, {n}")
    from scipy.stats import norm

    z = float(norm.ppf((1 + level) / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends: no rounding past p
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def newcombe_difference(
    hits_a: int, n_a: int, hits_b: int, n_b: int, *, level: float = 0.95
) -> tuple[float, float]:
    """Newcombe's (1998, method 10) interval for the difference of two independent proportions
    ``p_a - p_b``, from their Wilson intervals ``(l_a, u_a)`` and ``(l_b, u_b)``:
    ``d - sqrt((p_a - l_a)^2 + (u_b - p_b)^2)`` to ``d + sqrt((u_a - p_a)^2 + (p_b - l_b)^2)``.
    """
    p_a, p_b = hits_a / n_a, hits_b / n_b
    lo_a, hi_a = wilson_interval(hits_a, n_a, level=level)
    lo_b, hi_b = wilson_interval(hits_b, n_b, level=level)
    d = p_a - p_b
    return (
        d - math.sqrt((p_a - lo_a) ** 2 + (hi_b - p_b) ** 2),
        d + math.sqrt((hi_a - p_a) ** 2 + (p_b - lo_b) ** 2),
    )


def published_counts() -> dict[tuple[int, int], tuple[int, int]]:
    """Safran and Shamir's (2018) own counts: ``{(k, n): (spurious_runs, runs)}``.

    ``k`` teacher units, ``n`` student units; ``spurious_runs`` of ``runs`` (1000) gradient
    descents from ``N(0, 1/k)`` starts ended with an objective of at least 1e-3. Read from
    ``data/safran_shamir_2018.csv``, which says how it was derived from the results files of
    github.com/ItaySafran/OneLayerGDconvergence (``Results/newExp-k-n.mat``).
    """
    text = resources.files("ghost_optima.landscape").joinpath("data/safran_shamir_2018.csv")
    lines = [line for line in text.read_text().splitlines() if not line.startswith("#")]
    return {
        (int(row["k"]), int(row["n"])): (int(row["spurious_runs"]), int(row["runs"]))
        for row in csv.DictReader(lines)
    }
