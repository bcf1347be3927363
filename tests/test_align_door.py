"""The one alignment door, ``align.align(a, b, group, method)``, against brute force over the
group a ``GroupSpec`` declares, planted elements, and the entry points it replaced
(``alignment_reference``: the figures recorded through them must not move)."""

import itertools
from dataclasses import replace

import alignment_reference as old
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ghost_optima.core.data import teacher_student
from ghost_optima.core.mlp import init_mlp, mlp_forward
from ghost_optima.core.train import member
from ghost_optima.remedies import orthopoly, protocol, twins
from ghost_optima.remedies.reorder import SortedBiases
from ghost_optima.symmetry.align import align, normalize_signs, permute
from ghost_optima.symmetry.group import (
    Transform,
    apply_transform,
    compose_transforms,
    mlp_permutation_spec,
)
from ghost_optima.symmetry.spec import PARITIES, GroupSpec

# --- the group, written out by hand ---------------------------------------------------------


def _layer_elements(parities: np.ndarray, labels: np.ndarray):
    """Every ``(perm, s_in, s_out)`` of one layer: permutations within classes, flips of odd
    units (in and out) and of even units (in only)."""
    n = len(parities)
    blocks = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    flippable = np.flatnonzero(parities != "none")  # a class holds one parity: same after perm
    for chosen in itertools.product(*(itertools.permutations(idx) for idx in blocks)):
        perm = np.empty(n, dtype=np.int64)
        for idx, c in zip(blocks, chosen, strict=True):
            perm[idx] = c
        for flips in itertools.product((1.0, -1.0), repeat=len(flippable)):
            s = np.ones(n)
            s[flippable] = flips
            yield perm, s, np.where(parities == "odd", s, 1.0)


def _by_hand(b: dict, elements: list) -> dict:
    """An MLP moved by one ``(perm, s_in, s_out)`` per hidden layer, without apply_transform:
    ``W_l -> diag(s_in) W_l[perm_l][:, perm_{l-1}] diag(s_out_{l-1})``,
    ``b_l -> s_in b_l[perm_l]``."""
    out, previous = {}, None
    for layer in range(1, len(elements) + 2):
        w, bias = b[f"W{layer}"], b[f"b{layer}"]
        if layer <= len(elements):
            perm, s_in, _ = elements[layer - 1]
            w, bias = w[perm] * s_in[:, None], bias[perm] * s_in
        if previous is not None:
            w = w[:, previous[0]] * previous[2]
        out[f"W{layer}"], out[f"b{layer}"] = w, bias
        previous = elements[layer - 1] if layer <= len(elements) else None
    return out


def _inner(a: dict, b: dict) -> float:
    return float(
        sum((np.asarray(a[k], dtype=float) * np.asarray(b[k], dtype=float)).sum() for k in a)
    )


def _np(params: dict) -> dict:
    return {k: v.double().numpy() for k, v in params.items()}


def _layer_parts(group: GroupSpec, p: str, n: int):
    labels = group.unit_classes(p, n)
    return group.unit_parities(p, n), np.zeros(n, int) if labels is None else labels


def _random_spec(draw_parities, draw_classes, n_hidden=1):
    """An MLP group with the given per-unit parities and class labels of every hidden layer."""
    spec = mlp_permutation_spec(n_hidden)
    names = [f"P{k}" for k in range(1, n_hidden + 1)]
    return replace(
        spec,
        parities=dict(zip(names, [tuple(p) for p in draw_parities], strict=True)),
        classes=dict(zip(names, draw_classes, strict=True)),
    )


@st.composite
def layers(draw, max_width=5):
    """Per-unit parities and class labels that keep parities apart."""
    n = draw(st.integers(1, max_width))
    parities = np.array(draw(st.lists(st.sampled_from(PARITIES), min_size=n, max_size=n)))
    sub = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    labels = np.array([PARITIES.index(p) for p in parities]) * 2 + sub
    return parities, labels


@settings(max_examples=30, deadline=None)
@given(layer=layers(), n_in=st.integers(1, 3), n_out=st.integers(1, 2), seed=st.integers(0, 10**6))
def test_one_hidden_layer_reaches_the_brute_force_optimum_of_any_declared_group(
    layer, n_in, n_out, seed
):
    """Odd, even and no-parity units in classes: over every element of the declared group
    (written out by hand), the door's weight methods reach the best inner product."""
    parities, labels = layer
    widths = (n_in, len(parities), n_out)
    group = _random_spec([parities], [labels])
    a, b = init_mlp(widths, seed), init_mlp(widths, seed + 1)
    an, bn = _np(a), _np(b)
    best = max(_inner(an, _by_hand(bn, [e])) for e in _layer_elements(parities, labels))
    for method in ("weight", "weight from identity"):
        g = align(a, b, group, method)
        assert _inner(an, _np(apply_transform(b, group, g))) == pytest.approx(best, rel=1e-10)


