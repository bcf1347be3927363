""" "Data first" as practitioners do it, and the regularisation baselines it is compared with.

* :func:`clean_labels`: confident learning (Northcutt, Jiang and Chuang, JAIR 2021) on
  cross-fitted probabilities. ``label_scores.cross_fit`` gives every training example's
  out-of-fold probabilities from members that never trained on it; cleanlab's
  ``filter.find_label_issues`` flags the label issues on their mean; the flagged examples are
  removed (cleanlab's "prune" step) and the returned data set trains on the rest. Test data are
  never read.
* :func:`early_stopping`: the number of epochs chosen on a validation split carved from the
  training set: one run of ``recipe.config.epochs`` epochs on the split, the epoch ``t`` of lowest
  mean validation error over the members (ties to the earlier epoch,
  ``selection.choose_on_validation`` over the grid ``1..T``), then the recipe at ``t`` epochs.
* :func:`weight_decay`: the coupled L2 weight decay chosen the same way from a grid, one
  ensemble per grid value (``TrainConfig.weight_decay`` is one value for all members).
"""

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from ghost_optima.data import Dataset
from ghost_optima.label_scores import confident_learning, cross_fit
from ghost_optima.recipes import Recipe
from ghost_optima.selection import Selection, choose_on_validation, validation_split


def clean_labels(
    data: Dataset, recipe: Recipe, seeds: Sequence[int], *, n_folds: int, seed: int
) -> tuple[Dataset, np.ndarray]:
    """``(cleaned, flags)``: ``data`` without the training examples that cleanlab flags on
    ``recipe``'s out-of-fold probabilities (``flags``: bool ``(n_train,)``)."""
    fit = cross_fit(data, recipe, seeds, n_folds=n_folds, seed=seed)
    flags, _ = confident_learning(fit.probs, fit.y)
    keep = torch.as_tensor(~flags)
    return replace(data, x_train=data.x_train[keep], y_train=data.y_train[keep]), flags


def early_stopping(
    data: Dataset,
    recipe: Recipe,
    seeds: Sequence[int],
    *,
    val_fraction: float = 0.2,
    split_seed: int = 0,
) -> tuple[Recipe, Selection]:
    """``recipe`` trained for the number of epochs of lowest validation error (module
    docstring), and the selection over epochs ``1..T``."""
    grid = np.arange(1, recipe.config.epochs + 1, dtype=float)

    def score(split: Dataset, g: np.ndarray) -> np.ndarray:
        acc = recipe.train(split, seeds).history.test_acc[1:]  # (T, members), validation slot
        return 1.0 - acc.mean(1)[: len(g)]

    split = validation_split(data, val_fraction, seed=split_seed)
    chosen = choose_on_validation(score, split, grid)
    return replace(recipe, config=replace(recipe.config, epochs=int(chosen.best))), chosen


def weight_decay(
    data: Dataset,
    recipe: Recipe,
    grid: Sequence[float],
    seeds: Sequence[int],
    *,
    val_fraction: float = 0.2,
    split_seed: int = 0,
) -> tuple[Recipe, Selection]:
    """``recipe`` with the weight decay from ``grid`` (positive, increasing) of lowest mean final
    validation error over ``seeds``, and the selection."""

    def score(split: Dataset, g: np.ndarray) -> np.ndarray:
        errors = []
        for wd in g:
            run = replace(recipe, config=replace(recipe.config, weight_decay=float(wd)))
            errors.append(1.0 - run.train(split, seeds).history.test_acc[-1].mean())
        return np.array(errors)

    split = validation_split(data, val_fraction, seed=split_seed)
    chosen = choose_on_validation(score, split, grid)
    return replace(recipe, config=replace(recipe.config, weight_decay=chosen.best)), chosen
