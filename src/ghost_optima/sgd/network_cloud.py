"""One trained network's SGD cloud, set up for its Lyapunov prediction (claim T4's network bed).

:func:`network_cloud` does, for one seed, every step between a data set and the comparison of
:func:`ghost_optima.sgd.lyapunov.compare_covariance`:

1. a one-hidden-layer tanh classifier trained on the training split and polished to a minimum
   ``theta*`` (:func:`ghost_optima.sgd.network_chains.trained_minimum`);
2. its top ``k`` Hessian eigenpairs by Lanczos (the step ``eta = eta_lam / lambda_1`` and the
   basis the chains report variances in) and the per-example gradients ``G`` at ``theta*``;
3. ``C`` chains of minibatch SGD from ``theta*``, with snapshots every ``every`` steps after
   burn-in (:func:`ghost_optima.sgd.lyapunov.run_with_snapshots`);
4. the exact Hessian ``H = Q diag(lambda) Q^T`` (eigenvalues descending), the population
   covariance of the per-example gradients ``C``, ``C' = Q^T C Q``, the directions with gradient
   noise (``C'_ii > noise_tol max_j C'_jj``) and, over them, the stationary covariance the
   discrete Lyapunov equation predicts (:func:`ghost_optima.sgd.lyapunov.lyapunov_eigenbasis`),
   with the snapshots projected on the same directions.

Several seeds give several networks, each with its own data split, initialisation and chains:
the units :func:`ghost_optima.sgd.lyapunov.compare_across_networks` resamples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ghost_optima.core.data import Dataset
from ghost_optima.core.train import TrainConfig, evaluate, stack_params
from ghost_optima.landscape import gradient_noise, hessian
from ghost_optima.sgd import lyapunov
from ghost_optima.sgd.chains import ChainRecord, Schedule, Watch
from ghost_optima.sgd.network_chains import MLPObjective, mlp_gradient, trained_minimum

__all__ = ["CloudConfig", "NetworkCloud", "network_cloud"]


@dataclass(frozen=True)
class CloudConfig:
    """How a network is trained and its cloud drawn: ``width`` hidden tanh units trained under
    ``train`` and polished until no gradient entry exceeds ``grad_tol``; ``k`` Lanczos pairs;
    ``n_chains`` chains of ``steps`` SGD steps at ``eta = eta_lam / lambda_1`` on batches of
    ``batch`` (drawn with replacement), ``burn_in`` steps dropped, a snapshot every ``every``;
    a direction is noisy when ``C'_ii > noise_tol max_j C'_jj``."""

    width: int
    train: TrainConfig
    grad_tol: float
    k: int
    eta_lam: float
    batch: int
    n_chains: int
    steps: int
    burn_in: int
    every: int
    noise_tol: float


@dataclass(frozen=True)
class NetworkCloud:
    """One network's minimum, spectrum, gradient noise, SGD chains and predicted covariance.

    ``d`` parameters, ``n`` training examples, ``k`` Lanczos pairs, ``C`` chains, ``T``
    snapshots, ``m`` noisy directions. ``lam_top`` ``(k,)``, ``Q_top`` ``(d, k)``,
    ``C_top`` ``(k,)`` (gradient-noise variance along ``Q_top``), ``G`` ``(n, d)``;
    ``chains``: the chain record (variances in the ``Q_top`` basis); ``snapshots`` ``(T, C, d)``;
    ``H``, ``Q``, ``C``, ``C_eig`` ``(d, d)`` and ``lam`` ``(d,)`` descending; ``noisy``
    ``(m,)`` indices into ``lam``; ``predicted`` ``(m, m)`` the Lyapunov covariance over them
    and ``projected`` ``(T, C, m)`` the snapshots in that basis.
    """

    objective: MLPObjective
    theta_star: Tensor
    grad_norm: float
    test_acc: float
    lam_top: np.ndarray
    Q_top: Tensor
    n_hvp: int
    G: Tensor
    C_top: np.ndarray
    eta: float
    chains: ChainRecord
    snapshots: Tensor
    H: np.ndarray
    lam: np.ndarray
    Q: np.ndarray
    C: np.ndarray
    C_eig: np.ndarray
    noisy: np.ndarray
    predicted: np.ndarray
    projected: np.ndarray


def network_cloud(
    data: Dataset, cfg: CloudConfig, *, seed: int, generator: torch.Generator
) -> NetworkCloud:
    """Train a network on ``data`` (seed ``seed``), polish it, and run ``cfg.n_chains`` SGD
    chains from the minimum (batches drawn by ``generator``); see the module docstring."""
    objective, _, theta_star, grad_norm = trained_minimum(
        data, cfg.width, cfg.train, seed=seed, grad_tol=cfg.grad_tol
    )
    X, y = data.x_train.double(), data.y_train
    _, test_acc = evaluate(
        stack_params([objective.unflatten(theta_star)]),
        data.x_test.double(),
        data.y_test,
        "tanh",
        "classification",
    )
    lam_top, Q_top, n_hvp = hessian.top_eigenpairs(objective.loss, theta_star, cfg.k)
    G = gradient_noise.per_sample_grads(objective.per_sample_loss, theta_star, X, y)
    C_top = gradient_noise.projected_noise_variance(G, Q_top).numpy()
    lam_top = lam_top.numpy()
    eta = cfg.eta_lam / lam_top[0]
    chains, snapshots = lyapunov.run_with_snapshots(
        mlp_gradient(objective),
        len(X),
        theta_star.expand(cfg.n_chains, -1).clone(),
        Schedule(eta, cfg.batch, cfg.steps, cfg.burn_in),
        generator,
        Watch(theta_star, Q_top),
        cfg.every,
    )
    H = hessian.hessian_matrix(objective.loss, theta_star).numpy()
    lam, Q = np.linalg.eigh(H)
    lam, Q = lam[::-1].copy(), Q[:, ::-1].copy()
    C = lyapunov.gradient_covariance(G)
    C_eig = Q.T @ C @ Q
    noisy = lyapunov.noisy_directions(np.diag(C_eig), cfg.noise_tol)
    predicted = lyapunov.lyapunov_eigenbasis(
        eta, lam[noisy], C_eig[np.ix_(noisy, noisy)], cfg.batch
    )
    return NetworkCloud(
        objective=objective,
        theta_star=theta_star,
        grad_norm=grad_norm,
        test_acc=float(test_acc[0]),
        lam_top=lam_top,
        Q_top=Q_top,
        n_hvp=n_hvp,
        G=G,
        C_top=C_top,
        eta=eta,
        chains=chains,
        snapshots=snapshots,
        H=H,
        lam=lam,
        Q=Q,
        C=C,
        C_eig=C_eig,
        noisy=noisy,
        predicted=predicted,
        projected=snapshots.numpy() @ Q[:, noisy],
    )
