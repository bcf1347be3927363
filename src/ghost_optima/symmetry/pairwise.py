"""Statistics of pairs of networks, for all pairs at once: alignment, distances, barriers.

The experiments train many seeds at once (``ghost_optima.core.train.train_ensemble``) and
compare them pair by pair. Pairs of ``E`` members are ``all_pairs(E)``, ``[(i, j) for i < j]``
in ``itertools.combinations`` order; ``to_matrix`` turns one value per pair into a symmetric
``(E, E)`` matrix with a NaN diagonal. This module holds

* ``pair_transforms`` and ``pairwise_alignment``: every pair aligned modulo its group
  (``ghost_optima.symmetry.align.align``: weight matching, or activation matching with every
  member's activations computed once), with the normalised distance
  ``2 ||a - g b|| / (||a|| + ||b||)``;
* ``distance``, ``relative_distance`` and ``pair_distances`` (every pair at once);
* ``barrier`` (one pair, loss and accuracy along the segment), ``segment_barriers`` (many
  pairs, all interpolants evaluated as one stacked ensemble) and ``barrier_heights``, the chord
  that every barrier of the book ends with (``ghost_optima.landscape.basins`` too):
  ``max_t [L(t) - ((1 - t) L(0) + t L(1))]`` (Frankle et al. 2020, "Linear mode connectivity
  and the lottery ticket hypothesis", ICML; modulo permutations, Entezari et al. 2022, "The
  role of permutation invariance in linear mode connectivity of neural networks", ICLR);
* ``disagreement_matrix`` and ``member_disagreement``: how often members predict different
  classes, per pair of members and per example;
* ``count_distinct``: solutions clustered modulo the group.

Means over pairs of seeds, with intervals that resample the seeds, are
``ghost_optima.core.stats.pair_means``.
"""

import itertools
from collections.abc import Sequence

import numpy as np
import torch

from ghost_optima.core import timing
from ghost_optima.core.data import Task
from ghost_optima.core.mlp import ActivationLike
from ghost_optima.core.train import evaluate, member
from ghost_optima.symmetry.align import Method, align
from ghost_optima.symmetry.group import Transform, apply_transform, mlp_permutation_spec
from ghost_optima.symmetry.matching import correlation_transform, standardised_hidden, unit_kinds
from ghost_optima.symmetry.spec import GroupSpec

Params = dict[str, torch.Tensor]


def all_pairs(n: int) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(n), 2))


def to_matrix(values: Sequence[float], n: int) -> np.ndarray:
    """A symmetric ``(n, n)`` matrix of pair values (``all_pairs`` order), NaN diagonal."""
    out = np.full((n, n), np.nan)
    for value, (i, j) in zip(values, all_pairs(n), strict=True):
        out[i, j] = out[j, i] = value
    return out


def pair_transforms(
    stacked: Params,
    group: GroupSpec,
    method: Method = "weight",
    *,
    seed: int = 0,
    x: torch.Tensor | None = None,
    activation: ActivationLike | None = None,
) -> list[Transform]:
    """``g_ij = align(member i, member j, group, method)`` for every pair (``all_pairs``).

    The activation method standardises every member's hidden activations on ``x`` once
    (``matching.standardised_hidden``), not once per pair; the others align pair by pair.
    """
    n = stacked["W1"].shape[0]
    members = [member(stacked, k) for k in range(n)]
    if method != "activation":
        return [align(members[i], members[j], group, method, seed=seed) for i, j in all_pairs(n)]
    if x is None or activation is None:
        raise ValueError("activation matching needs inputs x and the activation")
    with timing.kernel("alignment"):
        std = standardised_hidden(stacked, x, activation)
        kinds, classes = unit_kinds(group, members[0])
        return [correlation_transform(std, i, j, kinds, classes) for i, j in all_pairs(n)]


