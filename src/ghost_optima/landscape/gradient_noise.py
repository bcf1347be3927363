"""Gradient noise of a training loss: per-example gradients and their variance along directions.

SGD's minibatch gradient is the mean of ``B`` per-example gradients ``g_j = grad l_j(theta)``,
so its noise is set by their covariance over the training set,
``C = (1/n) sum_j (g_j - gbar)(g_j - gbar)^T``; the stationary law of
:mod:`ghost_optima.sgd.stationary` needs ``C_i = q_i^T C q_i`` along the Hessian's eigenvectors
``q_i`` (:func:`ghost_optima.landscape.hessian.top_eigenpairs`).

* :func:`per_sample_grads`: the ``(n, d)`` matrix ``G`` of per-example gradients,
  ``torch.func.vmap(torch.func.grad(.))``;
* :func:`projected_noise_variance`: ``C_i``, computed as the variance of ``G q_i`` (no
  ``d x d`` matrix).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor
from torch.func import grad, vmap

__all__ = ["PerSampleLossFn", "per_sample_grads", "projected_noise_variance"]

PerSampleLossFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""A one-sample loss: ``(theta (d,), x (*x_shape), y (*y_shape)) -> l(theta; x, y) ()``."""


def per_sample_grads(
    loss_per_sample_fn: PerSampleLossFn,
    theta: Tensor,
    X: Tensor,
    y: Tensor,
    *,
    chunk_size: int | None = None,
) -> Tensor:
    """Per-sample gradients ``G[j] = grad_theta l(theta; x_j, y_j)``, by ``vmap(grad(.))``.

    Parameters
    ----------
    loss_per_sample_fn: ``(theta (d,), x, y) -> scalar`` for one sample (no batch axis), e.g.
        :attr:`ghost_optima.sgd.network_chains.MLPObjective.per_sample_loss`.
    theta: ``(d,)``.
    X: ``(n, ...)``; y: ``(n, ...)``: the samples along axis 0.
    chunk_size: passed to :func:`torch.func.vmap` to bound memory.

    Returns
    -------
    G: ``(n, d)``, detached.
    """
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X and y differ in length: {X.shape[0]} vs {y.shape[0]}")
    g = vmap(grad(loss_per_sample_fn), in_dims=(None, 0, 0), chunk_size=chunk_size)
    return g(theta.detach(), X, y).detach()


def projected_noise_variance(
    per_sample_grads: Tensor, Q: Tensor, *, unbiased: bool = False
) -> Tensor:
    """Gradient-noise variance along each column of ``Q``: ``C_i = q_i^T C q_i``.

    ``C`` is the covariance of the rows ``g_j`` of ``G`` (per-sample gradients). By default it is
    the *population* (biased, ``1/n``) covariance of the finite data set,
    ``C = (1/n) sum_j (g_j - gbar)(g_j - gbar)^T``: the exact covariance of the gradient of one
    sample drawn uniformly from the ``n`` training points, which is the ``C`` in
    ``Var(minibatch gradient) = (C / B) (n - B) / (n - 1)`` for batches of ``B`` drawn without
    replacement (Cochran 1977, Sampling Techniques, Thm 2.2). ``unbiased=True`` uses ``1/(n-1)``
    instead (the estimator of the covariance of a data-generating distribution).

    Computed as the variance of the projections ``G q_i``, so no ``d x d`` matrix is formed:
    ``O(n d k)`` time.

    Parameters
    ----------
    per_sample_grads: ``G``, shape ``(n, d)``.
    Q: ``(d, k)`` (or ``(d,)`` for one direction); columns need not be normalized, the result is
        ``q_i^T C q_i`` for the columns as given.

    Returns
    -------
    ``(k,)`` (or a 0-d tensor for a vector ``Q``).
    """
    G = per_sample_grads
    if G.ndim != 2:
        raise ValueError(f"per_sample_grads must be (n, d), got shape {tuple(G.shape)}")
    if G.shape[0] < 2:
        raise ValueError("need at least two samples for a covariance")
    proj = G @ Q.to(G.dtype)
    return proj.var(dim=0, correction=1 if unbiased else 0)
