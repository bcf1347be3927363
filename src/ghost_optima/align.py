"""Comparing solutions modulo symmetry: alignment, canonical forms, distances and barriers.

Two MLPs that differ only by a relabelling of hidden units compute the same function, so their
raw weight distance says little. This module removes the permutation before comparing:

* ``weight_matching``: the permutations ``pi`` maximising ``sum_l <W_l^a, pi(W^b)_l>_F +
  <b_l^a, pi(b^b)_l>`` by permutation coordinate descent, one linear assignment problem per
  hidden layer with the others fixed (Ainsworth, Hayase & Srinivasa 2023, "Git Re-Basin:
  merging models modulo permutation symmetries", ICLR, Algorithm 1);
* ``activation_matching``: per layer, the assignment maximising the summed correlation of
  hidden activations on data (Git Re-Basin, Sec. 3.1);
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
from ghost_optima.symmetry import Transform, apply_transform, mlp_permutation_spec
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

    If ``p`` differs from the last one in the positions ``K``, the product changes by
    ``lhs[:, K] @ (rhs[:, p_new[K]] - rhs[:, p_old[K]]).T``, which costs ``|K| / n`` of a full
    product; it is recomputed from scratch when more than half of the positions changed.
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


def weight_matching(
    params_a: Params,
    params_b: Params,
    *,
    max_iter: int = 100,
    seed: int = 0,
    classes: dict[str, np.ndarray] | None = None,
) -> Perms:
    """Permutations of ``b``'s hidden units that best align its weights with ``a``'s.

    Maximises ``sum_params <theta^a, pi(theta^b)>`` by coordinate descent (Git Re-Basin,
    Algorithm 1). Starting from the identity, each sweep visits the hidden layers in a random
    order drawn from ``np.random.default_rng(seed)``; for layer ``l`` with the other
    permutations fixed the objective is ``sum_i S[i, p_l(i)]`` with the ``(n_l, n_l)`` score

        S = W_l^a (W_l^b[:, p_{l-1}])^T + b_l^a (b_l^b)^T + (W_{l+1}^a)^T W_{l+1}^b[p_{l+1}, :]

    (``p_0``, ``p_{L+1}`` the identity), solved exactly by
    ``scipy.optimize.linear_sum_assignment(S, maximize=True)``. Stops after a sweep in which no
    layer improved its score by more than ``1e-12``, or after ``max_iter`` sweeps. Scores are
    float64; the two cross terms are updated incrementally as ``p_{l-1}``, ``p_{l+1}`` change,
    and a layer whose neighbours did not change since it was last solved is not solved again
    (its optimum is the same). Returns ``{"P1": ..., "PL": ...}`` such that
    ``permute(params_b, perms)`` is ``b`` aligned to ``a``.

    ``classes`` restricts the search to a subgroup: ``classes["P{l}"]`` labels each unit of
    layer ``l`` (shape ``(n_l,)``, the same labelling for both nets) and ``p_l`` may only map
    a unit to one of the same label, i.e. to the product of the symmetric groups of the
    classes (what survives a sparsity mask or per-unit activations; ``ghost_optima.masks``).
    Each layer's assignment problem then splits into one exact problem per class.
    """
    n_hidden = _n_hidden(params_a)
    a = {k: v.detach().double().cpu().numpy() for k, v in params_a.items()}
    b = {k: v.detach().double().cpu().numpy() for k, v in params_b.items()}
    # perms[l] for l = 0..L+1; the input and output ends stay the identity.
    perms = [np.arange(a["W1"].shape[1])]
    perms += [np.arange(len(a[f"b{layer}"])) for layer in range(1, n_hidden + 2)]
    incoming = {
        layer: _CrossTerm(a[f"W{layer}"], b[f"W{layer}"], perms[layer - 1])
        for layer in range(1, n_hidden + 1)
    }
    outgoing = {
        layer: _CrossTerm(a[f"W{layer + 1}"].T, b[f"W{layer + 1}"].T, perms[layer + 1])
        for layer in range(1, n_hidden + 1)
    }
    biases = {layer: np.outer(a[f"b{layer}"], b[f"b{layer}"]) for layer in range(1, n_hidden + 1)}
    version = [0] * (n_hidden + 2)  # bumped whenever perms[l] changes
    solved_at: dict[int, tuple[int, int]] = {}
    rng = np.random.default_rng(seed)
    for _ in range(max_iter):
        improved = False
        for layer in rng.permutation(np.arange(1, n_hidden + 1)):
            neighbours = (version[layer - 1], version[layer + 1])
            if solved_at.get(layer) == neighbours:
                continue
            score = incoming[layer].at(perms[layer - 1]) + outgoing[layer].at(perms[layer + 1])
            score += biases[layer]
            col = _assign(score, None if classes is None else classes.get(f"P{layer}"))
            rows = np.arange(len(col))
            if score[rows, col].sum() > score[rows, perms[layer]].sum() + 1e-12:
                improved = True
            if not np.array_equal(col, perms[layer]):
                perms[layer] = col
                version[layer] += 1
            solved_at[layer] = neighbours
        if not improved:
            break
    return {f"P{layer}": torch.as_tensor(perms[layer]) for layer in range(1, n_hidden + 1)}


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


def hidden_activations(params: Params, x: torch.Tensor, activation: str) -> list[torch.Tensor]:
    """Post-activation hidden states ``[h_1, ..., h_L]``, each of shape ``(N, n_l)``."""
    fn = ACTIVATIONS[activation].fn
    hidden, out = x, []
    for layer in range(1, _n_hidden(params) + 1):
        hidden = fn(hidden @ params[f"W{layer}"].T + params[f"b{layer}"])
        out.append(hidden)
    return out


def activation_matching(
    params_a: Params, params_b: Params, x: torch.Tensor, activation: str
) -> Perms:
    """Match units by the correlation of their activations on ``x`` (Git Re-Basin, Sec. 3.1).

    For each hidden layer ``l``, with ``z`` the activations standardised over the ``N``
    examples (a constant unit gets zeros), ``C[i, j] = mean_n z^a_{n i} z^b_{n j}`` is the
    Pearson correlation of unit ``i`` of ``a`` with unit ``j`` of ``b``, and ``p_l`` maximises
    ``sum_i C[i, p_l(i)]``. Layers are independent because the activations of ``b`` do not
    depend on how its units are labelled.
    """
    perms: Perms = {}
    with torch.no_grad():
        pairs = zip(
            hidden_activations(params_a, x, activation),
            hidden_activations(params_b, x, activation),
            strict=True,
        )
        for layer, (h_a, h_b) in enumerate(pairs, start=1):
            z_a, z_b = _standardize(h_a.double()), _standardize(h_b.double())
            corr = (z_a.T @ z_b / len(x)).numpy()
            _, col = linear_sum_assignment(corr, maximize=True)
            perms[f"P{layer}"] = torch.as_tensor(col, dtype=torch.long)
    return perms


def _standardize(h: torch.Tensor) -> torch.Tensor:
    std = h.std(0, unbiased=False)
    return (h - h.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))


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
    n_hidden = _n_hidden(params)
    perms: Perms = {}
    for layer in range(1, n_hidden + 1):
        w, b = params[f"W{layer}"], params[f"b{layer}"]
        if key == "incoming_norm":
            values = torch.cat([w, b.unsqueeze(1)], dim=1).norm(dim=1)
        elif key == "outgoing_norm":
            values = params[f"W{layer + 1}"].norm(dim=0)
        elif key == "bias":
            values = b
        else:
            raise ValueError(f"unknown key {key!r}")
        perms[f"P{layer}"] = torch.argsort(values, descending=True, stable=True)
    return permute(params, perms)


def _flat_norm(params: Params) -> float:
    return float(torch.sqrt(sum(v.double().pow(2).sum() for v in params.values())))


def distance(params_a: Params, params_b: Params) -> float:
    """``||theta^a - theta^b||_2`` over all parameters, flattened."""
    return _flat_norm({k: params_a[k].double() - params_b[k].double() for k in params_a})


def aligned_distance(
    params_a: Params,
    params_b: Params,
    *,
    normalized: bool = False,
    max_iter: int = 100,
    seed: int = 0,
) -> float:
    """``||theta^a - pi*(theta^b)||`` with ``pi*`` from ``weight_matching``.

    With ``normalized=True`` it is divided by ``(||theta^a|| + ||theta^b||) / 2``, a
    dimensionless relative distance (0 for permuted copies, about ``sqrt(2)`` for two
    unrelated nets of equal norm whose weights do not correlate).
    """
    perms = weight_matching(params_a, params_b, max_iter=max_iter, seed=seed)
    d = distance(params_a, permute(params_b, perms))
    return 2 * d / (_flat_norm(params_a) + _flat_norm(params_b)) if normalized else d


def interpolate(params_a: Params, params_b: Params, t: float) -> Params:
    """``(1 - t) theta^a + t theta^b`` (``torch.lerp``: exact at ``t = 0`` and ``t = 1``)."""
    return {k: torch.lerp(params_a[k], params_b[k], t) for k in params_a}


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


def prediction_disagreement(
    out_a: torch.Tensor, out_b: torch.Tensor, task: Task = "classification"
) -> float:
    """How differently two models predict on the same inputs (outputs of shape ``(N, C)``).

    Classification: the fraction of inputs whose argmax classes differ. Regression: the
    normalised RMS difference ``sqrt(mean (f_a - f_b)^2) / sqrt((var f_a + var f_b) / 2)``,
    variances taken per output over the inputs and averaged over outputs; 0 for identical
    predictions, about ``sqrt(2)`` for two uncorrelated predictors of equal spread.
    """
    if task == "classification":
        return float((out_a.argmax(-1) != out_b.argmax(-1)).double().mean())
    a, b = out_a.double().reshape(len(out_a), -1), out_b.double().reshape(len(out_b), -1)
    rms = (a - b).pow(2).mean().sqrt()
    spread = ((a.var(0, unbiased=False) + b.var(0, unbiased=False)).mean() / 2).sqrt()
    return float(rms / spread)
