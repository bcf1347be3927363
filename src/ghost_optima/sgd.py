"""SGD's stationary cloud near a minimum: closed forms, simulators and fits (claims T4-T6).

Linearize SGD around a minimum ``theta*`` of ``L`` with Hessian
``H = sum_i lambda_i q_i q_i^T``. With learning rate ``eta`` and minibatches of size ``B``, the
displacement ``u_t = Q^T (theta_t - theta*)`` obeys ::

    u_{t+1} = (I - eta Lambda) u_t - eta xi_t,      Cov(xi_t) = s * C / B  (in H's eigenbasis)

where ``C`` is the covariance of *per-sample* gradients at ``theta*`` and ``s = 1`` for
sampling with replacement (or an infinite data set) while ``s = (n - B) / (n - 1)`` for a batch
of ``B`` distinct points out of ``n`` (the finite-population correction; Cochran 1977,
Sampling Techniques, Thm 2.2). Each coordinate is an AR(1) process
``u_{t+1} = (1 - eta lambda_i) u_t - eta xi_{i,t}`` with ``Var(xi_i) = s C_i / B``,
``C_i = q_i^T C q_i``, so its stationary variance is *exactly* ::

    Var_i = eta^2 (s C_i / B) / (1 - (1 - eta lambda_i)^2)
          = eta s C_i / (B lambda_i (2 - eta lambda_i))          (0 < eta lambda_i < 2)

and to first order in ``eta lambda_i`` ::

    Var_i ~ eta s C_i / (2 B lambda_i)

(Mandt, Hoffman and Blei 2017, "Stochastic gradient descent as approximate Bayesian
inference", JMLR 18(134), Eq. 13 solved per eigendirection). The per-direction marginal is exact
for any ``C`` (the noise is fresh each step, so cross-covariances of ``xi`` between directions do
not enter a diagonal entry); only the *off-diagonal* covariances of the cloud need ``H`` and
``C`` to commute to take this form. For nonlinear models or state-dependent noise (e.g. least
squares, where the per-sample Hessians ``x x^T`` fluctuate) the forms hold to leading order in
``eta``.

The brief (arXiv 2411.07008, section 3) writes ``P(theta) ~ exp(-n sum_i beta_i lambda_i
(q_i . (theta - theta*))^2)`` with ``beta_i^{-1} ~ eta lambda_i ||q_i . eps||^2``, whose variance
``eta ||q_i . eps||^2 / (2 n)`` does not depend on ``lambda_i``; :func:`brief_variance` gives it
and :func:`brief_eps_power_for_agreement` says what ``eps`` must be for the two to agree.

Randomness: every simulator takes an explicit :class:`torch.Generator`; nothing here seeds a
global generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ghost_optima.stats import Estimate, bootstrap_ci

__all__ = [
    "ChainVariance",
    "LinearRegressionSGDResult",
    "LogVarianceFit",
    "MSDResult",
    "brief_eps_power_for_agreement",
    "brief_variance",
    "fit_log_variance",
    "finite_population_factor",
    "loglog_slope",
    "msd_plateau",
    "simulate_linear_regression_sgd",
    "simulate_quadratic_sgd",
    "stationary_variance",
]

ArrayLike = float | Sequence[float] | np.ndarray | Tensor

# Noise for this many steps is drawn in one call: amortizes the generator's overhead without
# holding the whole run in memory.
_NOISE_BLOCK = 256


def _np(x: ArrayLike) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy().astype(np.float64)
    return np.asarray(x, dtype=np.float64)


def _out(x: np.ndarray) -> np.ndarray | float:
    return x if x.ndim else float(x)


# --------------------------------------------------------------------------------------------
# closed forms
# --------------------------------------------------------------------------------------------


def finite_population_factor(batch_size: int, n: int | None) -> float:
    """``(n - B) / (n - 1)`` for ``B`` points drawn without replacement from ``n``; 1 if ``n`` is
    ``None`` (sampling with replacement, or an infinite data set).

    ``Var(mean of B draws without replacement) = (sigma^2 / B) (n - B) / (n - 1)`` with
    ``sigma^2`` the population (``1/n``) variance (Cochran 1977, Thm 2.2).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if n is None:
        return 1.0
    if n < 2 or batch_size > n:
        raise ValueError(f"need 2 <= n and batch_size <= n, got n={n}, batch_size={batch_size}")
    return (n - batch_size) / (n - 1)


