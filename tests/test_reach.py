"""Tests of ghost_optima.sgd.reach: spread toward a ghost, merged units, swap events, segmented
runs."""

import math

import pytest
import torch

from ghost_optima.core import mlp
from ghost_optima.sgd import network_chains, reach
from ghost_optima.sgd.chains import Schedule, Watch
from ghost_optima.symmetry import ghosts, group

DT = torch.float64


def test_projected_spread_of_a_hand_built_cloud():
    # theta* = 0, ghost at 2 e_0 in d = 5; chain c alternates +-a_c along e_0 and carries
    # large noise in the orthogonal coordinates, which must not count
    d, T = 5, 40
    amplitudes = torch.tensor([0.1, 0.2, 0.4], dtype=DT)
    g = torch.Generator().manual_seed(0)
    iterates = torch.randn(3, T, d, generator=g, dtype=DT) * 10
    signs = torch.tensor([1.0, -1.0] * (T // 2), dtype=DT)
    iterates[:, :, 0] = amplitudes[:, None] * signs
    centre, ghost = torch.zeros(d, dtype=DT), 2 * torch.eye(d, dtype=DT)[0]
    proj = reach.projected_sq(iterates, centre, ghost)
    torch.testing.assert_close(proj, amplitudes**2)
    ratio = reach.projected_ratio(proj.numpy(), 2.0, n_boot=200, seed=0)
    assert ratio.value == pytest.approx(math.sqrt(float((amplitudes**2).mean())) / 2)
    assert ratio.lo <= ratio.value <= ratio.hi
    assert 0.1 / 2 <= ratio.lo and ratio.hi <= 0.4 / 2
    # the same cloud shifted: the centre and the ghost move with it
    shift = torch.randn(d, generator=g, dtype=DT)
    again = reach.projected_sq(iterates + shift, centre + shift, ghost + shift)
    torch.testing.assert_close(again, proj)
    with pytest.raises(ValueError):
        reach.projected_ratio(proj.numpy(), 0.0, n_boot=10, seed=0)


def test_nearer_fraction_is_the_fraction_past_the_midpoint():
    centre, ghost = torch.zeros(3, dtype=DT), torch.tensor([2.0, 0.0, 0.0], dtype=DT)
    points = torch.tensor([[0.9, 5, 0], [1.1, -3, 1], [2.5, 0, 0], [-1.0, 0, 0]], dtype=DT)
    assert reach.nearer_fraction(points, centre, ghost) == 0.5


def _planted(width=6, seed=4):
    """A tanh net whose unit 3 is a sign-flipped copy of unit 1, off by 0.01 (a merged pair)."""
    params = mlp.init_mlp([3, width, 2], seed)
    params["W1"][3], params["b1"][3], params["W2"][:, 3] = (
        -params["W1"][1],
        -params["b1"][1],
        -params["W2"][:, 1],
    )
    params["W1"][3, 0] += 0.01
    return params


def test_merged_units_are_counted_and_left_out_of_the_ghost_search():
    params = _planted()
    threshold = reach.merge_threshold(params, 0.05)
    U = ghosts.unit_vectors(params, 1)
    assert threshold == pytest.approx(0.05 * float(U.norm(dim=1).median()))
    assert reach.merged_fraction(params, "tanh", threshold) == pytest.approx(2 / 6)
    # for relu the flipped copy is not a duplicate
    assert reach.merged_fraction(params, "relu", threshold) == 0.0
    assert ghosts.nearest_ghost(params, "tanh").distance == pytest.approx(0.01 * math.sqrt(2))
    distinct = ghosts.nearest_ghost(params, "tanh", exclude_below=threshold)
    assert {distinct.i, distinct.j} != {1, 3}
    assert distinct.distance > math.sqrt(2) * threshold
    pairs = ghosts.unit_pair_distances(params, "tanh")
    assert pairs[1, 3] == pytest.approx(0.01) and math.isinf(float(pairs[2, 2]))
    torch.testing.assert_close(
        pairs.min(dim=1).values, ghosts.unit_partner_distances(params, "tanh")
    )


def _transformed(params, perm, signs):
    spec = group.mlp_permutation_spec(1)
    t = group.Transform({"P1": torch.tensor(perm)}, signs={"P1": torch.tensor(signs, dtype=DT)})
    return group.apply_transform(params, spec, t)


def test_swap_events_count_planted_permutations():
    params = _planted()
    g = torch.Generator().manual_seed(2)

    def jitter(p):
        return {k: v + 1e-3 * torch.randn(v.shape, generator=g, dtype=DT) for k, v in p.items()}

    ones = [1.0] * 6
    swap_04 = _transformed(params, [4, 1, 2, 3, 0, 5], ones)
    flipped_swap_25 = _transformed(params, [0, 1, 5, 3, 4, 2], [1, 1, -1, 1, 1, -1])
    merged_swap_13 = _transformed(params, [0, 3, 2, 1, 4, 5], [1, -1, 1, -1, 1, 1])
    lone_flips = _transformed(params, list(range(6)), [-1, 1, 1, 1, -1, 1])
    iterates = [
        jitter(params),
        jitter(swap_04),
        jitter(flipped_swap_25),
        jitter(merged_swap_13),
        jitter(lone_flips),
    ]
    threshold = reach.merge_threshold(params, 0.05)
    any_swap, distinct = reach.swap_events(params, iterates, "tanh", merged_below=threshold)
    assert any_swap.tolist() == [False, True, True, True, False]
    assert distinct.tolist() == [False, True, True, False, False]
    # without the merged exclusion every swap counts as distinct
    _, all_distinct = reach.swap_events(params, iterates, "tanh")
    assert all_distinct.tolist() == any_swap.tolist()
    # the signs that undo a planted flip
    signs = reach.signs_toward(params, lone_flips)["P1"]
    assert signs.tolist() == [-1, 1, 1, 1, -1, 1]


def _tiny_objective():
    params = mlp.init_mlp([4, 5, 3], 0)
    g = torch.Generator().manual_seed(1)
    X = torch.randn(40, 4, generator=g, dtype=DT)
    y = torch.randint(0, 3, (40,), generator=g)
    return network_chains.mlp_objective(params, X, y, weight_decay=0.01)


def test_snapshots_are_the_uninterrupted_run():
    objective, theta = _tiny_objective()
    schedule = Schedule(0.1, 8, 60, 20)
    e = torch.zeros(theta.numel(), 1, dtype=DT)
    e[0, 0] = 1.0
    watch = Watch(theta, e)
    whole = network_chains.mlp_sgd_chains(
        objective, schedule, 3, torch.Generator().manual_seed(5), watch
    )
    snaps = reach.sgd_snapshots(objective, schedule, 3, torch.Generator().manual_seed(5), watch, 7)
    assert snaps.iterates.shape == (3, 7, theta.numel())
    torch.testing.assert_close(snaps.record.final, whole.final)
    torch.testing.assert_close(snaps.iterates[:, -1], whole.final)
    torch.testing.assert_close(snaps.record.msd, whole.msd)
    torch.testing.assert_close(snaps.record.proj_sq, whole.proj_sq)
    with pytest.raises(ValueError):
        reach.sgd_snapshots(objective, schedule, 3, torch.Generator(), watch, 41)


def test_decaying_chains_step_down_by_segment():
    objective, theta = _tiny_objective()
    schedule = Schedule(0.1, 8, 30)
    watch = Watch(theta, record_every=5)
    last, trace, steps = reach.decaying_chains(
        objective, schedule, 1, 2, torch.Generator().manual_seed(3), watch
    )
    same = network_chains.mlp_sgd_chains(
        objective, schedule, 2, torch.Generator().manual_seed(3), watch
    )
    torch.testing.assert_close(last.final, same.final)
    torch.testing.assert_close(trace, same.trace)
    last, trace, steps = reach.decaying_chains(
        objective, schedule, 3, 2, torch.Generator().manual_seed(3), watch
    )
    assert steps.tolist() == [0, 5, 10, 15, 20, 25, 30]
    assert trace.shape == (2, 7)
    # by hand: 10 steps at eta, 10 at eta / 2, 10 at eta / 3, one generator throughout
    gen, state = torch.Generator().manual_seed(3), None
    for k in range(3):
        seg = Schedule(0.1 / (1 + k), 8, 10)
        state = network_chains.mlp_sgd_chains(objective, seg, 2, gen, Watch(theta), state).final
    torch.testing.assert_close(last.final, state)
