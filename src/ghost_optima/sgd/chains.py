"""The one SGD chain engine: many independent chains at once, each drawing its own batches.

A *chain* is plain SGD with a constant learning rate ``eta`` from a start ``theta_0``::

    theta_{t+1} = theta_t - eta * g(theta_t, b_t),        t = 0, 1, ..., n_steps - 1

where ``g`` is a stochastic gradient plugged in by the caller (:data:`Gradient`) and ``b_t`` is
the chain's minibatch at step ``t``: ``B`` indices into ``range(n)`` drawn by
:func:`sample_batches`, independently across steps and chains (not epoch-wise reshuffling).
The state of ``C`` chains is one ``(C, d)`` tensor, so each step is a few batched kernels
whatever ``C`` is.

What the engine records (:class:`ChainRecord`), relative to a centre ``theta*`` and optional
directions ``D`` of shape ``(d, k)`` (:class:`Watch`): after ``burn_in`` steps, the time
averages of ``u_t = D^T (theta_t - theta*)``, of ``u_t^2`` and of ``||theta_t - theta*||^2``;
and every ``record_every`` steps, ``||theta_t - theta*||^2`` itself. Those are the raw material
of the stationary variances of :mod:`ghost_optima.sgd.stationary`.

Randomness: the batches (and any noise a gradient draws) come from one explicit
:class:`torch.Generator`; nothing here seeds a global generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ghost_optima.core import timing

__all__ = ["ChainRecord", "Gradient", "Schedule", "Watch", "run_chains", "sample_batches"]

Gradient = Callable[[Tensor, Tensor | None], Tensor]
"""``g(theta, batch) -> (C, d)``: the stochastic gradient of every chain at its state.

