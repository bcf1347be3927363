"""Comparing solutions modulo symmetry: alignment, canonical forms, distances and barriers.

Two MLPs that differ only by a relabelling of hidden units compute the same function, so their
raw weight distance says little. This module removes the permutation before comparing:

* ``weight_matching``: the permutations ``pi`` of a ``PermutationSpec`` maximising
  ``<theta^a, pi(theta^b)>`` by coordinate descent, one assignment problem per permutation
  (Ainsworth, Hayase & Srinivasa 2023, "Git Re-Basin", ICLR, Algorithm 1);
* ``signed_alignment`` / ``align_to``: the same over the activation's whole finite group
  (signed permutations for odd activations; ``ghost_optima.symmetry.matching``), by weight matching
  (exact for one hidden layer) or by activation matching on inputs;
* ``canonicalize``: a representative of the orbit picked by sorting units (and fixing signs
  for odd activations), so equal orbits give bitwise equal parameters;
* ``barrier``: the loss barrier on the straight line between two solutions (linear mode
  connectivity, Frankle et al. 2020, "Linear mode connectivity and the lottery ticket
  hypothesis", ICML; modulo permutations, Entezari et al. 2022, "The role of permutation
  invariance in linear mode connectivity of neural networks", ICLR).

Parameters are single-network dicts ``{"W1": (n_1, n_0), "b1": (n_1,), ...}`` and permutations
are dicts ``{"P1": LongTensor(n_1), ..., "PL": LongTensor(n_L)}`` with the convention of
``ghost_optima.symmetry.group.Transform``: after ``permute(params, perms)``, unit ``i`` of layer
``l``
is old unit ``perms[f"P{l}"][i]``.
"""

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from ghost_optima.core.data import Task
from ghost_optima.core.mlp import ACTIVATIONS
from ghost_optima.core.train import evaluate
from ghost_optima.symmetry.group import (
    PermutationSpec,
    Transform,
    apply_transform,
    compose_transforms,
    incoming_spec,
    mlp_permutation_spec,
)
from ghost_optima.symmetry.matching import (
    KINDS,
    activation_matching,
    as_numpy,
    coordinate_descent,
    descend,
    normalising_flips,
)

Params = dict[str, torch.Tensor]
Perms = dict[str, torch.Tensor]


def _n_hidden(params: Params) -> int:
    return len(params) // 2 - 1


def permute(params: Params, perms: Perms) -> Params:
    """Relabel hidden units: ``W_l -> W_l[p_l][:, p_{l-1}]``, ``b_l -> b_l[p_l]``."""
    spec = mlp_permutation_spec(_n_hidden(params))
    transform = Transform({k: torch.as_tensor(v, dtype=torch.long) for k, v in perms.items()})
    return apply_transform(params, spec, transform)


def weight_matching(
    params_a: Params,
    params_b: Params,
    spec: PermutationSpec | None = None,
    *,
    max_iter: int = 100,
    seed: int = 0,
    classes: dict[str, np.ndarray] | None = None,
) -> Perms:
    """Permutations (no signs) of ``b``'s units that best align its weights with ``a``'s.

    ``spec`` declares which permutation acts on which axis of which parameter
    (``symmetry.PermutationSpec``; default the MLP's, ``mlp_permutation_spec``). Maximises
    ``sum_params <theta^a, pi(theta^b)>`` by permutation coordinate descent (Git Re-Basin,
    Algorithm 1; ``ghost_optima.symmetry.matching.coordinate_descent`` with no signs). For an MLP,
    ``P_l``'s score is ``W_l^a (W_l^b[:, p_{l-1}])^T + (W_{l+1}^a)^T W_{l+1}^b[p_{l+1}, :] +
    b_l^a (b_l^b)^T``, solved exactly by ``scipy.optimize.linear_sum_assignment``. Returns
    ``{name: LongTensor}`` for every permutation of ``spec``: ``permute(params_b, perms)`` is
    ``b`` aligned to ``a``. ``classes[p]`` labels the units of ``p`` (same labels in both nets)
    and restricts ``p`` to map units within a label (``ghost_optima.remedies.masks``).

    For odd activations this ignores sign flips; ``signed_alignment`` matches the whole group.
    """
    spec = spec or mlp_permutation_spec(_n_hidden(params_a))
    found = coordinate_descent(
        params_a, params_b, spec, max_iter=max_iter, seed=seed, classes=classes
    )
    return found.perms


