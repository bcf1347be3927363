import itertools
import math

import numpy as np
import pytest
import torch

from ghost_optima.core.data import teacher_student
from ghost_optima.core.mlp import init_mlp
from ghost_optima.core.train import TrainConfig, TrainHooks, member, train_ensemble
from ghost_optima.remedies.masks import (
    FanInInit,
    banded_mask,
    block_masks,
    count_automorphisms_bruteforce,
    fan_in_for,
    layer_masks,
    param_count,
    random_fanin_mask,
    surviving_group,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _distinct_rows(mask: torch.Tensor) -> bool:
    return len({tuple(row.tolist()) for row in mask}) == len(mask)


def test_random_fanin_mask_shapes_fanin_and_distinct_rows():
    mask = random_fanin_mask(30, 10, 3, generator=_gen())
    assert mask.shape == (30, 10)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert (mask.sum(1) == 3).all()
    assert _distinct_rows(mask)
    # As many rows as there are 3-subsets of 5 inputs: every subset exactly once.
    full = random_fanin_mask(10, 5, 3, generator=_gen(1))
    assert _distinct_rows(full) and len(full) == math.comb(5, 3)
    with pytest.raises(ValueError):
        random_fanin_mask(11, 5, 3, generator=_gen())


@pytest.mark.parametrize("n_out, n_in, width", [(8, 16, 4), (16, 16, 3), (40, 16, 3), (5, 7, 7)])
def test_banded_mask_windows_are_contiguous_and_distinct(n_out, n_in, width):
    if n_out > 1 and width >= n_in:
        with pytest.raises(ValueError):
            banded_mask(n_out, n_in, width)
        return
    mask = banded_mask(n_out, n_in, width)
    assert mask.shape == (n_out, n_in)
    assert (mask.sum(1) >= width).all()
    assert _distinct_rows(mask)
    for row in mask.bool():
        on = torch.nonzero(row).flatten().tolist()
        # cyclic contiguity: the ones form one run on the circle
        gaps = sum(1 for j in range(n_in) if row[j] and not row[(j + 1) % n_in])
        assert gaps == 1 and len(on) >= width


def test_layer_masks_and_param_count():
    widths = (12, 20, 16, 3)
    masks = layer_masks(widths, "random", 0.25, generator=_gen())
    assert set(masks) == {"W1", "W2"}
    assert masks["W1"].shape == (20, 12) and (masks["W1"].sum(1) == fan_in_for(12, 0.25)).all()
    assert masks["W2"].shape == (16, 20) and (masks["W2"].sum(1) == fan_in_for(20, 0.25)).all()
    expected = 20 * 3 + 20 + 16 * 5 + 16 + 16 * 3 + 3
    assert param_count(widths, masks) == expected
    assert param_count(widths) == 13 * 20 + 21 * 16 + 17 * 3
    with pytest.raises(ValueError):
        layer_masks(widths, "checkerboard", 0.25, generator=_gen())


def test_dense_layers_keep_the_full_group():
    widths = (3, 4, 3, 2)
    group = surviving_group(widths, None)
    assert group.exact
    assert group.log10_order == pytest.approx(math.log10(math.factorial(4) * math.factorial(3)))
    assert count_automorphisms_bruteforce(widths, None) == 24 * 6


def test_single_masked_layer_is_the_row_class_formula():
    # rows: two identical pairs and one singleton -> 2! * 2! * 1!
    mask = torch.tensor([[1, 0, 1], [0, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=torch.float)
    widths = (3, 5, 2)
    group = surviving_group(widths, {"W1": mask})
    assert group.exact and round(10**group.log10_order) == 4
    assert count_automorphisms_bruteforce(widths, {"W1": mask}) == 4
    labels = group.labels()["P1"]
    assert labels[0] == labels[2] and labels[1] == labels[3] and len(set(labels.tolist())) == 3


def test_distinct_rows_remove_every_permutation():
    widths = (6, 5, 4, 2)
    gen = _gen(3)
    masks = {
        "W1": random_fanin_mask(5, 6, 2, generator=gen),
        "W2": random_fanin_mask(4, 5, 2, generator=gen),
    }
    group = surviving_group(widths, masks)
    assert group.exact and group.log10_order == 0.0
    assert count_automorphisms_bruteforce(widths, masks) == 1


@pytest.mark.parametrize("seed", range(60))
def test_surviving_group_against_brute_force_on_tiny_random_masks(seed):
    gen = _gen(seed)
    n_hidden = int(torch.randint(1, 3, (1,), generator=gen))
    widths = [int(torch.randint(1, 4, (1,), generator=gen))]
    widths += torch.randint(1, 5, (n_hidden,), generator=gen).tolist()
    widths += [int(torch.randint(1, 3, (1,), generator=gen))]
    masks = {}
    for layer in range(1, len(widths)):
        if torch.rand(1, generator=gen) < 0.8:
            shape = (widths[layer], widths[layer - 1])
            masks[f"W{layer}"] = (torch.rand(shape, generator=gen) < 0.5).float()
    truth = count_automorphisms_bruteforce(widths, masks)
    group = surviving_group(widths, masks)
    assert 10**group.log10_lower <= truth * (1 + 1e-9)
    assert truth <= 10**group.log10_upper * (1 + 1e-9)
    if group.exact:
        assert round(10**group.log10_order) == truth


def test_swappable_blocks_are_flagged_inexact_and_bounded():
    # Two modules reading the same two inputs: whole modules can be swapped, so the group is
    # (2! * 2!) per module twice, times 2 for the swap = 32, which is not a product of twins.
    w1 = torch.tensor([[1, 1, 0], [1, 1, 0], [1, 1, 0], [1, 1, 0]], dtype=torch.float)
    w2 = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=torch.float)
    widths, masks = (3, 4, 4, 1), {"W1": w1, "W2": w2}
    truth = count_automorphisms_bruteforce(widths, masks)
    assert truth == 32
    group = surviving_group(widths, masks)
    assert not group.exact and group.log10_order is None
    assert 10**group.log10_lower <= truth <= 10**group.log10_upper


def test_a_surviving_permutation_maps_the_masked_net_into_the_family():
    mask = torch.tensor([[1, 0, 1], [1, 0, 1], [0, 1, 1]], dtype=torch.float)
    group = surviving_group((3, 3, 1), {"W1": mask})
    assert group.exact and round(10**group.log10_order) == 2
    for perm in itertools.permutations(range(3)):
        preserved = torch.equal(mask[list(perm)], mask)
        assert preserved == (perm[2] == 2)


def test_masked_weights_stay_exactly_zero_during_training():
    data, _ = teacher_student(120, 40, 8, (6, 3), "classification", seed=0)
    widths = (8, 12, 10, 3)
    masks = layer_masks(widths, "random", 0.3, generator=_gen(5))
    for optimizer, extra in (("adam", {"weight_decay": 1e-3}), ("sgd", {"momentum": 0.9})):
        config = TrainConfig(3, 16, optimizer, 0.05, **extra)
        result = train_ensemble(data, widths, "tanh", range(3), config, TrainHooks(masks=masks))
        for name, mask in masks.items():
            weights = result.params[name]
            assert (weights[:, mask == 0] == 0).all()
            assert (weights[:, mask == 1] != 0).all()
        assert result.history.train_loss[-1].mean() < result.history.train_loss[0].mean()
        # Each member is a network of the masked family.
        net = member(result.params, 0)
        assert np.count_nonzero(net["W1"].numpy()) == int(masks["W1"].sum())


def test_train_rejects_bad_masks():
    data, _ = teacher_student(40, 10, 4, (3, 2), "classification", seed=0)
    config = TrainConfig(1, 8)
    with pytest.raises(ValueError):
        train_ensemble(data, (4, 5, 2), "tanh", [0], config, TrainHooks(masks={"b1": None}))
    with pytest.raises(ValueError):
        bad = {"W1": torch.ones(4, 5)}
        train_ensemble(data, (4, 5, 2), "tanh", [0], config, TrainHooks(masks=bad))
    with pytest.raises(ValueError):
        bad = {"W1": torch.full((5, 4), 0.5)}
        train_ensemble(data, (4, 5, 2), "tanh", [0], config, TrainHooks(masks=bad))


@pytest.mark.parametrize("pattern", ["random", "banded"])
@pytest.mark.parametrize("seed", range(4))
def test_twin_masks_keep_the_predicted_group_by_brute_force(pattern, seed):
    widths, block = (5, 4, 4, 2), 2  # coarse layers of 2 blocks
    masks = block_masks(widths, pattern, 0.5, block, generator=_gen(seed))
    predicted = math.factorial(block) ** (4 // block) * math.factorial(block) ** (4 // block)
    assert count_automorphisms_bruteforce(widths, masks) == predicted
    group = surviving_group(widths, masks)
    assert group.exact and round(10**group.log10_order) == predicted
    # the density of the distinct-row masks: fan_in_for inputs, whole blocks in layer 2
    assert (masks["W1"].sum(1) == fan_in_for(5, 0.5)).all()
    assert (masks["W2"].sum(1) == block * fan_in_for(4 // block, 0.5)).all()


def test_twin_masks_of_realistic_size_match_the_block_formula():
    widths, block = (64, 76, 76, 10), 4
    masks = block_masks(widths, "random", 0.25, block, generator=_gen(0))
    group = surviving_group(widths, masks)
    assert group.exact
    assert group.log10_order == pytest.approx(2 * 19 * math.log10(math.factorial(4)))
    with pytest.raises(ValueError, match="divide"):
        block_masks((8, 6, 6, 2), "random", 0.5, 4, generator=_gen(0))


def test_fan_in_init_is_the_mask_aware_init_and_keeps_the_dense_variance():
    widths = (200, 300, 2)
    mask = random_fanin_mask(300, 200, 50, generator=_gen(1))
    dense = init_mlp(widths, 7, dtype=torch.float64)
    rescaled = FanInInit({"W1": mask}).to_raw(dense)
    reference = init_mlp(widths, 7, dtype=torch.float64, masks={"W1": mask})
    torch.testing.assert_close(rescaled["W1"] * mask, reference["W1"])
    torch.testing.assert_close(rescaled["b1"], reference["b1"])
    x = torch.randn(4000, 200, generator=_gen(2), dtype=torch.float64)
    var_dense = (x @ dense["W1"].T).var()
    var_masked = (x @ (rescaled["W1"] * mask).T).var()
    var_naive = (x @ (dense["W1"] * mask).T).var()  # dense fan-in: a quarter of the variance
    assert var_masked / var_dense == pytest.approx(1.0, abs=0.1)
    assert var_naive / var_dense == pytest.approx(0.25, abs=0.05)


def test_fan_in_init_trains_by_hand_exactly_as_through_autograd():
    """``identity_to_params`` lets the trainer skip autograd; the run must equal the one that
    differentiates through the identity ``to_params`` (a copy of FanInInit without the flag)."""

    class ThroughAutograd:
        def __init__(self, inner):
            self.inner = inner

        def to_raw(self, params):
            return self.inner.to_raw(params)

        def to_params(self, raw):
            return {k: v * 1.0 for k, v in raw.items()}  # an identity autograd must go through

    data, _ = teacher_student(96, 32, 6, (5, 3), "classification", seed=0)
    masks = layer_masks((6, 8, 8, 3), "random", 0.5, generator=_gen(3))
    config = TrainConfig(2, 16, "adam", [0.01, 0.03], dtype=torch.float64)
    runs = [
        train_ensemble(data, (6, 8, 8, 3), "tanh", [0, 1], config, TrainHooks(masks, reparam))
        for reparam in (FanInInit(masks), ThroughAutograd(FanInInit(masks)))
    ]
    for k, v in runs[0].params.items():
        torch.testing.assert_close(v, runs[1].params[k], rtol=1e-12, atol=1e-12)
