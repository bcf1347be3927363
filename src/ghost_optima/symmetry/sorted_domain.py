"""Aligning nets whose units are kept sorted by bias (``GroupSpec.sorted_by``, chapter 60).

Training in the sorted domain (``ghost_optima.remedies.reorder.SortedBiases``) removes the
permutations; what is left of the group are sign flips of odd units, each followed by sorting
the layer again. ``sorted_flips`` finds the element that brings one such net closest to another
(the signed weight-matching objective of ``ghost_optima.symmetry.matching`` restricted to this
group), by an exact dynamic programme per layer. ``align.align`` calls it for a spec with sorted
units; every element acts through ``group.apply_transform``.
"""

import numpy as np
import torch

from ghost_optima.symmetry.group import Transform, apply_transform
from ghost_optima.symmetry.matching import ODD, as_numpy, normalising_flips
from ghost_optima.symmetry.spec import GroupSpec

Params = dict[str, torch.Tensor]


def sorted_flips(
    params_a: Params, params_b: Params, group: GroupSpec, *, max_iter: int
) -> Transform:
    """The element ``h_t`` of the sorted group moving ``b`` closest to ``a``: flips ``t_l`` of
    the odd units of each hidden layer ``l`` (every layer sorted, ``group.sorted_by``), then
    every layer sorted again by its bias, ``h_t b = sort(D_t b)``; ``t`` maximises
    ``<theta^a, h_t theta^b>`` (``a`` as given, its unit ``k`` paired with the ``k``-th smallest
    bias of ``h_t b``).

    With the other layers fixed, layer ``l``'s part is ``sum_k t_(j_k) S[k, j_k]`` (``S`` the
    signed-matching score of layer ``l`` on ``b``'s own units, ``j_k`` the unit ranked ``k``).
    Taken by decreasing ``|b_j|``, a unit flipped to a negative bias takes the lowest free
    position and one left positive the highest, so the best ``t_l`` is an exact dynamic
    programme over (units seen, negatives among them), ``O(n_l^2)``. Layers are solved in turn
    until none improves (at most ``max_iter`` rounds), from ``t = 1`` and from the
    sign-normalising flips; the better end is kept. Exact for one hidden layer. An MLP spec
    (``P_l`` on ``W_l``, ``b_l``) with every unit odd. Returns the sorting permutations and the
    flips in the new order: ``apply_transform(params_b, group, h_t)``.
    """
    a, b = as_numpy(params_a), as_numpy(params_b)
    exact_b = {k: v.detach().double() for k, v in params_b.items()}
    biases = [b[group.sorted_by[p]] for p in group.names]
    kinds = {p: np.full(len(bias), ODD) for p, bias in zip(group.names, biases, strict=True)}
    best = None
    normalising = [flips for flips, _ in normalising_flips(b, kinds).values()]
    for t in ([np.ones(len(v)) for v in biases], normalising):
        value = _inner(a, _moved(exact_b, group, _flip_sort(group, biases, t)))
        for _ in range(max_iter):
            for layer in range(len(biases)):
                t[layer] = _best_flips(a, exact_b, group, biases, t, layer)
            new = _inner(a, _moved(exact_b, group, _flip_sort(group, biases, t)))
            done, value = new <= value + 1e-12 * abs(value), new
            if done:
                break
        if best is None or value > best[0]:
            best = (value, [x.copy() for x in t])
    return _flip_sort(group, biases, best[1])


def _inner(a: dict, b: dict) -> float:
    return float(sum((a[k] * b[k]).sum() for k in a))


def _moved(exact_b: Params, group: GroupSpec, h: Transform) -> dict:
    return as_numpy(apply_transform(exact_b, group, h))


def _flip_sort(group: GroupSpec, biases: list, t: list, keep: int | None = None) -> Transform:
    """The element flipping unit ``j`` of hidden layer ``l`` by ``t[l][j]`` (incoming, bias and
    outgoing) and sorting every layer by its flipped bias, except layer ``keep`` (0-based, left
    in its own order)."""
    perms, signs = {}, {}
    for layer, (p, bias, flips) in enumerate(zip(group.names, biases, t, strict=True)):
        order = np.arange(len(bias)) if layer == keep else np.argsort(flips * bias, kind="stable")
        perms[p], signs[p] = torch.as_tensor(order), torch.as_tensor(flips[order])
    return Transform(perms, signs)


def _best_flips(a: dict, exact_b: Params, group: GroupSpec, biases: list, t: list, layer: int):
    """The exact best flips of hidden ``layer`` (0-based) with the others fixed (see
    ``sorted_flips``)."""
    t = [np.ones_like(x) if k == layer else x for k, x in enumerate(t)]
    m, k = _moved(exact_b, group, _flip_sort(group, biases, t, keep=layer)), layer + 1
    score = a[f"W{k}"] @ m[f"W{k}"].T + np.outer(a[f"b{k}"], m[f"b{k}"])
    score += a[f"W{k + 1}"].T @ m[f"W{k + 1}"]  # (position of a, unit of b)
    bias = biases[layer]
    n = len(bias)
    dp, choice = np.full(n + 1, -np.inf), np.zeros((n, n + 1), dtype=bool)
    dp[0] = 0.0
    units = np.argsort(-np.abs(bias), kind="stable")
    for seen, j in enumerate(units):  # dp[neg]: best value with `neg` negatives so far
        neg, sign = np.arange(seen + 1), np.sign(bias[j]) or 1.0
        from_pos = np.append(dp[neg] + sign * score[n - 1 - (seen - neg), j], -np.inf)
        from_neg = np.append(-np.inf, dp[neg] - sign * score[neg, j])
        choice[seen, : seen + 2] = take = from_neg > from_pos
        dp[: seen + 2] = np.where(take, from_neg, from_pos)
    flips, neg = np.empty(n), int(np.argmax(dp))
    for seen in range(n - 1, -1, -1):  # back from the best end state
        j, negative = units[seen], choice[seen, neg]
        flips[j] = -(np.sign(bias[j]) or 1.0) if negative else np.sign(bias[j]) or 1.0
        neg -= int(negative)
    return flips
