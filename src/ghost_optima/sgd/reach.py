"""Which copies of the optimum count, and the decaying step (claim T6).

* **Merged units.** Under weight decay two hidden units of a wide network can coincide (up to
  sign for odd activations); their swap returns ``theta*`` itself. Units whose nearest partner
  is closer than ``merge_tol`` times the median unit norm count as merged
  (:func:`merge_threshold`, :func:`merged_fraction`), and swaps among them are not distinct
  copies. The nearest distinct copy of ``theta*`` is
  :func:`ghost_optima.symmetry.ghosts.nearest_ghost` with those units excluded; its direction
  ``e = (g - theta*) / ||g - theta*||`` in flat coordinates comes from :func:`flat_like`.
* **The contrast the claim rests on.** A decaying step (:func:`decaying_chains`) from the same
  start, against the plateau of a constant one.

Whether the cloud of iterates reaches a copy (the nearest copy of every iterate, the projected
spread along ``e``, how far ``theta*`` itself still moves) is :mod:`ghost_optima.sgd.copies`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ghost_optima.core.mlp import Params
from ghost_optima.sgd.chains import ChainRecord, Schedule, Watch
from ghost_optima.sgd.network_chains import MLPObjective, mlp_sgd_chains
from ghost_optima.symmetry.ghosts import unit_partner_distances, unit_vectors

__all__ = [
    "decaying_chains",
    "flat_like",
    "merge_threshold",
    "merged_fraction",
]


def merge_threshold(params: Params, merge_tol: float, layer: int = 1) -> float:
    """``merge_tol`` times the median norm of the unit vectors ``u_i`` of hidden ``layer``."""
    return merge_tol * float(unit_vectors(params, layer).double().norm(dim=1).median())


def merged_fraction(
    params: Params, activation_name: str, threshold: float, layer: int = 1
) -> float:
    """Fraction of the units of ``layer`` with a partner ``u_j`` (up to sign) closer than
    ``threshold``: the units that have merged."""
    nearest = unit_partner_distances(params, activation_name, layer)
    return float((nearest < threshold).double().mean())


def flat_like(params: Params, names: list[str]) -> Tensor:
    """``params`` flattened in the order ``names`` (the order of an objective's ``theta``)."""
    return torch.cat([params[k].reshape(-1) for k in names])


def decaying_chains(
    objective: MLPObjective,
    schedule: Schedule,
    n_segments: int,
    n_chains: int,
    generator: torch.Generator,
    watch: Watch,
    start: Tensor | None = None,
) -> tuple[ChainRecord, Tensor, Tensor]:
    """SGD whose step decays as ``eta / (1 + k)`` over ``n_segments`` equal segments.

    ``schedule`` gives ``eta``, ``B`` and the total number of steps; segment ``k``
    (``k = 0 .. n_segments - 1``, the last takes the remainder) runs at ``eta / (1 + k)``: a
    piecewise-constant ``eta_t = eta / (1 + t / t0)`` with ``t0`` one segment. Returns the last
    segment's :class:`ghost_optima.sgd.chains.ChainRecord` (its ``msd`` is the mean squared
    distance to ``watch.centre`` over the last segment), and the recorded squared distances
    ``(C, T)`` with their step numbers ``(T,)`` over the whole run (every
    ``watch.record_every`` steps within each segment; empty when 0).
    """
    if not 1 <= n_segments <= schedule.n_steps:
        raise ValueError(f"need 1 <= n_segments <= {schedule.n_steps}, got {n_segments}")
    length = schedule.n_steps // n_segments
    lengths = [length] * (n_segments - 1) + [schedule.n_steps - length * (n_segments - 1)]
    state, offset, traces, steps = start, 0, [], []
    part = None
    for k, m in enumerate(lengths):
        seg = Schedule(schedule.eta / (1 + k), schedule.batch_size, m, 0, schedule.replacement)
        part = mlp_sgd_chains(objective, seg, n_chains, generator, watch, state)
        state = part.final
        keep = slice(None) if k == 0 else slice(1, None)  # step 0 repeats the previous end
        traces.append(part.trace[:, keep])
        steps.append(part.steps[keep] + offset)
        offset += m
    assert part is not None
    return part, torch.cat(traces, dim=1), torch.cat(steps)
