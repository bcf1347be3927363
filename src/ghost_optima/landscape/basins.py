"""Barriers, basins and distinct solutions among many seeds, modulo the symmetry group.

For an ensemble of ``E`` trained networks (stacked parameters, ``ghost_optima.core.train``),
with every pair ``i < j`` aligned by the group element ``g_ij`` that moves ``j`` onto ``i``
(``ghost_optima.symmetry.pairwise.pair_transforms``):

* ``segment_losses``: the mean loss of ``theta(t) = (1 - t) theta_i + t g_ij theta_j`` on a
  grid of ``t`` for every pair at once. The first layer's pre-activations are linear in the
  weights, ``z_1(t) = (1 - t) z_1^i + t P_ij S_ij z_1^j``, so they are computed once per member
  and only interpolated per pair; the later layers are interpolated explicitly. Their barriers
  are ``pairwise.barrier_heights`` (Frankle et al. 2020; Entezari et al. 2022);
* ``connected_count``: the number of connected components of a graph on a subset of seeds (by
  boolean reachability): basins when an edge is a barrier below a tolerance, distinct solutions
  when an edge is a distance within the SGD spread (the pairs these graphs split, at several
  scales, are ``basin_splits``);
* ``measure_pairs``: barriers and distances of every pair, unaligned and by two alignments.

Pairs are listed as ``pairwise.all_pairs(E)``, ``[(i, j) for i < j]``, throughout.
"""

from collections.abc import Sequence

import numpy as np
import torch

from ghost_optima.core.data import Dataset
from ghost_optima.core.mlp import init_mlp, layer_activation, loss_per_example
from ghost_optima.core.train import member, member_generators
from ghost_optima.symmetry.align import align
from ghost_optima.symmetry.group import Transform, apply_transform, mlp_permutation_spec
from ghost_optima.symmetry.pairwise import (
    all_pairs,
    barrier_heights,
    pair_distances,
    pair_transforms,
    to_matrix,
)

Params = dict[str, torch.Tensor]


def constant_loss(data: Dataset) -> float:
    """Training loss of the best constant predictor: target variance, or label entropy (nats)."""
    if data.task == "regression":
        return float(data.y_train.var(0, unbiased=False).mean())
    p = torch.bincount(data.y_train, minlength=data.n_classes).double() / len(data.y_train)
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def _moved(stacked: Params, idx: Sequence[int], transforms: Sequence[Transform | None]) -> Params:
    """Members ``idx`` moved by their transforms (None: unchanged), stacked."""
    n_hidden = len(stacked) // 2 - 1
    spec = mlp_permutation_spec(n_hidden)
    nets = [
        member(stacked, k) if g is None else apply_transform(member(stacked, k), spec, g)
        for k, g in zip(idx, transforms, strict=True)
    ]
    return {k: torch.stack([net[k] for net in nets]) for k in nets[0]}


