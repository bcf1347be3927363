"""SGD chains on problems whose stationary law is known: a noisy quadratic and least squares.

Both are stochastic gradients (:data:`ghost_optima.sgd.chains.Gradient`) run by the one chain
engine, :func:`ghost_optima.sgd.chains.run_chains`, and both report the stationary variance along
the Hessian's eigendirections that :func:`ghost_optima.sgd.stationary.stationary_variance`
predicts (Mandt, Hoffman and Blei 2017, JMLR 18(134), Eq. 13 solved per eigendirection).

* **Noisy quadratic** (:class:`NoisyQuadratic`), in the Hessian's eigenbasis, ``theta* = 0``,
  ``H = diag(lambda)``: the gradient is ``lambda * u + xi`` with ``xi ~ N(0, s C / B)`` fresh
  each step, so each coordinate is exactly the AR(1) process
  ``u_{t+1} = (1 - eta lambda_i) u_t - eta xi_{i,t}`` and the exact form of the law holds with
  no approximation, for any ``C`` (the per-direction marginal needs only the diagonal of ``C``).
* **Least squares**, ``L(theta) = ||X theta - y||^2 / (2 n)``, ``H = X^T X / n``: the gradient
  of a batch ``b`` is ``X_b^T (X_b theta - y_b) / B``. Its noise depends on the state (the
  per-example Hessians ``x x^T`` fluctuate), so the law holds to leading order in ``eta``.

``s = (n - B) / (n - 1)`` for batches of distinct examples (finite-population correction,
Cochran 1977, Thm 2.2), ``s = 1`` with replacement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ghost_optima.core.stats import Estimate, sample_estimate
from ghost_optima.sgd.chains import Schedule, Watch, run_chains
from ghost_optima.sgd.stationary import (
    ArrayLike,
    as_numpy,
    check_eta_lam,
    finite_population_factor,
)

__all__ = [
    "ChainVariance",
    "LinearRegressionSGDResult",
    "NoisyQuadratic",
    "simulate_linear_regression_sgd",
    "simulate_quadratic_sgd",
]

# Noise for this many steps is drawn in one call: amortizes the generator's overhead without
# holding the whole run in memory.
_NOISE_BLOCK = 256


@dataclass(frozen=True)
class ChainVariance:
    """Stationary variance of SGD chains along each direction.

    Attributes
    ----------
    var: ``(d,)``, mean over chains of ``var_per_chain``.
    var_per_chain: ``(n_chains, d)``: for each chain, the time average over the ``n_samples``
        post-burn-in iterates of ``u_{t,i}^2``, ``u_t`` the displacement from ``theta*`` in the
        Hessian eigenbasis (the stationary mean, 0, is known, so it is not re-estimated).
    n_samples: post-burn-in iterates per chain.
    """

    var: Tensor
    var_per_chain: Tensor
    n_samples: int

    def estimates(
        self, *, seed: int = 0, n_boot: int = 2000, level: float = 0.95
    ) -> list[Estimate]:
        """Per-direction :class:`Estimate` of the mean variance, bootstrapped over chains."""
        vpc = self.var_per_chain.detach().cpu().numpy()
        return [
            sample_estimate(vpc[:, i], n_boot=n_boot, level=level, seed=seed)
            for i in range(vpc.shape[1])
        ]


@dataclass(frozen=True)
class NoisyQuadratic:
    """``L(u) = sum_i lambda_i u_i^2 / 2`` with Gaussian minibatch noise, in H's eigenbasis.

    Attributes
    ----------
    lam: ``(d,)`` Hessian eigenvalues ``lambda_i``.
    C: ``(d,)`` per-example noise variances ``C_i = q_i^T C q_i`` (noise uncorrelated across
        directions: ``H`` and ``C`` commute) or a ``(d, d)`` PSD covariance in the eigenbasis
        (non-commuting case; the per-direction variance is still the exact AR(1) form).
    n: data-set size for the finite-population factor of batches drawn without replacement
        (used when the schedule has ``replacement=False``), or ``None`` (infinite data).
    noise_dtype: dtype in which the standard normal draws are generated before the cast to
        float64. Default float32: PyTorch's CPU sampler is vectorized only for float32 (about
        8x faster than float64 here); float32 draws are capped near 5.8 sigma, which changes
        their variance by under 1e-6 relative (checked: 2e8 draws gave variance 1.00005 and
        kurtosis 3.0003). Pass ``torch.float64`` for full-precision draws.
    """

    lam: ArrayLike
    C: ArrayLike
    n: int | None = None
    noise_dtype: torch.dtype = torch.float32


def _noise_factor(C: ArrayLike, d: int) -> tuple[Tensor, bool]:
    """``S`` with ``S S^T = C``: ``(d,)`` standard deviations if ``C`` is a vector (diagonal),
    else a ``(d, d)`` factor from the eigendecomposition (PSD, tolerant of zero modes)."""
    Ct = torch.as_tensor(as_numpy(C), dtype=torch.float64)
    if Ct.ndim <= 1:
        Ct = Ct.expand(d) if Ct.ndim == 0 else Ct
        if Ct.shape != (d,):
            raise ValueError(f"C must have shape ({d},) or ({d}, {d}), got {tuple(Ct.shape)}")
        if torch.any(Ct < 0):
            raise ValueError("noise variances C must be non-negative")
        return Ct.sqrt(), True
    if Ct.shape != (d, d):
        raise ValueError(f"C must have shape ({d},) or ({d}, {d}), got {tuple(Ct.shape)}")
    w, V = torch.linalg.eigh(0.5 * (Ct + Ct.T))
    if w.min() < -1e-10 * max(1.0, float(w.abs().max())):
        raise ValueError("noise covariance C must be positive semi-definite")
    return V * w.clamp_min(0).sqrt(), False


class _QuadraticGradient:
    """``g(u) = lambda * u + xi``, ``xi = S z sqrt(s / B)``, ``z ~ N(0, I)`` in blocks of steps.

    The noise of ``_NOISE_BLOCK`` steps is drawn at once (the last block is the remainder of
    ``n_steps``), always from the chains' generator, so a seed fixes the run.
    """

    def __init__(
        self, problem: NoisyQuadratic, schedule: Schedule, n_chains: int, generator: torch.Generator
    ) -> None:
        self.lam = torch.as_tensor(as_numpy(problem.lam), dtype=torch.float64).reshape(-1)
        d = self.lam.numel()
        S, self.diagonal = _noise_factor(problem.C, d)
        n = None if schedule.replacement else problem.n
        self.S = S * (finite_population_factor(schedule.batch_size, n) / schedule.batch_size) ** 0.5
        self.shape = (n_chains, d)
        self.remaining = schedule.n_steps
        self.generator = generator
        self.noise_dtype = problem.noise_dtype
        self.block = torch.empty(0, n_chains, d, dtype=torch.float64)
        self.j = 0

    def __call__(self, u: Tensor, batch: Tensor | None) -> Tensor:
        if self.j == len(self.block):
            m = min(_NOISE_BLOCK, self.remaining)
            z = torch.randn(m, *self.shape, generator=self.generator, dtype=self.noise_dtype)
            z = z.to(torch.float64)
            self.block = z * self.S if self.diagonal else z @ self.S.T  # Cov = s C / B
            self.remaining -= m
            self.j = 0
        xi = self.block[self.j]
        self.j += 1
        return torch.addcmul(xi, self.lam, u)


def simulate_quadratic_sgd(
    problem: NoisyQuadratic,
    schedule: Schedule,
    n_chains: int,
    generator: torch.Generator,
    start: ArrayLike | None = None,
) -> ChainVariance:
    """Many SGD chains at once on a noisy quadratic; stationary variance per direction.

    Each step, for all chains at once (state ``u`` of shape ``(n_chains, d)``) ::

        u <- u - eta * (lambda * u + xi),   xi ~ N(0, s C / B)

    with ``s = (n - B)/(n - 1)`` if ``schedule.replacement`` is false and ``problem.n`` is
    given, else 1: Gaussian noise with the minibatch covariance. Computation in float64.

    Parameters
    ----------
    problem: the quadratic; ``0 < eta lambda_i < 2`` is required (a stationary law exists),
        else ``ValueError`` as in :func:`ghost_optima.sgd.stationary.stationary_variance`.
    schedule: ``eta``, ``B``, steps, burn-in (take several ``1 / (eta lambda_min)``).
    generator: the only source of randomness; the same seed gives identical output.
    start: ``(n_chains, d)`` or ``(d,)`` start, in the eigenbasis; default ``theta*`` (zeros).

    Returns
    -------
    :class:`ChainVariance` with ``var`` ``(d,)`` and ``var_per_chain`` ``(n_chains, d)``.
    """
    gradient = _QuadraticGradient(problem, schedule, n_chains, generator)
    check_eta_lam(schedule.eta, gradient.lam.numpy())
    d = gradient.lam.numel()
    u0 = torch.zeros(n_chains, d, dtype=torch.float64)
    if start is not None:
        u0 = u0 + torch.as_tensor(as_numpy(start), dtype=torch.float64)
    run = run_chains(gradient, None, u0, schedule, generator, Watch(torch.zeros(d, dtype=u0.dtype)))
    return ChainVariance(
        var=run.proj_sq.mean(dim=0), var_per_chain=run.proj_sq, n_samples=run.n_samples
    )


@dataclass(frozen=True)
class LinearRegressionSGDResult(ChainVariance):
    """:class:`ChainVariance` of least-squares SGD, plus the quantities that predict it.

    Attributes (besides ``var``, ``var_per_chain``, ``n_samples``, all along ``eigvecs``)
    ----------
    lam: ``(p,)`` eigenvalues of ``H = X^T X / n``, descending.
    eigvecs: ``(p, p)`` matching eigenvectors (columns).
    noise_C: ``(p,)`` ``C_i = q_i^T C q_i`` with ``C`` the population (``1/n``) covariance of
        the per-sample gradients ``g_j = x_j (x_j^T theta* - y_j)`` at ``theta*``.
    theta_star: ``(p,)`` least-squares solution.
    """

    lam: Tensor
    eigvecs: Tensor
    noise_C: Tensor
    theta_star: Tensor


def _least_squares_gradient(X: Tensor, y: Tensor):
    """``g(theta, b) = X_b^T (X_b theta - y_b) / B`` for every chain, batched with ``bmm``."""
    n, p = X.shape
    # gather X and y in one index op (index_select: far cheaper than advanced indexing on CPU)
    Xy = torch.cat([X, y.unsqueeze(1)], dim=1).contiguous()

    def gradient(theta: Tensor, batch: Tensor | None) -> Tensor:
        n_chains = theta.shape[0]
        if batch is None:
            rows = Xy.expand(n_chains, n, p + 1)
        else:
            rows = Xy.index_select(0, batch.reshape(-1)).view(n_chains, batch.shape[1], p + 1)
        Xb, yb = rows[..., :p], rows[..., p]
        r = torch.bmm(Xb, theta.unsqueeze(2)).squeeze(2) - yb  # (n_chains, B)
        return torch.bmm(r.unsqueeze(1), Xb).squeeze(1).div_(rows.shape[1])  # X_b^T r / B

    return gradient


def simulate_linear_regression_sgd(
    X: Tensor, y: Tensor, schedule: Schedule, n_chains: int, generator: torch.Generator
) -> LinearRegressionSGDResult:
    """Real minibatch SGD on least squares, many chains at once, all started at ``theta*``.

    Loss ``L(theta) = ||X theta - y||^2 / (2 n)``, Hessian ``H = X^T X / n``. Every step each
    chain draws its own batch (:func:`ghost_optima.sgd.chains.sample_batches`; ``B`` distinct rows
    with ``schedule.replacement=False``) and steps ``theta <- theta - (eta / B) X_b^T (X_b theta
    - y_b)``. ``stationary_variance(eta, lam, noise_C, B, n=n)`` (``n=None`` with replacement)
    predicts ``var`` to leading order in ``eta`` (relative corrections of order
    ``eta * tr(H C_H) / ...``, small when ``eta lambda`` and ``p / B`` are).

    Parameters
    ----------
    X: ``(n, p)``; y: ``(n,)``. Computation in ``X``'s dtype (use float64).
    schedule, n_chains: as in :func:`simulate_quadratic_sgd`.
    generator: the only source of randomness.

    Returns
    -------
    :class:`LinearRegressionSGDResult`; ``var_per_chain[c, i]`` is the time average of
    ``(q_i . (theta_t - theta*))^2`` over the post-burn-in steps of chain ``c``.
    """
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"need X (n, p) and y (n,), got {tuple(X.shape)} and {tuple(y.shape)}")
    n, p = X.shape
    dtype = X.dtype
    # The fixed quantities are computed in NumPy float64: torch.linalg.lstsq (MKL) can differ
    # in the last bit with the memory alignment of its inputs, which would break bitwise
    # reproducibility for a fixed seed; NumPy's LAPACK calls showed no such dependence.
    Xn = X.detach().cpu().numpy().astype(np.float64)
    yn = y.detach().cpu().numpy().astype(np.float64)
    ts_n = np.linalg.lstsq(Xn, yn, rcond=None)[0]
    lam_n, Q_n = np.linalg.eigh(Xn.T @ Xn / n)
    lam_n, Q_n = lam_n[::-1].copy(), Q_n[:, ::-1].copy()
    G_n = Xn * (Xn @ ts_n - yn)[:, None]  # per-sample gradients at theta*, (n, p)
    C_n = (G_n @ Q_n).var(axis=0)  # population (1/n) variance
    check_eta_lam(schedule.eta, lam_n)
    theta_star = torch.as_tensor(ts_n, dtype=dtype)
    Q = torch.as_tensor(Q_n, dtype=dtype)
    run = run_chains(
        _least_squares_gradient(X, y.to(dtype)),
        n,
        theta_star.expand(n_chains, p),
        schedule,
        generator,
        Watch(theta_star, Q),
    )
    return LinearRegressionSGDResult(
        var=run.proj_sq.mean(dim=0),
        var_per_chain=run.proj_sq,
        n_samples=run.n_samples,
        lam=torch.as_tensor(lam_n, dtype=dtype),
        eigvecs=Q,
        noise_C=torch.as_tensor(C_n, dtype=dtype),
        theta_star=theta_star,
    )
