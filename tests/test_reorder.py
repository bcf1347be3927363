import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ghost_optima.core.data import teacher_student
from ghost_optima.core.mlp import ensemble_forward, init_mlp, mlp_forward
from ghost_optima.core.train import TrainConfig, TrainHooks, stack_params, train_ensemble
from ghost_optima.remedies.reorder import (
    CanonicalSortHook,
    CumsumBiases,
    SortedBiases,
    agreement,
    canonical_perms,
    canonical_transform,
    inverse_softplus,
    perms_between,
)
from ghost_optima.symmetry.align import align, canonicalize, permute
from ghost_optima.symmetry.group import apply_transform, mlp_permutation_spec, random_transform


@pytest.fixture(scope="module")
def data():
    d, _ = teacher_student(160, 60, 6, (5, 3), "classification", seed=0)
    return d


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("key", ["incoming_norm", "outgoing_norm", "bias"])
def test_canonical_transform_reproduces_canonicalize(activation, key):
    params = init_mlp((5, 7, 6, 3), 0)
    g = canonical_transform(params, activation, key)
    moved = apply_transform(params, mlp_permutation_spec(2), g)
    ref = canonicalize(params, activation, key)
    assert all(torch.equal(moved[k], ref[k]) for k in params)


@pytest.mark.parametrize("optimizer, momentum", [("adam", 0.0), ("sgd", 0.9)])
def test_sorting_during_training_changes_no_prediction(data, optimizer, momentum):
    """Gradient descent is permutation-equivariant: with the optimizer state relabelled too,
    a run sorted every few steps is the canonical copy of the plain run, step after step."""
    config = TrainConfig(4, 16, optimizer, 0.05, momentum, dtype=torch.float64)
    widths, seeds = (6, 9, 7, 3), range(4)
    plain = train_ensemble(data, widths, "tanh", seeds, config)
    hook = CanonicalSortHook("tanh", every=3)
    sorted_run = train_ensemble(data, widths, "tanh", seeds, config, TrainHooks(step_hook=hook))
    assert hook.n_moves > 0
    x = data.x_test.double()
    out_plain = ensemble_forward(plain.params, x, "tanh")
    out_sorted = ensemble_forward(sorted_run.params, x, "tanh")
    assert (out_plain - out_sorted).abs().max() < 1e-10
    np.testing.assert_allclose(plain.history.test_loss, sorted_run.history.test_loss, atol=1e-12)
    # The parameters differ (the runs sit on different copies) but canonical forms agree.
    assert not torch.equal(plain.params["W1"], sorted_run.params["W1"])
    for e in range(4):
        a = canonicalize({k: v[e] for k, v in plain.params.items()}, "tanh")
        b = canonicalize({k: v[e] for k, v in sorted_run.params.items()}, "tanh")
        assert all(torch.allclose(a[k], b[k], atol=1e-10) for k in a)


def test_sorting_without_relabelling_the_state_breaks_equivariance(data):
    config = TrainConfig(4, 16, "adam", 0.05, dtype=torch.float64)
    widths = (6, 9, 7, 3)
    plain = train_ensemble(data, widths, "tanh", range(3), config)
    hook = CanonicalSortHook("tanh", every=3, permute_state=False)
    broken = train_ensemble(data, widths, "tanh", range(3), config, TrainHooks(step_hook=hook))
    x = data.x_test.double()
    gap = ensemble_forward(plain.params, x, "tanh") - ensemble_forward(broken.params, x, "tanh")
    assert gap.abs().max() > 1e-4


