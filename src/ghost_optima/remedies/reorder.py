"""Re-ordering hidden units: as a relabelling during training, and as a constraint.

Two different things go by "re-ordering", and only the second can change what is learned.

1. **Canonical sorting (a relabelling).** Every ``k`` steps, replace each network by its
   canonical copy ``g theta`` (signs fixed for tanh, units sorted by a key;
   ``ghost_optima.symmetry.align.canonicalize``). The group acts by orthogonal maps that leave the
   loss
   unchanged, ``L(g theta) = L(theta)``, so ``grad L(g theta) = g grad L(theta)``: (stochastic)
   gradient descent on the same minibatches is *equivariant*, and the sorted run equals
   ``g`` applied to the unsorted one, step after step. The optimizer state must be relabelled
   with the parameters: momentum buffers and Adam's first moments transform like the
   parameters; Adam's second moments (running means of squared gradients) take the permutation
   but not the signs. Then every prediction is unchanged (up to rounding: sums run in another
   order); only where the run sits in parameter space changes. ``CanonicalSortHook`` does this
   inside ``train_ensemble``.

2. **Ordering as a constraint.** Train in coordinates where the units of a layer are sorted by
   bias, ``b = b_1 + [0, cumsum(softplus(d))]``, i.e. ``b_1 < b_2 < ... < b_n`` always
   (``SortedBiases``). The sorted region is a fundamental domain of the permutations: each
   network has exactly one sorted copy (for distinct biases). Unlike 1, this changes the
   optimization: the map ``(b_1, d) -> b`` is nonlinear and units can no longer pass each other
   in bias. Sign flips of tanh units (followed by re-sorting) still act inside the domain.

``canonical_perms`` and ``perms_between`` turn canonical forms into an alignment of one network
to another, to compare with weight matching (Ainsworth et al. 2023).
"""

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from ghost_optima.core.mlp import ACTIVATIONS
from ghost_optima.symmetry.align import sign_normalization, unit_sort_key
from ghost_optima.symmetry.group import (
    Transform,
    apply_transform,
    compose_transforms,
    mlp_permutation_spec,
)
from ghost_optima.symmetry.spec import GroupSpec

Params = dict[str, Tensor]


def _n_hidden(params: Params) -> int:
    return len(params) // 2 - 1


def canonical_transform(params: Params, activation: str, key: str = "incoming_norm") -> Transform:
    """The group element ``g`` with ``apply_transform(params, spec, g) ==
    align.canonicalize(params, activation, key)`` (bitwise): sign flips from
    ``align.sign_normalization`` for odd activations, then a descending stable sort by ``key``."""
    n_hidden = _n_hidden(params)
    spec = mlp_permutation_spec(n_hidden)
    layers = range(1, n_hidden + 1)
    identity = {f"P{k}": torch.arange(len(params[f"b{k}"])) for k in layers}
    signs = None
    if ACTIVATIONS[activation].symmetry == "odd":
        signs = sign_normalization(params, mlp_permutation_spec(n_hidden, activation)).signs
        params = apply_transform(params, spec, Transform(identity, signs=signs))
    perms = {
        f"P{k}": torch.argsort(unit_sort_key(params, k, key), descending=True, stable=True)
        for k in layers
    }
    return compose_transforms(Transform(identity, signs=signs), Transform(perms))


def _apply_member(tensors: dict, e: int, spec, transform: Transform) -> None:
    """Replace member ``e`` of every stacked tensor by ``transform`` of it, in place."""
    single = {k: v[e] for k, v in tensors.items()}
    for k, v in apply_transform(single, spec, transform).items():
        tensors[k][e].copy_(v)


@dataclass
class CanonicalSortHook:
    """A ``train_ensemble`` step hook: every ``every`` steps, move each member to its canonical
    copy and relabel its optimizer state consistently (``permute_state=False`` leaves the state
    alone, which breaks equivariance: a control). ``n_moves`` counts members actually moved."""

    activation: str
    every: int
    key: str = "incoming_norm"
    permute_state: bool = True
    n_moves: int = 0

    def __call__(self, step: int, params: Params, state: dict) -> None:
        if step % self.every:
            return
        spec = mlp_permutation_spec(_n_hidden(params))
        for e in range(params["W1"].shape[0]):
            g = canonical_transform({k: v[e] for k, v in params.items()}, self.activation, self.key)
            if all(torch.equal(p, torch.arange(len(p))) for p in g.perms.values()) and (
                g.signs is None or all(bool((s > 0).all()) for s in g.signs.values())
            ):
                continue
            self.n_moves += 1
            _apply_member(params, e, spec, g)
            if not self.permute_state or not state:
                continue
            first = {k: v[0] if isinstance(v, tuple) else v for k, v in state.items()}
            _apply_member(first, e, spec, g)
            second = {k: v[1] for k, v in state.items() if isinstance(v, tuple)}
            if second:  # Adam's second moments: the permutation without the signs
                _apply_member(second, e, spec, Transform(g.perms))


