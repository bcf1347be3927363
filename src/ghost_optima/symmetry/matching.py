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
exactly, so ``J`` never decreases, and starting it from another method's answer (a
``pattern``: sign-normalise-then-match) can only improve on that answer.

``correlation_transform`` is the second method (Git Re-Basin Sec. 3.1; Li et al. 2016
"Convergent learning"): each hidden layer on its own, match units by the Pearson correlation of
their activations on inputs ``x``, on ``|C|`` with signs from ``C`` for odd units (a flipped
tanh unit's activation is the negated one). Function-preserving transforms permute a layer's
activations without changing them otherwise, so the layers decouple and each is exact.

The entry point is ``ghost_optima.symmetry.align.align``; this module is its engine.
"""

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from threadpoolctl import ThreadpoolController

from ghost_optima.core.mlp import ActivationLike, hidden_and_output
from ghost_optima.symmetry.group import Transform
from ghost_optima.symmetry.spec import GroupSpec

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


NONE, ODD, EVEN = 0, 1, 2  # a unit's sign symmetry: none, flip in and out, flip in only
KINDS = {"none": NONE, "odd": ODD, "even": EVEN}


def unit_kinds(group: GroupSpec, params: Params) -> tuple[dict, dict]:
    """Per permutation of ``group`` acting on ``params``: each unit's sign symmetry (``KINDS``
    of its parity), and its class labels where ``group`` declares classes (checked to hold one
    parity each, ``GroupSpec.unit_classes``)."""
    sizes = group.sizes({k: tuple(v.shape) for k, v in params.items()})
    kinds = {p: np.array([KINDS[u] for u in group.unit_parities(p, n)]) for p, n in sizes.items()}
    classes = {p: group.unit_classes(p, n) for p, n in sizes.items()}
    return kinds, {p: labels for p, labels in classes.items() if labels is not None}


def _axis_terms(spec: GroupSpec, a: dict, b: dict, perm: str, state: dict) -> list:
    """Per axis ``perm`` acts on: whether it is the produced axis (axis 0, a unit's incoming
    weights: even flips act there), the other permutations it reads, and its part of the score:
    a constant (none), a ``_CrossTerm`` (one, of a matrix) or the arrays to recompute from."""
    terms = []
    for name, axes in spec.axes.items():
        for axis, p in enumerate(axes):
            if p != perm:
                continue
            lhs, rhs = np.moveaxis(a[name], axis, 0), np.moveaxis(b[name], axis, 0)
            rest = [k for k in range(len(axes)) if k != axis]  # original axis of moved axis k+1
            others = [(k, axes[j], j == 0) for k, j in enumerate(rest) if axes[j]]
            if not others:
                n = lhs.shape[0]
                term, other = lhs.reshape(n, -1) @ rhs.reshape(n, -1).T, None
            elif len(others) == 1 and lhs.ndim == 2:
                _, other, incoming = others[0]
                term = _CrossTerm(lhs, rhs, state[other][0], state[other][2 - incoming])
                other = (other, incoming)
            else:
                term, other = (lhs, rhs, others), tuple(others)
            terms.append((lhs.ndim, axis == 0, other, term))
    # matrices before vectors: the order in which the MLP score was always summed
    return [(inc, other, term) for _, inc, other, term in sorted(terms, key=lambda t: t[0] < 2)]


def _term_value(other, term, state: dict) -> np.ndarray:
    """A term's current value; a permutation ``q`` read on its produced axis brings its
    incoming signs (``state[q][1]``), on any other axis its outgoing signs (``state[q][2]``)."""
    if other is None:
        return term
    if isinstance(term, _CrossTerm):
        q, incoming = other
        return term.at(state[q][0], state[q][2 - incoming])
    lhs, rhs, others = term
    for k, q, incoming in others:  # axis k + 1 of the moved array carries permutation q
        perm, sign = state[q][0], state[q][2 - incoming]
        shape = [1] * rhs.ndim
        shape[k + 1] = -1
        rhs = np.take(rhs, perm, axis=k + 1) * sign.reshape(shape)
    n = lhs.shape[0]
    return lhs.reshape(n, -1) @ rhs.reshape(n, -1).T


def _reads(other) -> tuple:
    if other is None:
        return ()
    if isinstance(other[0], str):
        return (other[0],)
    return tuple(q for _, q, _ in other)


def _max_assignment(work: np.ndarray) -> np.ndarray:
    """``linear_sum_assignment(work, maximize=True)``'s columns, solved on the reduced cost
    ``C = rowmax - work`` minus its column minima (the same optimum: a constant per row and per
    column moves every assignment's value alike; a quarter faster on the descent's scores)."""
    cost = work.max(1, keepdims=True) - work
    cost -= cost.min(0, keepdims=True)
    return linear_sum_assignment(cost)[1]


def assign(score: np.ndarray, labels: np.ndarray | None, signed: bool) -> tuple:
    """``(col, sign)`` maximising ``sum_i sign_i score[i, col[i]]``, within classes if labelled.

    Unsigned: ``sign = 1`` and an assignment on ``score``. Signed: an assignment on ``|score|``
    and ``sign_i = sign(score[i, col_i])`` (``+1`` on ties at 0).
    """
    work = np.abs(score) if signed else score
    if labels is None:
        col = _max_assignment(work)
    else:
        labels = np.asarray(labels)
        col = np.empty(len(score), dtype=np.int64)
        for label in np.unique(labels):
            idx = np.flatnonzero(labels == label)
            col[idx] = idx[_max_assignment(work[np.ix_(idx, idx)])]
    sign = np.ones(len(col))
    if signed:
        sign = np.where(score[np.arange(len(col)), col] < 0, -1.0, 1.0)
    return col, sign


def _summed(values: list) -> np.ndarray:
    """The terms summed matrices first, the order in which the MLP score was always summed."""
    score = values[0][1] + values[1][1] if len(values) > 1 else values[0][1].copy()
    for _, value in values[2:]:
        score += value
    return score


def _solve(kind: np.ndarray, values: list, labels, state: tuple, pattern=None) -> tuple:
    """The best ``(perm, s_in, s_out)`` of one permutation given its terms' ``values`` (pairs
    ``(incoming, matrix)``), and the objective's gain over ``state``.

    Every unit odd (or none): an assignment on ``|S|`` (or ``S``), ``S`` the summed terms.
    Mixed, with ``S = S_in + S_out`` split by axis: row ``i`` scores ``|S|`` if odd,
    ``S_out + |S_in|`` if even (only the incoming side flips), ``S`` if none. With a
    ``pattern`` ``((a_in, a_out), (b_in, b_out))`` the signs are tied to the pair, ``s_in(i, j)
    = a_in[i] b_in[j]`` (the same for out): sign-normalise-then-match in raw coordinates.
    """
    rows = np.arange(len(kind))
    old_perm, old_in, old_out = state
    if pattern is None and (kind == kind[0]).all() and kind[0] != EVEN:
        score = _summed(values)
        col, sign = assign(score, labels, kind[0] == ODD)
        gain = (sign * score[rows, col]).sum() - (old_in * score[rows, old_perm]).sum()
        return (col, sign, sign), gain
    if pattern is not None:
        (a_in, a_out), (b_in, b_out) = pattern
        if np.array_equal(a_in, a_out) and np.array_equal(b_in, b_out):
            work = _summed(values)
            work *= a_in[:, None]
            work *= b_in
        else:
            s_in, s_out = _split(values)
            work = a_in[:, None] * s_in * b_in + a_out[:, None] * s_out * b_out
        col = assign(work, labels, False)[0]
        gain = work[rows, col].sum() - work[rows, old_perm].sum()
        return (col, a_in * b_in[col], a_out * b_out[col]), gain
    s_in, s_out = _split(values)
    total = s_in + s_out
    odd, even = (kind == ODD)[:, None], (kind == EVEN)[:, None]
    work = np.where(odd, np.abs(total), np.where(even, s_out + np.abs(s_in), total))
    col = assign(work, labels, False)[0]
    flip_in = np.where(kind == EVEN, s_in[rows, col], total[rows, col]) < 0
    new_in = np.where((kind != NONE) & flip_in, -1.0, 1.0)
    old = (old_in * s_in[rows, old_perm] + old_out * s_out[rows, old_perm]).sum()
    return (col, new_in, np.where(kind == ODD, new_in, 1.0)), work[rows, col].sum() - old


def _split(values: list) -> tuple[np.ndarray, np.ndarray]:
    """``(S_in, S_out)``: the terms on produced axes (a unit's incoming side) and the rest."""
    zero = np.zeros_like(values[0][1])
    return tuple(sum((v for inc, v in values if inc is side), zero) for side in (True, False))


@ThreadpoolController().wrap(limits=1, user_api="blas")
def descend(a: dict, b: dict, spec: GroupSpec, kinds: dict, options: dict) -> dict:
    """Signed permutation coordinate descent on numpy arrays (``align.align``'s engine).

    ``kinds[p]`` gives each unit's sign symmetry (``NONE``, ``ODD``, ``EVEN``; units of two
    kinds in one permutation must be kept apart by its classes, as ``GroupSpec.unit_classes``
    checks). ``options`` holds ``max_iter``, ``seed``, ``classes``, ``pattern`` (``{p: ((a_in,
    a_out), (b_in, b_out))}``: first the descent with signs tied to the pairs, as
    sign-normalise-then-match, then the free descent from its end; both phases draw their
    orders from ``seed`` and share the score terms) and ``free`` (False: stop after the tied
    phase). Each sweep visits the permutations in an order drawn from
    ``np.random.default_rng(seed)``; the descent stops when a sweep improves no score by more
    than ``1e-12`` or after ``max_iter`` sweeps; a permutation whose neighbours (those sharing
    a parameter with it) did not change since it was solved is not solved again. Scores are
    float64, matrix terms updated incrementally. One BLAS thread: the assignments are serial
    and idle BLAS threads spin between the products (two threads cost 2-4 times the CPU time
    of one on 784-512-512-512-10). Returns the state ``{p: (perm, s_in, s_out)}``: unit ``i``
    of aligned ``b`` is old unit ``perm[i]``, incoming weights times ``s_in[i]``, outgoing
    weights times ``s_out[i]``.
    """
    names = spec.names
    classes = options.get("classes") or {}
    pattern = options.get("pattern")
    state = {p: (np.arange(len(k)), np.ones(len(k)), np.ones(len(k))) for p, k in kinds.items()}
    if pattern:  # identity permutations, signs tied to the pairs (i, i)
        state = {p: (np.arange(len(k)), *map(np.multiply, *pattern[p])) for p, k in kinds.items()}
    terms = {p: _axis_terms(spec, a, b, p, state) for p in names}
    neighbours = {
        p: sorted({q for _, other, _ in terms[p] for q in _reads(other)}, key=names.index)
        for p in names
    }
    version = dict.fromkeys(names, 0)  # bumped whenever state[p] changes
    for tied in [pattern] * bool(pattern) + [None] * options.get("free", True):
        solved_at: dict[str, tuple[int, ...]] = {}
        rng = np.random.default_rng(options.get("seed", 0))
        for _ in range(options.get("max_iter", 100)):
            improved = False
            for k in rng.permutation(len(names)):
                p = names[k]
                seen = tuple(version[q] for q in neighbours[p])
                if solved_at.get(p) == seen:
                    continue
                values = [(inc, _term_value(other, term, state)) for inc, other, term in terms[p]]
                found, gain = _solve(kinds[p], values, classes.get(p), state[p], tied and tied[p])
                if gain > 1e-12:
                    improved = True
                    if not all(np.array_equal(x, y) for x, y in zip(found, state[p], strict=True)):
                        state[p] = found
                        version[p] += 1
                solved_at[p] = seen
            if not improved:
                break
    return state


def as_numpy(params: Params) -> dict:
    return {k: v.detach().double().cpu().numpy() for k, v in params.items()}


def normalising_flips(params: dict, kinds: dict) -> dict:
    """Per hidden layer ``(s_in, s_out)`` of sign normalisation (``align.normalize_signs``):
    ``s_in`` the sign of the largest-magnitude entry of ``[W_l[i] s_out^(l-1), b_l[i]]`` (1 for
    units of no parity), ``s_out = s_in`` for odd units and 1 otherwise."""
    flips, prev = {}, None
    for layer, (p, kind) in enumerate(kinds.items(), start=1):
        w, bias = params[f"W{layer}"], params[f"b{layer}"]
        rows = np.concatenate([w if prev is None else w * prev, bias[:, None]], axis=1)
        peak = rows[np.arange(len(rows)), np.abs(rows).argmax(1)]
        s_in = np.where((kind != NONE) & (peak < 0), -1.0, 1.0)
        prev = np.where(kind == ODD, s_in, 1.0)
        flips[p] = (s_in, prev)
    return flips


def standardised_hidden(
    stacked: Params, x: torch.Tensor, activation: ActivationLike
) -> list[np.ndarray]:
    """Per hidden layer, the ``(E, N, n_l)`` post-activations of every member of ``stacked`` on
    ``x`` (``(N, n_0)``; float64), each column centred and scaled to unit norm (a constant
    column stays 0), so that ``u[i].T @ u[j]`` is the Pearson correlation of the units of
    members ``i`` and ``j``."""
    with torch.no_grad():
        hidden, _ = hidden_and_output(
            {k: v.double() for k, v in stacked.items()}, x.double(), activation
        )
    out = []
    for h in hidden:
        h = h - h.mean(1, keepdim=True)
        norm = h.norm(dim=1, keepdim=True)
        out.append((h / torch.where(norm > 0, norm, torch.inf)).numpy())
    return out


def correlation_transform(std: list[np.ndarray], i: int, j: int, kinds: dict, classes: dict):
    """The element moving member ``j`` onto member ``i`` by activation matching (Git Re-Basin
    Sec. 3.1; Li et al. 2016, "Convergent learning"): per hidden layer ``p`` (the ``kinds``
    keys, in layer order), an assignment on the correlation ``C = std[l][i].T @ std[l][j]``
    within ``classes[p]``, on ``|C|`` with the sign of ``C`` for odd units (a flipped odd unit's
    activation is the negated one), on ``C`` otherwise (an even unit's flip leaves its
    activation unchanged, so it is not made). Exact per layer: a function-preserving element
    permutes a layer's activations and changes nothing else. ``signs`` None without odd
    units."""
    perms, signs = {}, {}
    for u, (p, kind) in zip(std, kinds.items(), strict=True):
        corr = u[i].T @ u[j]
        odd = kind == ODD
        if (kind == kind[0]).all():
            col, sign = assign(corr, classes.get(p), bool(odd[0]))
        else:
            col = assign(np.where(odd[:, None], np.abs(corr), corr), classes.get(p), False)[0]
            sign = np.where(odd & (corr[np.arange(len(col)), col] < 0), -1.0, 1.0)
        perms[p] = torch.as_tensor(col, dtype=torch.long)
        signs[p] = torch.as_tensor(sign)
    any_odd = any((kind == ODD).any() for kind in kinds.values())
    return Transform(perms, signs if any_odd else None)
