"""Helpers shared by the redundancy experiments: pairwise comparisons of seeds and their intervals.

The experiments train many seeds at once (``ghost_optima.core.train.train_ensemble``) and compare
them pair by pair. This module holds what several chapters need:

* ``align_pair`` / ``pairwise_alignment``: every pair of members aligned modulo the
  activation's finite group (signed permutations for tanh: ``align.signed_alignment``, weight
  or activation matching), with the
  normalised distance ``2 ||a - pi(b)|| / (||a|| + ||b||)`` of ``ghost_optima.symmetry.align``;
* ``segment_barriers``: the loss barrier of ``ghost_optima.symmetry.align.barrier`` for many pairs
at
  once, all interpolants of all pairs evaluated as one stacked ensemble;
* ``disagreement_matrix`` and ``member_disagreement``: how often members predict different
  classes, per pair of members and per
  example.
"""

from collections.abc import Sequence

import numpy as np
import torch

from ghost_optima.core.data import Task
from ghost_optima.core.train import evaluate, member
from ghost_optima.symmetry.align import align_to, distance

Params = dict[str, torch.Tensor]


def _norm(params: Params) -> float:
    return float(torch.sqrt(sum(v.double().pow(2).sum() for v in params.values())))


def align_pair(
    params_a: Params,
    params_b: Params,
    activation: str,
    *,
    seed: int = 0,
    method: str = "weight",
    x: torch.Tensor | None = None,
) -> tuple[Params, Params]:
    """``(a, b')``: ``b`` moved by the element of the activation's finite symmetry group that
    aligns it with ``a`` (``align.signed_alignment``: signed permutations for odd activations,
    permutations otherwise; weight matching, or activation matching on inputs ``x``). ``a`` is
    returned unchanged; ``b'`` computes the same function as ``b``.
    """
    return params_a, align_to(params_a, params_b, activation, method=method, x=x, seed=seed)


def relative_distance(params_a: Params, params_b: Params) -> float:
    """``2 ||a - b|| / (||a|| + ||b||)``: 0 for equal parameters, dimensionless."""
    return 2 * distance(params_a, params_b) / (_norm(params_a) + _norm(params_b))


def pairwise_alignment(
    stacked: Params,
    activation: str,
    *,
    seed: int = 0,
    method: str = "weight",
    x: torch.Tensor | None = None,
) -> tuple[np.ndarray, list[tuple[int, int]], list[Params], list[Params]]:
    """Align every pair ``i < j`` of an ensemble's members (``align_pair``, ``b`` onto ``a``).

    Returns ``(dist, pairs, firsts, seconds)``: ``dist`` is the symmetric ``(E, E)`` matrix of
    normalised distances after ``align_pair`` (NaN on the diagonal), ``pairs`` lists ``(i, j)``
    and ``firsts[k]``, ``seconds[k]`` are the aligned networks of pair ``k``.
    """
    n = stacked["W1"].shape[0]
    dist = np.full((n, n), np.nan)
    pairs, firsts, seconds = [], [], []
    members = [member(stacked, i) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            a, b = align_pair(members[i], members[j], activation, seed=seed, method=method, x=x)
            dist[i, j] = dist[j, i] = relative_distance(a, b)
            pairs.append((i, j))
            firsts.append(a)
            seconds.append(b)
    return dist, pairs, firsts, seconds


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

    The same quantity as ``align.barrier(...)["loss_barrier"]``: with ``t_m = m / (n_points-1)``
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
    loss = np.concatenate(losses)
    ts = t.double().numpy()
    chord = (1 - ts) * loss[:, :1] + ts * loss[:, -1:]
    return np.max(loss - chord, axis=1)


def to_matrix(values: Sequence[float], pairs: Sequence[tuple[int, int]], n: int) -> np.ndarray:
    """A symmetric ``(n, n)`` matrix with ``values[k]`` at ``pairs[k]`` and NaN elsewhere."""
    out = np.full((n, n), np.nan)
    for value, (i, j) in zip(values, pairs, strict=True):
        out[i, j] = out[j, i] = value
    return out


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
