"""Comparing solutions modulo symmetry: alignment, canonical forms, distances and barriers.

Two MLPs that differ only by a relabelling of hidden units compute the same function, so their
raw weight distance says little. This module removes the permutation before comparing:

* ``weight_matching``: the permutations ``pi`` of a ``PermutationSpec`` maximising
  ``<theta^a, pi(theta^b)>`` by coordinate descent, one assignment problem per permutation
  (Ainsworth, Hayase & Srinivasa 2023, "Git Re-Basin", ICLR, Algorithm 1);
* ``canonicalize``: a representative of the orbit picked by sorting units (and fixing signs
  for odd activations), so equal orbits give bitwise equal parameters;
* ``barrier``: the loss barrier on the straight line between two solutions (linear mode
  connectivity, Frankle et al. 2020, "Linear mode connectivity and the lottery ticket
  hypothesis", ICML; modulo permutations, Entezari et al. 2022, "The role of permutation
  invariance in linear mode connectivity of neural networks", ICLR).

Parameters are single-network dicts ``{"W1": (n_1, n_0), "b1": (n_1,), ...}`` and permutations
are dicts ``{"P1": LongTensor(n_1), ..., "PL": LongTensor(n_L)}`` with the convention of
``ghost_optima.symmetry.Transform``: after ``permute(params, perms)``, unit ``i`` of layer ``l``
is old unit ``perms[f"P{l}"][i]``.
"""

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ghost_optima.data import Task
from ghost_optima.mlp import ACTIVATIONS
from ghost_optima.symmetry import PermutationSpec, Transform, apply_transform, mlp_permutation_spec
from ghost_optima.train import evaluate

Params = dict[str, torch.Tensor]
Perms = dict[str, torch.Tensor]


def _n_hidden(params: Params) -> int:
    return len(params) // 2 - 1


def permute(params: Params, perms: Perms) -> Params:
    """Relabel hidden units: ``W_l -> W_l[p_l][:, p_{l-1}]``, ``b_l -> b_l[p_l]``."""
    spec = mlp_permutation_spec(_n_hidden(params))
    transform = Transform({k: torch.as_tensor(v, dtype=torch.long) for k, v in perms.items()})
    return apply_transform(params, spec, transform)


class _CrossTerm:
    """``lhs @ rhs[:, p].T`` for a permutation ``p``, updated in place when ``p`` changes.

    If ``p`` changed in the positions ``K``, the product changes by ``lhs[:, K] @ (rhs[:,
    p_new[K]] - rhs[:, p_old[K]]).T`` (``|K| / n`` of a product; recomputed if ``|K| > n / 2``).
    """

    def __init__(self, lhs: np.ndarray, rhs: np.ndarray, perm: np.ndarray) -> None:
        self.lhs, self.rhs, self.perm = lhs, rhs, perm.copy()
        self.value = lhs @ rhs[:, perm].T

    def at(self, perm: np.ndarray) -> np.ndarray:
        changed = np.flatnonzero(self.perm != perm)
        if 2 * len(changed) > len(perm):
            self.value = self.lhs @ self.rhs[:, perm].T
        elif len(changed):
            moved = self.rhs[:, perm[changed]] - self.rhs[:, self.perm[changed]]
            self.value += self.lhs[:, changed] @ moved.T
        self.perm = perm.copy()
        return self.value


def _perm_names(spec: PermutationSpec) -> list[str]:
    """The permutations ``spec`` names, in order of first appearance (``P1, ..., PL``)."""
    return list(dict.fromkeys(p for axes in spec.axes.values() for p in axes if p is not None))


def _axis_terms(spec: PermutationSpec, a: dict, b: dict, perm: str, perms: dict) -> list:
    """Per axis ``perm`` acts on, its part of the score and the other permutations it reads: a
    constant (none), a ``_CrossTerm`` (one, of a matrix) or the arrays to recompute from."""
    terms = []
    for name, axes in spec.axes.items():
        for axis, p in enumerate(axes):
            if p != perm:
                continue
            lhs, rhs = np.moveaxis(a[name], axis, 0), np.moveaxis(b[name], axis, 0)
            others = [(k, q) for k, q in enumerate(np.delete(np.array(axes, object), axis)) if q]
            if not others:
                n = lhs.shape[0]
                terms.append((lhs.ndim, None, lhs.reshape(n, -1) @ rhs.reshape(n, -1).T))
            elif len(others) == 1 and lhs.ndim == 2:
                other = others[0][1]
                terms.append((2, other, _CrossTerm(lhs, rhs, perms[other])))
            else:
                terms.append((lhs.ndim, tuple(q for _, q in others), (lhs, rhs, others)))
    # matrices before vectors: the order in which the MLP score was always summed
    return [(other, term) for _, other, term in sorted(terms, key=lambda t: t[0] < 2)]


def _term_value(other, term, perms: dict) -> np.ndarray:
    if other is None:
        return term
    if isinstance(term, _CrossTerm):
        return term.at(perms[other])
    lhs, rhs, others = term
    for k, q in others:  # axis k + 1 of the moved array carries permutation q
        rhs = np.take(rhs, perms[q], axis=k + 1)
    n = lhs.shape[0]
    return lhs.reshape(n, -1) @ rhs.reshape(n, -1).T


