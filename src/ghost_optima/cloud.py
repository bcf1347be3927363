"""SGD's cloud around a trained minimum of a small MLP, and the ghost copies next to it.

Claims T4-T6 compare the linearised theory of :mod:`ghost_optima.sgd` with real minibatch SGD
on a small classifier. This module holds what the chapters share:

* :func:`mlp_objective`: the training loss ``L(theta) = mean_j CE_j(theta) + (wd / 2) ||theta||^2``
  of an MLP as a function of its flat parameter vector (the order of
  :func:`ghost_optima.hessian.flatten_params` on ``W1, b1, ..., W{L+1}, b{L+1}``), with the
  one-sample cross-entropy for per-sample gradients;
* :func:`minimize`: full-batch L-BFGS in float64 to a small gradient norm (the ``theta*``), and
  :func:`trained_minimum`: SGD training followed by that polish;
* :func:`mlp_sgd_chains`: many SGD chains at once from a common start on a one-hidden-layer
  tanh classifier, every chain drawing its own batches; records the displacement from
  ``theta*`` along given directions and the squared distance to ``theta*``;
* :func:`nearest_ghost`: the closest copy of a point reached by swapping two hidden units of
  one layer (with sign flips for odd activations), optionally ignoring units that coincide,
  which :func:`unit_partner_distances` detects;
* :func:`direction_slope` and :func:`ratio_summary`: the fits and ratios the chapters report,
  with bootstrap intervals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ghost_optima.data import Dataset
from ghost_optima.hessian import flatten_params
from ghost_optima.mlp import ACTIVATIONS, mlp_forward
from ghost_optima.stats import Estimate, bootstrap_ci
from ghost_optima.train import member, train_ensemble

Params = dict[str, Tensor]

__all__ = [
    "Ghost",
    "MLPChains",
    "MLPObjective",
    "direction_slope",
    "minimize",
    "mlp_objective",
    "mlp_sgd_chains",
    "nearest_ghost",
    "ratio_summary",
    "trained_minimum",
    "unit_partner_distances",
]


# --------------------------------------------------------------------------------------------
# the objective on a flat vector
# --------------------------------------------------------------------------------------------


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
    """

    loss: Callable[[Tensor], Tensor]
    per_sample_loss: Callable[[Tensor, Tensor, Tensor], Tensor]
    unflatten: Callable[[Tensor], Params]
    widths: tuple[int, ...]
    activation: str
    weight_decay: float