def test_two_hidden_layers_end_at_a_coordinatewise_optimum_never_below_normalised():
    """Two hidden layers of mixed parities in classes: no element of one layer's group (brute
    force, the other layer fixed) improves the door's answer, which is never below
    sign-normalise-then-match."""
    rng = np.random.default_rng(0)
    for trial in range(6):
        parities = [rng.choice(PARITIES, 4) for _ in range(2)]
        labels = [np.array([PARITIES.index(p) for p in ps]) for ps in parities]
        group = _random_spec(parities, labels, n_hidden=2)
        a, b = init_mlp((3, 4, 4, 2), 2 * trial), init_mlp((3, 4, 4, 2), 2 * trial + 1)
        g = align(a, b, group, seed=trial)
        an, moved = _np(a), _np(apply_transform(b, group, g))
        base = _inner(an, moved)
        normalised = align(a, b, group, "normalised weight", seed=trial)
        assert base >= _inner(an, _np(apply_transform(b, group, normalised))) - 1e-9
        identity = [(np.arange(4), np.ones(4), np.ones(4))] * 2
        for k, p in enumerate(group.names):
            for e in _layer_elements(*_layer_parts(group, p, 4)):
                elements = identity[:k] + [e] + identity[k + 1 :]
                assert _inner(an, _by_hand(moved, elements)) <= base + 1e-9


@settings(max_examples=15, deadline=None)
@given(width=st.integers(1, 6), seed=st.integers(0, 10**6))
def test_sorted_units_reach_the_brute_force_optimum(width, seed):
    """Sorted biases, one hidden layer of odd units: the door's flips (each followed by sorting
    again) reach the best of all ``2^n`` flips, and the aligned net stays sorted."""
    group = SortedBiases((1,)).sorted_spec(mlp_permutation_spec(1, "tanh"))
    a, b = (init_mlp((3, width, 2), seed + k) for k in (0, 1))
    a, b = (permute(p, {"P1": torch.argsort(p["b1"])}) for p in (a, b))
    best = -np.inf
    for flips in itertools.product((1.0, -1.0), repeat=width):
        s = np.array(flips)
        order = np.argsort(s * b["b1"].numpy(), kind="stable")
        best = max(best, _inner(_np(a), _by_hand(_np(b), [(order, s[order], s[order])])))
    moved = apply_transform(b, group, align(a, b, group))
    assert _inner(_np(a), _np(moved)) == pytest.approx(best, rel=1e-12)
    assert bool((torch.diff(moved["b1"]) >= 0).all())


def test_even_flips_act_on_the_incoming_side_and_compose():
    """``Transform.even_signs`` flips a unit's incoming weights and bias only (by hand), and
    ``compose_transforms`` of two elements with them is applying one after the other."""
    rng = np.random.default_rng(4)
    parities = [rng.choice(PARITIES, 5), rng.choice(PARITIES, 4)]
    group = _random_spec(
        parities, [np.array([PARITIES.index(p) for p in ps]) for ps in parities], 2
    )
    net = init_mlp((3, 5, 4, 2), 0)
    g, h = (_random_element(group, {"P1": 5, "P2": 4}, rng) for _ in range(2))
    elements = [
        (g.perms[p].numpy(), (g.signs[p] * g.even_signs[p]).numpy(), g.signs[p].numpy())
        for p in group.names
    ]
    moved = apply_transform(net, group, g)
    by_hand = _by_hand(_np(net), elements)
    for k in net:
        np.testing.assert_array_equal(_np(moved)[k], by_hand[k])
    twice = apply_transform(moved, group, h)
    once = apply_transform(net, group, compose_transforms(g, h))
    assert all(torch.allclose(twice[k], once[k], rtol=0, atol=0) for k in net)


# --- planted elements -----------------------------------------------------------------------


def _random_element(group: GroupSpec, sizes: dict, rng) -> Transform:
    perms, signs, even = {}, {}, {}
    for p, n in sizes.items():
        parities, labels = _layer_parts(group, p, n)
        perm = np.arange(n)
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            perm[idx] = rng.permutation(idx)
        s = np.where(parities[perm] != "none", rng.choice([-1.0, 1.0], n), 1.0)
        perms[p] = torch.as_tensor(perm)
        signs[p] = torch.as_tensor(np.where(parities[perm] == "odd", s, 1.0))
        even[p] = torch.as_tensor(np.where(parities[perm] == "even", s, 1.0))
    return Transform(perms, signs, even_signs=even)


