"""One door for comparing solutions modulo symmetry: ``align``, and canonical forms.

Two MLPs that differ only by an element of their symmetry group compute the same function, so
their raw weight distance says little. ``align(a, b, group, method)`` returns the element ``g``
of ``group`` (a ``GroupSpec``: permutation axes, unit parities, classes of exchangeable units,
sorted units) that moves ``b`` onto ``a``; ``apply_transform(b, group, g)``
(``ghost_optima.symmetry.group``) is ``b`` aligned, with ``b``'s function. The methods:

* ``"weight"``: maximise ``J(g) = <theta^a, g . theta^b>`` over the group (Ainsworth, Hayase &
  Srinivasa 2023, "Git Re-Basin", ICLR, Algorithm 1, extended to signed permutations with each
  unit's parity and to classes: ``ghost_optima.symmetry.matching``) by coordinate descent,
  started from ``"normalised weight"`` when some unit has a sign symmetry, so never worse than
  it. Exact for one hidden layer. The group acts orthogonally, so this also minimises
  ``||theta^a - g . theta^b||``. On a spec with sorted units (``sorted_by``) the group left is
  the flips of odd units, each layer re-sorted: an exact dynamic programme per layer
  (``ghost_optima.symmetry.sorted_domain``);
* ``"weight from identity"``: the same descent started from the identity (about half the time,
  and no such guarantee: worse on 21 of 300 small random tanh pairs, better on the rest);
* ``"normalised weight"``: both nets sign-normalised on their own (each unit's largest
  incoming weight made positive by its own parity's flip, ``matching.normalising_flips``:
  ``D_a``, ``D_b``), then the permutations matched, ``g = D_a o pi o D_b``: the alignment the
  book used before the signed descent;
* ``"activation"``: per hidden layer, an assignment on the Pearson correlation of activations on
  inputs ``x`` (Git Re-Basin Sec. 3.1; ``matching.correlation_transform``), signs from it for
  odd units.

``canonicalize`` picks a representative of the orbit by sorting units (and fixing signs for odd
activations), so equal orbits give bitwise equal parameters. Pair statistics (distances,
barriers, disagreement) are in ``ghost_optima.symmetry.pairwise``.

Parameters are single-network dicts ``{"W1": (n_1, n_0), "b1": (n_1,), ...}`` and permutations
are dicts ``{"P1": LongTensor(n_1), ..., "PL": LongTensor(n_L)}`` with the convention of
``ghost_optima.symmetry.group.Transform``: after ``permute(params, perms)``, unit ``i`` of layer
``l`` is old unit ``perms[f"P{l}"][i]``.
"""

from typing import Literal

import torch

from ghost_optima.core import timing
from ghost_optima.core.mlp import ACTIVATIONS, ActivationLike
from ghost_optima.core.train import stack_params
from ghost_optima.symmetry.group import Transform, apply_transform, mlp_permutation_spec
from ghost_optima.symmetry.matching import (
    EVEN,
    NONE,
    ODD,
    as_numpy,
    correlation_transform,
    descend,
    normalising_flips,
    standardised_hidden,
    unit_kinds,
)
from ghost_optima.symmetry.sorted_domain import sorted_flips
from ghost_optima.symmetry.spec import GroupSpec

Params = dict[str, torch.Tensor]
Perms = dict[str, torch.Tensor]
Method = Literal["weight", "weight from identity", "normalised weight", "activation"]
METHODS = ("weight", "weight from identity", "normalised weight", "activation")