def _check_eta_lam(eta: float, lam: np.ndarray) -> np.ndarray:
    if not eta > 0:
        raise ValueError(f"eta must be positive, got {eta}")
    el = eta * lam
    flat = np.atleast_1d(el)
    for i, x in enumerate(flat):
        if not x < 2:
            raise ValueError(
                f"SGD diverges along direction {i}: eta*lambda = {x:.6g} >= 2 "
                "(a stationary variance needs 0 < eta*lambda < 2)"
            )
        if not x > 0:
            raise ValueError(
                f"no stationary variance along direction {i}: eta*lambda = {x:.6g} <= 0 "
                "(flat or negative curvature: SGD random-walks or escapes along it)"
            )
    return el


def stationary_variance(
    eta: float,
    lam: ArrayLike,
    C: ArrayLike,
    batch_size: int,
    *,
    exact: bool = True,
    n: int | None = None,
) -> np.ndarray | float:
    """Predicted stationary variance of SGD along each Hessian eigendirection.

    ``exact=True`` (AR(1), exact for a quadratic loss with additive noise) ::

        Var_i = eta * s * C_i / (B * lambda_i * (2 - eta * lambda_i))

    ``exact=False`` (small-step limit, Mandt, Hoffman and Blei 2017) ::

        Var_i = eta * s * C_i / (2 * B * lambda_i)

    with ``s = (n - B) / (n - 1)`` when ``n`` is given (batches of ``B`` distinct points out of
    ``n``) and ``s = 1`` otherwise. The exact form is never below the limit, and their ratio
    ``2 / (2 - eta lambda_i)`` is 2 at ``eta lambda_i = 1``.

    Parameters
    ----------
    eta: learning rate, > 0.
    lam: Hessian eigenvalues ``lambda_i``, shape ``(k,)`` or scalar.
    C: per-sample gradient-noise variances ``C_i = q_i^T C q_i`` (population covariance when
        ``n`` is given; see :func:`ghost_optima.hessian.projected_noise_variance`), broadcastable
        with ``lam``.
    batch_size: ``B >= 1``.
    exact: AR(1) form (default) or the small-step limit.
    n: data-set size for the without-replacement correction, or ``None``.

    Returns
    -------
    Broadcast shape of ``lam`` and ``C`` as float64 (a float for scalar inputs).

    Raises
    ------
    ValueError
        ``"SGD diverges along direction i"`` if ``eta * lambda_i >= 2``; also if
        ``eta * lambda_i <= 0`` (no stationary law) or ``C_i < 0``.
    """
    lam_a = _np(lam)
    C_a = _np(C)
    el = _check_eta_lam(eta, lam_a)
    if np.any(C_a < 0):
        raise ValueError("noise variances C must be non-negative")
    s = finite_population_factor(batch_size, n)
    denom = 2.0 - el if exact else 2.0
    return _out(eta * s * C_a / (batch_size * lam_a * denom))


