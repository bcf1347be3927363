"""Signed alignment (``align.align`` over an odd activation's group; its engine
``ghost_optima.symmetry.matching``) against planted answers, brute force over the whole
signed-permutation group, and the sign-normalise-then-match method."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ghost_optima.core.mlp import init_mlp, mlp_forward
from ghost_optima.symmetry.align import align, normalize_signs, permute
from ghost_optima.symmetry.group import (
    Transform,
    apply_transform,
    enumerate_orbit,
    mlp_permutation_spec,
    random_transform,
)
from ghost_optima.symmetry.matching import assign
from ghost_optima.symmetry.pairwise import distance

TANH = {depth: mlp_permutation_spec(depth, "tanh") for depth in (1, 2, 3)}


def _planted(widths, seed, activation="tanh", noise=1e-3):
    """A random net, a copy moved by a random group element plus small noise, and the element."""
    net = init_mlp(widths, seed)
    spec = mlp_permutation_spec(len(widths) - 2)
    g = random_transform(spec, widths, activation, seed + 1)
    if activation != "tanh":
        g = Transform(g.perms)
    copy = apply_transform(net, spec, g)
    gen = torch.Generator().manual_seed(seed + 2)
    copy = {
        k: v + noise * v.std() * torch.randn(v.shape, generator=gen, dtype=v.dtype)
        for k, v in copy.items()
    }
    return net, copy, g


def _inverse_matches(found: Transform, planted: Transform):
    """``found`` undoes ``planted``: found perm = argsort(planted perm), signs line up."""
    for name, p in planted.perms.items():
        inv = torch.argsort(p)
        assert torch.equal(found.perms[name], inv), name
        if planted.signs is not None:
            # unit i of the aligned copy is found_sign[i] * copy unit inv[i]; the copy's unit
            # inv[i] is planted_sign[inv[i]] * original unit i, so the product must be +1
            prod = found.signs[name] * planted.signs[name][inv]
            assert torch.all(prod == 1), name


@pytest.mark.parametrize(
    "widths", [(6, 5, 2), (10, 8, 6, 3), (20, 64, 64, 64, 5), (64, 512, 512, 512, 10)]
)
def test_planted_signed_permutation_is_recovered_exactly(widths):
    net, copy, g = _planted(widths, 0)
    found = align(net, copy, mlp_permutation_spec(len(widths) - 2, "tanh"), seed=3)
    _inverse_matches(found, g)
    spec = mlp_permutation_spec(len(widths) - 2)
    assert distance(net, apply_transform(copy, spec, found)) < 1e-2 * distance(net, copy)


@pytest.mark.parametrize("widths", [(12, 512, 3), (10, 32, 16, 4)])
def test_activation_matching_recovers_a_planted_signed_permutation(widths):
    net, copy, g = _planted(widths, 4)
    x = torch.randn(400, widths[0], generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    group = mlp_permutation_spec(len(widths) - 2, "tanh")
    _inverse_matches(align(net, copy, group, "activation", x=x, activation="tanh"), g)


def test_relu_alignment_uses_no_signs_and_recovers_the_permutation():
    net, copy, g = _planted((10, 64, 32, 4), 5, activation="relu")
    found = align(net, copy, mlp_permutation_spec(2, "relu"))
    assert found.signs is None
    _inverse_matches(found, g)


def _objective(a, b, g):
    moved = apply_transform(b, mlp_permutation_spec(len(a) // 2 - 1), g)
    return sum(float((a[k].double() * moved[k].double()).sum()) for k in a)


@settings(max_examples=12, deadline=None)
@given(
    n_in=st.integers(1, 4),
    width=st.integers(1, 5),
    n_out=st.integers(1, 3),
    seed=st.integers(0, 10**6),
)
def test_one_hidden_layer_equals_brute_force_over_all_signed_permutations(n_in, width, n_out, seed):
    a, b = init_mlp((n_in, width, n_out), seed), init_mlp((n_in, width, n_out), seed + 1)
    spec = mlp_permutation_spec(1)
    best = max(sum(float((a[k] * c[k]).sum()) for k in a) for c in enumerate_orbit(b, spec, "tanh"))
    found = align(a, b, TANH[1])
    assert _objective(a, b, found) == pytest.approx(best, rel=1e-10, abs=1e-12)


def test_width_six_brute_force_over_all_46080_signed_permutations():
    """All 6! 2^6 elements at once in numpy: the inner product written out per element."""
    a, b = init_mlp((3, 6, 2), 11), init_mlp((3, 6, 2), 12)
    perms = np.array(list(itertools.permutations(range(6))))  # (720, 6)
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=6)))  # (64, 6)
    w1a, b1a, w2a = a["W1"].numpy(), a["b1"].numpy(), a["W2"].numpy()
    w1b, b1b, w2b = b["W1"].numpy(), b["b1"].numpy(), b["W2"].numpy()
    moved_in = np.einsum("ij,pij->pi", w1a, w1b[perms]) + b1a * b1b[perms]  # (720, 6)
    moved_out = np.einsum("oi,opi->pi", w2a, w2b[:, perms])
    values = (moved_in + moved_out) @ signs.T + float(a["b2"] @ b["b2"])  # (720, 64)
    assert _objective(a, b, align(a, b, TANH[1])) == pytest.approx(values.max(), rel=1e-12)


def test_never_worse_than_sign_normalise_then_match_on_100_random_pairs():
    """100 random pairs of 1- to 3-hidden-layer tanh nets of random widths; the objective (and
    so the distance, since the group acts orthogonally) of the signed alignment is never worse,
    and it is strictly better on some pairs."""
    rng = np.random.default_rng(0)
    better = 0
    for k in range(100):
        depth = int(rng.integers(1, 4))
        widths = (int(rng.integers(2, 9)), *rng.integers(2, 17, depth).tolist(), 3)
        a, b = init_mlp(widths, 2 * k), init_mlp(widths, 2 * k + 1)
        new = _objective(a, b, align(a, b, TANH[depth], seed=k))
        old = _objective(a, b, align(a, b, TANH[depth], "normalised weight", seed=k))
        assert new >= old - 1e-9 * abs(old)
        better += new > old + 1e-9 * abs(old)
    assert better > 10


def test_normalised_weight_is_the_old_distance():
    """Sign-normalise each net, then match permutations: the door's ``"normalised weight"``
    reaches the distance of that recipe written out (``g = D_a o pi o D_b``)."""
    a, b = init_mlp((5, 7, 6, 2), 0), init_mlp((5, 7, 6, 2), 1)
    na, nb = normalize_signs(a, TANH[2]), normalize_signs(b, TANH[2])
    old = distance(na, permute(nb, align(na, nb, mlp_permutation_spec(2)).perms))
    g = align(a, b, TANH[2], "normalised weight")
    assert distance(a, apply_transform(b, mlp_permutation_spec(2), g)) == pytest.approx(old)


def test_alignment_preserves_the_function():
    a, b = init_mlp((5, 9, 7, 3), 0), init_mlp((5, 9, 7, 3), 1)
    x = torch.randn(30, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for method in ("weight", "weight from identity", "normalised weight", "activation"):
        g = align(a, b, TANH[2], method, x=x, activation="tanh")
        moved = apply_transform(b, mlp_permutation_spec(2), g)
        torch.testing.assert_close(mlp_forward(moved, x, "tanh"), mlp_forward(b, x, "tanh"))


@pytest.mark.parametrize("method", ["weight", "weight from identity"])
def test_coordinate_descent_ends_at_a_signed_coordinatewise_optimum(method):
    """No single layer's signed assignment can improve the end point (brute force per layer on
    a width-4 net: all 4! 2^4 elements of one layer, the others fixed)."""
    widths = (4, 4, 4, 4, 2)
    a, b = init_mlp(widths, 20), init_mlp(widths, 21)
    found = align(a, b, TANH[3], method)
    base = _objective(a, b, found)
    for name in found.perms:
        for perm in itertools.permutations(range(4)):
            for signs in itertools.product((1.0, -1.0), repeat=4):
                perms = dict(found.perms) | {name: torch.tensor(perm)}
                sg = dict(found.signs) | {name: torch.tensor(signs, dtype=torch.float64)}
                if _objective(a, b, Transform(perms, sg)) > base + 1e-9:
                    pytest.fail(f"{name} improves")


def test_assign_signed_against_brute_force():
    rng = np.random.default_rng(1)
    score = rng.normal(size=(5, 5))
    col, sign = assign(score, None, True)
    best = max(sum(abs(score[i, p[i]]) for i in range(5)) for p in itertools.permutations(range(5)))
    assert (sign * score[np.arange(5), col]).sum() == pytest.approx(best)


def test_identity_start_also_recovers_a_planted_copy_and_keeps_the_function():
    net, copy, g = _planted((20, 64, 64, 64, 5), 7)
    found = align(net, copy, TANH[3], "weight from identity", seed=1)
    _inverse_matches(found, g)
