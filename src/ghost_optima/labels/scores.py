"""Finding noisy training examples the way the label-noise literature does: cross-fitted scores.

A model scored on the examples it was trained on has memorised part of their noise, so its
in-sample loss and disagreement are biased toward the given labels. *Cross-fitting* removes
that bias: split the training set into ``K`` folds (:func:`kfold`), train ``M`` members (one per
seed, one ``train_ensemble`` call) on the other ``K - 1`` folds, and predict the held-out fold.
:func:`cross_fit` returns every example's *out-of-fold* softmax probabilities ``P`` of shape
``(M, n, C)`` and its area under the margin. From them, per example ``i`` with given label
``y_i``:

* ``disagreement``: the fraction of ordered pairs of distinct members whose out-of-fold
  predicted classes differ, ``1 - sum_c k_c (k_c - 1) / (M (M - 1))`` with ``k_c`` the members
  voting ``c`` (the brief's instrument as it stands; it never reads the label, so a label flip
  drawn independently of the input leaves its distribution unchanged: AUROC 0.5 in
  expectation, whatever the models);
* ``label_disagreement``: the brief's instrument read against the given label, the share of
  members whose out-of-fold predicted class differs from it, ``1 - k_{y_i} / M`` (the
  cross-fitted ensemble disagrees with the label);
* ``agreement_against_label``: seed-to-seed agreement conditioned on the label, the share of
  ordered pairs of distinct members that predict the same class *other than* ``y_i``,
  ``sum_{c != y_i} k_c (k_c - 1) / (M (M - 1))``: high when the members agree with each other
  against the label (a confident flip), low when they dissent from it in scattered ways (an
  ambiguous input);
* ``oof_loss``: the members' mean out-of-fold cross-entropy ``-(1/M) sum_m log P[m, i, y_i]``;
* ``confident learning`` (Northcutt, Jiang and Chuang, JAIR 2021): ``cleanlab``'s
  ``filter.find_label_issues`` on the members' mean out-of-fold probabilities flags the label
  issues (a boolean per example), and ``1 - rank.get_label_quality_scores`` (self-confidence)
  ranks them;
* ``aum``: minus the area under the margin (Pleiss, Zhang, Elenberg and Weinberger, NeurIPS
  2020): the margin ``z_{y_i} - max_{c != y_i} z_c`` of the logits ``z``, averaged over the
  training epochs, over the members and over the ``K - 1`` folds in which ``i`` was trained
  (Pleiss et al. average over epochs of one run on all data; the folds reuse the cross-fitting
  runs, so AUM costs no extra training). Mislabelled examples have low margins, so ``-AUM``
  scores them high.

Each score is judged by its AUROC against the known corrupted set;
:func:`auroc_estimate` pools several corruption draws and resamples *examples* within each draw
(``stats.bootstrap`` with one group per draw), never members, scoring every resample at once
from its counts per example (``stats.weighted_auroc``).
"""

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ghost_optima.core.data import Dataset
from ghost_optima.core.mlp import ensemble_forward
from ghost_optima.core.stats import Estimate, bootstrap, counts, weighted_auroc
from ghost_optima.core.train import TrainHooks
from ghost_optima.selection.recipes import Recipe
from ghost_optima.symmetry.pairwise import member_disagreement


def kfold(n: int, n_folds: int, *, seed: int) -> list[np.ndarray]:
    """``n_folds`` disjoint index arrays covering ``range(n)``: a seeded permutation cut into
    nearly equal consecutive parts (sizes differ by at most one)."""
    if not 2 <= n_folds <= n:
        raise ValueError(f"need 2 <= n_folds <= n, got {n_folds} folds for {n} examples")
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(order, n_folds)]


