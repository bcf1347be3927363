"""Learning-rate searches: seed x grid as one ensemble, choices on validation only."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from ghost_optima.core.data import teacher_student
from ghost_optima.core.mlp import init_mlp
from ghost_optima.core.train import TrainConfig, member_generators, train_ensemble
from ghost_optima.selection.tuning import initial_params, lr_search
from ghost_optima.selection.validation import log_grid, select, validation_split

WIDTHS = (5, 6, 3)
CONFIG = TrainConfig(3, 32, "sgd", 0.1, 0.9, dtype=torch.float64)  # batched = single to rounding
GRID = log_grid(0.01, 3.0, 5)
SEEDS = [3, 7, 11]


@pytest.fixture(scope="module")
def data():
    return teacher_student(160, 40, 5, (4, 3), "classification", seed=0)[0]


@pytest.fixture(scope="module")
def search(data):
    return lr_search(validation_split(data, 0.25, seed=1), WIDTHS, "tanh", SEEDS, GRID, CONFIG)


def test_selection_is_given_no_test_data(data, search):
    """Must show 4: the chapter's search receives only train and validation. Poisoning the test
    set (NaN inputs, impossible labels) leaves every score and every choice unchanged; a search
    that read it would get NaN scores and refuse to choose. A data set that is not a validation
    split is refused before any training."""
    poisoned = replace(
        data,
        x_test=torch.full_like(data.x_test, float("nan")),
        y_test=torch.full_like(data.y_test, -1),
    )
    again = lr_search(validation_split(poisoned, 0.25, seed=1), WIDTHS, "tanh", SEEDS, GRID, CONFIG)
    np.testing.assert_array_equal(again.val_loss, search.val_loss)
    assert np.isfinite(search.val_loss).any()
    assert again.pooled.best == search.pooled.best
    assert [s.best for s in again.searches()] == [s.best for s in search.searches()]
    np.testing.assert_array_equal(again.bands(0.05), search.bands(0.05))
    with pytest.raises(ValueError, match="not a validation split"):
        lr_search(data, WIDTHS, "tanh", SEEDS, GRID, CONFIG)


def test_each_member_is_the_single_run_of_its_seed_and_learning_rate(data, search):
    split = validation_split(data, 0.25, seed=1)
    for s, g in ((0, 0), (1, 3), (2, 4)):
        alone = train_ensemble(split, WIDTHS, "tanh", [SEEDS[s]], replace(CONFIG, lr=GRID[g]))
        want = alone.history.test_loss[-1, 0]
        got = search.val_loss[s, g]
        assert got == pytest.approx(want, rel=1e-9) if np.isfinite(want) else got == np.inf
        k = s * len(GRID) + g
        torch.testing.assert_close(search.run.params["W1"][k], alone.params["W1"][0])


def test_choices_bands_and_edges_against_brute_force(search):
    val = search.val_loss
    mean = val.mean(0)
    assert search.pooled.best_index == int(np.argmin(mean))
    for tol in (0.0, 0.05, 0.3, 10.0):
        for s in range(len(SEEDS)):
            best = int(np.argmin(val[s]))
            good = [g for g in range(len(GRID)) if val[s, g] <= val[s, best] + tol]
            assert search.bands(tol)[s] == pytest.approx(np.log2(GRID[max(good)] / GRID[min(good)]))
            assert search.band_at_edge(tol)[s] == (0 in good or len(GRID) - 1 in good)
            assert search.censored()[s] == (best in (0, len(GRID) - 1))
            assert search.searches()[s].best == select(GRID, val[s]).best == GRID[best]


def test_chosen_networks_are_the_members_at_the_pooled_choice(search):
    nets = search.chosen()
    g = search.pooled.best_index
    for s in range(len(SEEDS)):
        for k, v in nets.items():
            torch.testing.assert_close(v[s], search.run.params[k][s * len(GRID) + g])


def test_initial_params_are_the_trainers_starting_points(data):
    start = initial_params(WIDTHS, SEEDS, torch.float64)
    for i, seed in enumerate(SEEDS):
        ref = init_mlp(WIDTHS, member_generators(seed)[0], dtype=torch.float64)
        for k, v in ref.items():
            torch.testing.assert_close(start[k][i], v)
    zero_epochs = train_ensemble(data, WIDTHS, "tanh", SEEDS, replace(CONFIG, epochs=0))
    for k, v in zero_epochs.params.items():
        torch.testing.assert_close(start[k], v)
