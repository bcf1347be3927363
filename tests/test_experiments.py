"""Pair statistics (``ghost_optima.symmetry.pairwise``) against independent references: loops,
the alignment entry points the door replaced (``alignment_reference``), brute force."""

import itertools

import numpy as np
import pytest
import torch
from alignment_reference import align_to, weight_matching

from ghost_optima.core.data import teacher_student
from ghost_optima.core.mlp import ensemble_forward, init_mlp
from ghost_optima.core.train import stack_params
from ghost_optima.symmetry import align, pairwise
from ghost_optima.symmetry.group import apply_transform, mlp_permutation_spec, random_transform


def aligned_distance(a, b):
    """Reference: the normalised distance after one weight matching, pair by pair."""
    d = pairwise.distance(a, align.permute(b, weight_matching(a, b)))
    norm = lambda p: torch.cat([v.reshape(-1) for v in p.values()]).double().norm().item()  # noqa: E731
    return 2 * d / (norm(a) + norm(b))


def disagreement(out_a, out_b):
    """Reference: the fraction of inputs whose argmax classes differ."""
    return float((out_a.argmax(-1) != out_b.argmax(-1)).double().mean())


def nets(widths, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [init_mlp(widths, gen, dtype=torch.float32) for _ in range(n)]


def test_pairwise_alignment_maps_a_permuted_sign_flipped_copy_onto_the_original():
    gen = torch.Generator().manual_seed(1)
    widths = [5, 12, 3]
    a = init_mlp(widths, gen)
    copy = apply_transform(
        a, mlp_permutation_spec(1), random_transform(mlp_permutation_spec(1), widths, "tanh", gen)
    )
    assert pairwise.relative_distance(a, copy) > 0.1
    dist, _, (a2,), (b2,) = pairwise.pairwise_alignment(stack_params([a, copy]), "tanh")
    assert dist[0, 1] < 1e-12
    x = torch.randn(20, 5, generator=gen, dtype=torch.float64)
    for original, aligned in ((a, a2), (copy, b2)):  # alignment never changes a function
        f = ensemble_forward(stack_params([original]), x, "tanh")
        g = ensemble_forward(stack_params([aligned]), x, "tanh")
        assert torch.allclose(f, g, atol=1e-12)


def test_pairwise_alignment_matches_align_aligned_distance_for_relu():
    members = nets([4, 9, 9, 2], 4)
    stacked = stack_params(members)
    dist, pairs, _, _ = pairwise.pairwise_alignment(stacked, "relu")
    assert pairs == list(itertools.combinations(range(4), 2))
    assert np.isnan(np.diag(dist)).all()
    for i, j in pairs:
        expected = aligned_distance(members[i], members[j])
        assert dist[i, j] == pytest.approx(expected, rel=1e-9)
        assert dist[j, i] == dist[i, j]


@pytest.mark.parametrize(
    ("task", "activation"), [("regression", "tanh"), ("classification", "relu")]
)
def test_segment_barriers_equal_barrier(task, activation):
    data, _ = teacher_student(60, 10, 3, (4, 3), task, seed=2)
    members = nets([3, 7, 3], 5, seed=3)
    firsts, seconds = members[:2] + members[2:3], members[3:5] + members[1:2]
    got = pairwise.segment_barriers(
        firsts, seconds, data.x_train, data.y_train, activation, task, n_points=9, max_floats=200
    )
    for k, (a, b) in enumerate(zip(firsts, seconds, strict=True)):
        ref = pairwise.barrier(a, b, data.x_train, data.y_train, activation, task, n_points=9)
        assert got[k] == pytest.approx(ref["loss_barrier"], rel=1e-5, abs=1e-7)


def test_disagreement_matrix_equals_prediction_disagreement():
    gen = torch.Generator().manual_seed(4)
    out = torch.randn(4, 50, 3, generator=gen)
    d = pairwise.disagreement_matrix(out)
    for i, j in itertools.permutations(range(4), 2):
        assert d[i, j] == pytest.approx(disagreement(out[i], out[j]))
    assert np.isnan(np.diag(d)).all()


def test_member_disagreement_counts_disagreeing_pairs():
    gen = torch.Generator().manual_seed(5)
    pred = torch.randint(0, 4, (6, 30), generator=gen)
    got = pairwise.member_disagreement(pred, 4)
    for n in range(30):
        pairs = list(itertools.permutations(range(6), 2))
        expected = sum(int(pred[i, n] != pred[j, n]) for i, j in pairs) / len(pairs)
        assert got[n] == pytest.approx(expected)
    same = torch.zeros(3, 2, dtype=torch.long)
    assert pairwise.member_disagreement(same, 2).tolist() == [0, 0]


def test_pairwise_alignment_for_tanh_never_worse_than_normalising_signs_first():
    """On random tanh pairs the distance after the signed alignment is never above
    sign-normalise-then-match, and activation matching keeps the function."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(40, 6, generator=gen, dtype=torch.float64)
    for k in range(10):
        a, b = init_mlp([6, 9, 7, 2], 2 * k), init_mlp([6, 9, 7, 2], 2 * k + 1)
        tanh = mlp_permutation_spec(2, "tanh")
        na, nb = align.normalize_signs(a, tanh), align.normalize_signs(b, tanh)
        old = pairwise.relative_distance(na, align.permute(nb, weight_matching(na, nb)))
        dist, _, (a2,), _ = pairwise.pairwise_alignment(stack_params([a, b]), "tanh")
        assert all(torch.equal(a2[key], a[key]) for key in a)
        assert dist[0, 1] <= old + 1e-12
        _, _, _, (b3,) = pairwise.pairwise_alignment(
            stack_params([a, b]), "tanh", method="activation", x=x
        )
        f = ensemble_forward(stack_params([b]), x, "tanh")
        assert torch.allclose(ensemble_forward(stack_params([b3]), x, "tanh"), f, atol=1e-12)


def test_pairwise_alignment_by_activation_matching_is_the_old_one_pair_by_pair():
    members = nets([4, 9, 2], 3)
    x = torch.randn(30, 4, generator=torch.Generator().manual_seed(0))
    dist, pairs, firsts, seconds = pairwise.pairwise_alignment(
        stack_params(members), "tanh", method="activation", x=x
    )
    for (i, j), a, b in zip(pairs, firsts, seconds, strict=True):
        ref = align_to(members[i], members[j], "tanh", method="activation", x=x)
        assert all(torch.equal(b[k], ref[k]) for k in ref)
        assert dist[i, j] == pytest.approx(pairwise.relative_distance(a, b))
