"""The stationary law of SGD near a minimum, in closed form (claims T4-T6).

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

The simulators that test these forms are in :mod:`ghost_optima.sgd.known_problems` (known problems)
and
:mod:`ghost_optima.sgd.network_chains` (a network); the fits of measured clouds are in
:mod:`ghost_optima.sgd.fits`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor

__all__ = [
    "brief_eps_power_for_agreement",
    "brief_variance",
    "check_eta_lam",
    "finite_population_factor",
    "stationary_variance",
]

ArrayLike = float | Sequence[float] | np.ndarray | Tensor


def as_numpy(x: ArrayLike) -> np.ndarray:
    """``x`` as a float64 NumPy array (tensors detached and moved to the CPU)."""
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy().astype(np.float64)
    return np.asarray(x, dtype=np.float64)


def _out(x: np.ndarray) -> np.ndarray | float:
    return x if x.ndim else float(x)


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


def check_eta_lam(eta: float, lam: np.ndarray) -> np.ndarray:
    """``eta * lam`` after checking ``0 < eta lambda_i < 2`` (a stationary law exists) for all i."""
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
        ``n`` is given; see :func:`ghost_optima.landscape.gradient_noise.projected_noise_variance`),
        broadcastable with ``lam``.
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
    lam_a = as_numpy(lam)
    C_a = as_numpy(C)
    el = check_eta_lam(eta, lam_a)
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
    return _out(eta * as_numpy(eps_power) / (2.0 * n))


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
    var = as_numpy(
        stationary_variance(
            eta, lam, C, batch_size, exact=exact, n=n if finite_population else None
        )
    )
    return _out(2.0 * n * var / eta)
