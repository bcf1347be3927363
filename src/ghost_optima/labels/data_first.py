""" "Data first" as practitioners do it, the regularisation baselines it is compared with, and a
learning rate of its own for every arm, all chosen on validation data carved from training.

* :func:`clean_labels`: confident learning (Northcutt, Jiang and Chuang, JAIR 2021) on
  cross-fitted probabilities. ``label_scores.cross_fit`` gives every training example's
  out-of-fold probabilities from members that never trained on it; cleanlab's
  ``filter.find_label_issues`` flags the label issues on their mean; the flagged examples are
  removed (cleanlab's "prune" step) and the returned data set trains on the rest. Test data are
  never read. :func:`remove_examples` drops any chosen set (the oracle's true flips, or
  :func:`random_drop`'s blind draw of as many examples: the controls of cleaning), and
  :func:`matched_epochs` keeps the number of optimizer steps of a smaller set equal.
  :func:`clean_labels_best` does it with the candidate model of lowest out-of-fold
  log-loss on the given labels (a held-out score the practitioner has; the true labels are not
  used), and :func:`flag_quality` scores the flags against the known flips.
* :func:`tune`: the book's learning-rate search (``selection.search.lr_search``: ``G * S``
  members, every rate of the grid with every selection seed, one ensemble, grid-major) trained
  on ``selection.validation_split(data, fraction)``; ``L[t, g]`` is the mean over the ``S``
  seeds of the validation score after epoch ``t``, the error (``1 - accuracy``) or the loss
  (``+inf`` for a rate with a diverged member). The plain arm takes ``argmin_g L[T, g]`` (with
  the loss, the scores of ``fair.select_lr``); *early stopping* takes
  ``(t*, g*) = argmin_{t >= 1, g} L[t, g]`` from the same run, shown as a selection over epochs
  ``1..T`` of the profile ``min_g L[t, g]``.
* :class:`DecoupledDecay`: decoupled weight decay (AdamW; Loshchilov and Hutter, ICLR 2019),
  ``p <- p (1 - lr_e wd_e)`` for every parameter of member ``e`` after each Adam step (AdamW
  shrinks before the step: the two differ by ``lr wd`` times the step, second order). Coupled L2
  under Adam is divided by ``sqrt(v)`` like the gradient, which is why AdamW decouples it.
* :func:`tune_decay`: the pair ``(lr, wd)`` from a grid ``G x W``, one ensemble of ``G * W * S``
  members in the search's order (``search.members`` over the pairs, seeds innermost), lowest
  mean final validation score; shown as a selection over ``wd`` of the profile
  ``min_g L[g, w]`` (``censored`` when the best decay is an end of its grid).

The split must be drawn from a stream of its own: ``data.flip_labels`` and
``selection.validation_split`` both take the first entries of ``torch.randperm(n)`` seeded by
their seed, so with one seed for both (and a flip rate equal to the validation share) the
validation examples are exactly the flipped ones.

The score is the validation *error* by default. On labels with uniform flips the error's
minimiser is the clean-label classifier (flips move every class's posterior the same way), while
the held-out cross-entropy is dominated by confident predictions against flipped validation
labels and so prefers barely trained or heavily shrunk networks whatever their accuracy.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ghost_optima.core.data import Dataset
from ghost_optima.core.train import EnsembleResult, TrainConfig, TrainHooks, train_ensemble
from ghost_optima.labels.scores import CrossFit, confident_learning, cross_fit
from ghost_optima.remedies import protocol
from ghost_optima.remedies.protocol import Architecture
from ghost_optima.selection.recipes import Recipe
from ghost_optima.selection.search import lr_search, members, score_table
from ghost_optima.selection.validation import (
    Selection,
    choose_on_validation,
    select,
    validation_split,
)


def clean_labels(
    data: Dataset, recipe: Recipe, seeds: Sequence[int], *, n_folds: int, seed: int
) -> tuple[Dataset, np.ndarray, CrossFit]:
    """``(cleaned, flags, fit)``: ``data`` without the training examples that cleanlab flags on
    ``recipe``'s out-of-fold probabilities (``flags``: bool ``(n_train,)``), and the cross-fit
    that gave them (``fit.probs``: ``(M, n_train, C)``)."""
    fit = cross_fit(data, recipe, seeds, n_folds=n_folds, seed=seed)
    flags, _ = confident_learning(fit.probs, fit.y)
    return remove_examples(data, flags), flags, fit


def remove_examples(data: Dataset, drop: np.ndarray) -> Dataset:
    """``data`` without the training examples where ``drop`` (bool ``(n_train,)``) is true, the
    rest in their order; test data untouched."""
    drop = np.asarray(drop, bool)
    if drop.shape != (len(data.y_train),):
        raise ValueError(f"drop must have shape ({len(data.y_train)},), got {drop.shape}")
    keep = torch.as_tensor(~drop)
    return replace(data, x_train=data.x_train[keep], y_train=data.y_train[keep])


def random_drop(n: int, k: int, seed: int) -> np.ndarray:
    """bool ``(n,)`` with exactly ``k`` entries true, a uniform draw of ``k`` of ``n`` examples
    (the control of a cleaning that removes ``k`` flagged examples: as much data lost, chosen
    blind)."""
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    drop = np.zeros(n, bool)
    drop[np.random.default_rng(seed).choice(n, size=k, replace=False)] = True
    return drop


def matched_epochs(epochs: int, n_before: int, n_after: int, batch_size: int) -> int:
    """Epochs on ``n_after`` examples that give the optimizer steps of ``epochs`` epochs on
    ``n_before`` (``ceil(n / batch_size)`` steps per epoch), rounded, at least 1."""
    steps = epochs * -(-n_before // batch_size)
    return max(1, round(steps / -(-n_after // batch_size)))


def clean_labels_best(
    data: Dataset, candidates: dict[str, Recipe], seeds: Sequence[int], *, n_folds: int, seed: int
) -> tuple[Dataset, np.ndarray, CrossFit, str, dict[str, float]]:
    """:func:`clean_labels` with the candidate recipe whose cross-fit predicts the given labels
    best: ``(cleaned, flags, fit, name, losses)``, ``losses[name]`` the out-of-fold log-loss of
    the members' mean probabilities, ``-(1/n) sum_i log(mean_m P[m, i, y_i])``, on the (noisy)
    training labels. Every candidate sees the same folds; test data are never read."""
    runs, losses = {}, {}
    for name, recipe in candidates.items():
        runs[name] = clean_labels(data, recipe, seeds, n_folds=n_folds, seed=seed)
        fit = runs[name][2]
        picked = np.take_along_axis(fit.probs.mean(0), fit.y[:, None], 1)[:, 0]
        losses[name] = float(-np.log(np.clip(picked, 1e-300, None)).mean())
    best = min(losses, key=losses.get)
    return *runs[best], best, losses


def flag_quality(flags: np.ndarray, flips: np.ndarray) -> dict[str, float]:
    """Flagged share ``|F| / n``, precision ``|F & B| / |F|`` (NaN if nothing is flagged) and
    recall ``|F & B| / |B|`` of flags ``F`` against the flipped labels ``B``, bool ``(n,)``."""
    f, b = np.asarray(flags, bool), np.asarray(flips, bool)
    hits = float((f & b).sum())
    return {
        "flagged share": float(f.mean()),
        "precision": hits / f.sum() if f.any() else float("nan"),
        "recall": hits / b.sum() if b.any() else float("nan"),
    }


@dataclass(frozen=True)
class Tuned:
    """An arm's choice: the learning rate ``lr``, its selection over the rate grid (scores at the
    chosen value of the other hyperparameter), and ``other``, the selection of the epochs or the
    weight decay (``None`` for a plain arm)."""

    lr: float
    lr_selection: Selection
    other: Selection | None = None


@dataclass(frozen=True)
class Plan:
    """How an arm's settings are chosen: ``seeds`` (members per grid value), ``epochs`` and
    ``batch_size`` of the selection run, the validation share ``fraction`` drawn with
    ``split_seed`` (a stream of its own, module docstring) and the ``score``, ``"error"`` or
    ``"loss"``."""

    seeds: tuple[int, ...]
    epochs: int
    batch_size: int
    split_seed: int
    fraction: float = 0.2
    score: str = "error"


def tune(
    arch: Architecture, data: Dataset, grid: Sequence[float], plan: Plan, *, stopping: bool = False
) -> tuple[Tuned, Tuned | None]:
    """``(plain, stopped)``: the rate of ``arch`` trained for ``plan.epochs``, and
    (``stopping``) early stopping's ``(epochs, rate)``, both from one selection run on a
    validation split (module docstring). ``stopped`` is None without ``stopping`` (the run then
    evaluates only at its end)."""
    every = 1 if stopping else plan.epochs  # the end alone, unless every epoch is a candidate

    def train(split: Dataset, seeds: list[int], lrs: list[float]) -> EnsembleResult:
        kw = dict(epochs=plan.epochs, batch_size=plan.batch_size, record_every=every)
        return protocol.train(arch, split, seeds, lr=lrs, **kw)

    split = validation_split(data, plan.fraction, seed=plan.split_seed)
    found = lr_search(train, split, grid, plan.seeds, plan.score)
    plain = Tuned(found.best, found.pooled)
    if not stopping:
        return plain, None
    curve = found.curve()  # (T, G)
    stop = select(np.arange(1, plan.epochs + 1, dtype=float), curve.min(1))
    at = select(found.grid, curve[stop.best_index])
    return plain, Tuned(at.best, at, stop)


class DecoupledDecay:
    """``train_ensemble`` step hook: ``p <- p (1 - lr_e wd_e)`` for every parameter of member
    ``e`` after each optimizer step (module docstring); ``lrs``, ``wds``: ``(E,)``."""

    def __init__(self, lrs: Sequence[float], wds: Sequence[float]):
        self.factor = torch.tensor(1.0 - np.asarray(lrs, float) * np.asarray(wds, float))

    def __call__(self, step: int, params: dict, state: dict) -> None:
        for v in params.values():
            v.mul_(self.factor.to(v.dtype).view(-1, *[1] * (v.dim() - 1)))


def train_decayed(
    arch: Architecture,
    data: Dataset,
    seeds: Sequence[int],
    *,
    lr: float | Sequence[float],
    weight_decay: float | Sequence[float],
    epochs: int,
    batch_size: int,
) -> EnsembleResult:
    """``protocol.train`` of a plain dense ``arch`` with :class:`DecoupledDecay` (one rate and
    decay for all members or one per member)."""
    if arch.masks or arch.reparam is not None or arch.sort_every:
        raise ValueError(f"{arch.variant}: decoupled decay is for the plain dense baseline")
    n = len(seeds)
    lrs = np.broadcast_to(np.asarray(lr, float), (n,))
    wds = np.broadcast_to(np.asarray(weight_decay, float), (n,))
    config = TrainConfig(epochs, batch_size, "adam", tuple(lrs), record_every=epochs)
    hooks = TrainHooks(step_hook=DecoupledDecay(lrs, wds))
    return train_ensemble(data, arch.widths, arch.activation, seeds, config, hooks)


def tune_decay(
    arch: Architecture,
    data: Dataset,
    lr_grid: Sequence[float],
    wd_grid: Sequence[float],
    plan: Plan,
) -> Tuned:
    """The pair ``(lr, wd)`` of lowest mean final validation ``plan.score`` (:func:`tune`), one
    ensemble over ``lr_grid x wd_grid x plan.seeds`` (module docstring); ``other`` is the
    decay's selection."""
    lr_grid, seeds = np.asarray(lr_grid, float), [int(s) for s in plan.seeds]
    table: dict[str, np.ndarray] = {}

    def scores(split: Dataset, wds: np.ndarray) -> np.ndarray:
        pairs = [(float(g), float(w)) for g in lr_grid for w in wds]
        member_seeds, settings = members(pairs, seeds)
        lrs, decays = [g for g, _ in settings], [w for _, w in settings]
        kw = dict(lr=lrs, weight_decay=decays, epochs=plan.epochs, batch_size=plan.batch_size)
        run = train_decayed(arch, split, member_seeds, **kw)
        final = score_table(run.history, len(pairs), len(seeds), plan.score)[-1].mean(0)
        table["L"] = final.reshape(len(lr_grid), len(wds))  # (G, W)
        return table["L"].min(0)

    split = validation_split(data, plan.fraction, seed=plan.split_seed)
    decay = choose_on_validation(scores, split, wd_grid)
    at = select(lr_grid, table["L"][:, decay.best_index])
    return Tuned(at.best, at, decay)