def pairwise_alignment(
    stacked: Params,
    activation: str,
    *,
    seed: int = 0,
    method: Method = "weight",
    x: torch.Tensor | None = None,
) -> tuple[np.ndarray, list[tuple[int, int]], list[Params], list[Params]]:
    """Align every pair ``i < j`` of an MLP ensemble (``pair_transforms`` in the group of
    ``activation``, ``group.mlp_permutation_spec``: ``j`` moved onto ``i``).

    Returns ``(dist, pairs, firsts, seconds)``: ``dist`` is the symmetric ``(E, E)`` matrix of
    ``relative_distance`` after alignment (NaN on the diagonal), ``pairs`` lists ``(i, j)``,
    and ``firsts[k]`` (member ``i``, unchanged), ``seconds[k]`` (member ``j`` moved, same
    function) are the aligned networks of pair ``k``.
    """
    n = stacked["W1"].shape[0]
    group = mlp_permutation_spec(len(stacked) // 2 - 1, activation)
    found = pair_transforms(stacked, group, method, seed=seed, x=x, activation=activation)
    pairs = all_pairs(n)
    firsts = [member(stacked, i) for i, _ in pairs]
    seconds = [
        apply_transform(member(stacked, j), group, g)
        for (_, j), g in zip(pairs, found, strict=True)
    ]
    values = [relative_distance(a, b) for a, b in zip(firsts, seconds, strict=True)]
    return to_matrix(values, n), pairs, firsts, seconds


def _norm(params: Params) -> float:
    return float(torch.sqrt(sum(v.double().pow(2).sum() for v in params.values())))


def distance(params_a: Params, params_b: Params) -> float:
    """``||theta^a - theta^b||_2`` over all parameters, flattened (float64)."""
    return _norm({k: params_a[k].double() - params_b[k].double() for k in params_a})


def relative_distance(params_a: Params, params_b: Params) -> float:
    """``2 ||a - b|| / (||a|| + ||b||)``: 0 for equal parameters, dimensionless."""
    return 2 * distance(params_a, params_b) / (_norm(params_a) + _norm(params_b))


def pair_distances(firsts: Sequence[Params], seconds: Sequence[Params]) -> np.ndarray:
    """``||firsts[k] - seconds[k]||`` for every pair ``k``: the root of the float64 sum of squares
    taken by Python's ``** 0.5`` (``distance`` takes torch's square root, which can differ in
    the last bit; chapter 50's figures were recorded with this one)."""
    out = []
    for a, b in zip(firsts, seconds, strict=True):
        total = sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in a)
        out.append(total**0.5)
    return np.array(out)


def barrier_heights(curves: np.ndarray, t: np.ndarray | None = None) -> np.ndarray:
    """``max_t [L(t) - ((1 - t) L(0) + t L(1))]`` of each row of ``curves`` (``(P, T)``, the
    values at ``t``; default ``T`` evenly spaced points of ``[0, 1]``): how far each curve rises
    above the chord between its ends (0 or more, the ends giving 0)."""
    t = np.linspace(0.0, 1.0, curves.shape[1]) if t is None else t
    chord = (1 - t) * curves[:, :1] + t * curves[:, -1:]
    return np.max(curves - chord, axis=1)


def barrier(
    params_a: Params,
    params_b: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    activation: ActivationLike,
    task: Task,
    *,
    n_points: int = 25,
) -> dict[str, np.ndarray | float]:
    """Loss and accuracy on the segment ``theta(t) = (1 - t) theta^a + t theta^b``.

    On ``t_k = k / (n_points - 1)`` (evaluated at once, the ``n_points`` interpolants stacked
    as an ensemble), with ``L(t)`` the mean loss and ``A(t)`` the accuracy on ``(x, y)``:

        loss_barrier = max_t [L(t) - ((1 - t) L(0) + t L(1))]     (Entezari et al. 2022)
        acc_barrier  = max_t [((1 - t) A(0) + t A(1)) - A(t)]     (the error barrier)

    both by ``barrier_heights`` (of ``L`` and of ``-A``). Returns ``{"t", "loss", "acc",
    "loss_barrier", "acc_barrier"}``; accuracies are NaN for regression.
    """
    t = torch.linspace(0.0, 1.0, n_points, dtype=params_a["W1"].dtype)
    stacked = {}
    for k, va in params_a.items():
        weight = t.view(-1, *([1] * va.dim()))
        stacked[k] = torch.lerp(va.expand(n_points, *va.shape), params_b[k], weight)
    loss, acc = evaluate(stacked, x, y, activation, task)
    ts = t.double().numpy()
    return {
        "t": ts,
        "loss": loss,
        "acc": acc,
        "loss_barrier": float(barrier_heights(loss[None], ts)[0]),
        "acc_barrier": float(barrier_heights(-acc[None], ts)[0]),
    }


