from dataclasses import replace

import numpy as np
import pytest
import torch

from ghost_optima import fair, remedies
from ghost_optima.data import teacher_student
from ghost_optima.selection import validation_split


@pytest.fixture(scope="module")
def data():
    d, _ = teacher_student(200, 80, 8, (6, 3), "classification", seed=0)
    return d


GRID = [0.001, 0.01, 0.1]


def test_lr_selection_never_sees_the_test_set(data):
    arch = remedies.architecture("baseline", data, remedies.RemedyConfig(width=8))
    kw = dict(epochs=2, batch_size=32, split_seed=1)
    clean = fair.select_lr(arch, data, GRID, [5, 6], **kw)
    poisoned = replace(
        data, x_test=torch.full_like(data.x_test, float("nan")), y_test=data.y_test * 0
    )
    dirty = fair.select_lr(arch, poisoned, GRID, [5, 6], **kw)
    np.testing.assert_array_equal(clean.selection.scores, dirty.selection.scores)
    assert np.isfinite(clean.selection.scores).all() and clean.lr == dirty.lr


def test_scores_are_the_mean_validation_loss_of_separate_runs(data):
    arch = remedies.architecture("random masks", data, remedies.RemedyConfig(width=8))
    choice = fair.select_lr(arch, data, GRID, [5, 6], epochs=2, batch_size=32, split_seed=1)
    split = validation_split(data, 0.2, seed=1)
    reference = []
    for lr in GRID:  # one small run per learning rate, scored on the validation slot
        run = remedies.train(arch, split, [5, 6], epochs=2, batch_size=32, lr=lr)
        reference.append(run.history.test_loss[-1].mean())
    np.testing.assert_allclose(choice.selection.scores, reference, rtol=1e-5)
    assert choice.lr == GRID[int(np.argmin(reference))]
