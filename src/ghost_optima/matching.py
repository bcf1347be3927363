"""Matching two networks modulo their symmetry group: signed permutation coordinate descent.

A *signed permutation* of a layer's units is a permutation ``pi`` and signs ``s`` (entries
+-1): unit ``i`` of the relabelled net is ``s_i`` times old unit ``pi(i)``, its incoming weights
and bias multiplied by ``s_i`` and its outgoing weights too (``symmetry.Transform`` with
``signs``). For odd activations (tanh) every signed permutation preserves the function, so the
right alignment of ``b`` onto ``a`` maximises over the whole group (Sussmann 1992)

    J(g) = <theta^a, g . theta^b>,   equivalently minimises ||theta^a - g . theta^b||,

because ``g`` acts orthogonally (``||g . theta|| = ||theta||``). For positively homogeneous
activations (ReLU) only permutations (and positive scalings, not a sign) preserve the function.

Coordinate descent (Ainsworth, Hayase & Srinivasa 2023, "Git Re-Basin", ICLR, Algorithm 1,
extended to signs): with every other permutation and its signs fixed, ``J`` depends on layer
``p``'s group element only through ``sum_i s_i S[i, pi(i)]``, with the ``(n, n)`` score

    S = sum over (parameter w, axis k) carrying p of  w^a_(k) (g_{-k}(w^b)_(k))^T,

``w_(k)`` the parameter with axis ``k`` moved first and flattened, ``g_{-k}`` the other
elements applied to their axes (permutation and signs). Flipping unit ``j`` of ``b`` flips the
sign of its whole row of ``S`` contributions, so the best element for ``p`` is exactly

    pi = argmax_pi sum_i |S[i, pi(i)]|  (an assignment problem on |S|),   s_i = sign S[i, pi(i)].

For one hidden layer there is only one such element and this is the exact global optimum of
``J`` over all ``n! 2^n`` signed permutations. For deeper nets the descent visits the
permutations in random order until no score improves; every step solves its subproblem
exactly, so ``J`` never decreases, and starting it from another method's answer (``init``) can
only improve on that answer.

``activation_matching`` is the second method (Git Re-Basin Sec. 3.1; Li et al. 2016 "Convergent
learning"): each hidden layer on its own, match units by the Pearson correlation of their
activations on inputs ``x``, on ``|C|`` with signs from ``C`` for odd activations (a flipped
tanh unit's activation is the negated one). Function-preserving transforms permute a layer's
activations without changing them otherwise, so the layers decouple and each is exact.
"""

from collections.abc import Collection

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ghost_optima.mlp import ACTIVATIONS, hidden_and_output
from ghost_optima.symmetry import PermutationSpec, Transform

Params = dict[str, torch.Tensor]


class _CrossTerm:
    """``lhs @ (rhs[:, p] * s).T`` for a signed permutation ``(p, s)``, updated in place.

    If ``(p, s)`` changed in the positions ``K``, the product changes by ``lhs[:, K] @ (rhs[:,
    p_new[K]] s_new[K] - rhs[:, p_old[K]] s_old[K]).T`` (recomputed if ``|K| > n / 2``).
    """

    def __init__(self, lhs: np.ndarray, rhs: np.ndarray, perm: np.ndarray, sign: np.ndarray):
        self.lhs, self.rhs = lhs, rhs
        self.perm, self.sign = perm.copy(), sign.copy()
        self.value = lhs @ (rhs[:, perm] * sign).T

    def at(self, perm: np.ndarray, sign: np.ndarray) -> np.ndarray:
        changed = np.flatnonzero((self.perm != perm) | (self.sign != sign))
        if 2 * len(changed) > len(perm):
            self.value = self.lhs @ (self.rhs[:, perm] * sign).T
        elif len(changed):
            new = self.rhs[:, perm[changed]] * sign[changed]
            moved = new - self.rhs[:, self.perm[changed]] * self.sign[changed]
            self.value += self.lhs[:, changed] @ moved.T
        self.perm, self.sign = perm.copy(), sign.copy()
        return self.value


