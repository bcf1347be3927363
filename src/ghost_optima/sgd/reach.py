"""Does SGD's cloud reach a ghost copy of the optimum? (claim T6).

Three measurements of a cloud of SGD iterates ``theta_t`` around a minimum ``theta*``:

* **The spread toward the nearest distinct copy.** With ``g`` the nearest ghost copy of
  ``theta*`` (:func:`ghost_optima.symmetry.ghosts.nearest_ghost`) whose two swapped units have not
  merged, ``e = (g - theta*) / ||g - theta*||`` and ``delta = ||g - theta*||``, the *projected
  ratio* is ::

      rho = sqrt(mean_{c, t} ((theta_{c,t} - theta*) . e)^2) / delta

  over chains ``c`` and late iterates ``t``. The total radius ``sqrt(mean ||theta_t -
  theta*||^2)`` sums the spread of every one of ``d`` directions; only the spread along ``e``
  moves an iterate toward ``g``. An iterate is nearer ``g`` than ``theta*`` exactly when its
  projection exceeds ``delta / 2``.
* **Merged units.** Under weight decay two hidden units of a wide network can coincide (up to
  sign for odd activations); their swap returns ``theta*`` itself. Units whose nearest partner
  is closer than ``merge_tol`` times the median unit norm count as merged
  (:func:`merge_threshold`), and swaps among them are not distinct copies.
* **Swap events.** Weight matching (:func:`ghost_optima.symmetry.align.align` over the
  permutations, after :func:`signs_toward` for odd activations) of ``theta_t`` to ``theta*``
  returns the permutation that best aligns them; a non-identity permutation means the iterate
  is closer, by that criterion, to a permuted copy of ``theta*`` than to ``theta*``
  (:mod:`ghost_optima.sgd.copies` finds the nearest copy exactly for one hidden layer).

And the contrast the claim rests on: a decaying step (:func:`decaying_chains`) from the same
start, against the plateau of a constant one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from ghost_optima.core.mlp import Params, activation
from ghost_optima.core.stats import Estimate, bootstrap
from ghost_optima.sgd.chains import ChainRecord, Schedule, Watch
from ghost_optima.sgd.network_chains import MLPObjective, mlp_sgd_chains
from ghost_optima.symmetry.align import align
from ghost_optima.symmetry.ghosts import unit_pair_distances, unit_partner_distances, unit_vectors
from ghost_optima.symmetry.group import Transform, apply_transform, mlp_permutation_spec

__all__ = [
    "Snapshots",
    "decaying_chains",
    "flat_like",
    "merge_threshold",
    "merged_fraction",
    "nearer_fraction",
    "projected_ratio",
    "projected_sq",
    "sgd_snapshots",
    "signs_toward",
    "swap_events",
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


def projected_sq(iterates: Tensor, centre: Tensor, ghost: Tensor) -> Tensor:
    """``(C,)``: per chain, the mean over ``t`` of ``((theta_t - centre) . e)^2``.

    ``iterates``: ``(C, T, d)`` (or ``(C, d)``, one iterate per chain); ``e`` is the unit vector
    from ``centre`` to ``ghost`` (both ``(d,)``).
    """
    x = iterates if iterates.dim() == 3 else iterates.unsqueeze(1)
    e = ghost - centre
    e = e / e.norm()
    return ((x - centre) @ e).pow(2).mean(dim=1)


def projected_ratio(proj_sq: np.ndarray, distance: float, *, n_boot: int, seed: int) -> Estimate:
    """``sqrt(mean_c proj_sq[c]) / distance`` with a percentile bootstrap over chains.

    ``proj_sq``: ``(C,)`` per-chain mean squared projections (equal numbers of iterates per
    chain), from :func:`projected_sq` or a :class:`ghost_optima.sgd.chains.Watch` along ``e``.
    """
    values = np.asarray(proj_sq, dtype=float).reshape(-1)
    if not (distance > 0 and math.isfinite(distance)):
        raise ValueError(f"the ghost's distance must be positive and finite, got {distance}")
    return bootstrap(
        lambda i: math.sqrt(values[i].mean()) / distance, len(values), n_boot=n_boot, seed=seed
    )


def nearer_fraction(points: Tensor, centre: Tensor, ghost: Tensor) -> float:
    """Fraction of the rows of ``points`` (``(N, d)``) strictly nearer ``ghost`` than ``centre``."""
    to_ghost = (points - ghost).norm(dim=1)
    to_centre = (points - centre).norm(dim=1)
    return float((to_ghost < to_centre).double().mean())


def signs_toward(reference: Params, params: Params) -> dict[str, Tensor]:
    """The signs (+-1 per hidden unit of ``params``) of the signed matching to ``reference``.

    Layer by layer (after the flips of the layer below, which multiply the columns of ``W_l``),
    each unit ``j`` of ``params`` is described by its incoming row and bias ``r_j`` (and, in the
    last hidden layer, its outgoing column too); the assignment ``k(j)`` minimising ``sum_j
    min_sigma ||r_j - sigma r*_k(j)||`` is solved exactly
    (``scipy.optimize.linear_sum_assignment``) and ``s_j`` is the minimising ``sigma``. Being
    one bijection, it gives merged units of opposite signs consistent flips; unlike a canonical
    rule such as :func:`ghost_optima.symmetry.align.normalize_signs`, which flips a unit whose two
    largest incoming weights nearly tie when noise swaps their order, a point near
    ``reference`` keeps every sign.
    """
    signs: dict[str, Tensor] = {}
    prev = None
    n_hidden = len(params) // 2 - 1
    for layer in range(1, n_hidden + 1):
        w, b = params[f"W{layer}"].double(), params[f"b{layer}"].double()
        parts = [w if prev is None else w * prev, b.unsqueeze(1)]
        ref_parts = [reference[f"W{layer}"].double(), reference[f"b{layer}"].double().unsqueeze(1)]
        if layer == n_hidden:
            parts.append(params[f"W{layer + 1}"].double().T)
            ref_parts.append(reference[f"W{layer + 1}"].double().T)
        rows, ref = torch.cat(parts, dim=1), torch.cat(ref_parts, dim=1)
        plus, minus = torch.cdist(rows, ref), torch.cdist(rows, -ref)
        j, k = linear_sum_assignment(torch.minimum(plus, minus).numpy())
        flip = (minus[j, k] < plus[j, k]).numpy()
        prev = torch.ones(len(b), dtype=torch.float64)
        prev[torch.as_tensor(j[flip])] = -1.0
        signs[f"P{layer}"] = prev
    return signs


def swap_events(
    centre: Params, iterates: list[Params], activation_name: str, *, merged_below: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """For each iterate: does weight matching to ``centre`` return a non-identity permutation?

    For odd activations each iterate's units are first given the signs that match ``centre``
    (:func:`signs_toward`); then weight matching over the permutations, ``align(centre,
    iterate, mlp_permutation_spec(L))`` (:func:`ghost_optima.symmetry.align.align`). Returns
    two bool arrays of ``len(iterates)``: *any* non-identity permutation, and a *distinct* one,
    which moves some unit ``i`` to a unit ``j`` that has not merged with it (``||u_i - sigma
    u_j|| >= merged_below`` at ``centre``). Swaps among merged units return (almost) ``centre``
    itself.
    """
    odd = activation(activation_name).symmetry == "odd"
    n_hidden = len(centre) // 2 - 1
    spec = mlp_permutation_spec(n_hidden)
    merged = {
        f"P{layer}": unit_pair_distances(centre, activation_name, layer) < merged_below
        for layer in range(1, n_hidden + 1)
    }
    any_swap = np.zeros(len(iterates), dtype=bool)
    distinct = np.zeros(len(iterates), dtype=bool)
    for k, params in enumerate(iterates):
        b = {key: v.double() for key, v in params.items()}
        if odd:
            identity = {f"P{m}": torch.arange(len(b[f"b{m}"])) for m in range(1, n_hidden + 1)}
            flips = Transform(identity, signs=signs_toward(centre, b))
            b = apply_transform(b, spec, flips)
        for name, perm in align(centre, b, spec).perms.items():
            moved = torch.nonzero(perm != torch.arange(len(perm))).reshape(-1)
            if len(moved):
                any_swap[k] = True
                if not bool(merged[name][moved, perm[moved]].all()):
                    distinct[k] = True
    return any_swap, distinct


@dataclass(frozen=True)
class Snapshots:
    """Chains run by :func:`sgd_snapshots`: the post-burn-in record and iterates along the way.

    ``record``: as :func:`ghost_optima.sgd.network_chains.mlp_sgd_chains` would return for the
    whole run
    (``proj_mean``, ``proj_sq``, ``msd`` averaged over every post-burn-in step; no trace);
    ``iterates``: ``(C, S, d)``, each chain's state at the end of each of ``S`` equal
    post-burn-in segments (the last is ``record.final``).
    """

    record: ChainRecord
    iterates: Tensor


def sgd_snapshots(
    objective: MLPObjective,
    schedule: Schedule,
    n_chains: int,
    generator: torch.Generator,
    watch: Watch,
    n_snapshots: int,
) -> Snapshots:
    """Constant-step SGD chains from ``watch.centre``, stopped at ``n_snapshots`` points.

    The burn-in runs as one segment, then the post-burn-in steps as ``n_snapshots`` segments
    (the last takes the remainder). The batches are drawn from ``generator`` in the same order
    as one uninterrupted run, so the chains are the same; the time averages of the segments are
    combined with weights proportional to their lengths.
    """
    post = schedule.n_steps - schedule.burn_in
    if not 1 <= n_snapshots <= post:
        raise ValueError(f"need 1 <= n_snapshots <= {post} post-burn-in steps, got {n_snapshots}")
    state = None
    if schedule.burn_in:
        head = Schedule(
            schedule.eta, schedule.batch_size, schedule.burn_in, 0, schedule.replacement
        )
        state = mlp_sgd_chains(objective, head, n_chains, generator, Watch(watch.centre)).final
    length = post // n_snapshots
    lengths = [length] * (n_snapshots - 1) + [post - length * (n_snapshots - 1)]
    parts, iterates = [], []
    for m in lengths:
        seg = Schedule(schedule.eta, schedule.batch_size, m, 0, schedule.replacement)
        part = mlp_sgd_chains(objective, seg, n_chains, generator, watch, state)
        state = part.final
        parts.append((m, part))
        iterates.append(state)

    def pooled(field: str) -> Tensor:
        return sum(m * getattr(p, field) for m, p in parts) / post

    last = parts[-1][1]
    record = ChainRecord(
        proj_mean=pooled("proj_mean"),
        proj_sq=pooled("proj_sq"),
        msd=pooled("msd"),
        trace=last.trace[:, :0],
        steps=last.steps[:0],
        n_samples=post,
        final=state,
    )
    return Snapshots(record, torch.stack(iterates, dim=1))


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