def signed_alignment(
    params_a: Params,
    params_b: Params,
    activation: str,
    *,
    method: Literal["weight", "activation"] = "weight",
    x: torch.Tensor | None = None,
    seed: int = 0,
    max_iter: int = 100,
    start: Literal["previous", "identity"] = "previous",
) -> Transform:
    """The group element ``g`` (permutations, and signs for odd activations) aligning ``b``
    to ``a``: ``apply_transform(params_b, mlp_permutation_spec(L), g)`` computes ``b``'s
    function and sits near ``a``.

    ``method="weight"``: maximise ``<theta^a, g . theta^b>`` over signed permutations by
    coordinate descent (``matching.coordinate_descent``); exact for one hidden layer (an
    assignment on ``|S|`` with signs from ``S``). For odd activations and several hidden layers
    the descent starts from sign-normalise-then-match (``group_alignment``: that method run in
    the raw coordinates, signs tied to the pairs, sharing its score terms with the free descent
    that follows), so it is never worse than that older method; ``start="identity"``
    starts from the identity instead (about half the time, no such guarantee: worse on 21 of 300
    small random pairs, better on the rest). ReLU: permutations only
    (a positive rescaling is not a sign). ``method="activation"``: ``matching.activation_matching``
    on the inputs ``x`` (correlation of hidden activations, signs for odd activations).
    """
    n_hidden = _n_hidden(params_a)
    odd = ACTIVATIONS[activation].symmetry == "odd"
    if method == "activation":
        if x is None:
            raise ValueError("activation matching needs inputs x")
        return activation_matching(params_a, params_b, x, activation)
    if method != "weight":
        raise ValueError(f"unknown method {method!r}")
    spec = mlp_permutation_spec(n_hidden)
    names = [f"P{layer}" for layer in range(1, n_hidden + 1)]
    if odd and n_hidden > 1 and start == "previous":
        parities = [("odd",) * len(params_a[f"b{layer}"]) for layer in range(1, n_hidden + 1)]
        return group_alignment(params_a, params_b, parities, seed=seed, max_iter=max_iter)[0]
    return coordinate_descent(
        params_a, params_b, spec, signed=names if odd else (), max_iter=max_iter, seed=seed
    )


def sign_normalised_matching(
    params_a: Params, params_b: Params, *, seed: int = 0, max_iter: int = 100
) -> Transform:
    """The previous tanh alignment as a group element on ``b``: both nets sign-normalised on
    their own (``normalize_signs``: signs ``D_a``, ``D_b``), then permutations ``pi`` by
    ``weight_matching``; ``g = D_a o pi o D_b`` (``D_a`` is its own inverse), so that
    ``||a - g . b|| = ||D_a a - pi D_b b||``, the distance that method reported."""
    identity = _identity_perms(params_a)
    d_a, d_b = sign_normalization(params_a), sign_normalization(params_b)
    perms = weight_matching(
        normalize_signs(params_a), normalize_signs(params_b), seed=seed, max_iter=max_iter
    )
    first = compose_transforms(Transform(identity, signs=d_b), Transform(perms))
    return compose_transforms(first, Transform(identity, signs=d_a))


def align_to(params_a: Params, params_b: Params, activation: str, **kwargs) -> Params:
    """``b`` moved by ``signed_alignment(params_a, params_b, activation, **kwargs)``."""
    g = signed_alignment(params_a, params_b, activation, **kwargs)
    return apply_transform(params_b, mlp_permutation_spec(_n_hidden(params_b)), g)