def perm_names(spec: PermutationSpec) -> list[str]:
    """The permutations ``spec`` names, in order of first appearance (``P1, ..., PL``)."""
    return list(dict.fromkeys(p for axes in spec.axes.values() for p in axes if p is not None))


def _axis_terms(spec: PermutationSpec, a: dict, b: dict, perm: str, state: dict) -> list:
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
                terms.append((2, other, _CrossTerm(lhs, rhs, *state[other])))
            else:
                terms.append((lhs.ndim, tuple(q for _, q in others), (lhs, rhs, others)))
    # matrices before vectors: the order in which the MLP score was always summed
    return [(other, term) for _, other, term in sorted(terms, key=lambda t: t[0] < 2)]


def _term_value(other, term, state: dict) -> np.ndarray:
    if other is None:
        return term
    if isinstance(term, _CrossTerm):
        return term.at(*state[other])
    lhs, rhs, others = term
    for k, q in others:  # axis k + 1 of the moved array carries permutation q
        perm, sign = state[q]
        shape = [1] * rhs.ndim
        shape[k + 1] = -1
        rhs = np.take(rhs, perm, axis=k + 1) * sign.reshape(shape)
    n = lhs.shape[0]
    return lhs.reshape(n, -1) @ rhs.reshape(n, -1).T


def _as_tuple(other) -> tuple:
    return () if other is None else (other,) if isinstance(other, str) else other


def assign(score: np.ndarray, labels: np.ndarray | None, signed: bool) -> tuple:
    """``(col, sign)`` maximising ``sum_i sign_i score[i, col[i]]``, within classes if labelled.

    Unsigned: ``sign = 1`` and an assignment on ``score``. Signed: an assignment on ``|score|``
    and ``sign_i = sign(score[i, col_i])`` (``+1`` on ties at 0).
    """
    work = np.abs(score) if signed else score
    if labels is None:
        col = linear_sum_assignment(work, maximize=True)[1]
    else:
        labels = np.asarray(labels)
        col = np.empty(len(score), dtype=np.int64)
        for label in np.unique(labels):
            idx = np.flatnonzero(labels == label)
            col[idx] = idx[linear_sum_assignment(work[np.ix_(idx, idx)], maximize=True)[1]]
    sign = np.ones(len(col))
    if signed:
        sign = np.where(score[np.arange(len(col)), col] < 0, -1.0, 1.0)
    return col, sign