def test_sorted_biases_is_an_invertible_ordered_reparameterization():
    params = init_mlp((4, 8, 6, 2), 3)
    reparam = SortedBiases((1, 2))
    raw = reparam.to_raw(params)
    back = reparam.to_params(raw)
    for layer in (1, 2):
        assert (torch.diff(back[f"b{layer}"]) > 0).all()
    # to_raw only relabelled units: the same function, and the round trip is the sorted net
    x = torch.randn(20, 4, dtype=torch.float64)
    torch.testing.assert_close(mlp_forward(back, x, "tanh"), mlp_forward(params, x, "tanh"))
    again = reparam.to_params(reparam.to_raw(back))
    assert all(torch.allclose(again[k], back[k], atol=1e-12) for k in back)
    # any raw vector gives sorted biases
    raw_random = {k: torch.randn_like(v) for k, v in raw.items()}
    assert (torch.diff(reparam.to_params(raw_random)["b1"]) > 0).all()
    y = torch.linspace(1e-6, 30, 50, dtype=torch.float64)
    torch.testing.assert_close(F.softplus(inverse_softplus(y)), y)
    # works on stacked ensembles too
    stacked = stack_params([init_mlp((4, 8, 6, 2), s) for s in range(3)])
    assert (torch.diff(reparam.to_params(reparam.to_raw(stacked))["b1"], dim=-1) > 0).all()
    with pytest.raises(ValueError):
        tied = dict(params, b1=torch.zeros(8, dtype=torch.float64))
        reparam.to_raw(tied)


def test_training_with_sorted_biases_keeps_them_sorted(data):
    result = train_ensemble(
        data,
        (6, 10, 3),
        "tanh",
        range(3),
        TrainConfig(3, 16, "adam", 0.05),
        TrainHooks(reparam=SortedBiases((1,))),
    )
    assert (torch.diff(result.params["b1"], dim=-1) > 0).all()
    assert (result.history.train_loss[-1] < result.history.train_loss[0]).all()
    # The first recorded loss equals the plain run's: sorting the initialisation is a relabelling.
    plain = train_ensemble(data, (6, 10, 3), "tanh", range(3), TrainConfig(0, 16, lr=0.05))
    np.testing.assert_allclose(result.history.train_loss[0], plain.history.train_loss[0], 1e-6)


def test_canonical_alignment_versus_weight_matching():
    params = init_mlp((5, 8, 7, 2), 4)
    spec = mlp_permutation_spec(2)
    g = random_transform(spec, (5, 8, 7, 2), "relu", 1)
    copy = apply_transform(params, spec, type(g)(g.perms))  # a pure relabelling
    pc = perms_between(canonical_perms(params, "relu"), canonical_perms(copy, "relu"))
    pw = align(params, copy, mlp_permutation_spec(len(params) // 2 - 1)).perms
    aligned = permute(copy, pc)
    assert all(torch.allclose(aligned[k], params[k]) for k in params)
    assert agreement(pc, pw) == 1.0
    other = init_mlp((5, 8, 7, 2), 9)
    pc2 = perms_between(canonical_perms(params, "relu"), canonical_perms(other, "relu"))
    # closed form: a transposition in P1 moves 2 of the 8 + 7 units
    swapped = dict(pc2, P1=pc2["P1"][[1, 0, *range(2, 8)]])
    assert agreement(pc2, swapped) == pytest.approx(1 - 2 / 15)
    assert agreement(pc2, pc2) == 1.0


def test_cumsum_biases_is_linear_invertible_and_order_free():
    params = stack_params([init_mlp((4, 6, 5, 2), s) for s in range(3)])
    reparam = CumsumBiases((1, 2))
    raw = reparam.to_raw(params)
    back = reparam.to_params(raw)
    x = torch.randn(20, 4, dtype=torch.float64)
    torch.testing.assert_close(
        ensemble_forward(back, x, "tanh"), ensemble_forward(params, x, "tanh")
    )
    assert bool((torch.diff(back["b1"], dim=-1) >= 0).all())  # starts sorted, like SortedBiases
    sorted_start = SortedBiases((1, 2)).to_params(SortedBiases((1, 2)).to_raw(params))
    torch.testing.assert_close(back["b1"], sorted_start["b1"])  # the same starting network
    raw["b1"][..., 1:] = -1.0  # order free: any bias vector is reachable
    assert bool((torch.diff(reparam.to_params(raw)["b1"], dim=-1) < 0).all())
    # linear: to_params(a r + s) = a to_params(r) + to_params(s)
    r, s = torch.randn(3, 6, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    lin = reparam.to_params({**raw, "b1": 2 * r + s})["b1"]
    torch.testing.assert_close(lin, 2 * torch.cumsum(r, -1) + torch.cumsum(s, -1))
