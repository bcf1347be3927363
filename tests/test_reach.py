"""Tests of ghost_optima.sgd.reach: merged units and the decaying step."""

import math

import pytest
import torch
from planted_nets import planted_merged_pair, tiny_objective

from ghost_optima.sgd import network_chains, reach
from ghost_optima.sgd.chains import Schedule, Watch
from ghost_optima.symmetry import ghosts

DT = torch.float64


def test_merged_units_are_counted_and_left_out_of_the_ghost_search():
    params = planted_merged_pair()
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


def test_decaying_chains_step_down_by_segment():
    objective, theta = tiny_objective()
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