def weight_matching(
    params_a: Params,
    params_b: Params,
    spec: PermutationSpec | None = None,
    *,
    max_iter: int = 100,
    seed: int = 0,
    classes: dict[str, np.ndarray] | None = None,
) -> Perms:
    """Permutations of ``b``'s units that best align its weights with ``a``'s.

    ``spec`` declares which permutation acts on which axis of which parameter
    (``symmetry.PermutationSpec``; default the MLP's, ``mlp_permutation_spec``). Maximises
    ``sum_params <theta^a, pi(theta^b)>`` by permutation coordinate descent (Git Re-Basin,
    Algorithm 1). Starting from the identity, each sweep visits the permutations in a random
    order drawn from ``np.random.default_rng(seed)``; for permutation ``p`` with the others
    fixed the objective is ``sum_i S[i, p(i)]`` with the ``(n, n)`` score

        S = sum over (parameter w, axis k) carrying p of  w^a_(k) (pi_{-k}(w^b)_(k))^T,

    ``w_(k)`` the parameter with axis ``k`` moved first and the rest flattened, ``pi_{-k}`` the
    other permutations applied to their axes. For an MLP, ``P_l``'s score is
    ``W_l^a (W_l^b[:, p_{l-1}])^T + (W_{l+1}^a)^T W_{l+1}^b[p_{l+1}, :] + b_l^a (b_l^b)^T``.
    It is solved exactly by ``scipy.optimize.linear_sum_assignment(S, maximize=True)``, until a
    sweep improves no score by more than ``1e-12`` or ``max_iter`` sweeps. Scores are float64;
    matrix terms are updated incrementally, and a permutation whose neighbours (those sharing a
    parameter with it) did not change since it was solved is not solved again. Returns
    ``{name: LongTensor}`` for every permutation of ``spec``: ``apply_transform(params_b, spec,
    Transform(perms))`` (``permute(params_b, perms)`` for an MLP) is ``b`` aligned to ``a``.

    ``classes`` restricts the search to a subgroup: ``classes[p]`` labels each unit permuted by
    ``p`` (same labels in both nets), and ``p`` maps units only within a label: the product of
    the classes' symmetric groups (what survives a mask or per-unit activations;
    ``ghost_optima.masks``). Each assignment then splits into one exact problem per class.
    """
    spec = spec or mlp_permutation_spec(_n_hidden(params_a))
    a = {k: v.detach().double().cpu().numpy() for k, v in params_a.items()}
    b = {k: v.detach().double().cpu().numpy() for k, v in params_b.items()}
    names = _perm_names(spec)
    sizes = {
        p: a[name].shape[axis]
        for name, axes in spec.axes.items()
        for axis, p in enumerate(axes)
        if p is not None
    }
    perms = {p: np.arange(sizes[p]) for p in names}
    terms = {p: _axis_terms(spec, a, b, p, perms) for p in names}
    neighbours = {
        p: sorted({q for other, _ in terms[p] for q in _as_tuple(other)}, key=names.index)
        for p in names
    }
    version = dict.fromkeys(names, 0)  # bumped whenever perms[p] changes
    solved_at: dict[str, tuple[int, ...]] = {}
    rng = np.random.default_rng(seed)
    for _ in range(max_iter):
        improved = False
        for k in rng.permutation(len(names)):
            p = names[k]
            seen = tuple(version[q] for q in neighbours[p])
            if solved_at.get(p) == seen:
                continue
            values = [_term_value(other, term, perms) for other, term in terms[p]]
            score = values[0] + values[1] if len(values) > 1 else values[0].copy()
            for value in values[2:]:
                score += value
            col = _assign(score, None if classes is None else classes.get(p))
            rows = np.arange(len(col))
            if score[rows, col].sum() > score[rows, perms[p]].sum() + 1e-12:
                improved = True
            if not np.array_equal(col, perms[p]):
                perms[p] = col
                version[p] += 1
            solved_at[p] = seen
        if not improved:
            break
    return {p: torch.as_tensor(perms[p]) for p in names}


def _as_tuple(other) -> tuple:
    return () if other is None else (other,) if isinstance(other, str) else other


def _assign(score: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """The permutation maximising ``sum_i score[i, col[i]]``, within classes if labelled."""
    if labels is None:
        return linear_sum_assignment(score, maximize=True)[1]
    labels = np.asarray(labels)
    col = np.empty(len(score), dtype=np.int64)
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        col[idx] = idx[linear_sum_assignment(score[np.ix_(idx, idx)], maximize=True)[1]]
    return col


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

    with ``pi`` from ``weight_matching(theta_r, theta_k)`` (identity if ``align=False``), and
    otherwise founds a new cluster. If ``activation`` is odd (tanh), signs are normalised first
    by ``normalize_signs``, so sign-flipped copies also coincide. ``labels[k]`` is the cluster
    index of solution ``k``, numbered in order of first appearance.
    """
    if activation is not None and ACTIVATIONS[activation].symmetry == "odd":
        param_list = [normalize_signs(p) for p in param_list]
    reps: list[Params] = []
    labels = np.empty(len(param_list), dtype=np.int64)
    for k, params in enumerate(param_list):
        for c, rep in enumerate(reps):
            other = params
            if align:
                perms = weight_matching(rep, params, max_iter=max_iter, seed=seed)
                other = permute(params, perms)
            rel = 2 * distance(rep, other) / (_flat_norm(rep) + _flat_norm(params))
            if rel <= tol:
                labels[k] = c
                break
        else:
            labels[k] = len(reps)
            reps.append(params)
    return len(reps), labels