def coordinate_descent(
    params_a: Params,
    params_b: Params,
    spec: PermutationSpec,
    *,
    signed: Collection[str] = (),
    max_iter: int = 100,
    seed: int = 0,
    classes: dict[str, np.ndarray] | None = None,
    init: Transform | None = None,
) -> Transform:
    """The element ``g`` (permutations, and signs for the names in ``signed``) maximising
    ``<theta^a, g . theta^b>`` by coordinate descent (module docstring).

    Starts from ``init`` (default the identity). Each sweep visits the permutations in an order
    drawn from ``np.random.default_rng(seed)``; stops when a sweep improves no score by more
    than ``1e-12`` or after ``max_iter`` sweeps. A permutation whose neighbours (those sharing a
    parameter with it) did not change since it was solved is not solved again. Scores are
    float64; matrix terms are updated incrementally. ``classes[p]`` restricts ``p`` to map units
    within a label (a subgroup; ``ghost_optima.masks``). Returns a ``symmetry.Transform``
    (``signs`` None when ``signed`` is empty): ``apply_transform(params_b, spec, g)`` is ``b``
    aligned to ``a``.
    """
    a = {k: v.detach().double().cpu().numpy() for k, v in params_a.items()}
    b = {k: v.detach().double().cpu().numpy() for k, v in params_b.items()}
    names = perm_names(spec)
    sizes = {p: a[n].shape[k] for n, axes in spec.axes.items() for k, p in enumerate(axes) if p}
    state = {p: (np.arange(sizes[p]), np.ones(sizes[p])) for p in names}
    if init is not None:
        for p in names:
            sign = init.signs[p] if init.signs is not None else torch.ones(sizes[p])
            state[p] = (init.perms[p].numpy().astype(np.int64), sign.double().numpy().copy())
    terms = {p: _axis_terms(spec, a, b, p, state) for p in names}
    neighbours = {
        p: sorted({q for other, _ in terms[p] for q in _as_tuple(other)}, key=names.index)
        for p in names
    }
    version = dict.fromkeys(names, 0)  # bumped whenever state[p] changes
    solved_at: dict[str, tuple[int, ...]] = {}
    rng = np.random.default_rng(seed)
    for _ in range(max_iter):
        improved = False
        for k in rng.permutation(len(names)):
            p = names[k]
            seen = tuple(version[q] for q in neighbours[p])
            if solved_at.get(p) == seen:
                continue
            values = [_term_value(other, term, state) for other, term in terms[p]]
            score = values[0] + values[1] if len(values) > 1 else values[0].copy()
            for value in values[2:]:
                score += value
            col, sign = assign(score, None if classes is None else classes.get(p), p in signed)
            rows = np.arange(len(col))
            old_perm, old_sign = state[p]
            if (sign * score[rows, col]).sum() > (old_sign * score[rows, old_perm]).sum() + 1e-12:
                improved = True
                if not (np.array_equal(col, old_perm) and np.array_equal(sign, old_sign)):
                    state[p] = (col, sign)
                    version[p] += 1
            solved_at[p] = seen
        if not improved:
            break
    perms = {p: torch.as_tensor(state[p][0], dtype=torch.long) for p in names}
    signs = {p: torch.as_tensor(state[p][1]) for p in names} if signed else None
    return Transform(perms, signs)


def activation_matching(
    params_a: Params, params_b: Params, x: torch.Tensor, activation: str
) -> Transform:
    """Per hidden layer, the (signed, for odd activations) permutation of ``b``'s units that
    maximises the summed Pearson correlation of matched activations on ``x`` (``(N, n_0)``).

    With ``H^a_l, H^b_l`` the ``(N, n_l)`` post-activations and ``C = corr(H^a_l, H^b_l)``
    (``(n_l, n_l)``; a constant unit correlates 0 with everything), unit ``i`` of the aligned
    ``b`` is old unit ``pi(i)`` times ``s_i``: an assignment on ``|C|`` with ``s_i = sign C[i,
    pi(i)]`` for odd activations, on ``C`` with ``s = 1`` otherwise. Exact per layer. Returns
    a ``symmetry.Transform`` for ``mlp_permutation_spec`` (``signs`` None unless odd).
    """
    odd = ACTIVATIONS[activation].symmetry == "odd"
    with torch.no_grad():
        ha, _ = hidden_and_output(
            {k: v.double() for k, v in params_a.items()}, x.double(), activation
        )
        hb, _ = hidden_and_output(
            {k: v.double() for k, v in params_b.items()}, x.double(), activation
        )
    perms, signs = {}, {}
    for layer, (u, v) in enumerate(zip(ha, hb, strict=True), start=1):
        corr = _correlation(u.numpy(), v.numpy())
        col, sign = assign(corr, None, odd)
        perms[f"P{layer}"] = torch.as_tensor(col, dtype=torch.long)
        signs[f"P{layer}"] = torch.as_tensor(sign)
    return Transform(perms, signs if odd else None)


def _correlation(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of ``u`` with every column of ``v``."""
    u, v = u - u.mean(0), v - v.mean(0)
    nu, nv = np.linalg.norm(u, axis=0), np.linalg.norm(v, axis=0)
    nu, nv = np.where(nu > 0, nu, np.inf), np.where(nv > 0, nv, np.inf)
    return (u / nu).T @ (v / nv)
