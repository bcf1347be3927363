"""Where the plateau follows ``eta / B``, and the epistemic spread of the optimum (claim T6).

Two descriptive measurements beside claim T6 (chapter 40):

* **An eta x B grid.** Per cell ``(eta_a, B_b)`` the plateau ``P_ab`` (mean squared distance of
  constant-step SGD to ``theta*``, one value per chain) and its ratio to ``eta_a / B_b``; the
  small-step law says the ratio is the same in every cell. :func:`plateau_grid` gives both
  with percentile-bootstrap intervals over chains and the exponents ``(p, q)`` of the
  least-squares fit ``log mean P_ab = a + p log eta_a + q log B_b`` (law: ``+1, -1``).
* **The epistemic spread.** The training set is one draw; refitting ``theta*`` on bootstrap
  resamples of it (:func:`refits_on_resamples`) moves the minimum by about the sandwich covariance
  ``H^-1 C H^-1 / n`` (:func:`sandwich_covariance`; ``H`` the Hessian of the training loss at
  ``theta*``, ``C`` the population covariance of the per-example gradients), the asymptotic
  covariance of an M-estimator (Huber 1967; White 1982). :func:`spread` gives the root mean
  square of the refits' displacements, in total and along a direction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ghost_optima.core.stats import Estimate, bootstrap
from ghost_optima.sgd.network_chains import MLPObjective, minimize, mlp_objective

__all__ = [
    "PlateauGrid",
    "refits_on_resamples",
    "mlp_refit",
    "plateau_grid",
    "sandwich_covariance",
    "sandwich_spread",
    "spread",
]


@dataclass(frozen=True)
class PlateauGrid:
    """What :func:`plateau_grid` found.

    ``plateau``, ``ratio``: ``[a][b]`` :class:`~ghost_optima.core.stats.Estimate` of the mean
    plateau
    of cell ``(etas[a], batches[b])`` and of that mean divided by ``eta_a / B_b``;
    ``relative``: the ratio divided by the reference cell's ratio (1 where the law holds);
    ``eta_exponent``, ``batch_exponent``: ``p`` and ``q`` of the joint log-log fit;
    ``exponent_sum``: ``p + q``, zero when the plateau depends on ``eta / B`` alone (whether or
    not in proportion).
    """

    etas: tuple[float, ...]
    batches: tuple[int, ...]
    plateau: list[list[Estimate]]
    ratio: list[list[Estimate]]
    relative: list[list[Estimate]]
    eta_exponent: Estimate
    batch_exponent: Estimate
    exponent_sum: Estimate


def _exponents(log_eta: np.ndarray, log_b: np.ndarray, means: np.ndarray) -> np.ndarray:
    design = np.column_stack([np.ones(log_eta.size), log_eta.ravel(), log_b.ravel()])
    coef, *_ = np.linalg.lstsq(design, np.log(means.ravel()), rcond=None)
    return np.array([coef[1], coef[2], coef[1] + coef[2]])


def plateau_grid(
    plateaus: np.ndarray,
    etas: Sequence[float],
    batches: Sequence[int],
    reference: tuple[int, int],
    *,
    n_boot: int,
    seed: int,
) -> PlateauGrid:
    """Plateaus ``(C, A, Bn)`` (chain, learning rate, batch size) summarised cell by cell.

    Every interval resamples the ``C`` chains (rows) jointly across cells,
    as
    :func:`ghost_optima.sgd.fits.loglog_slope` does; ``reference`` is the ``(a, b)`` index of the
    cell
    the ratios are compared with. The exponents need at least two learning rates and two batch
    sizes.
    """
    P = np.asarray(plateaus, dtype=float)
    etas_a, batches_a = np.asarray(etas, dtype=float), np.asarray(batches, dtype=float)
    if P.ndim != 3 or P.shape[1:] != (etas_a.size, batches_a.size):
        raise ValueError(f"plateaus must be (C, {etas_a.size}, {batches_a.size}), got {P.shape}")
    if etas_a.size < 2 or batches_a.size < 2 or np.any(P <= 0):
        raise ValueError("need two learning rates, two batch sizes and positive plateaus")
    scale = etas_a[:, None] / batches_a[None, :]
    log_eta, log_b = np.meshgrid(np.log(etas_a), np.log(batches_a), indexing="ij")
    ra, rb = reference

    def cell(a: int, b: int, divide: float, ref: bool = False) -> Estimate:
        def stat(i: np.ndarray) -> float:
            value = P[i, a, b].mean() / divide
            return value / (P[i, ra, rb].mean() / scale[ra, rb]) if ref else value

        return bootstrap(stat, len(P), n_boot=n_boot, seed=seed)

    shape = range(etas_a.size), range(batches_a.size)
    exps = [
        bootstrap(
            lambda i, k=k: float(_exponents(log_eta, log_b, P[i].mean(axis=0))[k]),
            len(P),
            n_boot=n_boot,
            seed=seed,
        )
        for k in range(3)
    ]
    return PlateauGrid(
        tuple(float(e) for e in etas),
        tuple(int(b) for b in batches),
        [[cell(a, b, 1.0) for b in shape[1]] for a in shape[0]],
        [[cell(a, b, float(scale[a, b])) for b in shape[1]] for a in shape[0]],
        [[cell(a, b, float(scale[a, b]), ref=True) for b in shape[1]] for a in shape[0]],
        *exps,
    )


def sandwich_covariance(H: Tensor, G: Tensor) -> Tensor:
    """``H^-1 C H^-1 / n``: the asymptotic covariance of the minimiser of a mean of ``n`` losses.

    ``H``: ``(d, d)`` Hessian of the mean loss at the minimum (symmetric positive definite);
    ``G``: ``(n, d)`` per-example gradients there. ``C`` is their population (``1 / n``)
    covariance, the covariance of one example's gradient under the empirical distribution, which
    is what resampling the training set with replacement draws from.
    """
    if G.ndim != 2 or H.shape != (G.shape[1], G.shape[1]):
        raise ValueError(f"need H (d, d) and G (n, d), got {tuple(H.shape)}, {tuple(G.shape)}")
    n = G.shape[0]
    D = G - G.mean(dim=0)
    w, V = torch.linalg.eigh(0.5 * (H + H.T))
    if float(w.min()) <= 0:
        raise ValueError(f"H is not positive definite (smallest eigenvalue {float(w.min()):.3g})")
    A = (D @ V) / w  # rows: H^-1 (g_j - gbar) in H's eigenbasis
    cov_eig = A.T @ A / n / n
    return V @ cov_eig @ V.T


def sandwich_spread(cov: Tensor, direction: Tensor | None = None) -> float:
    """The root mean square ``sqrt(tr cov)``, or ``sqrt(e^T cov e)`` along unit ``direction``."""
    if direction is None:
        return float(torch.trace(cov).clamp_min(0).sqrt())
    e = direction / direction.norm()
    return float((e @ cov @ e).clamp_min(0).sqrt())


def refits_on_resamples(
    refit: Callable[[Tensor], Tensor], n: int, n_resamples: int, generator: torch.Generator
) -> Tensor:
    """``(R, d)``: ``refit(idx)`` for ``R`` index vectors ``idx`` of ``n`` draws with replacement
    from ``range(n)`` (from ``generator``, in order)."""
    if n_resamples < 1:
        raise ValueError(f"need at least one resample, got {n_resamples}")
    draws = [torch.randint(0, n, (n,), generator=generator) for _ in range(n_resamples)]
    return torch.stack([refit(idx) for idx in draws])


def mlp_refit(
    objective: MLPObjective, theta_star: Tensor, *, grad_tol: float
) -> Callable[[Tensor], Tensor]:
    """The refit of :func:`refits_on_resamples` for an MLP: the objective on the resampled training
    set (same weight decay and activation), minimised by
    :func:`ghost_optima.sgd.network_chains.minimize`
    (L-BFGS, float64) from ``theta_star``."""
    params = {k: v.detach().clone() for k, v in objective.unflatten(theta_star).items()}

    def refit(idx: Tensor) -> Tensor:
        obj, theta0 = mlp_objective(
            params,
            objective.X[idx],
            objective.y[idx],
            activation=objective.activation,
            weight_decay=objective.weight_decay,
        )
        theta, _, _ = minimize(
            obj.loss, theta0, grad_tol=grad_tol, value_and_grad=obj.value_and_grad
        )
        return theta

    return refit


def spread(
    refits: Tensor, centre: Tensor, direction: Tensor | None = None, *, n_boot: int, seed: int
) -> Estimate:
    """Root mean square of ``refits - centre`` (rows ``(R, d)``): total, or projected on unit
    ``direction``; percentile bootstrap over the refits."""
    diff = (refits - centre).double()
    if direction is None:
        sq = diff.pow(2).sum(dim=1).numpy()
    else:
        sq = (diff @ (direction / direction.norm()).double()).pow(2).numpy()
    return bootstrap(lambda i: float(np.sqrt(sq[i].mean())), len(sq), n_boot=n_boot, seed=seed)