``theta``: ``(C, d)``; ``batch``: ``(C, B)`` row indices from :func:`sample_batches`, or
``None`` for the full data set (``B = n``) or for a gradient that draws its own noise
(``n_data=None`` in :func:`run_chains`). It must not modify ``theta``.
"""


def sample_batches(
    n_chains: int, n: int, batch_size: int, generator: torch.Generator, *, replacement: bool
) -> Tensor:
    """``(n_chains, batch_size)`` indices into ``range(n)``: one minibatch per chain.

    ``replacement=True``: ``B`` i.i.d. uniform draws per row (repeats possible), so the batch
    mean of per-example gradients has covariance exactly ``C / B`` (``C`` their population
    covariance). ``replacement=False``: each row is a uniformly random ``B``-subset, the
    ``B`` smallest of ``n`` i.i.d. uniforms (their order within the row is unspecified); the
    covariance is then ``(C / B) (n - B) / (n - 1)`` (Cochran 1977, Sampling Techniques,
    Thm 2.2). Rows are independent. Without replacement costs ``O(n)`` draws per row, about
    20 times more than with replacement on CPU for the book's sizes.
    """
    if not 1 <= batch_size <= n:
        raise ValueError(f"need 1 <= batch_size <= n = {n}, got {batch_size}")
    if replacement:
        draws = torch.randint(0, n, (n_chains * batch_size,), generator=generator)
        return draws.view(n_chains, batch_size)
    uniforms = torch.rand(n_chains, n, generator=generator)
    return uniforms.topk(batch_size, dim=1, largest=False, sorted=False).indices


@dataclass(frozen=True)
class Schedule:
    """How every chain runs: learning rate, batch size, steps, burn-in, sampling.

    ``n_steps`` counts every step, burn-in included; the last ``n_steps - burn_in`` are
    averaged. ``replacement`` chooses how :func:`sample_batches` draws batches.
    """

    eta: float
    batch_size: int
    n_steps: int
    burn_in: int = 0
    replacement: bool = True

    def __post_init__(self) -> None:
        if not self.eta > 0:
            raise ValueError(f"eta must be positive, got {self.eta}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.burn_in < self.n_steps:
            raise ValueError(f"need 0 <= burn_in < n_steps, got {self.burn_in}, {self.n_steps}")


@dataclass(frozen=True)
class Watch:
    """What to record about the chains.

    ``centre``: ``theta*`` of shape ``(d,)``, the point distances are measured from;
    ``directions``: ``(d, k)`` columns to project the displacement on, or ``None`` for the
    coordinates themselves (``D = I``); ``record_every``: record ``||theta_t - theta*||^2``
    every this many steps (0: never).
    """

    centre: Tensor
    directions: Tensor | None = None
    record_every: int = 0


@dataclass(frozen=True)
class ChainRecord:
    """What :func:`run_chains` recorded.

    Attributes
    ----------
    proj_mean, proj_sq: ``(C, k)`` time averages, over the post-burn-in steps, of
        ``u_t = D^T (theta_t - theta*)`` and of ``u_t^2``.
    msd: ``(C,)`` time average of ``||theta_t - theta*||^2`` after burn-in.
    trace: ``(C, T)`` ``||theta_t - theta*||^2`` at ``steps`` (``T = 0`` without recording).
    steps: ``(T,)`` the recorded step numbers (0 is the start).
    n_samples: post-burn-in steps averaged.
    final: ``(C, d)`` the last iterates.
    """

    proj_mean: Tensor
    proj_sq: Tensor
    msd: Tensor
    trace: Tensor
    steps: Tensor
    n_samples: int
    final: Tensor

    def var_per_chain(self) -> Tensor:
        """``(C, k)`` variance along each direction about the mean over all chains.

        ``mean_t (u_t - m)^2 = proj_sq - 2 m proj_mean + m^2`` with ``m`` the pooled mean. The
        stationary mean of a nonlinear model is not exactly ``theta*`` (it moves by
        ``O(eta)``); every chain has the same one, estimated by pooling the chains. Where the
        mean is known to be ``theta*`` (linear gradients), ``proj_sq`` is the variance.
        """
        m = self.proj_mean.mean(dim=0, keepdim=True)
        return self.proj_sq - 2 * m * self.proj_mean + m * m


@timing.timed("chains")
def run_chains(
    gradient: Gradient,
    n_data: int | None,
    start: Tensor,
    schedule: Schedule,
    generator: torch.Generator,
    watch: Watch,
) -> ChainRecord:
    """Run ``C = start.shape[0]`` SGD chains of ``schedule`` from ``start`` (``(C, d)``).

    ``n_data`` is the number of examples the batches index; with ``batch_size == n_data``
    every step is full-batch gradient descent (``batch=None``, deterministic), and with
    ``n_data=None`` no batches are drawn (the gradient brings its own noise). Computation is in
    ``start``'s dtype; ``start`` is not modified.
    """
    if start.dim() != 2:
        raise ValueError(f"start must be (n_chains, d), got {tuple(start.shape)}")
    n_chains, d = start.shape
    dtype = start.dtype
    if n_data is not None and not 1 <= schedule.batch_size <= n_data:
        raise ValueError(f"need 1 <= batch_size <= n = {n_data}, got {schedule.batch_size}")
    if watch.record_every < 0:
        raise ValueError(f"record_every must be >= 0, got {watch.record_every}")
    centre = watch.centre.to(dtype)
    if centre.shape != (d,):
        raise ValueError(f"centre must have shape ({d},), got {tuple(centre.shape)}")
    D = None if watch.directions is None else watch.directions.to(dtype)
    if D is not None and (D.dim() != 2 or D.shape[0] != d):
        raise ValueError(f"directions must be ({d}, k), got {tuple(D.shape)}")
    k = d if D is None else D.shape[1]
    draw = n_data is not None and schedule.batch_size < n_data
    theta = start.clone()
    s_u = torch.zeros(n_chains, k, dtype=dtype)
    s_u2 = torch.zeros(n_chains, k, dtype=dtype)
    s_msd = torch.zeros(n_chains, dtype=dtype)
    trace: list[Tensor] = []
    rec_steps: list[int] = []
    every = watch.record_every

    def record(t: int) -> None:
        diff = theta - centre
        trace.append((diff * diff).sum(dim=1))
        rec_steps.append(t)

    if every:
        record(0)
    for t in range(1, schedule.n_steps + 1):
        batch = None
        if draw:
            batch = sample_batches(
                n_chains, n_data, schedule.batch_size, generator, replacement=schedule.replacement
            )
        theta.sub_(gradient(theta, batch), alpha=schedule.eta)
        if t > schedule.burn_in:
            diff = theta - centre
            u = diff if D is None else diff @ D
            if k:
                s_u.add_(u)
                s_u2.addcmul_(u, u)
            s_msd.add_((diff * diff).sum(dim=1))
        if every and t % every == 0:
            record(t)
    m = schedule.n_steps - schedule.burn_in
    return ChainRecord(
        proj_mean=s_u / m,
        proj_sq=s_u2 / m,
        msd=s_msd / m,
        trace=torch.stack(trace, dim=1) if trace else torch.zeros(n_chains, 0, dtype=dtype),
        steps=torch.tensor(rec_steps, dtype=torch.long),
        n_samples=m,
        final=theta,
    )