def group_alignment(
    params_a: Params,
    params_b: Params,
    parities: Sequence[Sequence[str]],
    *,
    classes: dict[str, np.ndarray] | None = None,
    seed: int = 0,
    max_iter: int = 100,
) -> tuple[Transform, dict[str, torch.Tensor]]:
    """The element of ``b``'s group maximising ``<theta^a, g . theta^b>``, started from
    sign-normalise-then-match, so never worse than that method.

    An MLP with ``L = len(parities)`` hidden layers; ``parities[l - 1][i]`` is ``"odd"`` (flip
    incoming row, bias and outgoing column together), ``"even"`` (flip the incoming side only,
    ``phi(-z) = phi(z)``) or ``"none"``; ``classes[p]`` restricts permutations (units of one
    class share a parity). ``descend`` first runs the descent with the signs tied to the pairs,
    ``s_i = d^a_i d^b_{pi(i)}`` (``d`` the flips of ``orthopoly.normalize_signs``), which is
    weight matching of the two sign-normalised nets, then the free one from its end. Exact
    for one hidden layer. Returns ``(g, even)``: ``g`` the permutations and odd flips, ``even``
    the incoming-only flips, applied after ``g`` (``apply_group``).
    """
    spec = mlp_permutation_spec(len(parities))
    kinds = {f"P{k}": np.array([KINDS[u] for u in units]) for k, units in enumerate(parities, 1)}
    a, b = as_numpy(params_a), as_numpy(params_b)
    d_a, d_b = normalising_flips(a, kinds), normalising_flips(b, kinds)
    pattern = {p: (d_a[p], d_b[p]) for p in kinds}
    state = descend(
        a, b, spec, kinds, dict(max_iter=max_iter, seed=seed, classes=classes, pattern=pattern)
    )
    perms = {p: torch.as_tensor(s[0], dtype=torch.long) for p, s in state.items()}
    signs = {p: torch.as_tensor(s[2]) for p, s in state.items()}
    return Transform(perms, signs), {p: torch.as_tensor(s[1] * s[2]) for p, s in state.items()}


def apply_group(params: Params, g: Transform, even: dict[str, torch.Tensor]) -> Params:
    """``params`` moved by ``group_alignment``'s answer: ``g`` on the MLP's spec, then the
    incoming-only flips ``even`` on its produced axes (``symmetry.incoming_spec``)."""
    spec = mlp_permutation_spec(len(g.perms))
    identity = {p: torch.arange(len(s)) for p, s in even.items()}
    moved = apply_transform(params, spec, g)
    return apply_transform(moved, incoming_spec(spec), Transform(identity, signs=even))


CanonicalKey = Literal["incoming_norm", "outgoing_norm", "bias"]


def _identity_perms(params: Params) -> Perms:
    return {f"P{i}": torch.arange(len(params[f"b{i}"])) for i in range(1, _n_hidden(params) + 1)}


def sign_normalization(params: Params) -> dict[str, torch.Tensor]:
    """The signs ``{"P{l}": s_l}`` (entries +-1) that ``normalize_signs`` applies."""
    signs: dict[str, torch.Tensor] = {}
    prev = None
    for layer in range(1, _n_hidden(params) + 1):
        w, b = params[f"W{layer}"], params[f"b{layer}"]
        rows = torch.cat([w if prev is None else w * prev, b.unsqueeze(1)], dim=1)
        peak = rows.gather(1, rows.abs().argmax(1, keepdim=True)).squeeze(1)
        prev = torch.where(peak < 0, -1.0, 1.0).to(b)
        signs[f"P{layer}"] = prev
    return signs


def normalize_signs(params: Params) -> Params:
    """Flip hidden units so each one's largest-magnitude incoming weight is positive.

    With ``r_i = [W_l[i, :], b_l[i]]`` the incoming row of unit ``i`` *after* the flips of
    layer ``l - 1`` (which multiply the columns of ``W_l``), unit ``i`` of layer ``l`` is
    multiplied by ``s_i = sign(r_i[argmax |r_i|])``: its row and bias by ``s_i``, its outgoing
    column of ``W_{l+1}`` by ``s_i``. Exact for odd activations only. The result is equivariant
    under permutations and invariant under sign flips (for weights without ties in ``|r_i|``).
    """
    signs = sign_normalization(params)
    spec = mlp_permutation_spec(_n_hidden(params))
    return apply_transform(params, spec, Transform(_identity_perms(params), signs=signs))


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
        params = normalize_signs(params)
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