def _undoes(found: Transform, planted: Transform) -> bool:
    """``found`` after ``planted`` is the identity (permutations and every flip)."""
    both = compose_transforms(planted, found)
    ones = [both.signs or {}, both.even_signs or {}]
    return all(torch.equal(p, torch.arange(len(p))) for p in both.perms.values()) and all(
        bool((s == 1).all()) for part in ones for s in part.values()
    )


@pytest.mark.parametrize("widths", [(6, 8, 3), (10, 12, 12, 4), (20, 64, 64, 64, 5)])
def test_planted_elements_of_a_mixed_group_are_recovered_exactly(widths):
    """A random element (permutations within classes, odd and even flips) plus 1e-3 noise is
    undone exactly by every weight method."""
    rng = np.random.default_rng(len(widths))
    hidden = widths[1:-1]
    parities = [rng.choice(PARITIES, n) for n in hidden]
    labels = [
        np.array([PARITIES.index(p) for p in ps]) * 3 + rng.integers(0, 3, len(ps))
        for ps in parities
    ]
    group = _random_spec(parities, labels, n_hidden=len(hidden))
    net = init_mlp(widths, 0)
    planted = _random_element(group, dict(zip(group.names, hidden, strict=True)), rng)
    gen = torch.Generator().manual_seed(1)
    copy = {
        k: v + 1e-3 * v.std() * torch.randn(v.shape, generator=gen, dtype=v.dtype)
        for k, v in apply_transform(net, group, planted).items()
    }
    for method in ("weight", "weight from identity", "normalised weight"):
        assert _undoes(align(net, copy, group, method, seed=2), planted), method


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_every_method_agrees_on_an_exact_copy(activation):
    """A net and an exact copy moved by its activation's group: the four methods return the
    same element, the one that undoes the copy."""
    widths = (8, 10, 9, 3)
    group = mlp_permutation_spec(2, activation)
    rng = np.random.default_rng(3)
    net = init_mlp(widths, 5)
    planted = _random_element(group, {"P1": 10, "P2": 9}, rng)
    copy = apply_transform(net, group, planted)
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for method in ("weight", "weight from identity", "normalised weight", "activation"):
        found = align(net, copy, group, method, x=x, activation=activation)
        assert _undoes(found, planted), method
        assert (found.signs is None) == (activation == "relu")


def test_the_two_weight_starts_agree_on_one_hidden_layer():
    """One hidden layer: the optimum is unique for random weights and both starts reach it."""
    group = mlp_permutation_spec(1, "tanh")
    for seed in range(10):
        a, b = init_mlp((5, 9, 3), 2 * seed), init_mlp((5, 9, 3), 2 * seed + 1)
        g, h = align(a, b, group), align(a, b, group, "weight from identity")
        assert all(torch.equal(g.perms[p], h.perms[p]) for p in g.perms)
        assert all(torch.equal(g.signs[p], h.signs[p]) for p in g.signs)


