"""The stabiliser of a point under the unit symmetries, and its effective orbit size (claim T2).

The group of :mod:`ghost_optima.symmetry.group` (permutations of every hidden layer, with sign flips
for odd activations) has ``prod_l n_l! (2^{n_l})`` elements, but a point fixed by some of them
has fewer distinct copies: by the orbit-stabiliser theorem the orbit has ``|G| / |G_theta|``
points. At trained minima with weight decay the elements that fix a point come from duplicated
units. Hidden unit ``i`` of layer ``l`` is the vector ``u_i = (W_l[i, :], b_l[i], W_{l+1}[:, i])``
(incoming weights, bias, outgoing weights). Within a layer, with ``scale`` the largest unit norm
and ``tol`` a relative tolerance:

* a unit is *dead* when ``||u_i|| <= tol * scale``;
* two live units are *duplicates* when ``||u_i - u_j|| <= tol * scale`` (or, for odd
  activations, ``||u_i + u_j|| <= tol * scale``: equal up to a sign flip); groups are the
  connected components of that relation.

A group of ``m`` live duplicates is fixed by its ``m!`` relabellings (each with the sign flips
that map the members onto each other, which are then determined); the ``m`` dead units of a
layer by their ``m!`` relabellings times, for odd activations, ``2^m`` sign flips. The
stabiliser's size is the product over layers and groups. For one hidden layer this is the whole
stabiliser of the point (up to the tolerance); for deeper nets it is the product of the
stabilisers of each layer's subgroup, a subgroup of the whole stabiliser (an element moving two
layers at once can fix a point that neither move fixes alone only in non-generic cases).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ghost_optima.core import mlp
from ghost_optima.core.mlp import Params
from ghost_optima.symmetry.group import log10_orbit_size

__all__ = [
    "LayerGroups",
    "layer_groups",
    "log10_effective_orbit",
    "log10_stabiliser",
    "stabiliser_size",
    "unit_vectors",
]


@dataclass(frozen=True)
class LayerGroups:
    """Hidden layer ``layer``'s units sorted into duplicate groups (sizes >= 2) and dead units."""

    layer: int
    groups: tuple[tuple[int, ...], ...]
    dead: tuple[int, ...]
    odd: bool

    def log10_size(self) -> float:
        """log10 of this layer's contribution to the stabiliser."""
        live = sum(math.lgamma(len(g) + 1) for g in self.groups) / math.log(10)
        m = len(self.dead)
        dead = math.lgamma(m + 1) / math.log(10) + (m * math.log10(2) if self.odd else 0.0)
        return live + dead

    def size(self) -> int:
        """This layer's contribution to the stabiliser, as an exact integer."""
        m = len(self.dead)
        dead = math.factorial(m) * (2**m if self.odd else 1)
        return math.prod(math.factorial(len(g)) for g in self.groups) * dead


def _n_hidden(params: Params) -> int:
    return len(params) // 2 - 1


def unit_vectors(params: Params, layer: int) -> Tensor:
    """``(n_layer, n_prev + 1 + n_next)``: each unit's incoming weights, bias, outgoing weights."""
    if not 1 <= layer <= _n_hidden(params):
        raise ValueError(f"layer must be a hidden layer 1..{_n_hidden(params)}, got {layer}")
    w_in, b, w_out = params[f"W{layer}"], params[f"b{layer}"], params[f"W{layer + 1}"]
    return torch.cat([w_in, b.unsqueeze(1), w_out.T], dim=1).to(torch.float64)


def layer_groups(params: Params, layer: int, activation: str, *, tol: float = 1e-3) -> LayerGroups:
    """Duplicate groups and dead units of hidden layer ``layer`` (module docstring)."""
    odd = mlp.activation(activation).symmetry == "odd"
    u = unit_vectors(params, layer)
    norms = u.norm(dim=1)
    scale = float(norms.max()) if len(norms) else 0.0
    threshold = tol * scale
    dead = [i for i in range(len(u)) if norms[i] <= threshold]
    live = [i for i in range(len(u)) if norms[i] > threshold]
    close = torch.cdist(u, u, compute_mode="donot_use_mm_for_euclid_dist") <= threshold
    if odd:
        close |= torch.cdist(u, -u, compute_mode="donot_use_mm_for_euclid_dist") <= threshold
    parent = {i: i for i in live}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a in live:
        for b in live:
            if a < b and close[a, b]:
                parent[root(a)] = root(b)
    components: dict[int, list[int]] = {}
    for i in live:
        components.setdefault(root(i), []).append(i)
    groups = tuple(sorted(tuple(c) for c in components.values() if len(c) > 1))
    return LayerGroups(layer, groups, tuple(dead), odd)


def stabiliser_size(params: Params, activation: str, *, tol: float = 1e-3) -> int:
    """The number of group elements that fix ``params``, as an exact integer (small nets)."""
    layers = range(1, _n_hidden(params) + 1)
    return math.prod(layer_groups(params, layer, activation, tol=tol).size() for layer in layers)


def log10_stabiliser(params: Params, activation: str, *, tol: float = 1e-3) -> float:
    """log10 of :func:`stabiliser_size`, computed through ``ln Gamma`` (any width)."""
    layers = range(1, _n_hidden(params) + 1)
    return sum(layer_groups(params, layer, activation, tol=tol).log10_size() for layer in layers)


def log10_effective_orbit(params: Params, activation: str, *, tol: float = 1e-3) -> float:
    """log10 of the number of distinct copies: the nominal count over the stabiliser's size."""
    widths = [params[f"b{i}"].shape[0] for i in range(1, _n_hidden(params) + 1)]
    nominal = log10_orbit_size(widths, activation)
    return nominal - log10_stabiliser(params, activation, tol=tol)