@timing.timed("alignment")
def align(
    params_a: Params,
    params_b: Params,
    group: GroupSpec,
    method: Method = "weight",
    *,
    seed: int = 0,
    max_iter: int = 100,
    x: torch.Tensor | None = None,
    activation: ActivationLike | None = None,
) -> Transform:
    """The element ``g`` of ``group`` aligning ``b`` to ``a`` by ``method`` (module docstring):
    ``apply_transform(params_b, group, g)`` computes ``b``'s function and sits near ``a``.

    ``seed`` draws the descent's order of layers, ``max_iter`` bounds its sweeps (weight
    methods); ``x`` (``(N, n_0)``) and ``activation`` (a name of ``mlp.ACTIVATIONS`` or a layer
    activation) are the activation method's inputs and forward pass. ``g.signs`` holds the flips
    of odd units (None when no unit has a sign symmetry), ``g.even_signs`` those of even units
    (None when there are none).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {METHODS}")
    kinds, classes = unit_kinds(group, params_a)
    if group.sorted_by:
        return _sorted(params_a, params_b, group, kinds, method, max_iter)
    if method == "activation":
        if x is None or activation is None:
            raise ValueError("activation matching needs inputs x and the activation")
        std = standardised_hidden(stack_params([params_a, params_b]), x, activation)
        return correlation_transform(std, 0, 1, kinds, classes)
    a, b = as_numpy(params_a), as_numpy(params_b)
    options = dict(max_iter=max_iter, seed=seed, classes=classes or None)
    if group.has_signs() and method != "weight from identity":
        d_a, d_b = normalising_flips(a, kinds), normalising_flips(b, kinds)
        options |= dict(pattern={p: (d_a[p], d_b[p]) for p in kinds}, free=method == "weight")
    state = descend(a, b, group, kinds, options)
    perms = {p: torch.as_tensor(s[0], dtype=torch.long) for p, s in state.items()}
    if not group.has_signs():
        return Transform(perms)
    signs = {p: torch.as_tensor(s[2]) for p, s in state.items()}
    if not any((k == EVEN).any() for k in kinds.values()):
        return Transform(perms, signs)
    return Transform(
        perms, signs, even_signs={p: torch.as_tensor(s[1] * s[2]) for p, s in state.items()}
    )


def _sorted(
    params_a: Params, params_b: Params, group: GroupSpec, kinds: dict, method: str, max_iter: int
) -> Transform:
    """``align`` on a spec with sorted units: the flips of ``sorted_domain.sorted_flips``, or the
    identity when no unit is odd (no other element keeps the units sorted)."""
    if method != "weight" or set(group.sorted_by) != set(kinds) or group.classes:
        raise ValueError(
            "sorted units are aligned by weight, every hidden layer sorted, no classes"
        )
    if all((k == NONE).all() for k in kinds.values()):
        return Transform({p: torch.arange(len(k)) for p, k in kinds.items()})
    if any((k != ODD).any() for k in kinds.values()):
        raise ValueError("sorted units are aligned with every unit odd, or none")
    return sorted_flips(params_a, params_b, group, max_iter=max_iter)


def _n_hidden(params: Params) -> int:
    return len(params) // 2 - 1


def permute(params: Params, perms: Perms) -> Params:
    """Relabel hidden units: ``W_l -> W_l[p_l][:, p_{l-1}]``, ``b_l -> b_l[p_l]``."""
    spec = mlp_permutation_spec(_n_hidden(params))
    transform = Transform({k: torch.as_tensor(v, dtype=torch.long) for k, v in perms.items()})
    return apply_transform(params, spec, transform)


CanonicalKey = Literal["incoming_norm", "outgoing_norm", "bias"]


def sign_normalization(params: Params, group: GroupSpec) -> Transform:
    """The flips that ``normalize_signs`` applies (identity permutations): ``signs`` those of the
    odd units, ``even_signs`` those of the even units (None when ``group`` has none)."""
    kinds, _ = unit_kinds(group, params)
    flips = normalising_flips(as_numpy(params), kinds)
    perms = {p: torch.arange(len(k)) for p, k in kinds.items()}
    signs = {p: torch.as_tensor(s_out) for p, (_, s_out) in flips.items()}
    if not any((k == EVEN).any() for k in kinds.values()):
        return Transform(perms, signs)
    even = {p: torch.as_tensor(s_in * s_out) for p, (s_in, s_out) in flips.items()}
    return Transform(perms, signs, even_signs=even)


def normalize_signs(params: Params, group: GroupSpec) -> Params:
    """Flip hidden units so each one's largest-magnitude incoming weight is positive, each unit
    by its own parity in ``group`` (an MLP's; ``matching.normalising_flips``).

    With ``r_i = [W_l[i, :], b_l[i]]`` the incoming row of unit ``i`` *after* the flips of
    layer ``l - 1`` (which multiply the columns of ``W_l``), unit ``i`` of layer ``l`` is
    multiplied by ``s_i = sign(r_i[argmax |r_i|])``: its row and bias, and for an odd unit its
    outgoing column of ``W_{l+1}`` too (an even unit, ``phi(-z) = phi(z)``, keeps it; a unit of
    no parity is not flipped). The result is equivariant under permutations and invariant under
    the group's flips (for weights without ties in ``|r_i|``).
    """
    return apply_transform(params, group, sign_normalization(params, group))


def canonicalize(params: Params, activation: str, key: CanonicalKey = "incoming_norm") -> Params:
    """The orbit representative with sorted units (and fixed signs for odd activations).

    For odd activations (tanh) signs are first fixed by ``normalize_signs``. Then the units of
    every hidden layer are sorted in decreasing order of ``key``: ``"incoming_norm"``
    ``||[W_l[i, :], b_l[i]]||``, ``"outgoing_norm"`` ``||W_{l+1}[:, i]||``, or ``"bias"``
    ``b_l[i]``. Each key is unchanged by permutations of the other layers, so all layers are
    sorted at once.

    Two copies related by a permutation (and sign flips, for odd activations) map to bitwise
    identical parameters when the keys within each layer are distinct (true for generic
    weights). Positive rescalings of ReLU units are not quotiented out.
    """
    if ACTIVATIONS[activation].symmetry == "odd":
        params = normalize_signs(params, mlp_permutation_spec(_n_hidden(params), activation))
    perms = {
        f"P{layer}": torch.argsort(unit_sort_key(params, layer, key), descending=True, stable=True)
        for layer in range(1, _n_hidden(params) + 1)
    }
    return permute(params, perms)


def unit_sort_key(params: Params, layer: int, key: CanonicalKey) -> torch.Tensor:
    """The value by which ``canonicalize`` sorts the units of hidden ``layer`` (``(n_l,)``).

    ``"incoming_norm"``: ``||[W_l[i, :], b_l[i]]||``; ``"outgoing_norm"``: ``||W_{l+1}[:, i]||``;
    ``"bias"``: ``b_l[i]``. Each is unchanged by permutations of the other layers.
    """
    w, b = params[f"W{layer}"], params[f"b{layer}"]
    if key == "incoming_norm":
        return torch.cat([w, b.unsqueeze(1)], dim=1).norm(dim=1)
    if key == "outgoing_norm":
        return params[f"W{layer + 1}"].norm(dim=0)
    if key == "bias":
        return b
    raise ValueError(f"unknown key {key!r}")
