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
  is closer, by that criterion, to a permuted copy of ``theta*`` than to ``theta*``.

* **The nearest copy of an iterate.** For one hidden layer the squared distance from an
  iterate ``theta_t`` to the copy ``g theta*`` that maps unit ``p(i)`` of ``theta*``, times
  ``s_i = +-1``, onto unit ``i`` is ``sum_i ||v_i - s_i u_p(i)||^2`` plus terms no copy
  changes (``v``, ``u`` the unit vectors of ``theta_t`` and ``theta*``), so the nearest of all
  the ``n! 2^n`` copies is one linear assignment (:func:`nearest_copy`). An iterate is *nearer
  a distinct copy* (:func:`nearer_distinct_copy`) when that copy is nearer than ``theta*`` and
  maps some unit onto one it has not merged with. Unlike a spread, this count cannot grow by
  drift alone: an iterate counts only when it is closer to a copy than to ``theta*``.
* **Is ``theta*`` polished?** :func:`polish_shift` polishes a minimum further and says how far
  it moves, in units of a copy's distance; :func:`smallest_eigenvalue` gives the slowest
  relaxation rate ``eta lambda_min`` of the linearised chains.

And the contrast the claim rests on: a decaying step (:func:`decaying_chains`) from the same
start, against the plateau of a constant one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.sparse.linalg import LinearOperator, eigsh
from torch import Tensor

from ghost_optima.core.mlp import Params, activation
from ghost_optima.core.stats import Estimate, bootstrap
from ghost_optima.landscape.hessian import HessianOperator
from ghost_optima.sgd.chains import ChainRecord, Schedule, Watch
from ghost_optima.sgd.network_chains import MLPObjective, minimize, mlp_sgd_chains
from ghost_optima.symmetry.align import align
from ghost_optima.symmetry.ghosts import unit_pair_distances, unit_partner_distances, unit_vectors
from ghost_optima.symmetry.group import Transform, apply_transform, mlp_permutation_spec

