"""Basins and barriers among seeds (ghost_optima.landscape.basins) against pair-by-pair
references."""

import numpy as np
import pytest
import torch
from alignment_reference import activation_matching
from hypothesis import given, settings
from hypothesis import strategies as st

from ghost_optima.core.data import teacher_student
from ghost_optima.core.mlp import init_mlp
from ghost_optima.core.train import member, stack_params
from ghost_optima.landscape import basins
from ghost_optima.symmetry import pairwise
from ghost_optima.symmetry.align import align
from ghost_optima.symmetry.group import apply_transform, mlp_permutation_spec, random_transform


def _stack(widths, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return stack_params([init_mlp(widths, gen, dtype=torch.float32) for _ in range(n)])


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("hidden", [(7,), (6, 5)])
def test_segment_losses_equal_interpolating_every_network(task, activation, hidden):
    data, _ = teacher_student(60, 10, 4, (5, 3), task, seed=0)
    widths = (4, *hidden, 3)
    stacked = _stack(widths, 4)
    spec = mlp_permutation_spec(len(hidden))
    gen = torch.Generator().manual_seed(5)
    pairs = pairwise.all_pairs(4)
    gs = [random_transform(spec, widths, "tanh", gen) if k % 2 else None for k in range(len(pairs))]
    if activation == "relu":  # signs would change a relu net's function: permutations only
        gs = [None if g is None else type(g)(g.perms) for g in gs]
    curves = basins.segment_losses(
        stacked, gs, (data.x_train, data.y_train), activation, task, n_points=5
    )
    firsts = [member(stacked, i) for i, _ in pairs]
    seconds = [
        member(stacked, j) if g is None else apply_transform(member(stacked, j), spec, g)
        for (_, j), g in zip(pairs, gs, strict=True)
    ]
    ref = pairwise.segment_barriers(
        firsts, seconds, data.x_train, data.y_train, activation, task, n_points=5
    )
    np.testing.assert_allclose(pairwise.barrier_heights(curves), ref, atol=1e-5)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_segment_losses_same_in_any_chunking(activation):
    """The reused buffer carries nothing from one chunk to the next (one pair per chunk, a
    smaller last chunk, or all pairs at once give the same curves)."""
    data, _ = teacher_student(40, 10, 4, (5, 3), "classification", seed=2)
    stacked = _stack((4, 6, 5, 3), 5, seed=3)
    gs = [None] * len(pairwise.all_pairs(5))
    xy = (data.x_train, data.y_train)
    curves = [
        basins.segment_losses(stacked, gs, xy, activation, "classification", max_floats=m)
        for m in (1, 3 * 40 * 6 * 5, 2**30)
    ]
    np.testing.assert_allclose(curves[0], curves[1], rtol=1e-6)
    np.testing.assert_allclose(curves[0], curves[2], rtol=1e-6)
    assert np.isfinite(curves[0]).all() and curves[0].shape == (10, 7)


def test_activation_pairs_equal_activation_matching_pair_by_pair():
    """All pairs at once (activations standardised once) against the door on each pair and
    the old per-pair activation matching (``alignment_reference``)."""
    stacked = _stack((5, 9, 6, 2), 3)
    x = torch.randn(50, 5, generator=torch.Generator().manual_seed(0))
    group = mlp_permutation_spec(2, "tanh")
    found = pairwise.pair_transforms(stacked, group, "activation", x=x, activation="tanh")
    for (i, j), g in zip(pairwise.all_pairs(3), found, strict=True):
        a, b = member(stacked, i), member(stacked, j)
        door = align(a, b, group, "activation", x=x, activation="tanh")
        for ref in (door, activation_matching(a, b, x, "tanh")):
            for name in ref.perms:
                assert torch.equal(g.perms[name], ref.perms[name])
                assert torch.equal(g.signs[name], ref.signs[name])


def _components_reference(linked, members):
    """Components by repeated flooding, written out."""
    members, seen, count = list(members), set(), 0
    for start in members:
        if start in seen:
            continue
        count += 1
        stack = [start]
        while stack:
            k = stack.pop()
            if k in seen:
                continue
            seen.add(k)
            stack += [m for m in members if m not in seen and linked[k, m]]
    return count


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 9), density=st.floats(0, 1), seed=st.integers(0, 10**6))
def test_connected_count_against_flooding(n, density, seed):
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.random((n, n)) < density, 1)
    linked = upper | upper.T
    members = np.flatnonzero(rng.random(n) < 0.7)
    assert basins.connected_count(linked, members) == _components_reference(linked, members)


def test_measure_pairs_aligned_is_the_lower_and_removes_a_planted_copy():
    data, _ = teacher_student(80, 40, 3, (4, 1), "regression", seed=1)
    widths = (3, 6, 1)
    net = init_mlp(widths, 0, dtype=torch.float32)
    spec = mlp_permutation_spec(1)
    copy = apply_transform(net, spec, random_transform(spec, widths, "tanh", 3))
    stacked = stack_params([net, copy, init_mlp(widths, 7, dtype=torch.float32)])
    m = basins.measure_pairs(stacked, data, "tanh", n_eval=80, n_points=5)
    for key in ("train", "test", "dist"):
        np.testing.assert_array_equal(
            m[f"{key}_aligned"], np.fmin(m[f"{key}_weight"], m[f"{key}_activation"])
        )
    assert m["dist_naive"][0, 1] > 0.1 and m["dist_weight"][0, 1] < 1e-5
    assert m["train_weight"][0, 1] < 1e-6


def test_activation_matching_refuses_fewer_inputs_than_units():
    data, _ = teacher_student(5, 5, 3, (4, 1), "regression", seed=1)
    stacked = stack_params([init_mlp((3, 6, 1), k, dtype=torch.float32) for k in range(2)])
    with pytest.raises(ValueError, match="6 units"):
        basins.measure_pairs(stacked, data, "tanh", n_eval=5, n_points=3)


def test_constant_loss_and_init_distances():
    data, _ = teacher_student(50, 10, 3, (4, 2), "classification", seed=0)
    p = torch.bincount(data.y_train, minlength=2).double() / 50
    assert basins.constant_loss(data) == pytest.approx(float(-(p * p.log()).sum()))
    d = basins.init_distances((3, 8, 2), "tanh", [0, 1, 2, 3])
    assert d.shape == (2,) and (d > 0).all()
