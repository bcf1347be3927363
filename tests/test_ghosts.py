"""Tests of ghost_optima.symmetry.ghosts against brute force over transpositions and the network
itself."""

import itertools
import math

import numpy as np
import pytest
import torch

from ghost_optima.core import mlp
from ghost_optima.symmetry import ghosts, group

DT = torch.float64


def _brute_force_nearest(params, activation):
    widths = mlp.mlp_widths(params)
    spec = group.mlp_permutation_spec(len(widths) - 2)
    signs = (1.0, -1.0) if activation == "tanh" else (1.0,)
    best = math.inf
    for layer in range(1, len(widths) - 1):
        n = widths[layer]
        for i, j in itertools.combinations(range(n), 2):
            for s in signs:
                perm = torch.arange(n)
                perm[i], perm[j] = j, i
                perms = {f"P{k}": torch.arange(widths[k]) for k in range(1, len(widths) - 1)}
                perms[f"P{layer}"] = perm
                sg = {f"P{k}": torch.ones(widths[k], dtype=DT) for k in range(1, len(widths) - 1)}
                sg[f"P{layer}"][[i, j]] = s
                copy = group.apply_transform(params, spec, group.Transform(perms, signs=sg))
                d = math.sqrt(sum(float((params[k] - copy[k]).pow(2).sum()) for k in params))
                best = min(best, d)
    return best


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("widths", [[3, 4, 2], [2, 3, 5, 1]])
def test_nearest_ghost_matches_brute_force(activation, widths):
    params = mlp.init_mlp(widths, 3)
    ghost = ghosts.nearest_ghost(params, activation)
    assert ghost.distance == pytest.approx(_brute_force_nearest(params, activation), rel=1e-12)
    d = math.sqrt(sum(float((params[k] - ghost.params[k]).pow(2).sum()) for k in params))
    assert d == pytest.approx(ghost.distance, rel=1e-12)
    x = torch.randn(20, widths[0], dtype=DT, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(
        mlp.mlp_forward(ghost.params, x, activation),
        mlp.mlp_forward(params, x, activation),
        atol=1e-13,
    )
    # the copy is the group element it names, applied by group.apply_transform
    spec = group.mlp_permutation_spec(len(widths) - 2)
    again = group.apply_transform(params, spec, ghost.transform)
    assert all(torch.equal(again[k], ghost.params[k]) for k in params)
    moved = ghost.transform.perms[f"P{ghost.layer}"]
    assert moved.tolist()[ghost.i] == ghost.j and moved.tolist()[ghost.j] == ghost.i


def test_swap_transform_is_an_involution():
    widths = (3, 4, 5, 2)
    params = mlp.init_mlp(widths, 7)
    spec = group.mlp_permutation_spec(2)
    g = ghosts.swap_transform(widths, 2, 1, 3, -1)
    twice = group.apply_transform(group.apply_transform(params, spec, g), spec, g)
    for k in params:
        torch.testing.assert_close(twice[k], params[k], rtol=0, atol=1e-15)


def test_unit_partner_distances_and_distinct_ghost_skip_duplicates():
    params = mlp.init_mlp([3, 5, 2], 4)
    # make unit 3 a sign-flipped duplicate of unit 1 (exact for tanh)
    params["W1"][3], params["b1"][3], params["W2"][:, 3] = (
        -params["W1"][1],
        -params["b1"][1],
        -params["W2"][:, 1],
    )
    d = ghosts.unit_partner_distances(params, "tanh")
    U = torch.cat([params["W1"], params["b1"][:, None], params["W2"].T], 1)
    brute = [
        min(min(float((U[i] - s * U[j]).norm()) for s in (1, -1)) for j in range(5) if j != i)
        for i in range(5)
    ]
    np.testing.assert_allclose(d, brute, atol=1e-14)
    assert d[1] == 0 and d[3] == 0
    assert ghosts.nearest_ghost(params, "tanh").distance == 0.0
    distinct = ghosts.nearest_ghost(params, "tanh", exclude_below=1e-9)
    others = sorted(x for x in brute if x > 0)
    assert distinct.distance == pytest.approx(math.sqrt(2) * others[0])
    assert ghosts.nearest_ghost(params, "tanh", exclude_below=1e9) is None