def _flat_norm(params: Params) -> float:
    return float(torch.sqrt(sum(v.double().pow(2).sum() for v in params.values())))


def distance(params_a: Params, params_b: Params) -> float:
    """``||theta^a - theta^b||_2`` over all parameters, flattened."""
    return _flat_norm({k: params_a[k].double() - params_b[k].double() for k in params_a})


def barrier(
    params_a: Params,
    params_b: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    activation: str,
    task: Task,
    *,
    n_points: int = 25,
) -> dict[str, np.ndarray | float]:
    """Loss and accuracy on the segment ``theta(t) = (1 - t) theta^a + t theta^b``.

    On ``t_k = k / (n_points - 1)`` (evaluated at once, the ``n_points`` interpolants stacked
    as an ensemble), with ``L(t)`` the mean loss and ``A(t)`` the accuracy on ``(x, y)``:

        loss_barrier = max_t [L(t) - ((1 - t) L(0) + t L(1))]     (Entezari et al. 2022)
        acc_barrier  = max_t [((1 - t) A(0) + t A(1)) - A(t)]     (the error barrier)

    Returns ``{"t", "loss", "acc", "loss_barrier", "acc_barrier"}``; accuracies are NaN for
    regression. Both barriers are at least 0 because the endpoints contribute 0.
    """
    t = torch.linspace(0.0, 1.0, n_points, dtype=params_a["W1"].dtype)
    stacked = {}
    for k, va in params_a.items():
        weight = t.view(-1, *([1] * va.dim()))
        stacked[k] = torch.lerp(va.expand(n_points, *va.shape), params_b[k], weight)
    loss, acc = evaluate(stacked, x, y, activation, task)
    ts = t.double().numpy()
    chord_loss = (1 - ts) * loss[0] + ts * loss[-1]
    chord_acc = (1 - ts) * acc[0] + ts * acc[-1]
    return {
        "t": ts,
        "loss": loss,
        "acc": acc,
        "loss_barrier": float(np.max(loss - chord_loss)),
        "acc_barrier": float(np.max(chord_acc - acc)),
    }


def count_distinct(
    param_list: Sequence[Params],
    *,
    tol: float,
    align: bool = True,
    activation: str | None = None,
    max_iter: int = 100,
    seed: int = 0,
) -> tuple[int, np.ndarray]:
    """Greedy clustering of solutions modulo permutation; returns ``(n_clusters, labels)``.

    Solutions are visited in order; solution ``k`` joins the first existing cluster whose
    representative (its first member) ``r`` satisfies

        2 ||theta_r - pi(theta_k)|| / (||theta_r|| + ||theta_k||) <= tol,

    with ``pi`` from ``signed_alignment(theta_r, theta_k, activation)`` (signed permutations
    for odd activations, so sign-flipped copies also coincide; plain ``weight_matching`` when
    ``activation`` is None; identity if ``align=False``), and otherwise founds a new cluster.
    ``labels[k]`` is the cluster index of solution ``k``, numbered in order of first appearance.
    """
    reps: list[Params] = []
    labels = np.empty(len(param_list), dtype=np.int64)
    for k, params in enumerate(param_list):
        for c, rep in enumerate(reps):
            other = params
            if align:
                if activation is None:
                    other = permute(
                        params, weight_matching(rep, params, max_iter=max_iter, seed=seed)
                    )
                else:
                    other = align_to(rep, params, activation, max_iter=max_iter, seed=seed)
            rel = 2 * distance(rep, other) / (_flat_norm(rep) + _flat_norm(params))
            if rel <= tol:
                labels[k] = c
                break
        else:
            labels[k] = len(reps)
            reps.append(params)
    return len(reps), labels