def inverse_softplus(y: Tensor) -> Tensor:
    """``x`` with ``softplus(x) = log(1 + e^x) = y`` for ``y > 0``: ``y + log(-expm1(-y))``."""
    return y + torch.log(-torch.expm1(-y))


def _take_units(params: Params, layer: int, order: Tensor) -> Params:
    """Relabel units of ``layer`` by ``order`` (``(..., n)``), stacked or single networks."""
    out = dict(params)
    out[f"W{layer}"] = torch.take_along_dim(params[f"W{layer}"], order.unsqueeze(-1), dim=-2)
    out[f"b{layer}"] = torch.take_along_dim(params[f"b{layer}"], order, dim=-1)
    out[f"W{layer + 1}"] = torch.take_along_dim(
        params[f"W{layer + 1}"], order.unsqueeze(-2), dim=-1
    )
    return out


def _sorted_by_bias(params: Params, layer: int) -> tuple[Params, torch.Tensor]:
    """``params`` with the units of hidden ``layer`` relabelled in increasing bias (stable), and
    those biases: the common start of ``SortedBiases`` and its twin ``CumsumBiases``."""
    out = _take_units(params, layer, torch.argsort(params[f"b{layer}"], dim=-1, stable=True))
    return out, out[f"b{layer}"]


@dataclass(frozen=True)
class SortedBiases:
    """Train with the biases of ``layers`` sorted: raw ``r = (b_1, d_1, ..., d_{n-1})`` (same
    shape as ``b``) gives ``b = b_1 + [0, cumsum(softplus(d))]``, strictly increasing.

    A ``train_ensemble`` reparameterization; works on stacked ``(E, ...)`` or single networks.
    ``to_raw`` first sorts the units by bias (a relabelling: the function is unchanged).
    """

    layers: tuple[int, ...] = (1,)

    def to_params(self, raw: Params) -> Params:
        out = dict(raw)
        for layer in self.layers:
            r = raw[f"b{layer}"]
            first = r[..., :1]
            out[f"b{layer}"] = torch.cat(
                [first, first + torch.cumsum(F.softplus(r[..., 1:]), dim=-1)], dim=-1
            )
        return out

    def sorted_spec(self, spec: GroupSpec) -> GroupSpec:
        """``spec`` (an MLP's) with the units of ``layers`` kept sorted by their biases."""
        return replace(spec, sorted_by={f"P{layer}": f"b{layer}" for layer in self.layers})

    def to_raw(self, params: Params) -> Params:
        out = dict(params)
        for layer in self.layers:
            out, b = _sorted_by_bias(out, layer)
            gaps = torch.diff(b, dim=-1)
            if bool((gaps <= 0).any()):
                raise ValueError(f"layer {layer} has tied biases; they cannot be strictly sorted")
            out[f"b{layer}"] = torch.cat([b[..., :1], inverse_softplus(gaps)], dim=-1)
        return out


@dataclass(frozen=True)
class CumsumBiases:
    """The order-free twin of ``SortedBiases``: raw ``r = (b_1, d_1, ..., d_{n-1})`` gives
    ``b = b_1 + [0, cumsum(d)]``, a *linear* bijection, so every bias vector (any order) is
    reachable and the permutations survive. Gradient descent in ``r`` couples the biases through
    the cumulative sum exactly as ``SortedBiases`` does, without its softplus and hence without
    the order constraint: the difference between the two isolates the constraint.

    ``to_raw`` sorts the units by bias first (a relabelling), so both start from the same
    network with the same unit order.
    """

    layers: tuple[int, ...] = (1,)

    def to_params(self, raw: Params) -> Params:
        out = dict(raw)
        for layer in self.layers:
            out[f"b{layer}"] = torch.cumsum(raw[f"b{layer}"], dim=-1)
        return out

    def to_raw(self, params: Params) -> Params:
        out = dict(params)
        for layer in self.layers:
            out, b = _sorted_by_bias(out, layer)
            out[f"b{layer}"] = torch.cat([b[..., :1], torch.diff(b, dim=-1)], dim=-1)
        return out


def canonical_perms(params: Params, activation: str, key: str = "incoming_norm") -> Params:
    """The sorting permutations of ``canonical_transform`` (after its sign flips)."""
    return canonical_transform(params, activation, key).perms


def perms_between(sort_a: Params, sort_b: Params) -> Params:
    """Align ``b`` to ``a`` through their canonical forms: unit ``i`` of ``a`` has canonical rank
    ``r = sort_a^{-1}(i)``, matched to ``b``'s unit of the same rank, ``pi(i) = sort_b(r)``."""
    return {p: sort_b[p][torch.argsort(sort_a[p])] for p in sort_a}


def agreement(perms_a: Params, perms_b: Params) -> float:
    """Fraction of hidden units that two alignments send to the same unit."""
    same = sum(int((perms_a[p] == perms_b[p]).sum()) for p in perms_a)
    return same / sum(len(p) for p in perms_a.values())
