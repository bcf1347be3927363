"""SGD's cloud around a trained minimum of a small MLP classifier (claims T4-T6).

Claims T4-T6 compare the linearised law of :mod:`ghost_optima.sgd.stationary` with real minibatch
SGD on a small classifier. This module holds the network side:

* :func:`mlp_objective`: the training loss
  ``L(theta) = mean_j CE_j(theta) + (wd / 2) ||theta||^2`` of an MLP as a function of its flat
  parameter vector (the order of :func:`ghost_optima.landscape.hessian.flatten_params` on
  ``W1, b1, ..., W{L+1}, b{L+1}``), with the one-example loss for per-example gradients; the
  network and the cross-entropy are those of :mod:`ghost_optima.core.mlp`;
* :func:`minimize`: full-batch L-BFGS in float64 to a small gradient (the ``theta*``), on the
  loss and gradient of :meth:`MLPObjective.value_and_grad` (by hand) wherever the book polishes,
  :func:`newton_finish`: a damped Newton finish where L-BFGS crawls, and
  :func:`trained_minimum`: SGD training followed by the L-BFGS polish;
* :func:`mlp_gradient` and :func:`mlp_sgd_chains`: the minibatch gradient of the objective for
  many chains at once, run by the chain engine :func:`ghost_optima.sgd.chains.run_chains`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from scipy.sparse import identity
from scipy.sparse.linalg import LinearOperator, aslinearoperator, cg
from torch import Tensor

from ghost_optima.core import timing
from ghost_optima.core.data import Dataset
from ghost_optima.core.mlp import (
    Params,
    ensemble_loss_grad,
    ensemble_value_and_grad,
    loss_per_example,
    mlp_forward,
)
from ghost_optima.core.train import TrainConfig, member, train_ensemble
from ghost_optima.landscape.hessian import HessianOperator, flatten_params
from ghost_optima.landscape.mlp_hessian import MLPHessian
from ghost_optima.sgd.chains import ChainRecord, Gradient, Schedule, Watch, run_chains

__all__ = [
    "MLPObjective",
    "ValueAndGrad",
    "autograd_value_and_grad",
    "minimize",
    "mlp_gradient",
    "mlp_objective",
    "mlp_sgd_chains",
    "newton_finish",
    "trained_minimum",
]


@dataclass(frozen=True)
class MLPObjective:
    """An MLP classifier's training loss on a flat parameter vector.

    Attributes
    ----------
    loss: ``theta (d,) -> mean_j CE(f_theta(x_j), y_j) + (weight_decay / 2) ||theta||^2``.
    per_sample_loss: ``(theta, x (n_in,), y ()) -> CE`` of one example (no weight decay: it
        adds the same vector ``wd theta`` to every per-sample gradient, so it does not change
        their covariance).
    unflatten: ``theta -> {"W1": ..., ...}`` (views).
    widths: ``(n_in, n_1, ..., n_out)``.
    X, y: the training set, ``(n, n_in)`` in ``theta``'s dtype and ``(n,)`` class indices.
    """

    loss: Callable[[Tensor], Tensor]
    per_sample_loss: Callable[[Tensor, Tensor, Tensor], Tensor]
    unflatten: Callable[[Tensor], Params]
    widths: tuple[int, ...]
    activation: str
    weight_decay: float
    X: Tensor
    y: Tensor

    def value_and_grad(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """``(loss(theta), grad loss(theta))``, a scalar and ``(d,)``, by the hand-written pass
        :func:`ghost_optima.core.mlp.ensemble_value_and_grad` (one member): autograd's values up
        to float rounding, 1.5 to 1.75 times faster on digits (``benchmarks/bench_polish.py``)."""
        theta = theta.detach()
        params = {k: v.unsqueeze(0) for k, v in self.unflatten(theta).items()}
        value, grads = ensemble_value_and_grad(
            params, self.X, self.y, self.activation, "classification"
        )
        grad = torch.cat([grads[k].reshape(-1) for k in params])
        if self.weight_decay:
            value = value + 0.5 * self.weight_decay * (theta * theta).sum()
            grad.add_(theta, alpha=self.weight_decay)
        return value[0], grad

    def hessian(self, theta: Tensor) -> HessianOperator:
        """The Hessian of ``loss`` at ``theta`` (``(d,)``) as a counting LinearOperator; for tanh
        networks by the hand-written product :class:`MLPHessian` (under a gradient's work), else
        by ``torch.func``'s forward-over-reverse one."""
        if self.activation != "tanh":
            return HessianOperator(self.loss, theta, mode="fwd")
        product = MLPHessian(self.unflatten(theta), self.X, self.y, self.weight_decay)
        return HessianOperator(self.loss, theta, product=product)


def mlp_objective(
    params: Params, X: Tensor, y: Tensor, *, activation: str = "tanh", weight_decay: float = 0.0
) -> tuple[MLPObjective, Tensor]:
    """The objective of an MLP classifier with the layout of ``params``, and ``params`` flat.

    ``X``: ``(n, n_in)``; ``y``: ``(n,)`` class indices. Returns ``(objective, theta)`` with
    ``theta`` the flat copy of ``params`` (dtype of ``params``; ``X`` is cast to it). The
    cross-entropy is :func:`ghost_optima.core.mlp.loss_per_example`, averaged.
    """
    theta, unflatten = flatten_params(params)
    X = X.to(theta.dtype)
    widths = (
        params["W1"].shape[1],
        *(params[f"b{i}"].shape[0] for i in range(1, len(params) // 2 + 1)),
    )

    def loss(th: Tensor) -> Tensor:
        out = mlp_forward(unflatten(th), X, activation)
        data = loss_per_example(out, y, "classification").mean()
        return data + 0.5 * weight_decay * (th * th).sum() if weight_decay else data

    def per_sample_loss(th: Tensor, x: Tensor, t: Tensor) -> Tensor:
        out = mlp_forward(unflatten(th), x.unsqueeze(0), activation)
        return loss_per_example(out, t.unsqueeze(0), "classification").mean()

    objective = MLPObjective(
        loss, per_sample_loss, unflatten, widths, activation, weight_decay, X, y
    )
    return objective, theta


ValueAndGrad = Callable[[Tensor], tuple[Tensor, Tensor]]
"""``theta (d,) -> (L(theta), grad L(theta))``, e.g. :meth:`MLPObjective.value_and_grad`."""


def autograd_value_and_grad(loss: Callable[[Tensor], Tensor]) -> ValueAndGrad:
    """``loss``'s value and its gradient by reverse-mode autograd, as a :data:`ValueAndGrad`."""

    def value_and_grad(theta: Tensor) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            leaf = theta.detach().requires_grad_(True)
            value = loss(leaf)
            (grad,) = torch.autograd.grad(value, leaf)
        return value.detach(), grad

    return value_and_grad


@timing.timed("polish")
def minimize(
    loss: Callable[[Tensor], Tensor],
    theta0: Tensor,
    *,
    grad_tol: float = 1e-10,
    max_iter: int = 5000,
    history_size: int = 50,
    value_and_grad: ValueAndGrad | None = None,
) -> tuple[Tensor, float, int]:
    """Full-batch L-BFGS (strong Wolfe line search) from ``theta0`` until no gradient entry
    exceeds ``grad_tol`` (``torch.optim.LBFGS``'s ``tolerance_grad``), or ``max_iter`` iterations.

    ``value_and_grad``: ``loss``'s value and gradient computed together (e.g.
    :meth:`MLPObjective.value_and_grad`, by hand); by default autograd's
    (:func:`autograd_value_and_grad`). Returns ``(theta, grad_norm, iterations)`` (``grad_norm``
    the gradient's 2-norm at ``theta``); ``theta`` is detached, dtype of ``theta0`` (use float64
    to reach small gradients).
    """
    value_and_grad = value_and_grad or autograd_value_and_grad(loss)
    theta = theta0.detach().clone()
    opt = torch.optim.LBFGS(
        [theta],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=grad_tol,
        tolerance_change=0.0,
        history_size=history_size,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:  # L-BFGS reads the gradient from theta.grad
        value, theta.grad = value_and_grad(theta)
        return value

    opt.step(closure)
    state = opt.state[opt._params[0]]
    theta = theta.detach()
    g = value_and_grad(theta)[1]
    return theta, float(g.norm()), int(state.get("n_iter", 0))


@timing.timed("polish")
def newton_finish(
    loss: Callable[[Tensor], Tensor],
    theta0: Tensor,
    *,
    grad_tol: float = 1e-9,
    max_iter: int = 20,
    max_cg: int = 300,
    hessian: Callable[[Tensor], LinearOperator] | None = None,
    value_and_grad: ValueAndGrad | None = None,
) -> tuple[Tensor, float, int]:
    """Damped Newton's method on ``grad L = 0`` from ``theta0`` until ``||grad||_2 <= grad_tol``.

    Each trial solves ``(H + mu I) p = -g`` by conjugate gradients (SciPy ``cg``, at most
    ``max_cg`` products of ``hessian(theta)``, by default :class:`HessianOperator`'s
    forward-over-reverse one, e.g. :meth:`MLPObjective.hessian`; never the matrix)
    to the relative residual ``min(0.5, sqrt(||g||))`` (a forcing term after Eisenstat and
    Walker, 1996), and is kept when the gradient's norm falls; the damping ``mu`` starts at 0
    (Newton's step, quadratic convergence near a minimum), grows tenfold after a rejected trial
    (where ``H`` is indefinite or the model poor, as in Levenberg-Marquardt) and shrinks tenfold
    after an accepted one. The merit is the gradient's norm, not the loss: near a minimum the
    loss changes below float64's resolution long before the gradient stops falling. At most
    ``max_iter`` trials, accepted or not, bound the cost. Near a minimum with flat directions,
    as where duplicated units merge, L-BFGS stops while the point still creeps along them.
    ``theta0``: float64 ``(d,)`` near a minimum (polished by :func:`minimize`). Returns
    ``(theta, max_abs_grad, accepted_steps)`` (the largest gradient entry, the criterion of
    :func:`minimize`). ``value_and_grad`` gives the gradient as in :func:`minimize`.
    """
    if theta0.dtype != torch.float64:
        raise ValueError(f"newton_finish needs float64 parameters, got {theta0.dtype}")
    value_and_grad = value_and_grad or autograd_value_and_grad(loss)

    def grad(th: Tensor) -> Tensor:
        return value_and_grad(th)[1]

    theta = theta0.detach().clone()
    g, eye = grad(theta), aslinearoperator(identity(theta.numel()))
    mu, accepted = 0.0, 0
    for _ in range(max_iter):
        if float(g.norm()) <= grad_tol:
            break
        operator = hessian(theta) if hessian else HessianOperator(loss, theta, mode="fwd")
        if mu > 0:
            operator = operator + mu * eye
        forcing = min(0.5, float(g.norm()) ** 0.5)
        p, _ = cg(operator, -g.numpy(), rtol=forcing, atol=0.0, maxiter=max_cg)
        trial = theta + torch.from_numpy(p)
        g_trial = grad(trial)
        if float(g_trial.norm()) < float(g.norm()):
            theta, g, accepted = trial, g_trial, accepted + 1
            mu = mu / 10 if mu > 1e-12 else 0.0
        else:
            mu = max(10 * mu, 1e-6)
    return theta, float(g.abs().max()), accepted


def trained_minimum(
    data: Dataset, width: int, train: TrainConfig, *, seed: int, grad_tol: float
) -> tuple[MLPObjective, Tensor, Tensor, float]:
    """A one-hidden-layer tanh classifier at a minimum of its weight-decayed training loss.

    Trains ``(n_in, width, n_out)`` with :func:`ghost_optima.core.train.train_ensemble` under
    ``train`` (seed ``seed``; e.g. SGD with momentum and ``train.weight_decay``), then polishes
    in float64 with :func:`minimize` until no gradient entry exceeds ``grad_tol``. Returns
    ``(objective, theta_trained, theta_star, grad_norm)``, the objective on ``data``'s training
    set with the same weight decay.
    """
    run = train_ensemble(data, (data.n_in, width, data.n_out), "tanh", [seed], train)
    start = {k: v.double() for k, v in member(run.params, 0).items()}
    objective, theta_trained = mlp_objective(
        start, data.x_train.double(), data.y_train, weight_decay=train.weight_decay
    )
    theta_star, grad_norm, _ = minimize(
        objective.loss, theta_trained, grad_tol=grad_tol, value_and_grad=objective.value_and_grad
    )
    return objective, theta_trained, theta_star, grad_norm


def mlp_gradient(objective: MLPObjective) -> Gradient:
    """The minibatch gradient of ``objective`` for ``C`` chains at once (a chain-engine plug-in).

    For chain ``c`` with state ``theta_c`` and batch ``b_c`` (``None``: all examples) ::

        g_c = grad_theta mean_{j in b_c} CE(f_theta(x_j), y_j) |_{theta_c} + wd * theta_c

    The ``C`` networks are one stacked ensemble and the gradient of the sum over chains of
    their batch losses is every chain's own gradient (the chains share no parameter). It is
    computed by the hand-written backward pass :func:`ghost_optima.core.mlp.ensemble_loss_grad`
    (one batched matmul per product, reused buffers), which equals reverse-mode autograd's
    value up to float rounding at about half its cost per step. Works for any depth and
    activation of the objective.
    """
    X, y, wd = objective.X, objective.y, objective.weight_decay
    template = objective.unflatten(torch.zeros(_n_params(objective), dtype=X.dtype))
    names = list(template)
    shapes = [tuple(template[k].shape) for k in names]
    sizes = [template[k].numel() for k in names]
    work: dict[str, Tensor] = {}

    def gradient(theta: Tensor, batch: Tensor | None) -> Tensor:
        n_chains = theta.shape[0]
        chunks = theta.detach().split(sizes, dim=1)
        params = {k: c.view(n_chains, *s) for k, c, s in zip(names, chunks, shapes, strict=True)}
        if batch is None:
            xb, yb = X, y
        else:
            flat = batch.reshape(-1)
            xb = X.index_select(0, flat).view(n_chains, batch.shape[1], X.shape[1])
            yb = y.index_select(0, flat).view(n_chains, batch.shape[1])
        grads = ensemble_loss_grad(
            params, xb, yb, objective.activation, "classification", work=work
        )
        g = torch.cat([grads[k].reshape(n_chains, -1) for k in names], dim=1)
        return g.add_(theta, alpha=wd) if wd else g

    return gradient


def _n_params(objective: MLPObjective) -> int:
    widths = objective.widths
    return sum((fan_in + 1) * fan_out for fan_in, fan_out in itertools.pairwise(widths))


def mlp_sgd_chains(
    objective: MLPObjective,
    schedule: Schedule,
    n_chains: int,
    generator: torch.Generator,
    watch: Watch,
    start: Tensor | None = None,
) -> ChainRecord:
    """Plain SGD on ``objective``'s training set, ``n_chains`` chains at once.

    Every step each chain draws its own batch of ``B`` examples
    (:func:`ghost_optima.sgd.chains.sample_batches`: with replacement by default, so the minibatch
    gradient's covariance is exactly ``C / B``, ``s = 1`` in
    :func:`ghost_optima.sgd.stationary.stationary_variance`; ``s = (n - B) / (n - 1)`` without)
    and steps ``theta <- theta - eta * (mean_{j in batch} grad CE_j(theta) + wd * theta)``
    (:func:`mlp_gradient`). ``B = n`` is full-batch gradient descent (deterministic). Chains
    start at ``start`` (``(d,)`` or ``(n_chains, d)``; default ``watch.centre``, normally
    ``theta*``), in float64. What is recorded is said by ``watch``
    (:class:`ghost_optima.sgd.chains.Watch`).
    """
    centre = watch.centre.to(torch.float64)
    first = centre if start is None else start.to(torch.float64)
    theta0 = first.expand(n_chains, centre.numel())
    return run_chains(mlp_gradient(objective), len(objective.X), theta0, schedule, generator, watch)
