"""Choosing a hyperparameter on a validation split carved from the training data, never on test.

``validation_split(data, fraction, seed=s)`` returns a :class:`~ghost_optima.core.data.Dataset`
whose training set is the rest of ``data``'s training set and whose *test* slot holds the
validation examples, so any code that trains on ``x_train`` and scores on ``x_test`` scores on
validation when given it; its ``name`` ends in ``":validation"``. The real test set is not in it.

``select(grid, scores)`` picks the grid value of lowest validation score (ties to the smaller
value) and says how sure the choice is: ``censored`` when the best value lies on an end of the
grid (the optimum may lie outside it), and ``band(tol)``, the width in octaves (log2 units) of
the grid values whose score is within ``tol`` of the best, the "good band" of a learning rate
(Smith, "Cyclical learning rates", 2017, uses the same range test). ``choose_on_validation``
runs both steps and refuses a data set that is not a validation split
(``require_validation``), so a selection can be shown, by construction and in a test, never to
see the test set. A learning-rate search of many seeds as one ensemble is
:mod:`ghost_optima.selection.search`.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np
import torch

from ghost_optima.core.data import Dataset

VALIDATION = ":validation"

Score = Literal["loss", "error"]
"""What a grid value is scored by on validation: the final cross-entropy or the error rate."""


def validation_split(data: Dataset, fraction: float, *, seed: int) -> Dataset:
    """Hold out ``round(fraction * n_train)`` training examples (a seeded random subset) as
    validation; the returned set trains on the rest and "tests" on them (module docstring)."""
    n = len(data.x_train)
    n_val = int(round(fraction * n))
    if not 0 < n_val < n:
        raise ValueError(f"a validation fraction of {fraction} leaves {n_val} of {n} examples")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val, train = order[:n_val], order[n_val:]
    return replace(
        data,
        x_train=data.x_train[train],
        y_train=data.y_train[train],
        x_test=data.x_train[val],
        y_test=data.y_train[val],
        name=data.name + VALIDATION,
    )


@dataclass(frozen=True)
class Selection:
    """A grid ``(G,)``, its validation scores ``(G,)`` (lower is better) and the choice."""

    grid: np.ndarray
    scores: np.ndarray

    @property
    def best_index(self) -> int:
        finite = np.where(np.isfinite(self.scores), self.scores, np.inf)
        return int(np.argmin(finite))  # argmin takes the first of ties: the smaller value

    @property
    def best(self) -> float:
        return float(self.grid[self.best_index])

    @property
    def censored(self) -> bool:
        """The best value is an end of the grid: the true optimum may lie beyond it."""
        return self.best_index in (0, len(self.grid) - 1)

    def band(self, tol: float) -> float:
        """Octaves spanned by the grid values scoring within ``tol`` of the best (0 if one)."""
        good = self.grid[self.scores <= self.scores[self.best_index] + tol]
        return float(np.log2(good.max() / good.min()))


def select(grid: Sequence[float], scores: Sequence[float]) -> Selection:
    grid, scores = np.asarray(grid, float), np.asarray(scores, float)
    if grid.shape != scores.shape or grid.ndim != 1 or len(grid) < 2:
        raise ValueError(f"grid {grid.shape} and scores {scores.shape}: two equal 1-d arrays")
    if not np.all(np.diff(grid) > 0) or grid[0] <= 0:
        raise ValueError("the grid must be positive and increasing")
    if not np.isfinite(scores).any():
        raise ValueError("no grid value gave a finite validation score")
    return Selection(grid, scores)


def log_grid(low: float, high: float, n: int) -> np.ndarray:
    """``n`` values evenly spaced in log from ``low`` to ``high``."""
    return np.exp(np.linspace(np.log(low), np.log(high), n))


def choose_on_validation(
    score: Callable[[Dataset, np.ndarray], np.ndarray], split: Dataset, grid: Sequence[float]
) -> Selection:
    """``select(grid, score(split, grid))`` where ``split`` must come from
    :func:`validation_split`; ``score`` trains on ``split.x_train`` and returns one validation
    score per grid value, scored on ``split.x_test`` (the validation examples)."""
    require_validation(split)
    return select(grid, score(split, np.asarray(grid, float)))


def require_validation(split: Dataset) -> None:
    """Refuse a data set that is not a :func:`validation_split` (call it before any training)."""
    if not split.name.endswith(VALIDATION):
        raise ValueError(f"'{split.name}' is not a validation split: selection never sees test")


def check_score(score: str) -> None:
    """Refuse a score that is not a ``Score`` (call it before any training)."""
    if score not in get_args(Score):
        raise ValueError(f"score must be one of {get_args(Score)}, got {score!r}")