def _cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy of ``(N, C)`` logits against ``(N,)`` class indices."""
    return (torch.logsumexp(logits, -1) - logits.gather(-1, y.unsqueeze(-1)).squeeze(-1)).mean()


def mlp_objective(
    params: Params, X: Tensor, y: Tensor, *, activation: str = "tanh", weight_decay: float = 0.0
) -> tuple[MLPObjective, Tensor]:
    """The objective of an MLP classifier with the layout of ``params``, and ``params`` flat.

    ``X``: ``(n, n_in)``; ``y``: ``(n,)`` class indices. Returns ``(objective, theta)`` with
    ``theta`` the flat copy of ``params`` (dtype of ``params``; ``X`` is cast to it).
    """
    theta, unflatten = flatten_params(params)
    X = X.to(theta.dtype)
    widths = (
        params["W1"].shape[1],
        *(params[f"b{i}"].shape[0] for i in range(1, len(params) // 2 + 1)),
    )

    def loss(th: Tensor) -> Tensor:
        data = _cross_entropy(mlp_forward(unflatten(th), X, activation), y)
        return data + 0.5 * weight_decay * (th * th).sum() if weight_decay else data

    def per_sample_loss(th: Tensor, x: Tensor, t: Tensor) -> Tensor:
        return _cross_entropy(
            mlp_forward(unflatten(th), x.unsqueeze(0), activation), t.unsqueeze(0)
        )

    return MLPObjective(loss, per_sample_loss, unflatten, widths, activation, weight_decay), theta


def minimize(
    loss: Callable[[Tensor], Tensor],
    theta0: Tensor,
    *,
    grad_tol: float = 1e-10,
    max_iter: int = 5000,
    history_size: int = 50,
) -> tuple[Tensor, float, int]:
    """Full-batch L-BFGS (strong Wolfe line search) from ``theta0`` until ``||grad|| <= grad_tol``.

    Returns ``(theta, grad_norm, iterations)``; ``theta`` is detached, dtype of ``theta0``
    (use float64 to reach small gradient norms).
    """
    theta = theta0.detach().clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [theta],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=grad_tol,
        tolerance_change=0.0,
        history_size=history_size,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        opt.zero_grad()
        value = loss(theta)
        value.backward()
        return value

    opt.step(closure)
    state = opt.state[opt._params[0]]
    theta = theta.detach()
    g = torch.func.grad(loss)(theta)
    return theta, float(g.norm()), int(state.get("n_iter", 0))


def trained_minimum(
    data: Dataset,
    width: int,
    *,
    seed: int,
    weight_decay: float,
    epochs: int,
    grad_tol: float,
    lr: float = 0.1,
    momentum: float = 0.9,
    batch_size: int = 64,
) -> tuple[MLPObjective, Tensor, Tensor, float]:
    """A one-hidden-layer tanh classifier at a minimum of its weight-decayed training loss.

    Trains ``(n_in, width, n_out)`` with SGD (``momentum``, ``weight_decay``; the trainer of
    :func:`ghost_optima.train.train_ensemble`, seed ``seed``) for ``epochs``, then polishes in
    float64 with :func:`minimize` until no gradient entry exceeds ``grad_tol``. Returns
    ``(objective, theta_trained, theta_star, grad_norm)``, the objective on ``data``'s training
    set with the same weight decay.
    """
    run = train_ensemble(
        data,
        (data.n_in, width, data.n_out),
        "tanh",
        [seed],
        optimizer="sgd",
        lr=lr,
        momentum=momentum,
        epochs=epochs,
        batch_size=batch_size,
        weight_decay=weight_decay,
    )
    start = {k: v.double() for k, v in member(run.params, 0).items()}
    objective, theta_trained = mlp_objective(
        start, data.x_train.double(), data.y_train, weight_decay=weight_decay
    )
    theta_star, grad_norm, _ = minimize(objective.loss, theta_trained, grad_tol=grad_tol)
    return objective, theta_trained, theta_star, grad_norm


# --------------------------------------------------------------------------------------------
# SGD chains on a one-hidden-layer tanh classifier
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MLPChains:
    """What :func:`mlp_sgd_chains` recorded.

    Attributes
    ----------
    proj_mean, proj_sq: ``(n_chains, k)`` time averages, over the post-burn-in steps, of
        ``u_t = D^T (theta_t - theta*)`` and of ``u_t^2`` (``D`` the given directions).
    msd: ``(n_chains,)`` time average of ``||theta_t - theta*||^2`` after burn-in.
    trace: ``(n_chains, T)`` ``||theta_t - theta*||^2`` at ``steps`` (empty without recording).
    steps: ``(T,)`` the recorded step numbers (0 is the start).
    n_samples: post-burn-in steps averaged.
    final: ``(n_chains, d)`` the last iterates.
    """

    proj_mean: Tensor
    proj_sq: Tensor
    msd: Tensor
    trace: Tensor
    steps: Tensor
    n_samples: int
    final: Tensor

    def var_per_chain(self) -> Tensor:
        """``(n_chains, k)`` variance along each direction about the mean over all chains.

        The stationary mean of a nonlinear model is not exactly ``theta*`` (it moves by
        ``O(eta)``); every chain has the same one, estimated by pooling the chains.
        """
        m = self.proj_mean.mean(dim=0, keepdim=True)
        return self.proj_sq - 2 * m * self.proj_mean + m * m


def _sample_batches(n_chains: int, n: int, B: int, generator: torch.Generator) -> Tensor:
    """``(n_chains, B)`` indices, each row a uniform ``B``-subset of ``range(n)``."""
    return torch.rand(n_chains, n, generator=generator).topk(B, dim=1, largest=False).indices


def mlp_sgd_chains(
    objective: MLPObjective,
    theta_star: Tensor,
    X: Tensor,
    y: Tensor,
    *,
    eta: float,
    batch_size: int,
    n_steps: int,
    n_chains: int,
    burn_in: int,
    generator: torch.Generator,
    directions: Tensor | None = None,
    theta0: Tensor | None = None,
    record_every: int = 0,
    replacement: bool = True,
    dtype: torch.dtype = torch.float64,
) -> MLPChains:
    """Plain SGD on a one-hidden-layer tanh classifier, ``n_chains`` chains at once.

    Every step each chain draws its own batch of ``B`` training examples, independent across
    steps and chains: ``B`` uniform draws with replacement (default; the minibatch gradient's
    covariance is then exactly ``C / B``, ``s = 1`` in :func:`ghost_optima.sgd.stationary_variance`)
    or, with ``replacement=False``, a uniform ``B``-subset (``s = (n - B) / (n - 1)``; about
    20 times slower to draw on CPU). Then ::

        theta <- theta - eta * (mean_{j in batch} grad CE_j(theta) + wd * theta)

    with the gradient written out by hand (backpropagation through ``tanh``), batched over
    chains with ``bmm``. ``B = n`` is full-batch gradient descent (deterministic). Chains start
    at ``theta0`` (``(d,)`` or ``(n_chains, d)``; default ``theta_star``).

    Records, after ``burn_in`` steps, the time averages of the displacement from
    ``theta_star`` along the columns of ``directions`` (``(d, k)``) and of its square, the
    time average of ``||theta_t - theta_star||^2``, and every ``record_every`` steps (if > 0)
    that squared distance.
    """
    widths = objective.widths
    if len(widths) != 3 or objective.activation != "tanh":
        raise ValueError("mlp_sgd_chains handles one-hidden-layer tanh networks only")
    n_in, h, c = widths
    n = X.shape[0]
    B = batch_size
    if not 1 <= B <= n:
        raise ValueError(f"need 1 <= batch_size <= n = {n}, got {B}")
    if not 0 <= burn_in < n_steps:
        raise ValueError(f"need 0 <= burn_in < n_steps, got {burn_in}, {n_steps}")
    wd = objective.weight_decay
    d = theta_star.numel()
    sizes = [h * n_in, h, c * h, c]
    if sum(sizes) != d:
        raise ValueError(f"theta has {d} entries, widths {widths} need {sum(sizes)}")
    ts = theta_star.to(dtype)
    theta = (ts if theta0 is None else theta0.to(dtype)).expand(n_chains, d).clone()
    grad = torch.empty_like(theta)
    Xd = X.to(dtype)
    onehot = torch.nn.functional.one_hot(y, c).to(dtype)
    full = B == n
    D = directions.to(dtype) if directions is not None else torch.zeros(d, 0, dtype=dtype)
    k = D.shape[1]
    s_u = torch.zeros(n_chains, k, dtype=dtype)
    s_u2 = torch.zeros(n_chains, k, dtype=dtype)
    s_msd = torch.zeros(n_chains, dtype=dtype)
    trace: list[Tensor] = []
    rec_steps: list[int] = []
    o1, o2, o3 = sizes[0], sizes[0] + sizes[1], sizes[0] + sizes[1] + sizes[2]

    def record(t: int) -> None:
        diff = theta - ts
        trace.append((diff * diff).sum(dim=1))
        rec_steps.append(t)

    if record_every:
        record(0)
    for t in range(1, n_steps + 1):
        w1 = theta[:, :o1].view(n_chains, h, n_in)
        bb1 = theta[:, o1:o2].unsqueeze(1)
        w2 = theta[:, o2:o3].view(n_chains, c, h)
        bb2 = theta[:, o3:].unsqueeze(1)
        if full:
            xb = Xd.expand(n_chains, n, n_in)
            yb = onehot.expand(n_chains, n, c)
        else:
            if replacement:
                idx = torch.randint(0, n, (n_chains * B,), generator=generator)
            else:
                idx = _sample_batches(n_chains, n, B, generator).reshape(-1)
            xb = Xd.index_select(0, idx).view(n_chains, B, n_in)
            yb = onehot.index_select(0, idx).view(n_chains, B, c)
        a = torch.tanh(torch.baddbmm(bb1, xb, w1.transpose(1, 2)))  # (E, B, h)
        z = torch.baddbmm(bb2, a, w2.transpose(1, 2))  # (E, B, c)
        dz = (torch.softmax(z, dim=-1) - yb) / B
        grad[:, o2:o3].view(n_chains, c, h).copy_(torch.bmm(dz.transpose(1, 2), a))
        grad[:, o3:].copy_(dz.sum(dim=1))
        da = torch.bmm(dz, w2) * (1 - a * a)  # (E, B, h)
        grad[:, :o1].view(n_chains, h, n_in).copy_(torch.bmm(da.transpose(1, 2), xb))
        grad[:, o1:o2].copy_(da.sum(dim=1))
        if wd:
            grad.add_(theta, alpha=wd)
        theta.sub_(grad, alpha=eta)
        if t > burn_in:
            diff = theta - ts
            if k:
                u = diff @ D
                s_u.add_(u)
                s_u2.addcmul_(u, u)
            s_msd.add_((diff * diff).sum(dim=1))
        if record_every and t % record_every == 0:
            record(t)
    m = n_steps - burn_in
    return MLPChains(
        proj_mean=s_u / m,
        proj_sq=s_u2 / m,
        msd=s_msd / m,
        trace=torch.stack(trace, dim=1) if trace else torch.zeros(n_chains, 0, dtype=dtype),
        steps=torch.tensor(rec_steps, dtype=torch.long),
        n_samples=m,
        final=theta,
    )


# --------------------------------------------------------------------------------------------
# the nearest ghost copy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ghost:
    """The closest copy of a point reached by swapping two hidden units of one layer.

    ``layer`` (1-based hidden layer), units ``i < j``, ``sign`` (+1, or -1: both swapped units
    also flip, allowed for odd activations); ``distance`` is ``||theta - theta_ghost||``
    ``= sqrt(2) ||u_i - sign u_j||`` with ``u_i`` unit ``i``'s incoming weights, bias and
    outgoing weights; ``params`` is the copy itself.
    """

    distance: float
    layer: int
    i: int
    j: int
    sign: int
    params: Params


def _unit_vectors(params: Params, layer: int) -> Tensor:
    w, b, out = params[f"W{layer}"], params[f"b{layer}"], params[f"W{layer + 1}"]
    return torch.cat([w, b.unsqueeze(1), out.T], dim=1)


def unit_partner_distances(params: Params, activation: str, layer: int = 1) -> Tensor:
    """For each unit of hidden ``layer``: ``min_j ||u_i - sigma u_j||`` over the other units.

    ``u_i`` is unit ``i``'s incoming weights, bias and outgoing weights; ``sigma`` ranges over
    ``{+1, -1}`` for odd activations, ``{+1}`` otherwise. A value near zero means unit ``i`` has
    a duplicate (up to sign): swapping the two gives back (almost) the same point.
    """
    U = _unit_vectors(params, layer).double()
    if U.shape[0] < 2:
        raise ValueError("the layer has fewer than two units")
    signs = (1, -1) if ACTIVATIONS[activation].symmetry == "odd" else (1,)
    D = torch.stack([torch.cdist(U, s * U) for s in signs]).amin(dim=0)
    D.fill_diagonal_(math.inf)
    return D.min(dim=1).values


def nearest_ghost(params: Params, activation: str, *, exclude_below: float = 0.0) -> Ghost | None:
    """Search every pair of units of every hidden layer (and both signs for odd activations).

    Pairs with ``||u_i - sigma u_j|| <= exclude_below`` are skipped: with a positive value this
    finds the nearest *distinct* copy, ignoring units that (nearly) coincide. Returns ``None``
    when every pair is excluded.
    """
    signs = (1, -1) if ACTIVATIONS[activation].symmetry == "odd" else (1,)
    best: tuple[float, int, int, int, int] | None = None
    n_searched = 0
    for layer in range(1, len(params) // 2):
        U = _unit_vectors(params, layer).double()
        n = U.shape[0]
        if n < 2:
            continue
        n_searched += 1
        for s in signs:
            dist = torch.cdist(U, s * U)
            dist.fill_diagonal_(math.inf)
            if exclude_below > 0:
                dist = dist.masked_fill(dist <= exclude_below, math.inf)
            flat = int(torch.argmin(dist))
            i, j = divmod(flat, n)
            if not math.isfinite(float(dist[i, j])):
                continue
            value = math.sqrt(2.0) * float(dist[i, j])
            if best is None or value < best[0]:
                best = (value, layer, min(i, j), max(i, j), s)
    if n_searched == 0:
        raise ValueError("no hidden layer has two units")
    if best is None:
        return None
    value, layer, i, j, s = best
    ghost = {k: v.clone() for k, v in params.items()}
    for name, axis in ((f"W{layer}", 0), (f"b{layer}", 0), (f"W{layer + 1}", 1)):
        src = params[name]
        gi, gj = src.select(axis, i), src.select(axis, j)
        ghost[name].select(axis, i).copy_(s * gj)
        ghost[name].select(axis, j).copy_(s * gi)
    return Ghost(value, layer, i, j, s, ghost)


# --------------------------------------------------------------------------------------------
# fits and ratios with intervals
# --------------------------------------------------------------------------------------------


def direction_slope(
    x: Sequence[float] | np.ndarray | Tensor,
    y: Sequence[float] | np.ndarray | Tensor,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """Least-squares slope of ``log y`` on ``log x`` over directions, bootstrapped over them.

    ``x``, ``y``: ``(k,)`` positive values, one pair per direction (e.g. ``lambda_i`` and
    ``Var_i``). The percentile bootstrap resamples the pairs, so the interval reflects the
    scatter of the directions about the fitted line. Resamples whose ``x`` are all equal are
    dropped (they have no slope).
    """
    lx = np.log(np.asarray(x, dtype=float).reshape(-1))
    ly = np.log(np.asarray(y, dtype=float).reshape(-1))
    if lx.shape != ly.shape or lx.size < 3 or not np.all(np.isfinite(lx) & np.isfinite(ly)):
        raise ValueError("need at least 3 pairs of positive, finite x and y of equal length")
    rows = np.column_stack([lx, ly])

    def slope(r: np.ndarray) -> float:
        xc = r[:, 0] - r[:, 0].mean()
        ss = xc @ xc
        return float(xc @ (r[:, 1] - r[:, 1].mean()) / ss) if ss > 0 else math.nan

    point = slope(rows)
    rng = np.random.default_rng(seed)
    boots = np.array([slope(rows[i]) for i in rng.integers(0, len(rows), (n_boot, len(rows)))])
    boots = boots[np.isfinite(boots)]
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return Estimate(point, float(lo), float(hi), len(rows))


@dataclass(frozen=True)
class RatioSummary:
    """Measured over predicted variance per direction, bootstrapped over chains.

    ``per_direction``: one :class:`Estimate` per direction of ``mean_c Var_ci / pred_i``;
    ``max_dev``: of ``max_i |ratio_i - 1|``; ``median``: of ``median_i ratio_i``.
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
        bootstrap_ci(
            V[:, i], lambda v, p=P[i]: float(v.mean() / p), n_boot=n_boot, level=level, seed=seed
        )
        for i in range(V.shape[1])
    ]
    max_dev = bootstrap_ci(
        V,
        lambda v: float(np.max(np.abs(v.mean(axis=0) / P - 1))),
        n_boot=n_boot,
        level=level,
        seed=seed,
    )
    median = bootstrap_ci(
        V, lambda v: float(np.median(v.mean(axis=0) / P)), n_boot=n_boot, level=level, seed=seed
    )
    return RatioSummary(per, max_dev, median)
