"""The alignment entry points that ``ghost_optima.symmetry.align.align`` replaced, kept as test
references only (issue 22): the door must reproduce each of them where it replaced it, so the
figures recorded through them stay as they were. With them, the two torch sign normalisations
that ``align.normalize_signs`` replaced (odd units; by parity, ``orthopoly.normalize_signs``).

Each is the code it was in ``src/`` (``symmetry/align.py``, ``symmetry/matching.py``,
``symmetry/pairwise.py``, ``symmetry/sorted_domain.py``, ``remedies/protocol.py``), reading
its loose arguments (activation, parities, classes, sorted biases) where the door reads a
``GroupSpec``; the sorted-domain flips keep their hand-written flip-and-sort.
"""

from collections.abc import Collection, Sequence
from typing import Literal

import numpy as np
import torch

from ghost_optima.core.mlp import ACTIVATIONS, hidden_and_output
from ghost_optima.symmetry.group import (
    Transform,
    apply_transform,
    compose_transforms,
    mlp_permutation_spec,
)
from ghost_optima.symmetry.matching import (
    KINDS,
    ODD,
    as_numpy,
    assign,
    descend,
    normalising_flips,
)
from ghost_optima.symmetry.spec import GroupSpec

Params = dict[str, torch.Tensor]


def _n_hidden(params: Params) -> int:
    return len(params) // 2 - 1


def coordinate_descent(a_params, b_params, spec, *, signed: Collection[str] = (), **options):
    """``matching.coordinate_descent``: the descent from the identity, ``signed`` names odd."""
    a, b = as_numpy(a_params), as_numpy(b_params)
    sizes = {p: a[n].shape[k] for n, axes in spec.axes.items() for k, p in enumerate(axes) if p}
    kinds = {p: np.full(sizes[p], ODD if p in signed else 0) for p in spec.names}
    state = descend(a, b, spec, kinds, options)
    perms = {p: torch.as_tensor(state[p][0], dtype=torch.long) for p in spec.names}
    signs = {p: torch.as_tensor(state[p][1]) for p in spec.names} if signed else None
    return Transform(perms, signs)


def weight_matching(params_a, params_b, spec=None, *, max_iter=100, seed=0, classes=None):
    """``align.weight_matching``: permutations only, ``{name: LongTensor}``."""
    spec = spec or mlp_permutation_spec(_n_hidden(params_a))
    found = coordinate_descent(
        params_a, params_b, spec, max_iter=max_iter, seed=seed, classes=classes
    )
    return found.perms


def group_alignment(params_a, params_b, parities, *, classes=None, seed=0, max_iter=100):
    """``align.group_alignment``: ``(g, even)``, from sign-normalise-then-match."""
    spec = mlp_permutation_spec(len(parities))
    kinds = {f"P{k}": np.array([KINDS[u] for u in units]) for k, units in enumerate(parities, 1)}
    a, b = as_numpy(params_a), as_numpy(params_b)
    d_a, d_b = normalising_flips(a, kinds), normalising_flips(b, kinds)
    pattern = {p: (d_a[p], d_b[p]) for p in kinds}
    options = dict(max_iter=max_iter, seed=seed, classes=classes, pattern=pattern)
    state = descend(a, b, spec, kinds, options)
    perms = {p: torch.as_tensor(s[0], dtype=torch.long) for p, s in state.items()}
    signs = {p: torch.as_tensor(s[2]) for p, s in state.items()}
    return Transform(perms, signs), {p: torch.as_tensor(s[1] * s[2]) for p, s in state.items()}


def apply_group(params: Params, g: Transform, even: dict) -> Params:
    """``align.apply_group``: ``g``, then the even flips on the incoming side alone."""
    spec = mlp_permutation_spec(len(g.perms))
    incoming = GroupSpec({k: axes[:1] + (None,) * (len(axes) - 1) for k, axes in spec.axes.items()})
    identity = {p: torch.arange(len(s)) for p, s in even.items()}
    moved = apply_transform(params, spec, g)
    return apply_transform(moved, incoming, Transform(identity, signs=even))