__all__ = [
    "CopyMatch",
    "PolishShift",
    "Snapshots",
    "cloud_figures",
    "decaying_chains",
    "gaussian_share_past_midpoint",
    "flat_like",
    "merge_threshold",
    "merged_fraction",
    "nearer_distinct_copy",
    "nearer_fraction",
    "nearest_copy",
    "polish_shift",
    "segment_summaries",
    "smallest_eigenvalue",
    "projected_ratio",
    "projected_sq",
    "radius_growth",
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


@dataclass(frozen=True)
class CopyMatch:
    """The copy of ``centre`` nearest a point, for a network with one hidden layer.

    ``perm[i]``: the unit of ``centre`` that the copy puts at unit ``i``; ``signs[i]``: its
    sign (``+-1``); ``distance``: from the point to that copy; ``centre_distance``: from the
    point to ``centre`` itself; ``moved``: the largest ``||u_i - s_i u_perm[i]||`` over the units
    of ``centre`` (0 for the identity), which says whether the copy is distinct.
    """

    perm: np.ndarray
    signs: np.ndarray
    distance: float
    centre_distance: float
    moved: float


def nearest_copy(centre: Params, point: Params, activation_name: str) -> CopyMatch:
    """The nearest of all copies of ``centre`` (permutations of hidden units, with sign flips
    for odd activations) to ``point``, exactly, by one linear assignment.

    Only for one hidden layer (``W1, b1, W2, b2``), where the squared distance from ``point``
    to a copy is ``||b2 - b2*||^2 + sum_i ||v_i - s_i u_p(i)||^2`` (``v``, ``u`` the unit
    vectors of ``point`` and ``centre``, :func:`ghost_optima.symmetry.ghosts.unit_vectors`).
    """
    if len(centre) != 4 or len(point) != 4:
        raise ValueError("nearest_copy needs one hidden layer (W1, b1, W2, b2)")
    U = unit_vectors(centre, 1).double()
    V = unit_vectors(point, 1).double()
    signs = (1.0, -1.0) if activation(activation_name).symmetry == "odd" else (1.0,)
    costs = torch.stack([torch.cdist(V, s * U).pow(2) for s in signs])  # (S, n, n)
    best, which = costs.min(dim=0)
    rows, cols = linear_sum_assignment(best.numpy())
    chosen = torch.as_tensor(np.array(signs))[which[rows, cols]].numpy()
    rest = float((point["b2"].double() - centre["b2"].double()).pow(2).sum())
    copy_sq = float(best[rows, cols].sum()) + rest
    own_sq = float((V - U).pow(2).sum()) + rest
    perm = np.empty(len(rows), dtype=int)
    perm[rows] = cols
    sgn = np.empty(len(rows))
    sgn[rows] = chosen
    moved = (U - torch.as_tensor(sgn)[:, None] * U[torch.as_tensor(perm)]).norm(dim=1)
    return CopyMatch(
        perm=perm,
        signs=sgn,
        distance=math.sqrt(max(copy_sq, 0.0)),
        centre_distance=math.sqrt(own_sq),
        moved=float(moved.max()),
    )


def nearer_distinct_copy(
    centre: Params, points: list[Params], activation_name: str, *, merged_below: float
) -> np.ndarray:
    """For each point: is the nearest copy of ``centre`` (:func:`nearest_copy`) strictly nearer
    than ``centre`` itself, and distinct (it maps some unit ``u_p(i)`` onto a unit ``u_i`` with
    ``||u_i - s_i u_p(i)|| >= merged_below``, so it is not ``centre`` up to merged units)?"""
    out = np.zeros(len(points), dtype=bool)
    for k, point in enumerate(points):
        match = nearest_copy(centre, point, activation_name)
        out[k] = match.distance < match.centre_distance and match.moved >= merged_below
    return out


@dataclass(frozen=True)
class PolishShift:
    """What a further polish of a minimum did: the new point, its gradient norm, the iterations
    it took, and the displacement in units of ``distance`` (a copy's distance): its norm
    (``shift``) and its component along the unit vector ``direction`` (``along``)."""

    theta: Tensor
    grad_norm: float
    iterations: int
    shift: float
    along: float


def polish_shift(
    loss: Callable[[Tensor], Tensor],
    theta: Tensor,
    grad_tol: float,
    direction: Tensor,
    distance: float,
    *,
    max_iter: int = 5000,
) -> PolishShift:
    """Polish ``theta`` further (:func:`ghost_optima.sgd.network_chains.minimize`: L-BFGS until
    no gradient entry exceeds ``grad_tol``, at most ``max_iter`` iterations) and measure how far
    it moved, over ``distance``."""
    if not (distance > 0 and math.isfinite(distance)):
        raise ValueError(f"distance must be positive and finite, got {distance}")
    new, grad_norm, iterations = minimize(loss, theta, grad_tol=grad_tol, max_iter=max_iter)
    step = new - theta
    e = direction / direction.norm()
    return PolishShift(
        theta=new,
        grad_norm=grad_norm,
        iterations=iterations,
        shift=float(step.norm()) / distance,
        along=float(step @ e) / distance,
    )


def smallest_eigenvalue(
    loss: Callable[[Tensor], Tensor], theta: Tensor, largest: float, *, tol: float, seed: int = 0
) -> tuple[float, int]:
    """The algebraically smallest eigenvalue of the Hessian of ``loss`` at ``theta``, and the
    Hessian-vector products it took.

    Lanczos (``scipy.sparse.linalg.eigsh``, ``which="LA"``) on ``largest * I - H``, whose top
    eigenvalue is ``largest - lambda_min`` (``largest``: at least the Hessian's largest
    eigenvalue); ``tol`` is ARPACK's relative tolerance on that shifted value, so the error on
    ``lambda_min`` is about ``tol * largest``. Start vector ``N(0, I)`` from ``seed``.
    """
    op = HessianOperator(loss, theta)
    d = op.shape[0]
    shifted = LinearOperator(
        (d, d),
        matvec=lambda x: largest * np.asarray(x).reshape(-1) - op.matvec(x).reshape(-1),
        dtype=np.float64,
    )
    v0 = np.random.default_rng(seed).standard_normal(d)
    vals = eigsh(shifted, k=1, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
    return largest - float(vals[0]), op.n_matvec


def segment_summaries(
    objective: MLPObjective,
    schedule: Schedule,
    n_chains: int,
    generator: torch.Generator,
    centre: Tensor,
    every: int,
    summarise: Callable[[Tensor], dict[str, np.ndarray]],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Constant-step SGD chains from ``centre`` (no burn-in), stopped every ``every`` steps to
    summarise the states.

    ``summarise(states (C, d)) -> {name: (C,) array}`` is called at steps ``every, 2 every, ...
    <= n_steps``; the states are those of one uninterrupted run (the batches are drawn from
    ``generator`` in the same order), so a prefix of the run is a shorter chain. Returns the
    step numbers ``(S,)`` and, per name, the summaries ``(C, S)``.
    """
    if not 1 <= every <= schedule.n_steps:
        raise ValueError(f"need 1 <= every <= {schedule.n_steps}, got {every}")
    n_seg = schedule.n_steps // every
    seg = Schedule(schedule.eta, schedule.batch_size, every, 0, schedule.replacement)
    state: Tensor | None = None
    out: dict[str, list[np.ndarray]] = {}
    for _ in range(n_seg):
        state = mlp_sgd_chains(objective, seg, n_chains, generator, Watch(centre), state).final
        for name, value in summarise(state).items():
            out.setdefault(name, []).append(np.asarray(value, dtype=float).reshape(n_chains))
    steps = every * np.arange(1, n_seg + 1)
    return steps, {name: np.stack(v, axis=1) for name, v in out.items()}


def gaussian_share_past_midpoint(ratio: float) -> float:
    """The share of a Gaussian cloud centred on ``theta*``, with projected ratio ``ratio`` (its
    standard deviation along ``e`` over the copy's distance ``delta``), whose projection passes
    ``delta / 2``: ``P(Z > 0.5 / ratio) = erfc(0.5 / (ratio sqrt 2)) / 2``."""
    if not ratio > 0:
        raise ValueError(f"ratio must be positive, got {ratio}")
    return 0.5 * math.erfc(0.5 / (ratio * math.sqrt(2.0)))


def cloud_figures(
    proj: np.ndarray, nearer: np.ndarray, distance: float, *, n_boot: int, seed: int
) -> dict[str, Estimate]:
    """The cloud along the direction to a copy, from kept iterates ``(C, T)`` of ``C`` chains.

    ``proj``: projections ``(theta_t - theta*) . e``; ``nearer``: whether each iterate lies
    nearer a distinct copy (:func:`nearer_distinct_copy`). Returns, each with a percentile
    bootstrap over chains: ``projected`` (root mean square projection over ``distance``),
    ``mean`` (mean projection over ``distance``, signed) and ``nearer`` (share of iterates).
    """
    P = np.asarray(proj, dtype=float) / distance
    N = np.asarray(nearer, dtype=float)
    if P.ndim != 2 or P.shape != N.shape or P.shape[1] == 0:
        raise ValueError(f"need proj and nearer of one shape (C, T >= 1), got {P.shape}, {N.shape}")
    if not (distance > 0 and math.isfinite(distance)):
        raise ValueError(f"distance must be positive and finite, got {distance}")
    sq, mean, share = (P * P).mean(axis=1), P.mean(axis=1), N.mean(axis=1)
    n = len(P)
    return dict(
        projected=bootstrap(lambda i: math.sqrt(sq[i].mean()), n, n_boot=n_boot, seed=seed),
        mean=bootstrap(lambda i: float(mean[i].mean()), n, n_boot=n_boot, seed=seed),
        nearer=bootstrap(lambda i: float(share[i].mean()), n, n_boot=n_boot, seed=seed),
    )


def radius_growth(
    sq: np.ndarray,
    steps: np.ndarray,
    length: int,
    burn_in_frac: float,
    *,
    n_boot: int,
    seed: int,
) -> Estimate:
    """Is the cloud still growing at the end of a chain of ``length`` steps?

    ``sq``: ``(C, S)`` squared distances to ``theta*`` at ``steps`` ``(S,)``. The kept part,
    after ``burn_in_frac * length``, is split in two equal halves; returns the mean squared
    distance over the later half over that over the earlier half (1 for a stationary cloud),
    with a percentile bootstrap over chains.
    """
    sq = np.asarray(sq, dtype=float)
    steps = np.asarray(steps)
    start = burn_in_frac * length
    middle = start + (length - start) / 2
    early = (steps > start) & (steps <= middle)
    late = (steps > middle) & (steps <= length)
    if not early.any() or not late.any():
        raise ValueError("both halves of the kept part need at least one snapshot")
    a, b = sq[:, early].mean(axis=1), sq[:, late].mean(axis=1)
    return bootstrap(lambda i: float(b[i].mean() / a[i].mean()), len(sq), n_boot=n_boot, seed=seed)
