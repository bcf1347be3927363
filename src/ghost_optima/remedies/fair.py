"""Fair arms: the learning rate of every arm chosen on validation data carved from training.

A remedy compared with a baseline at one learning rate tuned for neither can win or lose by the
learning rate alone. ``select_lr`` gives every arm its own: it holds out a fraction of the
*training* set (``selection.validation_split``) and runs the book's one learning-rate search
(``selection.search.lr_search``: every rate of ``grid`` with every selection seed as one
ensemble, grid-major), which scores each rate by the mean final validation loss over its seeds
(or the validation error, ``score="error"``, as ``recipes.tune_lr`` does) and picks the lowest;
the search refuses anything but a validation split, so the test set is never seen. The main run
then trains on the whole training set at the chosen rate, every arm for the same number of steps.

``fit_arms`` does the same for several arms at once: arms of equal widths whose layers differ
only by their masks (per-member masks) or their polynomial coefficients (per-member rows) are
trained as one ensemble, both the selection runs of all of them and their main runs. Members
share nothing, so each member's run is the one ``fit`` gives (up to float rounding of the
batched kernels); only the CPU time per step is shared, in proportion to the members.
"""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ghost_optima.core.data import Dataset
from ghost_optima.core.stats import Estimate, bootstrap, counts, pair_means
from ghost_optima.core.train import EnsembleResult, History, TrainConfig, TrainHooks, train_ensemble
from ghost_optima.remedies import protocol
from ghost_optima.remedies.masks import FanInInit
from ghost_optima.remedies.orthopoly import PolyActivation
from ghost_optima.remedies.protocol import Architecture
from ghost_optima.selection.search import LrSearch, lr_search, lr_searches
from ghost_optima.selection.validation import Score, check_score, validation_split

VALIDATION_FRACTION = 0.2
"""Share of an arm's training set held out to choose its learning rate."""


@dataclass(frozen=True)
class LrChoice:
    """The learning-rate search of one arm on one data set and the rate it chose."""

    variant: str
    dataset: str
    search: LrSearch

    @property
    def lr(self) -> float:
        return self.search.best


def select_lr(
    arch: Architecture,
    data: Dataset,
    grid: Sequence[float],
    seeds: Sequence[int],
    *,
    epochs: int,
    batch_size: int,
    split_seed: int = 0,
    score: Score = "loss",
) -> LrChoice:
    """The learning rate of ``arch`` on ``data`` from ``grid``, chosen on a validation split
    (``VALIDATION_FRACTION`` of the training set, drawn with ``split_seed``) by ``score``;
    ``seeds`` seed the members of the selection run (use seeds apart from the main run's)."""
    check_score(score)
    split = validation_split(data, VALIDATION_FRACTION, seed=split_seed)

    def train(d: Dataset, members: list[int], lrs: list[float]) -> EnsembleResult:
        kw = dict(epochs=epochs, batch_size=batch_size, record_every=epochs)  # the end is read
        return protocol.train(arch, d, members, lr=lrs, **kw)

    return LrChoice(arch.variant, data.name, lr_search(train, split, grid, seeds, score))


@dataclass(frozen=True)
class Training:
    """How the arms of a comparison are trained and their rates chosen: the main run's
    ``seeds``, the learning-rate ``grid`` and the ``select_seeds`` of each arm's search (the
    validation split drawn with the first; how many seeds choose a rate is their number),
    ``epochs``, ``batch_size``, the selection ``score`` and how often the main runs record their
    history (``record_every`` epochs; None: the start and the end only)."""

    seeds: tuple[int, ...]
    grid: tuple[float, ...]
    select_seeds: tuple[int, ...]
    epochs: int
    batch_size: int
    score: Score = "loss"
    record_every: int | None = None

    @property
    def history_every(self) -> int:
        return self.epochs if self.record_every is None else self.record_every


def fit(arch: Architecture, data: Dataset, training: Training) -> tuple[LrChoice, EnsembleResult]:
    """``select_lr`` (split drawn with ``training.select_seeds[0]``), then the main run of
    ``training.seeds`` on the whole training set at the chosen rate (measure it with
    ``protocol.measure``)."""
    kw = dict(epochs=training.epochs, batch_size=training.batch_size)
    seeds = training.select_seeds
    choice = select_lr(
        arch, data, training.grid, seeds, split_seed=seeds[0], score=training.score, **kw
    )
    main = protocol.train(
        arch, data, training.seeds, lr=choice.lr, record_every=training.history_every, **kw
    )
    return choice, main


