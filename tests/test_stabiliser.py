"""The stabiliser from duplicated units, against brute force over the whole group."""

import math

import pytest
import torch

from ghost_optima.core import mlp
from ghost_optima.symmetry import group, stabiliser


def brute_force_stabiliser(params, activation, tol=1e-9):
    """Count the group elements whose copy equals ``params`` (enumerating the whole group)."""
    spec = group.mlp_permutation_spec(len(params) // 2 - 1)
    flat = torch.cat([params[k].reshape(-1) for k in sorted(params)])
    count = 0
    for copy in group.enumerate_orbit(params, spec, activation):
        other = torch.cat([copy[k].reshape(-1) for k in sorted(copy)])
        count += int((other - flat).abs().max() <= tol)
    return count


def planted_one_layer(seed=0):
    """4 hidden units: 0 and 1 identical, 2 the sign flip of 0, 3 dead (all weights zero)."""
    p = mlp.init_mlp([3, 4, 2], seed)
    for name in ("W1", "b1"):
        p[name][1] = p[name][0]
        p[name][2] = -p[name][0]
        p[name][3] = 0.0
    p["W2"][:, 1] = p["W2"][:, 0]
    p["W2"][:, 2] = -p["W2"][:, 0]
    p["W2"][:, 3] = 0.0
    return p


def test_generic_weights_have_a_trivial_stabiliser():
    p = mlp.init_mlp([3, 4, 3, 2], 1)  # (4! 2^4)(3! 2^3) = 18,432 elements to enumerate
    assert stabiliser.stabiliser_size(p, "tanh") == 1 == brute_force_stabiliser(p, "tanh")
    assert stabiliser.log10_effective_orbit(p, "tanh") == pytest.approx(
        group.log10_orbit_size([4, 3], "tanh")
    )


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_planted_duplicates_match_brute_force_in_one_layer(activation):
    p = planted_one_layer()
    expected = brute_force_stabiliser(p, activation)
    # tanh: {0, 1, 2} equal up to sign (3!) and one dead unit (1! 2); relu: {0, 1} (2!), dead (1!)
    assert expected == (12 if activation == "tanh" else 2)
    assert stabiliser.stabiliser_size(p, activation) == expected
    assert stabiliser.log10_stabiliser(p, activation) == pytest.approx(math.log10(expected))


def test_planted_duplicates_match_brute_force_in_two_layers():
    p = mlp.init_mlp([2, 3, 3, 1], 2)
    p["W1"][1], p["b1"][1], p["W2"][:, 1] = p["W1"][0], p["b1"][0], p["W2"][:, 0]  # layer 1
    p["W2"][2], p["b2"][2], p["W3"][:, 2] = 0.0, 0.0, 0.0  # a dead unit in layer 2
    expected = brute_force_stabiliser(p, "tanh")
    assert expected == 2 * 2
    assert stabiliser.stabiliser_size(p, "tanh") == expected


def test_tolerance_decides_near_duplicates():
    p = planted_one_layer()
    p["W1"][1, 0] += 1e-5
    assert stabiliser.stabiliser_size(p, "tanh", tol=1e-3) == 12
    assert stabiliser.stabiliser_size(p, "tanh", tol=1e-9) == 2 * 2  # {0, 2} and the dead unit
    groups = stabiliser.layer_groups(p, 1, "tanh", tol=1e-9)
    assert groups.groups == ((0, 2),) and groups.dead == (3,)


def test_every_unit_dead_gives_the_whole_group():
    p = {k: torch.zeros_like(v) for k, v in mlp.init_mlp([2, 3, 1], 0).items()}
    p["b2"] += 1.0  # the output bias is no unit's; a dead layer is fixed by every element
    # scale 0: every unit's norm is <= tol * 0, so all are dead
    assert stabiliser.stabiliser_size(p, "tanh") == math.factorial(3) * 2**3
    assert stabiliser.log10_effective_orbit(p, "tanh") == pytest.approx(0.0, abs=1e-12)


def test_unit_vectors_reject_a_non_hidden_layer():
    with pytest.raises(ValueError, match="hidden layer"):
        stabiliser.unit_vectors(mlp.init_mlp([2, 3, 1], 0), 2)