class MarginRecorder:
    """A ``train_ensemble`` step hook that accumulates, once per epoch (every ``steps_per_epoch``
    optimizer steps), the margin ``z_y - max_{c != y} z_c`` of every member on ``x`` ``(n, d)``
    with labels ``y`` ``(n,)``; ``mean()`` is the area under the margin per member, ``(M, n)``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, activation, steps_per_epoch: int):
        self.x, self.y, self.activation = x, y, activation
        self.steps_per_epoch = steps_per_epoch
        self.total: torch.Tensor | None = None
        self.count = 0

    def __call__(self, step: int, params: dict, state: dict) -> None:
        if step % self.steps_per_epoch:
            return
        with torch.no_grad():
            z = ensemble_forward(params, self.x, self.activation)  # (M, n, C)
            given = z.gather(-1, self.y.expand(z.shape[0], -1).unsqueeze(-1)).squeeze(-1)
            other = z.scatter(-1, self.y.expand(z.shape[0], -1).unsqueeze(-1), float("-inf"))
            margin = (given - other.max(-1).values).double()
        self.total = margin if self.total is None else self.total + margin
        self.count += 1

    def mean(self) -> torch.Tensor:
        if self.total is None:
            raise ValueError("no epoch was recorded")
        return self.total / self.count


@dataclass(frozen=True)
class CrossFit:
    """Out-of-fold probabilities ``probs`` ``(M, n, C)``, the area under the margin ``aum``
    ``(n,)``, the folds, and the training labels ``y`` ``(n,)`` they were fitted to."""

    probs: np.ndarray
    aum: np.ndarray
    folds: list[np.ndarray]
    y: np.ndarray


def cross_fit(
    data: Dataset, recipe: Recipe, seeds: Sequence[int], *, n_folds: int, seed: int
) -> CrossFit:
    """Train ``len(seeds)`` members of ``recipe`` on every ``K - 1`` folds of ``data``'s
    training set (``kfold(n, n_folds, seed=seed)``) and collect out-of-fold softmax
    probabilities and the area under the margin (module docstring). Test data are not used."""
    x, y = data.x_train, data.y_train
    n = len(x)
    folds = kfold(n, n_folds, seed=seed)
    probs = np.zeros((len(seeds), n, data.n_classes))
    aum_sum, aum_count = np.zeros(n), np.zeros(n)
    batch = recipe.config.batch_size
    # only the final parameters are read: no per-epoch evaluation (record_every), same runs
    recipe = replace(recipe, config=replace(recipe.config, record_every=recipe.config.epochs))
    for held in folds:
        train = np.setdiff1d(np.arange(n), held)
        part = replace(data, x_train=x[train], y_train=y[train], x_test=x[held], y_test=y[held])
        margins = MarginRecorder(x[train], y[train], recipe.activation, -(-len(train) // batch))
        result = recipe.train(part, seeds, hooks=TrainHooks(step_hook=margins))
        with torch.no_grad():
            logits = ensemble_forward(result.params, x[held], recipe.activation)
        probs[:, held] = torch.softmax(logits.double(), -1).numpy()
        aum_sum[train] += margins.mean().mean(0).numpy()
        aum_count[train] += 1
    return CrossFit(probs, aum_sum / aum_count, folds, y.numpy())


def disagreement(probs: np.ndarray) -> np.ndarray:
    """Out-of-fold member disagreement ``(n,)`` from ``probs`` ``(M, n, C)`` (module docstring)."""
    pred = torch.as_tensor(probs.argmax(-1))
    return member_disagreement(pred, probs.shape[-1])


def _votes(probs: np.ndarray) -> np.ndarray:
    """``k`` ``(n, C)``: how many members predict each class (argmax of ``probs`` ``(M, n, C)``)."""
    pred = probs.argmax(-1)  # (M, n)
    return (pred[..., None] == np.arange(probs.shape[-1])).sum(0)


def label_disagreement(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Share of members whose out-of-fold prediction differs from the given label, ``(n,)``:
    ``1 - k_{y_i} / M`` (module docstring)."""
    k = _votes(probs)
    return 1.0 - np.take_along_axis(k, np.asarray(y)[:, None], 1)[:, 0] / probs.shape[0]


def agreement_against_label(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Share of ordered pairs of distinct members agreeing on a class other than the given
    label, ``(n,)``: ``sum_{c != y_i} k_c (k_c - 1) / (M (M - 1))`` (module docstring)."""
    m = probs.shape[0]
    if m < 2:
        raise ValueError("agreement between members needs at least two members")
    k = _votes(probs).astype(float)
    pairs = k * (k - 1)
    own = np.take_along_axis(pairs, np.asarray(y)[:, None], 1)[:, 0]
    return (pairs.sum(1) - own) / (m * (m - 1))


def oof_loss(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Members' mean out-of-fold cross-entropy on the given labels, ``(n,)``."""
    picked = np.take_along_axis(probs, np.asarray(y)[None, :, None], -1)[..., 0]
    return -np.log(np.clip(picked, 1e-300, None)).mean(0)


def confident_learning(probs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(flags, score)``: cleanlab's label issues (bool ``(n,)``, ``find_label_issues`` with its
    default ``prune_by_noise_rate``) and ``1 - self-confidence`` ``(n,)``, both on the members'
    mean out-of-fold probabilities."""
    with warnings.catch_warnings():  # cleanlab imports tqdm.auto, which warns in a kernel
        warnings.filterwarnings("ignore", "IProgress not found")  # without ipywidgets
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

    mean = probs.mean(0)
    mean = mean / mean.sum(1, keepdims=True)
    y = np.asarray(y)
    flags = find_label_issues(y, mean)
    return np.asarray(flags, bool), 1.0 - get_label_quality_scores(y, mean)


def scores(fit: CrossFit) -> dict[str, np.ndarray]:
    """Every per-example score of the module docstring (higher: more suspect), ``(n,)`` each."""
    return {
        "out-of-fold label disagreement": label_disagreement(fit.probs, fit.y),
        "member pairs agreeing against the label": agreement_against_label(fit.probs, fit.y),
        "out-of-fold disagreement": disagreement(fit.probs),
        "out-of-fold loss": oof_loss(fit.probs, fit.y),
        "confident learning": confident_learning(fit.probs, fit.y)[1],
        "area under the margin": -fit.aum,
    }


def auroc_estimate(
    score_draws: Sequence[np.ndarray], mask_draws: Sequence[np.ndarray], *, n_boot: int, seed: int
) -> Estimate:
    """Mean AUROC over corruption draws with a percentile interval from resampling the
    examples of every draw (one bootstrap group per draw). ``score_draws[d]`` and
    ``mask_draws[d]`` are ``(n_d,)``; a resample without both classes is dropped (NaN)."""
    scores_ = [np.asarray(s, float) for s in score_draws]
    masks = [np.asarray(m, bool) for m in mask_draws]

    def stat(*idx: np.ndarray) -> np.ndarray:
        per_draw = [
            weighted_auroc(s, m, counts(i, len(m)))
            for s, m, i in zip(scores_, masks, idx, strict=True)
        ]
        return np.mean(per_draw, axis=0)

    return bootstrap(stat, [len(m) for m in masks], n_boot=n_boot, seed=seed, batched=True)