def _group_key(arch: Architecture) -> tuple | None:
    """What arms must share to be one ensemble (None: trained alone, as ``protocol.train``)."""
    if arch.reparam is not None or arch.sort_every:
        return None
    act = arch.activation
    if isinstance(act, str):
        return arch.widths, act
    if isinstance(act, PolyActivation):
        return arch.widths, act.basis, tuple(tuple(c.shape) for c in act.coefficients)
    return None


def _groups(archs: Sequence[Architecture]) -> list[list[int]]:
    """Indices of ``archs`` by ``_group_key``, in first-seen order; an arm without a key alone."""
    groups: dict = {}
    for i, arch in enumerate(archs):
        key = _group_key(arch)
        groups.setdefault(i if key is None else key, []).append(i)
    return list(groups.values())


def _stacked(archs: Sequence[Architecture], counts: Sequence[int]) -> tuple:
    """The activation and the masks ``(E, n_l, n_{l-1})`` of the members of ``archs`` (arm
    ``a`` repeated ``counts[a]`` times); a layer an arm leaves dense gets a mask of ones."""
    act = archs[0].activation
    if isinstance(act, PolyActivation):
        layers = zip(*(a.activation.coefficients for a in archs), strict=True)
        rows = [
            torch.cat([c.expand(k, *c.shape) for c, k in zip(cs, counts, strict=True)])
            for cs in layers
        ]
        act = PolyActivation(tuple(rows), act.basis)
    names = sorted({name for a in archs for name in (a.masks or {})})
    shape = {
        f"W{layer}": (n, m) for layer, (m, n) in enumerate(itertools.pairwise(archs[0].widths), 1)
    }
    masks = {
        name: torch.cat(
            [
                (a.masks or {}).get(name, torch.ones(shape[name])).float().expand(k, *shape[name])
                for a, k in zip(archs, counts, strict=True)
            ]
        )
        for name in names
    }
    return act, masks or None


def _split(result: EnsembleResult, archs: Sequence[Architecture], counts: Sequence[int]) -> list:
    """The per-arm ``EnsembleResult`` of a joint run (CPU time shared by member count)."""
    out, start, total = [], 0, sum(counts)
    for arch, k in zip(archs, counts, strict=True):
        part = slice(start, start + k)
        h = result.history
        history = History(*(None if v is None else v[:, part].copy() for v in vars(h).values()))
        out.append(
            EnsembleResult(
                {n: v[part].clone() for n, v in result.params.items()},
                history,
                result.seeds[part],
                result.lrs[part],
                result.widths,
                arch.activation,
                result.optimizer,
                result.step_seconds * k / total,
                result.step_cpu_seconds * k / total,
                result.n_steps,
            )
        )
        start += k
    return out


def train_together(
    archs: Sequence[Architecture],
    data: Dataset,
    seeds: Sequence[Sequence[int]],
    lrs: Sequence[Sequence[float]],
    *,
    epochs: int,
    batch_size: int,
    record_every: int | None = None,
) -> list[EnsembleResult]:
    """``[protocol.train(archs[a], data, seeds[a], lr=lrs[a]) for a]`` as one ``train_ensemble``
    call (arms of one ``_group_key``): members ``(a, s)`` in arm order, per-member masks with
    the fan-in-correct start (``masks.FanInInit``) and per-member polynomial rows. The history
    has a row every ``record_every`` epochs; by default two, at the start and after the last
    epoch (evaluation is not free, and a selection reads only the end)."""
    counts = [len(s) for s in seeds]
    act, masks = _stacked(archs, counts)
    lr = [float(v) for rates in lrs for v in rates]
    every = epochs if record_every is None else record_every
    config = TrainConfig(epochs, batch_size, "adam", lr, record_every=every)
    hooks = TrainHooks(masks=masks, reparam=FanInInit(masks) if masks else None)
    members = [int(s) for ss in seeds for s in ss]
    return _split(train_ensemble(data, archs[0].widths, act, members, config, hooks), archs, counts)