def segment_losses(
    stacked: Params,
    transforms: Sequence[Transform | None],
    data: tuple[torch.Tensor, torch.Tensor],
    activation: str,
    task: str,
    *,
    n_points: int = 7,
    max_floats: int = 2**21,
) -> np.ndarray:
    """Mean loss on ``data = (x, y)`` along every pair's segment, shape ``(P, n_points)``.

    Pair ``k = (i, j)`` (``all_pairs``) goes from member ``i`` to member ``j`` moved by
    ``transforms[k]`` (None: unaligned), at ``t_m = m / (n_points - 1)``. Equal, up to
    rounding, to evaluating every interpolated network (``pairwise.segment_barriers``). The
    end points are the members' own losses (a group element preserves the function), computed
    once; only interior points are evaluated per pair, in chunks holding at most ``max_floats``
    hidden activations (a few megabytes: one buffer, reused, stays in cache and spares the page
    faults of fresh memory; chunks of 2**25 floats took twice as long), activations in place.
    """
    x, y = data
    n = stacked["W1"].shape[0]
    pairs = all_pairs(n)
    if len(transforms) != len(pairs):
        raise ValueError(f"{len(transforms)} transforms for {len(pairs)} pairs")
    t = torch.linspace(0.0, 1.0, n_points, dtype=stacked["W1"].dtype)[1:-1]
    with torch.no_grad():
        z1 = torch.baddbmm(
            stacked["b1"].unsqueeze(1), x.expand(n, *x.shape), stacked["W1"].transpose(1, 2)
        )
        ends = z1.unsqueeze(1).clone()  # _finish overwrites its input
        own = _finish(ends, stacked, stacked, torch.zeros(1), activation, y, task)[:, 0]
    if len(t) == 0:
        return np.array([[own[i], own[j]] for i, j in pairs]).reshape(len(pairs), n_points)
    per_chunk = max(1, max_floats // (len(x) * z1.shape[-1] * len(t)))
    buffer = torch.empty(min(per_chunk, len(pairs)), len(t), *z1.shape[1:], dtype=z1.dtype)
    out = []
    for start in range(0, len(pairs), per_chunk):
        chunk = pairs[start : start + per_chunk]
        gs = transforms[start : start + per_chunk]
        first = [i for i, _ in chunk]
        a = {k: v[first] for k, v in stacked.items()}
        b = _moved(stacked, [j for _, j in chunk], gs)
        with torch.no_grad():
            zb = torch.stack([_move_units(z1[j], g) for (_, j), g in zip(chunk, gs, strict=True)])
            h = buffer[: len(chunk)]  # (C, T, N, n1)
            torch.lerp(z1[first].unsqueeze(1), zb.unsqueeze(1), t.view(1, -1, 1, 1), out=h)
            out.append(_finish(h, a, b, t, activation, y, task))
    inner = np.concatenate(out)
    ends = np.array([[own[i], own[j]] for i, j in pairs])
    return np.concatenate([ends[:, :1], inner, ends[:, 1:]], axis=1)


def _activate_(h: torch.Tensor, activation: str, layer: int) -> torch.Tensor:
    """The activation of hidden layer ``layer`` on ``h``, in place where it can be: tanh through
    NumPy's vectorised loop (several times faster on CPU than torch's, within one ulp, as the
    trainer does), ReLU by ``relu_``; any other activation out of place."""
    if activation == "tanh" and h.is_contiguous():
        values = h.numpy()
        np.tanh(values, out=values)
        return h
    if activation == "relu":
        return h.relu_()
    return layer_activation(activation)(h, layer)


def _finish(h, a: Params, b: Params, t: torch.Tensor, activation: str, y, task: str) -> np.ndarray:
    """Mean loss ``(C, T)`` from first-layer pre-activations ``h`` ``(C, T, N, n_1)`` (overwritten),
    the later layers interpolated between ``a`` and ``b`` (``(C, ...)`` stacks) at ``t``."""
    w = t.view(1, -1, 1, 1)
    for layer in range(2, len(a) // 2 + 1):
        h = _activate_(h, activation, layer - 1)
        wl = torch.lerp(a[f"W{layer}"].unsqueeze(1), b[f"W{layer}"].unsqueeze(1), w)
        bl = torch.lerp(a[f"b{layer}"].unsqueeze(1), b[f"b{layer}"].unsqueeze(1), t.view(1, -1, 1))
        h = torch.matmul(h, wl.transpose(-1, -2)).add_(bl.unsqueeze(-2))
    return loss_per_example(h, y, task).mean(-1).double().numpy()


def _move_units(z: torch.Tensor, g: Transform | None) -> torch.Tensor:
    """First-layer pre-activations ``(N, n_1)`` of a member moved by ``g``: its units
    relabelled, times their incoming factor (``Transform.unit_factor``)."""
    if g is None:
        return z
    z = z[:, g.perms["P1"]]
    factor = g.unit_factor("P1", incoming=True)
    return z if factor is None else z * factor.to(z)


def connected_count(linked: np.ndarray, members: np.ndarray) -> int:
    """Connected components of the graph on ``members`` (distinct indices) whose edges are the
    pairs with ``linked[i, j]`` true (either way); 0 for no members."""
    chosen = np.zeros(len(linked), dtype=bool)
    chosen[np.asarray(members, dtype=np.int64)] = True
    return int(_components(linked, chosen[None])[0])


def _components(linked: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Connected components of the subgraph of ``linked`` ``(n, n)`` induced by every row of
    ``chosen`` ``(R, n)``, ``(R,)``, all rows at once by reachability: ``Q = I | A`` squared
    (boolean) until it stops changing is the indicator of "same component", and a component of
    ``s`` members has ``s`` rows summing to ``s``, so the count is ``sum_i 1 / sum_j Q_ij`` over
    the chosen ``i``."""
    adjacency = np.asarray(linked, dtype=bool)
    adjacency = adjacency | adjacency.T
    np.fill_diagonal(adjacency, False)
    sub = adjacency & chosen[:, :, None] & chosen[:, None, :]
    reach = (sub | np.eye(len(adjacency), dtype=bool)).astype(float)
    while True:
        nxt = (reach @ reach > 0).astype(float)
        if np.array_equal(nxt, reach):
            break
        reach = nxt
    return np.round((chosen / reach.sum(-1)).sum(-1))


def init_distances(
    widths: Sequence[int], activation: str, seeds: Sequence[int], *, seed: int = 0
) -> np.ndarray:
    """Aligned distances ``||theta_a - g theta_b||`` between untrained initialisations of
    ``widths`` (the trainer's own, ``train.member_generators``), for the disjoint pairs of
    consecutive ``seeds`` (signed weight matching): the scale a trained pair is compared with."""
    nets = [init_mlp(widths, member_generators(s)[0], dtype=torch.float32) for s in seeds]
    group = mlp_permutation_spec(len(widths) - 2, activation)
    pairs = list(zip(nets[0::2], nets[1::2], strict=False))
    moved = [apply_transform(b, group, align(a, b, group, seed=seed)) for a, b in pairs]
    return pair_distances([a for a, _ in pairs], moved)


METHODS = ("naive", "weight", "activation")


def measure_pairs(
    stacked: Params, data: Dataset, activation: str, *, n_eval: int, n_points: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """Every pair of an ensemble's members compared three ways: unaligned (``naive``), after
    signed weight matching (``weight``) and after activation matching on every training input
    (``activation``, as Git Re-Basin does; a ``ValueError`` when the training set has fewer
    inputs than the widest hidden layer has units, whose correlations would be rank-deficient).

    Returns ``(E, E)`` matrices (NaN diagonal): ``"{split}_{method}"`` the loss barrier on the
    first ``n_eval`` examples of ``split`` (``train``, ``test``), ``"dist_{method}"`` the raw
    distance ``||theta_i - g theta_j||``, and ``"{split}_aligned"`` / ``"dist_aligned"`` the
    elementwise lower of the two alignments (each a group element, so the lower is the tighter
    upper bound on the value modulo the group).
    """
    n = stacked["W1"].shape[0]
    widest = max(stacked[f"b{k}"].shape[1] for k in range(1, len(stacked) // 2))
    if len(data.x_train) < widest:
        raise ValueError(
            f"activation matching of {widest} units needs at least as many training inputs, "
            f"got {len(data.x_train)}"
        )
    splits = {
        "train": (data.x_train[:n_eval], data.y_train[:n_eval]),
        "test": (data.x_test[:n_eval], data.y_test[:n_eval]),
    }
    group = mlp_permutation_spec(len(stacked) // 2 - 1, activation)
    found = {
        "naive": [None] * len(all_pairs(n)),
        "weight": pair_transforms(stacked, group, seed=seed),
        "activation": pair_transforms(
            stacked, group, "activation", x=data.x_train, activation=activation
        ),
    }
    firsts = [member(stacked, i) for i, _ in all_pairs(n)]
    out = {}
    for method, gs in found.items():
        for split, xy in splits.items():
            curves = segment_losses(stacked, gs, xy, activation, data.task, n_points=n_points)
            out[f"{split}_{method}"] = to_matrix(barrier_heights(curves), n)
        seconds = [
            member(stacked, j) if g is None else apply_transform(member(stacked, j), group, g)
            for (_, j), g in zip(all_pairs(n), gs, strict=True)
        ]
        out[f"dist_{method}"] = to_matrix(pair_distances(firsts, seconds), n)
    for key in ("train", "test", "dist"):
        out[f"{key}_aligned"] = np.fmin(out[f"{key}_weight"], out[f"{key}_activation"])
    return out
