"""A remedy comparison, once for every chapter: each arm of each data set fitted with its own
learning rate, measured, summarised, and each remedy set against its twin and the baseline.

``fit_datasets(archs, datasets, training)`` takes the architectures keyed ``(data set, variant)``
and, per data set, runs ``fair.fit_arms`` (every arm's rate chosen on a validation split of its
training set, arms of equal widths one ensemble) and ``protocol.measure`` on the test set.
:class:`Arms` holds the main runs, their measurements and the choices under the same keys:

* ``rows``: one table row per arm, ``protocol.estimate_row`` (intervals over seeds) with the
  chosen learning rate ``lr`` and ``censored`` (the rate is an end of its grid);
* ``triples(labels)``: ``(baseline, remedy, twin)`` measurements for each label's
  ``(data set, remedy)``, the twin being ``twins.TWIN_OF[remedy]``;
* ``effects(labels)``: the figures of a remedy's rule (``fair.effects``: remedy against twin, the
  effect of breaking the symmetry; remedy against baseline, the whole change) per label and
  averaged over all labels, seeds resampled per data set;
* ``at_common_rate`` and ``common_rate_effect``: arms trained again at the baseline's chosen
  rate, the sensitivity of an effect to the rates the arms chose.
"""

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from ghost_optima.core.data import Dataset
from ghost_optima.core.stats import Estimate
from ghost_optima.core.train import EnsembleResult
from ghost_optima.remedies import fair, protocol
from ghost_optima.remedies.protocol import Architecture, Measured
from ghost_optima.remedies.twins import TWIN_OF

Key = tuple[str, str]
"""``(data set, variant)``."""


@dataclass(frozen=True)
class Arms:
    """The main runs, their measurements and the learning-rate choices of the arms of a
    comparison, keyed ``Key``."""

    runs: dict[Key, EnsembleResult] = field(default_factory=dict)
    measured: dict[Key, Measured] = field(default_factory=dict)
    choices: dict[Key, fair.LrChoice] = field(default_factory=dict)

    def __or__(self, other: "Arms") -> "Arms":
        return Arms(
            self.runs | other.runs, self.measured | other.measured, self.choices | other.choices
        )

    def rows(self, *, n_boot: int, seed: int) -> list[dict]:
        """One row per chosen arm (module docstring), in key order."""
        return [
            protocol.estimate_row(self.measured[key], n_boot=n_boot, seed=seed)
            | {"lr": choice.lr, "censored": choice.search.pooled.censored}
            for key, choice in self.choices.items()
        ]

    def triples(self, labels: Mapping[Hashable, Key]) -> dict[Hashable, tuple[Measured, ...]]:
        """``{label: (baseline, remedy, twin)}`` for each label's ``(data set, remedy)``."""
        return {
            label: tuple(self.measured[name, v] for v in ("baseline", remedy, TWIN_OF[remedy]))
            for label, (name, remedy) in labels.items()
        }

    def effects(
        self, labels: Mapping[Hashable, Key], *, n_boot: int, seed: int
    ) -> tuple[dict[Hashable, dict[str, Estimate]], dict[str, Estimate]]:
        """``(per_label, pooled)``: ``fair.effects`` of each label's triple alone, and averaged
        over the triples of all labels."""
        triples = self.triples(labels)
        per_label = {
            label: fair.effects([t], n_boot=n_boot, seed=seed) for label, t in triples.items()
        }
        return per_label, fair.effects(list(triples.values()), n_boot=n_boot, seed=seed)

    def at_common_rate(
        self,
        archs: Mapping[Key, Architecture],
        datasets: Mapping[str, Dataset],
        keys: Sequence[Key],
        training: fair.Training,
    ) -> dict[Key, Measured]:
        """The arms ``keys`` trained again at one common rate, their data set's baseline's
        chosen rate (``fair.train_at``, the same seeds and steps), measured on the test set:
        a sensitivity arm, since disagreement rises with the rate whatever the architecture."""
        out = {}
        for name, data in datasets.items():
            here = [key for key in keys if key[0] == name]
            runs = fair.train_at(
                [archs[k] for k in here], data, training, self.choices[name, "baseline"].lr
            )
            out |= {
                k: protocol.measure(archs[k], r, data, name)
                for k, r in zip(here, runs, strict=True)
            }
        return out

    def common_rate_effect(
        self,
        archs: Mapping[Key, Architecture],
        datasets: Mapping[str, Dataset],
        labels: Mapping[Hashable, Key],
        training: fair.Training,
        *,
        n_boot: int,
        seed: int,
    ) -> Estimate:
        """``symmetry_effect_disagreement`` at one common rate: each label's remedy against its
        twin, both trained at the baseline's chosen rate (``at_common_rate``), the relative
        change of disagreement averaged over the labels (``fair.change``)."""
        keys = [(name, v) for name, remedy in labels.values() for v in (remedy, TWIN_OF[remedy])]
        common = self.at_common_rate(archs, datasets, keys, training)
        pairs = [
            (common[name, TWIN_OF[remedy]], common[name, remedy])
            for name, remedy in labels.values()
        ]
        return fair.change(pairs, "disagreement", relative=True, n_boot=n_boot, seed=seed)


def fit_datasets(
    archs: Mapping[Key, Architecture], datasets: Mapping[str, Dataset], training: fair.Training
) -> Arms:
    """Every arm of ``archs`` fitted (``fair.fit_arms``, one call per data set) and measured on
    its data set's test set, keyed like ``archs``."""
    runs, measured, choices = {}, {}, {}
    for name, data in datasets.items():
        keys = [key for key in archs if key[0] == name]
        fits = fair.fit_arms([archs[key] for key in keys], data, training)
        for key, (choices[key], runs[key]) in zip(keys, fits, strict=True):
            measured[key] = protocol.measure(archs[key], runs[key], data, name)
    return Arms(runs, measured, choices)