def train_at(
    archs: Sequence[Architecture], data: Dataset, training: Training, lr: float
) -> list[EnsembleResult]:
    """Every arm of ``archs`` trained with ``training.seeds`` at one common rate ``lr`` (no
    search), arms of one ``_group_key`` as one ensemble, the others alone (``protocol.train``);
    the history holds the start and the end."""
    kw = dict(epochs=training.epochs, batch_size=training.batch_size)
    out: dict[int, EnsembleResult] = {}
    for idx in _groups(archs):
        arms = [archs[i] for i in idx]
        if _group_key(arms[0]) is None:
            out[idx[0]] = protocol.train(
                arms[0], data, training.seeds, lr=lr, record_every=training.epochs, **kw
            )
            continue
        seeds, rates = [list(training.seeds)] * len(arms), [[lr] * len(training.seeds)] * len(arms)
        out.update(zip(idx, train_together(arms, data, seeds, rates, **kw), strict=True))
    return [out[i] for i in range(len(archs))]


def fit_arms(
    archs: Sequence[Architecture], data: Dataset, training: Training
) -> list[tuple[LrChoice, EnsembleResult]]:
    """``[fit(arch, data, training) for arch in archs]``, arms of one ``_group_key`` trained
    together: one selection ensemble (every arm, rate and selection seed) on the same
    validation split, then one main ensemble (every arm at its chosen rate)."""
    check_score(training.score)
    kw = dict(epochs=training.epochs, batch_size=training.batch_size)
    out: dict[int, tuple[LrChoice, EnsembleResult]] = {}
    split = validation_split(data, VALIDATION_FRACTION, seed=training.select_seeds[0])
    for idx in _groups(archs):
        arms = [archs[i] for i in idx]
        if _group_key(arms[0]) is None:
            out[idx[0]] = fit(arms[0], data, training)
            continue

        def train(d: Dataset, members: list[int], lrs: list[float], arms=arms) -> list:
            return train_together(arms, d, [members] * len(arms), [lrs] * len(arms), **kw)

        searches = lr_searches(train, split, training.grid, training.select_seeds, training.score)
        choices = [LrChoice(a.variant, data.name, s) for a, s in zip(arms, searches, strict=True)]
        seeds, n = [list(training.seeds)] * len(arms), len(training.seeds)
        rates = [[c.lr] * n for c in choices]
        mains = train_together(arms, data, seeds, rates, record_every=training.history_every, **kw)
        out.update(zip(idx, zip(choices, mains, strict=True), strict=True))
    return [out[i] for i in range(len(archs))]


def change(
    comparisons: Sequence[tuple[protocol.Measured, protocol.Measured]],
    metric: str,
    *,
    relative: bool,
    n_boot: int,
    seed: int = 0,
) -> Estimate:
    """Mean over ``(base, other)`` comparisons of ``other - base`` (or ``other / base - 1``).

    ``metric`` is ``"disagreement"``, ``"disagreement_per_error"`` (means over seed pairs) or
    ``"test_acc"`` (mean over seeds).
    Seeds are resampled once per data set and shared by every comparison on it (paired).
    """
    names = sorted({b.dataset for b, _ in comparisons})
    sizes = {b.dataset: len(b.test_acc) for b, _ in comparisons}

    def value(m: protocol.Measured, idx: np.ndarray) -> np.ndarray:
        if metric == "disagreement":
            return pair_means(m.disagreement, counts(idx, len(m.test_acc)))
        if metric == "disagreement_per_error":
            return pair_means(protocol.per_error(m), counts(idx, len(m.test_acc)))
        return getattr(m, metric)[idx].mean(-1)

    def stat(*draws: np.ndarray) -> np.ndarray:
        idx = dict(zip(names, draws, strict=True))
        diffs = []
        for base, other in comparisons:
            b, o = value(base, idx[base.dataset]), value(other, idx[base.dataset])
            diffs.append(o / b - 1 if relative else o - b)
        return np.mean(diffs, axis=0)

    return bootstrap(stat, [sizes[n] for n in names], n_boot=n_boot, seed=seed, batched=True)


