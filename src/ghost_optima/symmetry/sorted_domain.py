"""Aligning tanh nets whose biases are kept sorted (``reorder.SortedBiases``, chapter 60).

Training in the sorted domain removes the permutations; what is left of the group are sign
flips of units, each followed by re-sorting the layer. ``sorted_sign_alignment`` finds the
flips that bring one such net closest to another (the signed weight-matching objective of
``ghost_optima.symmetry.matching`` restricted to this group), by an exact dynamic programme per
layer.
"""

import numpy as np
import torch

from ghost_optima.symmetry.matching import ODD, as_numpy, normalising_flips

Params = dict[str, torch.Tensor]


def sorted_sign_alignment(params_a: Params, params_b: Params, *, max_iter: int = 100) -> Params:
    """``b`` moved by the group left to tanh nets whose biases are kept increasing
    (``reorder.SortedBiases``): flips ``t_l`` of each hidden layer's units, then every layer
    re-sorted by bias, ``h_t b = sort(D_t b)``; ``t`` maximises ``<theta^a, h_t theta^b>``
    (``a`` as given, its unit ``k`` paired with the ``k``-th smallest bias of ``h_t b``).

    With the other layers fixed, layer ``l``'s part is ``sum_k t_(j_k) S[k, j_k]`` (``S`` the
    signed-matching score of layer ``l`` on ``b``'s own units, ``j_k`` the unit ranked ``k``).
    Taken by decreasing ``|b_j|``, a unit flipped to a negative bias takes the lowest free
    position and one left positive the highest, so the best ``t_l`` is an exact dynamic
    programme over (units seen, negatives among them), ``O(n_l^2)``. Layers are solved in turn
    until none improves, from ``t = 1`` and from the sign-normalising flips; the better end is
    kept. Exact for one hidden layer. The function of ``b`` is unchanged.
    """
    a, b = as_numpy(params_a), as_numpy(params_b)
    n_hidden = len(b) // 2 - 1
    kinds = {f"P{k}": np.full(len(b[f"b{k}"]), ODD) for k in range(1, n_hidden + 1)}
    best = None
    normalising = [flips for flips, _ in normalising_flips(b, kinds).values()]
    for t in ([np.ones(len(v)) for v in kinds.values()], normalising):
        value = _inner(a, _flip_sort(b, t))
        for _ in range(max_iter):
            for layer in range(n_hidden):
                t[layer] = _best_flips(a, b, t, layer)
            new = _inner(a, _flip_sort(b, t))
            done, value = new <= value + 1e-12 * abs(value), new
            if done:
                break
        if best is None or value > best[0]:
            best = (value, [x.copy() for x in t])
    moved = _flip_sort(b, best[1])
    return {k: torch.as_tensor(v, dtype=params_b[k].dtype) for k, v in moved.items()}


def _inner(a: dict, b: dict) -> float:
    return float(sum((a[k] * b[k]).sum() for k in a))


def _flip_sort(b: dict, t: list, keep: int | None = None) -> dict:
    """``b`` with hidden unit ``j`` of layer ``l`` flipped by ``t[l][j]`` (incoming, bias and
    outgoing) and every layer sorted by bias, except layer ``keep`` (left in its own order)."""
    out, prev, prev_order = {}, 1.0, None
    for layer, flips in enumerate(t, start=1):
        w, bias = flips[:, None] * b[f"W{layer}"] * prev, flips * b[f"b{layer}"]
        order = np.arange(len(bias)) if layer - 1 == keep else np.argsort(bias, kind="stable")
        w = w[order] if prev_order is None else w[order][:, prev_order]
        out[f"W{layer}"], out[f"b{layer}"] = w, bias[order]
        prev, prev_order = flips, order
    last = len(t) + 1
    out[f"W{last}"], out[f"b{last}"] = (b[f"W{last}"] * prev)[:, prev_order], b[f"b{last}"]
    return out


def _best_flips(a: dict, b: dict, t: list, layer: int) -> np.ndarray:
    """The exact best flips of hidden ``layer`` (0-based) with the others fixed (see
    ``sorted_sign_alignment``)."""
    t = [np.ones_like(x) if k == layer else x for k, x in enumerate(t)]
    m, k = _flip_sort(b, t, keep=layer), layer + 1
    score = a[f"W{k}"] @ m[f"W{k}"].T + np.outer(a[f"b{k}"], m[f"b{k}"])
    score += a[f"W{k + 1}"].T @ m[f"W{k + 1}"]  # (position of a, unit of b)
    bias = b[f"b{k}"]
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
