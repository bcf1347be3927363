"""Curvature of a training loss on a flat parameter vector: Hessian products and eigenpairs.

Everything here works on a *flat* parameter vector ``theta`` of shape ``(d,)`` and a scalar
loss ``loss_fn(theta)``. :func:`flatten_params` and :func:`make_flat_loss` turn an
``nn.Module`` into that form through :func:`torch.func.functional_call`.

Pieces (claims T4, T5, T6 of the book need the Hessian's top eigenpairs; the gradient noise
along them is :mod:`ghost_optima.landscape.gradient_noise`):

* :func:`hvp`: the Hessian-vector product ``H v`` with ``H = d^2 L / d theta^2`` at ``theta``,
  computed forward-over-reverse, ``jvp(grad(L))`` (Pearlmutter 1994, "Fast exact
  multiplication by the Hessian"); cost about that of two or three gradients, no ``d x d`` matrix.
* :class:`HessianOperator`: ``H`` as a :class:`scipy.sparse.linalg.LinearOperator` (float64)
  that counts its products.
* :func:`top_eigenpairs`: the ``k`` algebraically largest eigenpairs by implicitly restarted
  Lanczos (ARPACK through :func:`scipy.sparse.linalg.eigsh`, ``which="LA"``; Lehoucq, Sorensen
  and Yang 1998).
* :func:`power_iteration_top_k`: power iteration with projection deflation, the approach of
  PyHessian (Yao, Gholami, Keutzer and Mahoney 2020, "PyHessian: neural networks through the lens
  of the Hessian"), re-implemented here as the benchmark's baseline.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Literal

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp, vjp, vmap

from ghost_optima.core import timing

__all__ = [
    "HessianOperator",
    "flatten_params",
    "hessian_matrix",
    "hvp",
    "make_flat_loss",
    "power_iteration_top_k",
    "top_eigenpairs",
]

LossFn = Callable[[Tensor], Tensor]
"""A scalar loss of the flat parameter vector: ``theta (d,) -> L(theta) ()``."""


# --------------------------------------------------------------------------------------------
# flat parameters
# --------------------------------------------------------------------------------------------


def flatten_params(
    params: Mapping[str, Tensor],
) -> tuple[Tensor, Callable[[Tensor], dict[str, Tensor]]]:
    """Concatenate named parameters into one flat vector, and return the inverse map.

    Parameters
    ----------
    params:
        ``{name: tensor}``, e.g. ``dict(model.named_parameters())``. The order of the mapping is
        the order in the flat vector.

    Returns
    -------
    theta:
        Detached flat copy, shape ``(d,)`` with ``d = sum(p.numel())``, dtype and device of the
        first parameter.
    unflatten:
        ``unflatten(theta) -> {name: view}``: views of ``theta`` reshaped to each parameter's
        shape. It is differentiable (pure ``split``/``view``), so ``torch.func`` transforms
        pass through it.
    """
    if len(params) == 0:
        raise ValueError("flatten_params needs at least one parameter")
    names = list(params)
    shapes = [tuple(params[k].shape) for k in names]
    sizes = [math.prod(s) for s in shapes]
    theta = torch.cat([params[k].detach().reshape(-1) for k in names]).clone()

    def unflatten(flat: Tensor) -> dict[str, Tensor]:
        if flat.shape != (sum(sizes),):
            raise ValueError(
                f"expected a flat vector of shape ({sum(sizes)},), got {tuple(flat.shape)}"
            )
        chunks = torch.split(flat, sizes)
        return {k: c.view(s) for k, c, s in zip(names, chunks, shapes, strict=True)}

    return theta, unflatten


def make_flat_loss(
    model: nn.Module,
    criterion: Callable[[Tensor, Tensor], Tensor],
    X: Tensor,
    y: Tensor,
) -> tuple[LossFn, Tensor, Callable[[Tensor], dict[str, Tensor]]]:
    """The training loss of ``model`` on ``(X, y)`` as a function of a flat parameter vector.

    ``loss_fn(theta) = criterion(model_theta(X), y)`` evaluated with
    :func:`torch.func.functional_call` (buffers are taken from ``model`` unchanged).

    Returns ``(loss_fn, theta0, unflatten)`` with ``theta0`` the model's current parameters,
    shape ``(d,)``.
    """
    theta0, unflatten = flatten_params(dict(model.named_parameters()))
    buffers = dict(model.named_buffers())

    def loss_fn(theta: Tensor) -> Tensor:
        return criterion(functional_call(model, {**unflatten(theta), **buffers}, (X,)), y)

    return loss_fn, theta0, unflatten


# --------------------------------------------------------------------------------------------
# Hessian-vector products
# --------------------------------------------------------------------------------------------


HVPMode = Literal["auto", "fwd", "rev"]


def _hvp_fwd(loss_fn: LossFn, theta: Tensor, v: Tensor) -> Tensor:
    return jvp(grad(loss_fn), (theta,), (v,))[1]


def _hvp_rev(loss_fn: LossFn, theta: Tensor, v: Tensor) -> Tensor:
    # H is symmetric, so the vector-Jacobian product of the gradient, H^T v, is H v.
    return vjp(grad(loss_fn), theta)[1](v)[0]


def _resolve_mode(loss_fn: LossFn, theta: Tensor, v: Tensor, mode: HVPMode) -> tuple[Tensor, str]:
    """One product in ``mode``; for ``"auto"``, try ``"fwd"`` and fall back to ``"rev"``."""
    if mode == "fwd":
        return _hvp_fwd(loss_fn, theta, v), "fwd"
    if mode == "rev":
        return _hvp_rev(loss_fn, theta, v), "rev"
    if mode != "auto":
        raise ValueError(f"mode must be 'auto', 'fwd' or 'rev', got {mode!r}")
    try:
        return _hvp_fwd(loss_fn, theta, v), "fwd"
    except RuntimeError:  # NotImplementedError included
        return _hvp_rev(loss_fn, theta, v), "rev"


def hvp(loss_fn: LossFn, theta: Tensor, v: Tensor, *, mode: HVPMode = "auto") -> Tensor:
    """Hessian-vector product ``H(theta) v`` of a scalar loss, forward-over-reverse.

    ``H v = d/dt grad L(theta + t v) |_{t=0}``, computed as
    ``torch.func.jvp(torch.func.grad(loss_fn), (theta,), (v,))`` (Pearlmutter 1994). No
    ``d x d`` matrix is formed.

    Some PyTorch ops lack a working forward-mode derivative of their backward: in torch 2.13
    ``F.mse_loss(..., reduction="mean")`` (hence ``nn.MSELoss()``) raises "ZeroTensors are
    immutable" under ``jvp(grad(.))`` (pytorch/pytorch#123996) and ``F.huber_loss`` has no
    forward AD. With ``mode="auto"`` (default) such a ``RuntimeError`` falls back to
    reverse-over-reverse, ``vjp(grad(loss_fn), theta)(v)``, which equals ``H v`` because ``H``
    is symmetric; ``mode="fwd"`` or ``"rev"`` forces one.

    Parameters
    ----------
    loss_fn: ``theta (d,) -> scalar``.
    theta: point, shape ``(d,)``.
    v: direction, shape ``(d,)``, same dtype as ``theta``.
    mode: ``"auto"``, ``"fwd"`` (forward-over-reverse) or ``"rev"`` (reverse-over-reverse).

    Returns
    -------
    Tensor of shape ``(d,)``, detached.
    """
    if theta.shape != v.shape:
        raise ValueError(f"theta and v must have the same shape, got {theta.shape} and {v.shape}")
    out, _ = _resolve_mode(loss_fn, theta.detach(), v.detach(), mode)
    return out.detach()


class _HVP:
    """``v -> H v`` at a fixed ``theta``; ``"auto"`` mode is resolved on the first call."""

    def __init__(self, loss_fn: LossFn, theta: Tensor, mode: HVPMode = "auto") -> None:
        self.loss_fn = loss_fn
        self.theta = theta.detach()
        self.mode: str = mode

    def __call__(self, v: Tensor) -> Tensor:
        if self.mode == "auto":
            out, self.mode = _resolve_mode(self.loss_fn, self.theta, v.detach(), "auto")
            return out.detach()
        f = _hvp_fwd if self.mode == "fwd" else _hvp_rev
        return f(self.loss_fn, self.theta, v.detach()).detach()


def hessian_matrix(
    loss_fn: LossFn, theta: Tensor, *, chunk_size: int = 256, mode: HVPMode = "auto"
) -> Tensor:
    """The full ``(d, d)`` Hessian, built column by column from vmapped :func:`hvp`.

    ``d`` Hessian-vector products in chunks of ``chunk_size`` columns; memory ``O(d^2)``.
    Meant for references and small models (a few thousand parameters). The result is
    symmetrized, ``(H + H^T) / 2``, to remove round-off asymmetry.
    """
    d = theta.numel()
    theta = theta.detach()
    eye = torch.eye(d, dtype=theta.dtype, device=theta.device)
    _, resolved = _resolve_mode(loss_fn, theta, eye[0], mode)
    f = _hvp_fwd if resolved == "fwd" else _hvp_rev
    with timing.kernel("hessian"):
        H = vmap(lambda v: f(loss_fn, theta, v), chunk_size=chunk_size)(eye).detach()
    return 0.5 * (H + H.T)


class HessianOperator(LinearOperator):
    """The Hessian of ``loss_fn`` at ``theta`` as a float64 :class:`LinearOperator`.

    ``op @ x`` for ``x`` of shape ``(d,)`` (or ``(d, m)``) returns ``H x`` as a NumPy float64
    array, computed with :func:`hvp` (``mode`` as there, resolved once) in ``theta``'s dtype,
    or with ``product``, an exact ``v -> H v`` at ``theta`` written for the loss (such as
    :class:`ghost_optima.landscape.mlp_hessian.MLPHessian`), when given.
    ``H`` is symmetric, so the adjoint is the operator itself.

    Attributes
    ----------
    n_matvec: number of Hessian-vector products computed so far (one per column of a matmat).
    """

    def __init__(
        self,
        loss_fn: LossFn,
        theta: Tensor,
        mode: HVPMode = "auto",
        product: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        if theta.ndim != 1:
            raise ValueError(f"theta must be a flat vector, got shape {tuple(theta.shape)}")
        d = theta.numel()
        super().__init__(dtype=np.dtype(np.float64), shape=(d, d))
        self.loss_fn = loss_fn
        self.theta = theta.detach()
        self.n_matvec = 0
        self._hvp = product or _HVP(loss_fn, self.theta, mode)

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        v = torch.as_tensor(np.ascontiguousarray(x.reshape(-1)), device=self.theta.device)
        out = self._hvp(v.to(self.theta.dtype))
        self.n_matvec += 1
        return out.cpu().numpy().astype(np.float64, copy=False).reshape(x.shape)

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        return np.column_stack([self._matvec(X[:, j]) for j in range(X.shape[1])])

    def _rmatvec(self, x: np.ndarray) -> np.ndarray:
        return self._matvec(x)

    def _adjoint(self) -> HessianOperator:
        return self


# --------------------------------------------------------------------------------------------
# top eigenpairs
# --------------------------------------------------------------------------------------------


def top_eigenpairs(
    loss_fn: LossFn,
    theta: Tensor,
    k: int,
    *,
    tol: float = 1e-10,
    seed: int = 0,
    ncv: int | None = None,
    maxiter: int | None = None,
) -> tuple[Tensor, Tensor, int]:
    """The ``k`` algebraically largest eigenpairs of the Hessian, by Lanczos (ARPACK).

    Calls :func:`scipy.sparse.linalg.eigsh` with ``which="LA"`` on a :class:`HessianOperator`,
    with the starting vector ``v0 ~ N(0, I_d)`` drawn from ``numpy.random.default_rng(seed)`` so
    the result is deterministic. ARPACK stops when every Ritz pair has residual
    ``||H q - lambda q|| <= tol * |lambda|`` (``tol=0`` means machine precision); the eigenvalue
    error is then of order ``residual^2 / gap``.

    Parameters
    ----------
    loss_fn, theta: scalar loss of the flat vector and the point, shape ``(d,)``.
    k: number of eigenpairs, ``1 <= k < d``.
    tol, ncv, maxiter: passed to ``eigsh`` (``ncv`` defaults to ``max(2k + 1, 20)``, capped at
        ``d``).
    seed: seeds ``v0``.

    Returns
    -------
    eigvals: shape ``(k,)``, descending, dtype of ``theta``.
    eigvecs: shape ``(d, k)``, orthonormal columns matching ``eigvals``, dtype of ``theta``.
    n_hvp: Hessian-vector products used.
    """
    d = theta.numel()
    if not 1 <= k < d:
        raise ValueError(f"need 1 <= k < d = {d} for eigsh, got k = {k}")
    op = HessianOperator(loss_fn, theta)
    v0 = np.random.default_rng(seed).standard_normal(d)
    if ncv is None:
        ncv = min(d, max(2 * k + 1, 20))
    with timing.kernel("hessian"):
        vals, vecs = eigsh(op, k=k, which="LA", tol=tol, v0=v0, ncv=ncv, maxiter=maxiter)
    order = np.argsort(vals)[::-1]
    vals_t = torch.as_tensor(vals[order].copy(), dtype=theta.dtype, device=theta.device)
    vecs_t = torch.as_tensor(vecs[:, order].copy(), dtype=theta.dtype, device=theta.device)
    return vals_t, vecs_t, op.n_matvec


def _project_out(v: Tensor, basis: list[Tensor]) -> Tensor:
    """``v`` minus its components along the orthonormal ``basis``, then normalized.

    Classical Gram-Schmidt applied twice ("twice is enough", Giraud et al. 2005).
    """
    for _ in range(2):
        for q in basis:
            v = v - torch.dot(q, v) * q
    return v / torch.linalg.vector_norm(v)


def power_iteration_top_k(
    loss_fn: LossFn,
    theta: Tensor,
    k: int,
    *,
    tol: float = 1e-6,
    max_iter: int = 1000,
    seed: int = 0,
) -> tuple[Tensor, Tensor, int]:
    """Top-``k`` Hessian eigenpairs by power iteration with projection deflation.

    The approach of PyHessian (Yao et al. 2020), re-implemented: for ``i = 1..k``, start from
    ``v ~ N(0, I)`` (``torch.Generator`` seeded with ``seed``) and iterate ::

        v     <- P_i v / ||P_i v||,       P_i = I - sum_{j<i} q_j q_j^T   (deflation)
        w     <- H v                       (one Hessian-vector product)
        mu    <- v^T w                     (Rayleigh quotient)
        v     <- w

    until ``|mu - mu_prev| <= tol * |mu_prev|`` or ``max_iter`` products; then ``lambda_i = mu``
    and ``q_i = P_i w / ||P_i w||``. Each stage converges to the eigenvalue of *largest magnitude*
    in the complement of the ones found, at the rate ``|lambda_{i+1} / lambda_i|`` per product,
    so it agrees with :func:`top_eigenpairs` (algebraically largest) only where the top ``k``
    eigenvalues are also the ``k`` largest in magnitude, e.g. at a minimum where ``H >= 0``.
    This is the benchmark's baseline; prefer :func:`top_eigenpairs`.

    Returns
    -------
    eigvals: ``(k,)``, sorted descending; eigvecs: ``(d, k)``; n_hvp: products used.
    A :class:`RuntimeWarning` is issued for each eigenpair that hit ``max_iter``.
    """
    d = theta.numel()
    if not 1 <= k <= d:
        raise ValueError(f"need 1 <= k <= d = {d}, got k = {k}")
    gen = torch.Generator(device=theta.device).manual_seed(seed)
    theta = theta.detach()
    hv = _HVP(loss_fn, theta)
    vals: list[float] = []
    vecs: list[Tensor] = []
    n_hvp = 0
    for i in range(k):
        v = torch.randn(d, generator=gen, dtype=theta.dtype, device=theta.device)
        mu_prev: float | None = None
        converged = False
        mu = float("nan")
        for _ in range(max_iter):
            v = _project_out(v, vecs)
            w = hv(v)
            n_hvp += 1
            mu = float(torch.dot(v, w))
            v = w
            if mu_prev is not None and abs(mu - mu_prev) <= tol * abs(mu_prev):
                converged = True
                break
            mu_prev = mu
        if not converged:
            warnings.warn(
                f"power iteration for eigenpair {i} did not reach tol={tol:g} in "
                f"{max_iter} products",
                RuntimeWarning,
                stacklevel=2,
            )
        vals.append(mu)
        vecs.append(_project_out(v, vecs))
    order = sorted(range(k), key=lambda j: -vals[j])
    eigvals = torch.tensor([vals[j] for j in order], dtype=theta.dtype, device=theta.device)
    eigvecs = torch.stack([vecs[j] for j in order], dim=1)
    return eigvals, eigvecs, n_hvp