def test_every_element_found_keeps_the_function():
    """Per-unit polynomial activations with every parity: the door's answer computes ``b``."""
    rows = torch.zeros(6, 4, dtype=torch.float64)
    for i, degrees in enumerate([(1,), (1,), (2,), (2,), (1, 2), (3,)]):
        rows[i, list(degrees)] = 1.0
    act = orthopoly.PolyActivation((rows, rows), "legendre")
    group = orthopoly.poly_spec((rows, rows))
    x = torch.randn(30, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for seed in range(3):
        a, b = init_mlp((4, 6, 6, 2), 2 * seed), init_mlp((4, 6, 6, 2), 2 * seed + 1)
        g = align(a, b, group, seed=seed)
        assert g.even_signs is not None
        moved = apply_transform(b, group, g)
        torch.testing.assert_close(mlp_forward(moved, x, act), mlp_forward(b, x, act))


# --- the entry points the door replaced -----------------------------------------------------


def _same(g: Transform, h: Transform) -> bool:
    parts = [(g.perms, h.perms), (g.signs, h.signs)]
    if any((x is None) != (y is None) for x, y in parts):
        return False
    return all(torch.equal(x[p], y[p]) for x, y in parts if x is not None for p in x)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("hidden", [(7,), (8, 6), (6, 5, 7)])
def test_door_is_signed_alignment_and_weight_matching(activation, hidden):
    """``signed_alignment`` (and ``align_to``, ``align_pair``) and ``weight_matching``, on 8
    random pairs each: the same element, so the same aligned network."""
    widths = (5, *hidden, 3)
    group = mlp_permutation_spec(len(hidden), activation)
    perms_only = mlp_permutation_spec(len(hidden))
    for seed in range(8):
        a, b = init_mlp(widths, 2 * seed), init_mlp(widths, 2 * seed + 1)
        assert _same(
            align(a, b, group, seed=seed), old.signed_alignment(a, b, activation, seed=seed)
        )
        ref = old.signed_alignment(a, b, activation, seed=seed, start="identity")
        assert _same(align(a, b, group, "weight from identity", seed=seed), ref)
        wm = old.weight_matching(a, b, seed=seed)
        assert _same(align(a, b, perms_only, seed=seed), Transform(wm))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_sign_normalisation_is_the_old_one(dtype):
    """``align.normalize_signs`` (numpy flips, ``matching.normalising_flips``) moves tanh nets
    of one to three hidden layers to bitwise the networks the old torch normalisation gave
    (chapter 60's canonical sort runs it in float32 during training)."""
    for seed, hidden in enumerate([(7,), (8, 6), (6, 5, 7)] * 3):
        net = init_mlp((5, *hidden, 3), seed, dtype=dtype)
        group = mlp_permutation_spec(len(hidden), "tanh")
        new, ref = normalize_signs(net, group), old.normalize_signs(net)
        assert all(torch.equal(new[k], ref[k]) for k in net)


def test_door_is_normalised_matching_and_activation_matching():
    """``sign_normalised_matching`` reaches the distance of the door's ``"normalised weight"``;
    the door's activation matching is the old per-pair one."""
    group = mlp_permutation_spec(2, "tanh")
    x = torch.randn(60, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for seed in range(6):
        a, b = init_mlp((5, 9, 7, 2), 2 * seed), init_mlp((5, 9, 7, 2), 2 * seed + 1)
        new = apply_transform(b, group, align(a, b, group, "normalised weight", seed=seed))
        ref = apply_transform(b, group, old.sign_normalised_matching(a, b, seed=seed))
        assert _inner(_np(a), _np(new)) == pytest.approx(_inner(_np(a), _np(ref)), rel=1e-12)
        found = align(a, b, group, "activation", x=x, activation="tanh")
        assert _same(found, old.activation_matching(a, b, x, "tanh"))


@pytest.fixture(scope="module")
def data():
    d, _ = teacher_student(200, 80, 12, (6, 3), "classification", seed=0)
    return d


@pytest.mark.parametrize(
    "variant",
    ["baseline", "sorted biases", "random masks", "modules", "poly degrees", "poly distinct"]
    + ["random twin masks", "full-input modules", "poly shared", "cumsum biases"],
)
def test_door_is_align_within_on_every_variant(data, variant):
    """``protocol.align_within`` on every remedy and twin (tanh; width 6, 3 trained pairs): the
    door moves ``b`` to bitwise the same network, so ``measure``'s barriers are unchanged."""
    arch = twins.architecture(variant, data, protocol.RemedyConfig(width=6, twin_block=2))
    result = protocol.train(arch, data, range(6), epochs=1, batch_size=32, lr=0.05)
    names, group = arch.group.names, arch.group
    sizes = dict(zip(names, arch.widths[1:-1], strict=True))
    parities = [group.unit_parities(p, n) for p, n in sizes.items()]
    classes = dict(group.classes) or None
    for p in range(3):
        a, b = member(result.params, 2 * p), member(result.params, 2 * p + 1)
        ref = old.align_within(parities, classes, bool(group.sorted_by), a, b)[1]
        moved = apply_transform(b, group, align(a, b, group))
        assert all(torch.equal(moved[k], ref[k]) for k in ref), variant


# --- what the door refuses ------------------------------------------------------------------


def test_specs_and_methods_that_make_no_sense_are_refused():
    spec = mlp_permutation_spec(1)
    a, b = init_mlp((3, 4, 2), 0), init_mlp((3, 4, 2), 1)
    with pytest.raises(ValueError, match="not permutations"):
        replace(spec, parities={"P9": "odd"})
    with pytest.raises(ValueError, match="must be among"):
        replace(spec, parities={"P1": "sideways"})
    with pytest.raises(ValueError, match="not a 1-D parameter"):
        replace(spec, sorted_by={"P1": "W1"})
    mixed = replace(spec, parities={"P1": ("odd", "even", "odd", "odd")})
    with pytest.raises(ValueError, match="different parities"):
        align(a, b, mixed)
    with pytest.raises(ValueError, match="unknown method"):
        align(a, b, spec, "telepathy")
    with pytest.raises(ValueError, match="inputs x"):
        align(a, b, spec, "activation")
    sorted_spec = SortedBiases((1,)).sorted_spec(mlp_permutation_spec(1, "tanh"))
    with pytest.raises(ValueError, match="sorted units"):
        align(a, b, sorted_spec, "activation", x=torch.zeros(5, 3), activation="tanh")