def segment_barriers(
    firsts: Sequence[Params],
    seconds: Sequence[Params],
    x: torch.Tensor,
    y: torch.Tensor,
    activation: str,
    task: Task,
    *,
    n_points: int = 11,
    max_floats: int = 2**24,
) -> np.ndarray:
    """Loss barrier on the segment between ``firsts[k]`` and ``seconds[k]``, for every ``k``.

    The same quantity as ``barrier(...)["loss_barrier"]``: with ``t_m = m / (n_points-1)``
    and ``L(t)`` the mean loss on ``(x, y)`` of ``(1 - t) a + t b``,
    ``max_t [L(t) - ((1 - t) L(0) + t L(1))]``. All ``len(firsts) * n_points`` interpolants are
    evaluated as one stacked ensemble, in chunks holding at most ``max_floats`` hidden
    activations. Returns an array of shape ``(len(firsts),)``.
    """
    if not firsts:
        return np.zeros(0)
    t = torch.linspace(0.0, 1.0, n_points, dtype=firsts[0]["W1"].dtype)
    widest = max(v.shape[0] for k, v in firsts[0].items() if k.startswith("b"))
    per_chunk = max(1, max_floats // (len(x) * widest * n_points))
    losses = []
    for start in range(0, len(firsts), per_chunk):
        chunk = range(start, min(start + per_chunk, len(firsts)))
        stacked = {}
        for key in firsts[0]:
            a = torch.stack([firsts[k][key] for k in chunk])  # (P, ...)
            b = torch.stack([seconds[k][key] for k in chunk])
            weight = t.view(1, -1, *([1] * (a.dim() - 1)))
            inter = torch.lerp(a.unsqueeze(1), b.unsqueeze(1), weight)  # (P, T, ...)
            stacked[key] = inter.reshape(-1, *a.shape[1:])
        loss, _ = evaluate(stacked, x, y, activation, task)
        losses.append(loss.reshape(len(chunk), n_points))
    return barrier_heights(np.concatenate(losses), t.double().numpy())


def disagreement_matrix(outputs: torch.Tensor) -> np.ndarray:
    """``D[i, j]``: fraction of inputs on which members ``i`` and ``j`` predict different classes.

    ``outputs`` has shape ``(E, N, C)`` (``ensemble_forward`` on shared inputs). The diagonal
    is NaN. Off the diagonal: the fraction of inputs whose argmax classes differ.
    """
    pred = outputs.argmax(-1)
    out = (pred.unsqueeze(1) != pred.unsqueeze(0)).double().mean(-1).numpy()
    np.fill_diagonal(out, np.nan)
    return out


def member_disagreement(pred: torch.Tensor, n_classes: int) -> np.ndarray:
    """Per example, the fraction of ordered pairs of distinct members predicting different classes.

    ``pred`` holds class indices of shape ``(E, N)`` (``E >= 2``). With ``c_k`` the number of
    members voting for class ``k``, the value is ``1 - sum_k c_k (c_k - 1) / (E (E - 1))``:
    0 when all members agree.
    """
    n_members = pred.shape[0]
    counts = torch.nn.functional.one_hot(pred, n_classes).sum(0).double()  # (N, C)
    agree = (counts * (counts - 1)).sum(-1) / (n_members * (n_members - 1))
    return (1 - agree).numpy()


def count_distinct(
    param_list: Sequence[Params],
    *,
    tol: float,
    group: GroupSpec | None = None,
    seed: int = 0,
) -> tuple[int, np.ndarray]:
    """Greedy clustering of solutions modulo ``group``; returns ``(n_clusters, labels)``.

    Solutions are visited in order; solution ``k`` joins the first existing cluster whose
    representative (its first member) ``r`` satisfies

        2 ||theta_r - g theta_k|| / (||theta_r|| + ||theta_k||) <= tol,

    with ``g = align(theta_r, theta_k, group)`` (the identity when ``group`` is None), and
    otherwise founds a new cluster. ``labels[k]`` is the cluster index of solution ``k``,
    numbered in order of first appearance.
    """
    reps: list[Params] = []
    labels = np.empty(len(param_list), dtype=np.int64)
    for k, params in enumerate(param_list):
        for c, rep in enumerate(reps):
            other = params
            if group is not None:
                other = apply_transform(params, group, align(rep, params, group, seed=seed))
            if relative_distance(rep, other) <= tol:
                labels[k] = c
                break
        else:
            labels[k] = len(reps)
            reps.append(params)
    return len(reps), labels
