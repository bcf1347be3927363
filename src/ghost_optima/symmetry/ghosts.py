"""The ghost copy of a point nearest to it: one transposition of two hidden units (claim T6).

For an MLP with parameters ``theta`` (layout of :mod:`ghost_optima.core.mlp`), describe hidden unit
``i`` of layer ``l`` by ``u_i = (W_l[i, :], b_l[i], W_{l+1}[:, i])``, its incoming weights,
bias and outgoing weights. The group element that swaps units ``i`` and ``j`` of layer ``l``
(and, for odd activations, flips the sign of both, ``sigma = -1``) moves only those two
units, so its copy lies at distance ::

    ||theta - g theta|| = sqrt(||u_i - sigma u_j||^2 + ||u_j - sigma u_i||^2)
                        = sqrt(2) ||u_i - sigma u_j||

(the copies that T6 compares with SGD's cloud; a lone sign flip, ``2 ||u_i||`` away, is not
searched). The search compares unit vectors; the copy itself is built as a
:class:`ghost_optima.symmetry.group.Transform` and applied by
:func:`ghost_optima.symmetry.group.apply_transform`, the only place symmetries act.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ghost_optima.core.mlp import Params, activation, mlp_widths
from ghost_optima.symmetry.group import Transform, apply_transform, mlp_permutation_spec

__all__ = [
    "Ghost",
    "nearest_ghost",
    "swap_transform",
    "unit_pair_distances",
    "unit_partner_distances",
    "unit_vectors",
]


@dataclass(frozen=True)
class Ghost:
    """The closest copy of a point reached by swapping two hidden units of one layer.

    ``layer`` (1-based hidden layer), units ``i < j``, ``sign`` (+1, or -1: both swapped units
    also flip, allowed for odd activations); ``distance`` is ``||theta - theta_ghost||``
    ``= sqrt(2) ||u_i - sign u_j||``; ``transform`` is the group element and ``params`` the
    copy itself.
    """

    distance: float
    layer: int
    i: int
    j: int
    sign: int
    transform: Transform
    params: Params


def unit_vectors(params: Params, layer: int) -> Tensor:
    """``(n_layer, n_{layer-1} + 1 + n_{layer+1})``: row ``i`` is ``u_i`` of hidden ``layer``."""
    w, b, out = params[f"W{layer}"], params[f"b{layer}"], params[f"W{layer + 1}"]
    return torch.cat([w, b.unsqueeze(1), out.T], dim=1)


def _signs(activation_name: str) -> tuple[int, ...]:
    return (1, -1) if activation(activation_name).symmetry == "odd" else (1,)


def unit_pair_distances(params: Params, activation: str, layer: int = 1) -> Tensor:
    """``(n, n)``: ``min_sigma ||u_i - sigma u_j||`` for every pair of units of hidden ``layer``.

    ``sigma`` ranges over ``{+1, -1}`` for odd activations, ``{+1}`` otherwise; the diagonal is
    ``inf`` (a unit is not its own partner).
    """
    U = unit_vectors(params, layer).double()
    D = torch.stack([torch.cdist(U, s * U) for s in _signs(activation)]).amin(dim=0)
    D.fill_diagonal_(math.inf)
    return D


def unit_partner_distances(params: Params, activation: str, layer: int = 1) -> Tensor:
    """For each unit of hidden ``layer``: ``min_j ||u_i - sigma u_j||`` over the other units.

    ``sigma`` ranges over ``{+1, -1}`` for odd activations, ``{+1}`` otherwise. A value near
    zero means unit ``i`` has a duplicate (up to sign): swapping the two gives back (almost)
    the same point.
    """
    if params[f"b{layer}"].shape[0] < 2:
        raise ValueError("the layer has fewer than two units")
    return unit_pair_distances(params, activation, layer).min(dim=1).values


def swap_transform(widths: tuple[int, ...], layer: int, i: int, j: int, sign: int) -> Transform:
    """The group element that swaps units ``i`` and ``j`` of hidden ``layer``, times ``sign``.

    Every other permutation is the identity; ``signs`` is given (ones except ``sign`` at ``i``
    and ``j``) only when ``sign = -1``.
    """
    hidden = range(1, len(widths) - 1)
    perms = {f"P{k}": torch.arange(widths[k]) for k in hidden}
    perms[f"P{layer}"][[i, j]] = torch.tensor([j, i])
    if sign == 1:
        return Transform(perms)
    signs = {f"P{k}": torch.ones(widths[k], dtype=torch.float64) for k in hidden}
    signs[f"P{layer}"][[i, j]] = float(sign)
    return Transform(perms, signs=signs)


def nearest_ghost(params: Params, activation: str, *, exclude_below: float = 0.0) -> Ghost | None:
    """Search every pair of units of every hidden layer (and both signs for odd activations).

    Pairs with ``||u_i - sigma u_j|| <= exclude_below`` are skipped: with a positive value this
    finds the nearest *distinct* copy, ignoring units that (nearly) coincide. Returns ``None``
    when every pair is excluded.
    """
    widths = mlp_widths(params)
    best: tuple[float, int, int, int, int] | None = None
    n_searched = 0
    for layer in range(1, len(widths) - 1):
        U = unit_vectors(params, layer).double()
        n = U.shape[0]
        if n < 2:
            continue
        n_searched += 1
        for s in _signs(activation):
            dist = torch.cdist(U, s * U)
            dist.fill_diagonal_(math.inf)
            if exclude_below > 0:
                dist = dist.masked_fill(dist <= exclude_below, math.inf)
            i, j = divmod(int(torch.argmin(dist)), n)
            if not math.isfinite(float(dist[i, j])):
                continue
            value = math.sqrt(2.0) * float(dist[i, j])
            if best is None or value < best[0]:
                best = (value, layer, min(i, j), max(i, j), s)
    if n_searched == 0:
        raise ValueError("no hidden layer has two units")
    if best is None:
        return None
    value, layer, i, j, s = best
    transform = swap_transform(widths, layer, i, j, s)
    copy = apply_transform(params, mlp_permutation_spec(len(widths) - 2), transform)
    return Ghost(value, layer, i, j, s, transform, copy)
