import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ghost_optima.core.data import digits
from ghost_optima.selection.validation import (
    choose_on_validation,
    log_grid,
    select,
    validation_split,
)


def test_validation_split_partitions_the_training_set_and_drops_test():
    data = digits(seed=0)
    split = validation_split(data, 0.25, seed=1)
    assert len(split.x_train) + len(split.x_test) == len(data.x_train)
    assert len(split.x_test) == round(0.25 * len(data.x_train))
    rows = {tuple(r) for r in data.x_train.numpy().round(6)}
    held = [tuple(r) for r in split.x_test.numpy().round(6)]
    assert all(r in rows for r in held)  # validation comes from training data only
    both = torch.cat([split.x_train, split.x_test])
    assert torch.equal(both.sort(0).values, data.x_train.sort(0).values)  # a partition


def test_selection_never_sees_test_data():
    data = digits(seed=0)
    poisoned = type(data)(
        data.x_train,
        data.y_train,
        torch.full_like(data.x_test, float("nan")),
        torch.full_like(data.y_test, -1),
        data.task,
        data.n_classes,
        data.name,
    )
    seen = []

    def score(split, grid):
        seen.append(split)
        return (np.log(grid) - split.x_test.mean().item()) ** 2

    grid = log_grid(0.01, 1.0, 7)
    a = choose_on_validation(score, validation_split(data, 0.2, seed=3), grid)
    b = choose_on_validation(score, validation_split(poisoned, 0.2, seed=3), grid)
    assert a.best == b.best and np.isfinite(b.scores).all()
    assert all(torch.isfinite(s.x_test).all() for s in seen)
    with pytest.raises(ValueError, match="not a validation split"):
        choose_on_validation(score, data, grid)


@given(st.lists(st.floats(0, 10), min_size=3, max_size=12), st.floats(0, 5))
def test_select_against_brute_force(scores, tol):
    grid = log_grid(1e-3, 1.0, len(scores))
    s = select(grid, scores)
    best = min(range(len(scores)), key=lambda i: (scores[i], i))
    assert s.best_index == best
    assert s.censored == (best in (0, len(scores) - 1))
    good = [g for g, v in zip(grid, scores, strict=True) if v <= scores[best] + tol]
    assert s.band(tol) == pytest.approx(np.log2(max(good) / min(good)), abs=1e-12)
    assert s.band(tol) >= 0


def test_select_refuses_bad_grids():
    with pytest.raises(ValueError):
        select([0.1, 0.01], [1.0, 2.0])
    with pytest.raises(ValueError):
        select([0.1, 0.2], [np.nan, np.nan])