def effects(
    triples: Sequence[tuple[protocol.Measured, protocol.Measured, protocol.Measured]],
    *,
    n_boot: int,
    seed: int = 0,
) -> dict[str, Estimate]:
    """The figures of a remedy's rule from ``(baseline, remedy, twin)`` per data set (or
    pattern), each averaged over the triples with seeds resampled per data set:

    * ``symmetry_effect_<m>``: remedy against its twin, the effect of breaking the symmetry;
    * ``<m>_change``: remedy against the baseline, the effect of the whole change;

    for ``m`` = disagreement (relative change, ``remedy / other - 1``), per_error (the same of
    ``protocol.per_error``, disagreement at matched accuracy) and acc (test accuracy,
    difference in fraction points).
    """
    out = {}
    for label, pairs in (
        ("symmetry_effect_{}", [(t, r) for _, r, t in triples]),
        ("{}_change", [(b, r) for b, r, _ in triples]),
    ):
        for short, metric, relative in (
            ("disagreement", "disagreement", True),
            ("per_error", "disagreement_per_error", True),
            ("acc", "test_acc", False),
        ):
            est = change(pairs, metric, relative=relative, n_boot=n_boot, seed=seed)
            out[label.format(short)] = est
    return out


def _metric(m: protocol.Measured, metric: str, weights: np.ndarray) -> np.ndarray:
    """``(R,)``: ``metric`` of ``m`` on every seed resample given as counts ``(R, n)``."""
    if metric == "disagreement":
        return pair_means(m.disagreement, weights)
    if metric == "disagreement_per_error":
        return pair_means(protocol.per_error(m), weights)
    values = getattr(m, metric)
    return weights @ values / weights.sum(-1)


def effects_over_draws(
    triples: Sequence[tuple[protocol.Measured, protocol.Measured, Sequence[protocol.Measured]]],
    *,
    n_boot: int,
    seed: int = 0,
) -> dict[str, Estimate]:
    """:func:`effects` with a twin drawn ``D`` times: ``(baseline, remedy, twins)`` per data set,
    ``twins`` the same twin built from ``D`` draws of its random structure (every draw trained
    on the same seeds), all data sets with the same draws in the same order.

    A twin's metric is the mean over draws of its metric (disagreement, per-error disagreement:
    means over seed pairs within one draw; accuracy: mean over seeds), so
    ``symmetry_effect_<m>`` compares the remedy with the twin's *average* structure, not one
    draw of it. The interval resamples both units that vary: the ``D`` draws (one group, shared
    by the data sets) and the seeds of each data set (shared by its arms, paired), through
    ``stats.bootstrap``. ``<m>_change`` (remedy against baseline) is :func:`effects`'s, on the
    same resamples. Also ``twin_draw_effects``: the disagreement effect against each draw alone
    (point values), whose spread shows how much one draw would have decided."""
    n_draws = {len(t) for _, _, t in triples}
    if len(n_draws) != 1 or min(n_draws) < 1:
        raise ValueError("every data set needs the same number (>= 1) of twin draws")
    d = n_draws.pop()
    sizes = [len(b.test_acc) for b, _, _ in triples]

    def stat(draws: np.ndarray, *seed_draws: np.ndarray) -> np.ndarray:
        w_draws = counts(draws, d)  # (R, D)
        out = []
        for (base, remedy, twins), idx in zip(triples, seed_draws, strict=True):
            w = counts(idx, len(base.test_acc))
            row = []
            for metric, relative in (
                ("disagreement", True),
                ("disagreement_per_error", True),
                ("test_acc", False),
            ):
                r = _metric(remedy, metric, w)
                per_draw = np.stack([_metric(t, metric, w) for t in twins], -1)  # (R, D)
                t = (per_draw * w_draws).sum(-1) / w_draws.sum(-1)
                b = _metric(base, metric, w)
                row += [r / t - 1 if relative else r - t, r / b - 1 if relative else r - b]
            out.append(np.stack(row, -1))
        return np.mean(out, axis=0)  # (R, 6)

    found = bootstrap(stat, [d, *sizes], n_boot=n_boot, seed=seed, batched=True)
    names = []
    for short in ("disagreement", "per_error", "acc"):
        names += [f"symmetry_effect_{short}", f"{short}_change"]
    out = dict(zip(names, found, strict=True))
    out["twin_draw_effects"] = [
        float(
            np.mean(
                [
                    pair_means(r.disagreement, np.ones((1, n)))[0]
                    / pair_means(twins[k].disagreement, np.ones((1, n)))[0]
                    - 1
                    for (_, r, twins), n in zip(triples, sizes, strict=True)
                ]
            )
        )
        for k in range(d)
    ]
    return out
