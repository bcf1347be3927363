"""Small networks the T6 tests (test_reach, test_copies) plant their cases in."""

import torch

from ghost_optima.core import mlp
from ghost_optima.sgd import network_chains

DT = torch.float64


def planted_merged_pair(width=6, seed=4):
    """A tanh net whose unit 3 is a sign-flipped copy of unit 1, off by 0.01 (a merged pair)."""
    params = mlp.init_mlp([3, width, 2], seed)
    params["W1"][3], params["b1"][3], params["W2"][:, 3] = (
        -params["W1"][1],
        -params["b1"][1],
        -params["W2"][:, 1],
    )
    params["W1"][3, 0] += 0.01
    return params


def tiny_objective():
    """A (4, 5, 3) tanh classifier's weight-decayed loss on 40 random points, and its start."""
    params = mlp.init_mlp([4, 5, 3], 0)
    g = torch.Generator().manual_seed(1)
    X = torch.randn(40, 4, generator=g, dtype=DT)
    y = torch.randint(0, 3, (40,), generator=g)
    return network_chains.mlp_objective(params, X, y, weight_decay=0.01)