def brief_variance(eta: float, eps_power: ArrayLike, n: int) -> np.ndarray | float:
    """The brief's stationary variance ``eta * ||q_i . eps||^2 / (2 n)``.

    The brief (arXiv 2411.07008, section 3) writes the cloud as
    ``P(theta) ~ exp(-n sum_i beta_i lambda_i (q_i . (theta - theta*))^2)`` with
    ``beta_i^{-1} ~ eta lambda_i ||q_i . eps||^2``. Its variance along ``q_i`` is
    ``1 / (2 n beta_i lambda_i) = eta ||q_i . eps||^2 / (2 n)``: no ``lambda_i``.

    What ``eps`` must mean. Setting this equal to the standard form of
    :func:`stationary_variance` and solving,
    ``eta E_i / (2 n) = eta s C_i / (B lambda_i (2 - eta lambda_i))`` gives ::

        E_i = ||q_i . eps||^2 = 2 n s C_i / (B lambda_i (2 - eta lambda_i))   (exact)
                              ~ n s C_i / (B lambda_i)                         (small step)

    (``s = (n - B)/(n - 1)`` without replacement, else 1). So ``eps`` is *not* the per-sample
    gradient noise (for which ``||q_i . eps||^2 = C_i``): read that way the brief misses the
    factor ``n / (B lambda_i)``, and in particular the ``1 / lambda_i``. The two agree with a
    direction-independent ``||q_i . eps||^2 = n s kappa / B`` exactly when ``C_i = kappa
    lambda_i`` (small step), i.e. when the gradient-noise covariance is proportional to the
    Hessian along its eigendirections; that is the case near the minimum of a well-specified
    negative log-likelihood, where ``C ~ Fisher ~ H`` (the setting in which claim T5's
    "anisotropies cancel" holds). :func:`brief_eps_power_for_agreement` computes ``E_i``.

    Parameters
    ----------
    eta: learning rate. eps_power: ``||q_i . eps||^2``, shape ``(k,)`` or scalar. n: data-set
        size.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return _out(eta * _np(eps_power) / (2.0 * n))


def brief_eps_power_for_agreement(
    eta: float,
    lam: ArrayLike,
    C: ArrayLike,
    batch_size: int,
    n: int,
    *,
    exact: bool = True,
    finite_population: bool = False,
) -> np.ndarray | float:
    """``||q_i . eps||^2`` for which :func:`brief_variance` equals :func:`stationary_variance`.

    ``E_i = 2 n s C_i / (B lambda_i (2 - eta lambda_i))`` (``exact``) or
    ``n s C_i / (B lambda_i)`` (small step); ``s = (n - B)/(n - 1)`` if ``finite_population``
    else 1. See :func:`brief_variance` for the derivation.
    """
    var = _np(
        stationary_variance(
            eta, lam, C, batch_size, exact=exact, n=n if finite_population else None
        )
    )
    return _out(2.0 * n * var / eta)


# --------------------------------------------------------------------------------------------
# simulators
# --------------------------------------------------------------------------------------------


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
            bootstrap_ci(vpc[:, i], n_boot=n_boot, level=level, seed=seed)
            for i in range(vpc.shape[1])
        ]


def _noise_factor(C: ArrayLike, d: int, dtype: torch.dtype) -> tuple[Tensor, bool]:
    """``S`` with ``S S^T = C``: ``(d,)`` standard deviations if ``C`` is a vector (diagonal),
    else a ``(d, d)`` factor from the eigendecomposition (PSD, tolerant of zero modes)."""
    Ct = torch.as_tensor(_np(C), dtype=torch.float64)
    if Ct.ndim <= 1:
        Ct = Ct.expand(d) if Ct.ndim == 0 else Ct
        if Ct.shape != (d,):
            raise ValueError(f"C must have shape ({d},) or ({d}, {d}), got {tuple(Ct.shape)}")
        if torch.any(Ct < 0):
            raise ValueError("noise variances C must be non-negative")
        return Ct.sqrt().to(dtype), True
    if Ct.shape != (d, d):
        raise ValueError(f"C must have shape ({d},) or ({d}, {d}), got {tuple(Ct.shape)}")
    w, V = torch.linalg.eigh(0.5 * (Ct + Ct.T))
    if w.min() < -1e-10 * max(1.0, float(w.abs().max())):
        raise ValueError("noise covariance C must be positive semi-definite")
    return (V * w.clamp_min(0).sqrt()).to(dtype), False


def _run_quadratic(
    lam: Tensor,
    C: ArrayLike,
    eta: float,
    batch_size: int,
    n_steps: int,
    theta0: Tensor,
    *,
    burn_in: int,
    generator: torch.Generator,
    n: int | None,
    noise_dtype: torch.dtype,
    record_msd_every: int = 0,
) -> tuple[Tensor, Tensor | None]:
    """Core loop of the noisy-quadratic SGD: returns (sum of u^2 after burn-in per chain,
    recorded ||u||^2 per chain or None). ``theta0``: ``(n_chains, d)``, modified copy."""
    n_chains, d = theta0.shape
    dtype = theta0.dtype
    S, diagonal = _noise_factor(C, d, dtype)
    scale = eta * (finite_population_factor(batch_size, n) / batch_size) ** 0.5
    S = S * scale
    rho = (1.0 - eta * lam).to(dtype)
    u = theta0.clone()
    acc = torch.zeros(n_chains, d, dtype=dtype)
    msd = None
    if record_msd_every:
        msd = torch.empty(n_chains, n_steps // record_msd_every + 1, dtype=dtype)
        msd[:, 0] = (u * u).sum(dim=1)
    t = 0
    while t < n_steps:
        m = min(_NOISE_BLOCK, n_steps - t)
        z = torch.randn(m, n_chains, d, generator=generator, dtype=noise_dtype).to(dtype)
        noise = z * S if diagonal else z @ S.T  # eta * xi, Cov = eta^2 s C / B
        for j in range(m):
            u.mul_(rho).sub_(noise[j])
            t += 1
            if t > burn_in:
                acc.addcmul_(u, u)
            if msd is not None and t % record_msd_every == 0:
                msd[:, t // record_msd_every] = (u * u).sum(dim=1)
    return acc, msd


def simulate_quadratic_sgd(
    H_eigvals: ArrayLike,
    C_eigvals_or_matrix: ArrayLike,
    eta: float,
    batch_size: int,
    n_steps: int,
    n_chains: int,
    *,
    burn_in: int,
    generator: torch.Generator,
    n: int | None = None,
    theta0: ArrayLike | None = None,
    dtype: torch.dtype = torch.float64,
    noise_dtype: torch.dtype = torch.float32,
) -> ChainVariance:
    """Many SGD chains at once on a noisy quadratic; stationary variance per direction.

    Works in the Hessian's eigenbasis (``theta* = 0``, ``H = diag(lambda)``): each step, for all
    chains at once (state ``u`` of shape ``(n_chains, d)``, no Python loop over chains) ::

        u <- (1 - eta lambda) * u - eta xi,   xi ~ N(0, s C / B)

    with ``s = (n - B)/(n - 1)`` if ``n`` is given, else 1 (Gaussian noise with the minibatch
    covariance). ``C`` is either the vector of ``C_i = q_i^T C q_i`` (noise uncorrelated across
    directions; ``H`` and ``C`` commute) or a full ``(d, d)`` PSD matrix in the eigenbasis
    (non-commuting case; the per-direction variance is still the exact AR(1) form).

    Parameters
    ----------
    H_eigvals: ``(d,)``; ``0 < eta lambda_i < 2`` is required (a stationary law exists),
        else ``ValueError`` as in :func:`stationary_variance`.
    C_eigvals_or_matrix: ``(d,)`` or ``(d, d)``.
    eta, batch_size: learning rate and ``B``.
    n_steps: total steps per chain (burn-in included); n_chains: number of chains.
    burn_in: steps discarded before averaging (take several ``1 / (eta lambda_min)``).
    generator: the only source of randomness; the same seed gives identical output.
    n: data-set size for the finite-population factor, or ``None``.
    theta0: ``(n_chains, d)`` or ``(d,)`` start, in the eigenbasis; default ``theta*`` (zeros).
    dtype: dtype of the iterates and accumulators.
    noise_dtype: dtype in which the standard normal draws are generated before the cast to
        ``dtype``. Default float32: PyTorch's CPU sampler is vectorized only for float32 (about
        8x faster than float64 here); float32 draws are capped near 5.8 sigma, which changes
        their variance by under 1e-6 relative (checked: 2e8 draws gave variance 1.00005 and
        kurtosis 3.0003). Pass ``torch.float64`` for full-precision draws.

    Returns
    -------
    :class:`ChainVariance` with ``var`` ``(d,)`` and ``var_per_chain`` ``(n_chains, d)``.
    """
    lam = torch.as_tensor(_np(H_eigvals), dtype=torch.float64).reshape(-1)
    d = lam.numel()
    _check_eta_lam(eta, lam.numpy())
    if not 0 <= burn_in < n_steps:
        raise ValueError(f"need 0 <= burn_in < n_steps, got {burn_in}, {n_steps}")
    u0 = torch.zeros(n_chains, d, dtype=dtype)
    if theta0 is not None:
        u0 = u0 + torch.as_tensor(_np(theta0), dtype=dtype)
    acc, _ = _run_quadratic(
        lam,
        C_eigvals_or_matrix,
        eta,
        batch_size,
        n_steps,
        u0,
        burn_in=burn_in,
        generator=generator,
        n=n,
        noise_dtype=noise_dtype,
    )
    n_samples = n_steps - burn_in
    vpc = acc / n_samples
    return ChainVariance(var=vpc.mean(dim=0), var_per_chain=vpc, n_samples=n_samples)


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


def _sample_batches(n_chains: int, n: int, B: int, generator: torch.Generator) -> Tensor:
    """``(n_chains, B)`` row indices, each row a uniform ``B``-subset of ``range(n)``.

    The ``B`` smallest of ``n`` i.i.d. uniforms index a uniformly random subset.
    """
    r = torch.rand(n_chains, n, generator=generator)
    return r.topk(B, dim=1, largest=False, sorted=False).indices


def simulate_linear_regression_sgd(
    X: Tensor,
    y: Tensor,
    eta: float,
    batch_size: int,
    n_steps: int,
    n_chains: int,
    *,
    burn_in: int,
    generator: torch.Generator,
) -> LinearRegressionSGDResult:
    """Real minibatch SGD on least squares, many chains at once.

    Loss ``L(theta) = ||X theta - y||^2 / (2 n)``, Hessian ``H = X^T X / n``. Every step, each
    chain draws its own batch of ``B`` *distinct* rows (uniform ``B``-subsets, independent across
    steps and chains; not epoch-wise reshuffling) and steps ::

        theta <- theta - (eta / B) X_b^T (X_b theta - y_b)

    vectorized over chains with batched indexing and ``bmm`` (state ``(n_chains, p)``). Chains
    start at ``theta*`` (the least-squares solution). The noise is state-dependent (the
    per-sample Hessians ``x x^T`` fluctuate), so
    ``stationary_variance(eta, lam, noise_C, B, n=n)`` predicts ``var`` to leading order in
    ``eta`` (relative corrections of order ``eta * tr(H C_H) / ...``, small when ``eta lambda``
    and ``p / B`` are).

    Parameters
    ----------
    X: ``(n, p)``; y: ``(n,)``. Computation in ``X``'s dtype (use float64).
    eta, batch_size, n_steps, n_chains, burn_in: as in :func:`simulate_quadratic_sgd`.
    generator: the only source of randomness.

    Returns
    -------
    :class:`LinearRegressionSGDResult`; ``var_per_chain[c, i]`` is the time average of
    ``(q_i . (theta_t - theta*))^2`` over the post-burn-in steps of chain ``c``.
    """
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"need X (n, p) and y (n,), got {tuple(X.shape)} and {tuple(y.shape)}")
    n, p = X.shape
    B = batch_size
    if not 1 <= B <= n:
        raise ValueError(f"need 1 <= batch_size <= n = {n}, got {B}")
    if not 0 <= burn_in < n_steps:
        raise ValueError(f"need 0 <= burn_in < n_steps, got {burn_in}, {n_steps}")
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
    theta_star = torch.as_tensor(ts_n, dtype=dtype)
    lam = torch.as_tensor(lam_n, dtype=dtype)
    Q = torch.as_tensor(Q_n, dtype=dtype)
    noise_C = torch.as_tensor(C_n, dtype=dtype)
    y = y.to(dtype)
    _check_eta_lam(eta, lam.cpu().numpy())

    # gather X and y in one index op (index_select: far cheaper than advanced indexing on CPU)
    Xy = torch.cat([X, y.unsqueeze(1)], dim=1).contiguous()
    theta = theta_star.expand(n_chains, p).clone()
    acc = torch.zeros(n_chains, p, dtype=dtype)
    step = eta / B
    for t in range(1, n_steps + 1):
        idx = _sample_batches(n_chains, n, B, generator)
        batch = Xy.index_select(0, idx.reshape(-1)).view(n_chains, B, p + 1)
        Xb, yb = batch[..., :p], batch[..., p]
        r = torch.bmm(Xb, theta.unsqueeze(2)).squeeze(2) - yb  # (n_chains, B)
        g = torch.bmm(r.unsqueeze(1), Xb).squeeze(1)  # (n_chains, p), = X_b^T r
        theta.sub_(g, alpha=step)
        if t > burn_in:
            u = (theta - theta_star) @ Q
            acc.addcmul_(u, u)
    n_samples = n_steps - burn_in
    vpc = acc / n_samples
    return LinearRegressionSGDResult(
        var=vpc.mean(dim=0),
        var_per_chain=vpc,
        n_samples=n_samples,
        lam=lam,
        eigvecs=Q,
        noise_C=noise_C,
        theta_star=theta_star,
    )


# --------------------------------------------------------------------------------------------
# T6: distance to the optimum over time
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MSDResult:
    """Mean squared distance to ``theta*`` over time, SGD chains vs full-batch GD.

    Attributes
    ----------
    steps: ``(T,)`` step numbers at which the distance was recorded (0 included).
    msd_sgd_per_chain: ``(n_chains, T)``, ``||theta_t - theta*||^2`` per chain.
    msd_sgd: ``(T,)`` mean over chains.
    msd_gd: ``(T,)`` the same for noise-free full-batch gradient descent from the same start.
    plateau_per_chain: ``(n_chains,)`` time average of ``||theta_t - theta*||^2`` over the last
        ``plateau_frac`` of the recorded steps, per chain.
    plateau: mean of ``plateau_per_chain``.
    predicted_plateau: ``sum_i`` of the exact :func:`stationary_variance`.
    predicted_plateau_small_step: the same with the small-step limit, ``eta / B * sum_i s C_i /
        (2 lambda_i)``: linear in ``eta / B`` (claim T6).
    """

    steps: Tensor
    msd_sgd_per_chain: Tensor
    msd_sgd: Tensor
    msd_gd: Tensor
    plateau_per_chain: Tensor
    plateau: float
    predicted_plateau: float
    predicted_plateau_small_step: float


def msd_plateau(
    H_eigvals: ArrayLike,
    C_eigvals_or_matrix: ArrayLike,
    eta: float,
    batch_size: int,
    n_steps: int,
    n_chains: int,
    *,
    generator: torch.Generator,
    theta0: ArrayLike | None = None,
    n: int | None = None,
    record_every: int = 1,
    plateau_frac: float = 0.5,
    dtype: torch.dtype = torch.float64,
    noise_dtype: torch.dtype = torch.float32,
) -> MSDResult:
    """Mean squared distance to the optimum: SGD chains plateau, gradient descent does not.

    Same noisy quadratic as :func:`simulate_quadratic_sgd` (eigenbasis, ``theta* = 0``). All
    chains and the GD run start at ``theta0`` (default: the all-ones vector). GD obeys
    ``u_t = (1 - eta lambda)^t u_0``, so its distance decays to 0 geometrically; SGD's is, in
    expectation, GD's plus the accumulated noise variance, which saturates at
    ``sum_i Var_i = sum_i eta s C_i / (B lambda_i (2 - eta lambda_i)) ~ (eta / B) sum_i s C_i /
    (2 lambda_i)``: the optimum is never reached, at a distance that grows with ``eta`` and
    shrinks with ``B`` (claim T6).

    Parameters
    ----------
    n_steps: steps per chain; record_every: record every this many steps.
    plateau_frac: fraction of the recorded points, at the end, averaged into the plateau (the
        transient, about ``1 / (eta lambda_min)`` steps, should lie before it).
    Others as in :func:`simulate_quadratic_sgd`.
    """
    if not 0 < plateau_frac <= 1:
        raise ValueError(f"plateau_frac must lie in (0, 1], got {plateau_frac}")
    if record_every < 1 or n_steps < record_every:
        raise ValueError("need 1 <= record_every <= n_steps")
    lam = torch.as_tensor(_np(H_eigvals), dtype=torch.float64).reshape(-1)
    d = lam.numel()
    u0 = torch.ones(d, dtype=dtype) if theta0 is None else torch.as_tensor(_np(theta0), dtype=dtype)
    C_arr = _np(C_eigvals_or_matrix)
    C_diag = np.diag(C_arr) if C_arr.ndim == 2 else np.broadcast_to(C_arr, (d,))
    pred = float(np.sum(stationary_variance(eta, lam, C_diag, batch_size, n=n)))
    pred0 = float(np.sum(stationary_variance(eta, lam, C_diag, batch_size, n=n, exact=False)))
    _, msd = _run_quadratic(
        lam,
        C_eigvals_or_matrix,
        eta,
        batch_size,
        n_steps,
        u0.expand(n_chains, d).clone(),
        burn_in=n_steps,
        generator=generator,
        n=n,
        noise_dtype=noise_dtype,
        record_msd_every=record_every,
    )
    assert msd is not None
    steps = torch.arange(msd.shape[1]) * record_every
    rho = (1.0 - eta * lam).to(dtype)
    gd = (rho * rho).unsqueeze(0) ** steps.to(dtype).unsqueeze(1) * (u0 * u0)
    T = msd.shape[1]
    tail = max(1, int(round(plateau_frac * T)))
    plateau_pc = msd[:, T - tail :].mean(dim=1)
    return MSDResult(
        steps=steps,
        msd_sgd_per_chain=msd,
        msd_sgd=msd.mean(dim=0),
        msd_gd=gd.sum(dim=1),
        plateau_per_chain=plateau_pc,
        plateau=float(plateau_pc.mean()),
        predicted_plateau=pred,
        predicted_plateau_small_step=pred0,
    )


# --------------------------------------------------------------------------------------------
# fits with bootstrap intervals
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogVarianceFit:
    """``log Var_i = a + b log lambda_i + c log C_i``, each coefficient with an interval.

    The standard small-step form predicts ``b = -1``, ``c = 1``, ``a = log(eta s / (2 B))``;
    the brief's (with ``eps`` fixed across directions) predicts ``b = 0``. ``resampled`` says
    what the bootstrap resampled: ``"directions"`` or ``"chains"``.
    """

    a: Estimate
    b: Estimate
    c: Estimate
    n_directions: int
    resampled: str


def _lstsq_coef(logv: np.ndarray, loglam: np.ndarray, logC: np.ndarray) -> np.ndarray:
    A = np.column_stack([np.ones_like(loglam), loglam, logC])
    coef, *_ = np.linalg.lstsq(A, logv, rcond=None)
    return coef


def _positive_log(x: np.ndarray, name: str) -> np.ndarray:
    if np.any(~np.isfinite(x)) or np.any(x <= 0):
        raise ValueError(f"{name} must be finite and positive to take logs")
    return np.log(x)


def fit_log_variance(
    var: ArrayLike,
    lam: ArrayLike,
    C: ArrayLike,
    *,
    seed: int = 0,
    n_boot: int = 2000,
    level: float = 0.95,
) -> LogVarianceFit:
    """Least-squares fit of ``log Var_i = a + b log lambda_i + c log C_i`` with bootstrap CIs.

    Two designs, chosen by the shape of ``var``:

    * ``var`` of shape ``(k,)`` (one variance per direction): the fit is ordinary least squares
      over the ``k`` directions, and the percentile bootstrap resamples *directions* (triples
      ``(Var_i, lambda_i, C_i)``), so the interval reflects scatter about the fitted plane.
    * ``var`` of shape ``(n_chains, k)`` (per-chain or per-seed variances, e.g.
      :attr:`ChainVariance.var_per_chain`), ``lam`` and ``C`` of shape ``(k,)``: the point
      estimate fits the log of the *mean over chains*; the bootstrap resamples *chains* (rows),
      re-averages and re-fits, so the interval reflects seed-to-seed variation of the
      simulation, the uncertainty a reader rerunning it with other seeds would see. (Averaging
      before the log avoids the Jensen bias of averaging per-chain logs.)
      If ``lam`` and ``C`` are ``(n_chains, k)`` too (each seed its own problem), each resample
      is fitted by pooled least squares over all its ``(seed, direction)`` triples.

    Each of ``a``, ``b``, ``c`` is a :class:`~ghost_optima.stats.Estimate` from
    :func:`~ghost_optima.stats.bootstrap_ci` with the same ``seed`` (hence the same resamples).
    Needs ``k >= 3`` directions with ``log lambda`` and ``log C`` not collinear (if ``C`` is
    proportional to a power of ``lambda``, ``b`` and ``c`` are not separately identifiable and a
    ``ValueError`` is raised).
    """
    V = _np(var)
    L = _np(lam)
    Cn = _np(C)
    if V.ndim == 1:
        if L.shape != V.shape or Cn.shape != V.shape:
            raise ValueError("var, lam and C must have the same shape (k,)")
        rows = np.column_stack(
            [_positive_log(V, "var"), _positive_log(L, "lam"), _positive_log(Cn, "C")]
        )
        resampled = "directions"

        def coefs(r: np.ndarray) -> np.ndarray:
            return _lstsq_coef(r[:, 0], r[:, 1], r[:, 2])

        k = V.shape[0]
        design_L, design_C = rows[:, 1], rows[:, 2]
    elif V.ndim == 2:
        k = V.shape[1]
        resampled = "chains"
        _positive_log(V, "var")
        if L.ndim == 1 and Cn.ndim == 1:
            if L.shape != (k,) or Cn.shape != (k,):
                raise ValueError("lam and C must have shape (k,) matching var's columns")
            logL, logC = _positive_log(L, "lam"), _positive_log(Cn, "C")
            rows = V

            def coefs(r: np.ndarray) -> np.ndarray:
                return _lstsq_coef(np.log(r.mean(axis=0)), logL, logC)

            design_L, design_C = logL, logC
        elif L.shape == V.shape and Cn.shape == V.shape:
            rows = np.stack(
                [np.log(V), _positive_log(L, "lam"), _positive_log(Cn, "C")], axis=-1
            )  # (n_chains, k, 3)

            def coefs(r: np.ndarray) -> np.ndarray:
                flat = r.reshape(-1, 3)
                return _lstsq_coef(flat[:, 0], flat[:, 1], flat[:, 2])

            design_L, design_C = rows[..., 1].ravel(), rows[..., 2].ravel()
        else:
            raise ValueError("lam and C must be (k,) or have var's shape (n_chains, k)")
    else:
        raise ValueError(f"var must be (k,) or (n_chains, k), got shape {V.shape}")
    A = np.column_stack([np.ones_like(design_L), design_L, design_C])
    if k < 3 or np.linalg.matrix_rank(A) < 3:
        raise ValueError(
            "log lambda and log C are collinear (or fewer than 3 directions): "
            "b and c are not identifiable"
        )
    ests = [
        bootstrap_ci(rows, lambda r, j=j: float(coefs(r)[j]), n_boot=n_boot, level=level, seed=seed)
        for j in range(3)
    ]
    return LogVarianceFit(a=ests[0], b=ests[1], c=ests[2], n_directions=k, resampled=resampled)


def loglog_slope(
    x: ArrayLike,
    y_per_seed: ArrayLike,
    *,
    seed: int = 0,
    n_boot: int = 2000,
    level: float = 0.95,
) -> Estimate:
    """Slope of ``log y`` against ``log x`` with a bootstrap interval over seeds.

    ``x``: ``(m,)`` positive abscissae (e.g. learning rates or batch sizes).
    ``y_per_seed``: ``(n_seeds, m)`` positive values (e.g. MSD plateaus), one row per seed, or
    ``(m,)`` for a single seed (the interval then collapses to the value).

    The point estimate is the least-squares slope of ``log(mean over seeds of y)`` on
    ``log x``; the percentile bootstrap resamples seeds (rows), so the interval reflects
    seed-to-seed variation. For claim T6 the small-step theory predicts slope ``+1`` in ``eta``
    and ``-1`` in ``B``.
    """
    lx = _positive_log(_np(x).reshape(-1), "x")
    Y = _np(y_per_seed)
    if Y.ndim == 1:
        Y = Y[None, :]
    if Y.ndim != 2 or Y.shape[1] != lx.shape[0]:
        raise ValueError(f"y_per_seed must be (n_seeds, {lx.shape[0]}), got {Y.shape}")
    if lx.shape[0] < 2 or np.ptp(lx) == 0:
        raise ValueError("need at least two distinct x values")
    _positive_log(Y, "y_per_seed")
    xc = lx - lx.mean()

    def slope(r: np.ndarray) -> float:
        ly = np.log(r.mean(axis=0))
        return float(xc @ (ly - ly.mean()) / (xc @ xc))

    return bootstrap_ci(Y, slope, n_boot=n_boot, level=level, seed=seed)
