from dataclasses import replace

import numpy as np
import pytest
import torch

from ghost_optima.core.data import Dataset, digits, mnist1d
from ghost_optima.core.train import train_ensemble
from ghost_optima.selection.recipes import (
    MNIST1D_BATCH,
    MNIST1D_EPOCHS,
    PUBLISHED_MNIST1D,
    mnist1d_recipe,
    tune_lr,
)
from ghost_optima.selection.validation import validation_split


def _small(data: Dataset, n: int = 300) -> Dataset:
    return replace(data, x_train=data.x_train[:n], y_train=data.y_train[:n])


def test_recipe_follows_the_published_regime():
    recipe = mnist1d_recipe()
    assert recipe.widths == (40, 128, 128, 10) and recipe.activation == "relu"
    assert recipe.config.optimizer == "adam" and recipe.config.weight_decay == 0
    # about 6000 Adam steps of minibatch 100 on the 4000 training signals
    assert MNIST1D_EPOCHS * 4000 // MNIST1D_BATCH == 6000
    assert PUBLISHED_MNIST1D["MLP"] == 0.68


def test_tuned_rate_is_the_lowest_mean_validation_error_of_one_run_per_rate():
    data = _small(digits(seed=0))
    recipe = replace(mnist1d_recipe(64, 10, epochs=3), widths=(64, 16, 10))
    grid = (1e-3, 1e-2, 1e-1)
    seeds = (4, 7)
    tuned = tune_lr(data, recipe, grid, selection_seeds=seeds, val_fraction=0.3, split_seed=1)
    split = validation_split(data, 0.3, seed=1)
    brute = []
    for lr in grid:
        config = replace(recipe.config, lr=float(lr))
        run = train_ensemble(split, recipe.widths, "relu", seeds, config)
        brute.append(1 - run.history.test_acc[-1].mean())
    np.testing.assert_allclose(tuned.selection.scores, brute, atol=1e-6)
    assert tuned.config.lr == grid[int(np.argmin(brute))] == tuned.selection.best


def test_tuning_never_sees_the_test_set():
    data = _small(digits(seed=0))
    poisoned = replace(
        data, x_test=torch.full_like(data.x_test, float("nan")), y_test=-data.y_test - 1
    )
    recipe = replace(mnist1d_recipe(64, 10, epochs=2), widths=(64, 8, 10))
    grid = (1e-3, 1e-2, 1e-1)
    a = tune_lr(data, recipe, grid, split_seed=2)
    b = tune_lr(poisoned, recipe, grid, split_seed=2)
    assert a.config.lr == b.config.lr == a.selection.best
    np.testing.assert_array_equal(a.selection.scores, b.selection.scores)
    assert np.isfinite(b.selection.scores).all()


@pytest.mark.parametrize("seed", [0])
def test_recipe_reaches_the_published_mlp_accuracy(seed):
    """One member at the rate the chapter's validation choice lands on (8e-3): within a few
    points of the published 68% (the chapter records the mean over members)."""
    torch.set_num_threads(1)
    data = mnist1d(seed=seed)
    run = replace(mnist1d_recipe(), config=replace(mnist1d_recipe().config, lr=8e-3))
    acc = run.train(data, [seed]).history.test_acc[-1, 0]
    assert acc >= PUBLISHED_MNIST1D["MLP"] - 0.04
