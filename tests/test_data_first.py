from dataclasses import replace

import numpy as np
import torch

from ghost_optima import data_first
from ghost_optima.data import digits, flip_labels
from ghost_optima.recipes import Recipe
from ghost_optima.selection import validation_split
from ghost_optima.train import TrainConfig


def _setup():
    data = digits(seed=0)
    data = replace(data, x_train=data.x_train[:240], y_train=data.y_train[:240])
    return data, Recipe((64, 16, 10), "relu", TrainConfig(6, 40, "adam", 1e-2))


def _poisoned(data):
    return replace(data, x_test=torch.full_like(data.x_test, float("nan")), y_test=-data.y_test - 1)


def test_cleaning_removes_exactly_the_flagged_examples_and_finds_flips():
    data, recipe = _setup()
    y, flipped = flip_labels(data.y_train, 0.25, 10, seed=3)
    noisy = replace(data, y_train=y)
    cleaned, flags = data_first.clean_labels(noisy, recipe, [0, 1], n_folds=3, seed=0)
    keep = torch.as_tensor(~flags)
    assert torch.equal(cleaned.x_train, noisy.x_train[keep])
    assert torch.equal(cleaned.y_train, noisy.y_train[keep])
    assert torch.equal(cleaned.x_test, noisy.x_test)
    assert flipped.numpy()[flags].mean() > 0.25  # flagged examples are flips more often than chance
    again, flags_b = data_first.clean_labels(_poisoned(noisy), recipe, [0, 1], n_folds=3, seed=0)
    np.testing.assert_array_equal(flags, flags_b)  # the test set is never read


def test_early_stopping_picks_the_best_validation_epoch_of_one_run():
    data, recipe = _setup()
    stopped, sel = data_first.early_stopping(data, recipe, [0, 1], split_seed=2)
    split = validation_split(data, 0.2, seed=2)
    curve = 1 - recipe.train(split, [0, 1]).history.test_acc[1:].mean(1)
    np.testing.assert_allclose(sel.scores, curve)
    assert stopped.config.epochs == int(np.argmin(curve)) + 1
    again, sel_b = data_first.early_stopping(_poisoned(data), recipe, [0, 1], split_seed=2)
    assert again.config.epochs == stopped.config.epochs


def test_weight_decay_is_chosen_without_the_test_set():
    data, recipe = _setup()
    grid = [1e-4, 1e-2, 1.0]
    a, sel_a = data_first.weight_decay(data, recipe, grid, [0], split_seed=1)
    b, sel_b = data_first.weight_decay(_poisoned(data), recipe, grid, [0], split_seed=1)
    np.testing.assert_array_equal(sel_a.scores, sel_b.scores)
    assert a.config.weight_decay == b.config.weight_decay == grid[int(np.argmin(sel_a.scores))]