def _correlation(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    u, v = u - u.mean(0), v - v.mean(0)
    nu, nv = np.linalg.norm(u, axis=0), np.linalg.norm(v, axis=0)
    nu, nv = np.where(nu > 0, nu, np.inf), np.where(nv > 0, nv, np.inf)
    return (u / nu).T @ (v / nv)


def activation_matching(params_a, params_b, x, activation) -> Transform:
    """``matching.activation_matching``: one pair, its activations computed for it."""
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
        col, sign = assign(_correlation(u.numpy(), v.numpy()), None, odd)
        perms[f"P{layer}"] = torch.as_tensor(col, dtype=torch.long)
        signs[f"P{layer}"] = torch.as_tensor(sign)
    return Transform(perms, signs if odd else None)


def signed_alignment(
    params_a,
    params_b,
    activation: str,
    *,
    method: Literal["weight", "activation"] = "weight",
    x=None,
    seed=0,
    max_iter=100,
    start: Literal["previous", "identity"] = "previous",
) -> Transform:
    """``align.signed_alignment``: the activation's whole finite group of an MLP."""
    n_hidden = _n_hidden(params_a)
    odd = ACTIVATIONS[activation].symmetry == "odd"
    if method == "activation":
        return activation_matching(params_a, params_b, x, activation)
    names = [f"P{layer}" for layer in range(1, n_hidden + 1)]
    if odd and n_hidden > 1 and start == "previous":
        parities = [("odd",) * len(params_a[f"b{layer}"]) for layer in range(1, n_hidden + 1)]
        return group_alignment(params_a, params_b, parities, seed=seed, max_iter=max_iter)[0]
    spec = mlp_permutation_spec(n_hidden)
    return coordinate_descent(
        params_a, params_b, spec, signed=names if odd else (), max_iter=max_iter, seed=seed
    )


def sign_normalization(params: Params) -> dict[str, torch.Tensor]:
    """``align.sign_normalization`` (odd units): the flips, in torch."""
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
    """``align.normalize_signs`` (odd units)."""
    identity = {p: torch.arange(len(s)) for p, s in sign_normalization(params).items()}
    transform = Transform(identity, signs=sign_normalization(params))
    return apply_transform(params, mlp_permutation_spec(_n_hidden(params)), transform)


def normalize_signs_by_parity(params: Params, unit_parities) -> Params:
    """``orthopoly.normalize_signs``: odd units flipped in and out, even units in only."""
    odd, even, s_out = {}, {}, None
    for layer in range(1, _n_hidden(params) + 1):
        w, b = params[f"W{layer}"], params[f"b{layer}"]
        rows = torch.cat([w if s_out is None else w * s_out, b.unsqueeze(1)], dim=1)
        peak = rows.gather(1, rows.abs().argmax(1, keepdim=True)).squeeze(1)
        kinds = list(unit_parities[layer - 1])
        has = torch.tensor([k != "none" for k in kinds])
        s_in = torch.where(has & (peak < 0), -1.0, 1.0).to(b)
        is_odd = torch.tensor([k == "odd" for k in kinds])
        s_out = torch.where(is_odd, s_in, torch.ones_like(s_in))
        odd[f"P{layer}"], even[f"P{layer}"] = s_out, torch.where(is_odd, 1.0, s_in).to(b)
    spec = mlp_permutation_spec(_n_hidden(params))
    incoming = GroupSpec({k: axes[:1] + (None,) * (len(axes) - 1) for k, axes in spec.axes.items()})
    identity = {p: torch.arange(len(s)) for p, s in odd.items()}
    out = apply_transform(params, spec, Transform(identity, signs=odd))
    return apply_transform(out, incoming, Transform(identity, signs=even))


def sign_normalised_matching(params_a, params_b, *, seed=0, max_iter=100) -> Transform:
    """``align.sign_normalised_matching``: ``g = D_a o pi o D_b``."""
    identity = {
        f"P{i}": torch.arange(len(params_a[f"b{i}"])) for i in range(1, _n_hidden(params_a) + 1)
    }
    d_a, d_b = sign_normalization(params_a), sign_normalization(params_b)
    perms = weight_matching(
        normalize_signs(params_a), normalize_signs(params_b), seed=seed, max_iter=max_iter
    )
    first = compose_transforms(Transform(identity, signs=d_b), Transform(perms))
    return compose_transforms(first, Transform(identity, signs=d_a))


def align_to(params_a, params_b, activation, **kwargs) -> Params:
    """``align.align_to``: ``b`` moved by ``signed_alignment``."""
    g = signed_alignment(params_a, params_b, activation, **kwargs)
    return apply_transform(params_b, mlp_permutation_spec(_n_hidden(params_b)), g)


def align_pair(params_a, params_b, activation, *, seed=0, method="weight", x=None):
    """``pairwise.align_pair``: ``(a, b')``."""
    return params_a, align_to(params_a, params_b, activation, method=method, x=x, seed=seed)


def _flip_sort(b: dict, t: list, keep: int | None = None) -> dict:
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


def _inner(a: dict, b: dict) -> float:
    return float(sum((a[k] * b[k]).sum() for k in a))


def _best_flips(a: dict, b: dict, t: list, layer: int) -> np.ndarray:
    t = [np.ones_like(x) if k == layer else x for k, x in enumerate(t)]
    m, k = _flip_sort(b, t, keep=layer), layer + 1
    score = a[f"W{k}"] @ m[f"W{k}"].T + np.outer(a[f"b{k}"], m[f"b{k}"])
    score += a[f"W{k + 1}"].T @ m[f"W{k + 1}"]
    bias = b[f"b{k}"]
    n = len(bias)
    dp, choice = np.full(n + 1, -np.inf), np.zeros((n, n + 1), dtype=bool)
    dp[0] = 0.0
    units = np.argsort(-np.abs(bias), kind="stable")
    for seen, j in enumerate(units):
        neg, sign = np.arange(seen + 1), np.sign(bias[j]) or 1.0
        from_pos = np.append(dp[neg] + sign * score[n - 1 - (seen - neg), j], -np.inf)
        from_neg = np.append(-np.inf, dp[neg] - sign * score[neg, j])
        choice[seen, : seen + 2] = take = from_neg > from_pos
        dp[: seen + 2] = np.where(take, from_neg, from_pos)
    flips, neg = np.empty(n), int(np.argmax(dp))
    for seen in range(n - 1, -1, -1):
        j, negative = units[seen], choice[seen, neg]
        flips[j] = -(np.sign(bias[j]) or 1.0) if negative else np.sign(bias[j]) or 1.0
        neg -= int(negative)
    return flips


def sorted_sign_alignment(params_a, params_b, *, max_iter=100) -> Params:
    """``sorted_domain.sorted_sign_alignment``: ``b`` flipped and re-sorted, by hand."""
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


def align_within(parities: Sequence[Sequence[str]], classes, by_bias: bool, a, b):
    """``protocol.align_within`` on an architecture's loose fields: ``(a, b')``."""
    if by_bias:
        odd = any(p == "odd" for layer in parities for p in layer)
        return a, sorted_sign_alignment(a, b) if odd else b
    return a, apply_group(b, *group_alignment(a, b, parities, classes=classes))
