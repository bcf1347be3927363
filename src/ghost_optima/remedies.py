"""The remedies side by side: every variant built, trained and measured the same way.

A *variant* is an architecture (plus, for two of them, a training procedure) for a data set
with ``n_0`` inputs and ``C`` classes, sized to the dense baseline's parameter count:

=================  =====================================================================
baseline           tanh MLP ``n_0 - h - h - C``
canonical sort     the baseline, moved to its canonical copy every ``sort_every`` steps
                   with the optimizer state relabelled (``reorder.CanonicalSortHook``)
sorted biases      the baseline trained with sorted biases in both hidden layers
                   (``reorder.SortedBiases``)
random masks       hidden layers masked to a random fan-in, distinct per unit
                   (``masks.random_fanin_mask``), wider to match the parameter count
banded masks       the same with local windows (``masks.banded_mask``)
modules            ``m`` modules over overlapping input windows (``modular.Modular``)
poly degrees       per-unit Legendre activations, degrees cycling through a list
poly distinct      per-unit activations with random coefficients, distinct for every unit
=================  =====================================================================

All train with Adam on the same minibatches (``train.train_ensemble``, one member per seed).
``measure`` records, per variant and data set: test accuracy and loss per seed, the matrix of
seed-to-seed test prediction disagreement (fraction of test inputs whose predicted classes
differ), the test-loss barrier (``align.barrier``) on the straight line between seeds
``2p`` and ``2p + 1`` before and after alignment *within the variant's own symmetry group*
(signs normalised by parity, then weight matching restricted to the classes of units that may
be exchanged; for sorted biases, the canonical copy inside the sorted domain), and the time per
training step (CPU time of the process, which other jobs on the machine disturb less than wall
time; the book runs torch on one thread). Intervals are percentile bootstraps over seeds
(``seed_bootstrap``), resampling seeds jointly across variants of one data set, so paired
differences keep their pairing.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ghost_optima import masks as masks_mod
from ghost_optima import orthopoly
from ghost_optima.align import barrier, canonicalize, permute, weight_matching
from ghost_optima.data import Dataset, digits, flip_labels, mnist1d, teacher_student
from ghost_optima.mlp import ensemble_forward
from ghost_optima.modular import matched_modular, windows_1d, windows_2d
from ghost_optima.reorder import CanonicalSortHook, SortedBiases
from ghost_optima.stats import Estimate
from ghost_optima.train import EnsembleResult, History, member, train_ensemble

VARIANTS = (
    "baseline",
    "canonical sort",
    "sorted biases",
    "random masks",
    "banded masks",
    "modules",
    "poly degrees",
    "poly distinct",
)
LOG10_2 = math.log10(2.0)


def load_datasets(*, seed: int, mnist1d_samples: int, ts_train: int) -> dict[str, Dataset]:
    """The three data sets of the remedy chapters, by display name.

    Teacher-student: 16 Gaussian inputs labelled by the argmax of a random 16-8-4 tanh teacher
    (``ts_train`` training and as many test points); digits (scikit-learn, 8x8); MNIST-1D with
    ``mnist1d_samples`` signals (80/20 split).
    """
    ts, _ = teacher_student(ts_train, ts_train, 16, (8, 4), "classification", seed=seed)
    return {
        "teacher-student": ts,
        "digits": digits(seed=seed),
        "MNIST-1D": mnist1d(seed=seed, n_samples=mnist1d_samples),
    }


def with_label_noise(data: Dataset, rate: float, *, seed: int) -> tuple[Dataset, torch.Tensor]:
    """``data`` with a fraction ``rate`` of its training labels flipped (``data.flip_labels``);
    test labels stay clean. With one ``seed``, the flips at rate ``r/2`` are the first half of
    those at rate ``r`` (same permutation and draws), so halving the rate cleans half of them."""
    y, flipped = flip_labels(data.y_train, rate, data.n_classes, seed=seed)
    return replace(data, y_train=y), flipped


@dataclass(frozen=True)
class RemedyConfig:
    width: int = 32  # hidden width of the dense baseline (both hidden layers)
    density: float = 0.25  # fraction of a layer's inputs each masked unit reads
    sort_every: int = 10  # optimizer steps between canonical sorts
    n_modules: int = 4  # modules (a square number for 2-D images)
    module_overlap: float = 0.5  # module windows are (1 + overlap) times a disjoint share
    poly_degrees: tuple[int, ...] = (1, 2, 3, 4)  # degrees cycled by "poly degrees"
    poly_max_degree: int = 4  # highest degree of "poly distinct"
    poly_basis: str = "legendre"
    structure_seed: int = 0  # seed of random masks and random polynomial coefficients


@dataclass(frozen=True)
class Architecture:
    """A variant sized for one data set, with what its symmetry group leaves.

    ``classes`` labels, per hidden layer, the units that may be exchanged (None: the whole
    layer); ``parities`` gives each hidden unit's sign symmetry (``"odd"``: flip in and out,
    ``"even"``: flip in, ``"none"``). ``log10_perm`` and ``log10_sign`` are ``log10`` of the
    permutation part and of the sign part of the remaining group.
    """

    variant: str
    widths: tuple[int, ...]
    activation: str | orthopoly.PolyActivation
    n_params: int
    log10_perm: float
    log10_sign: float
    parities: tuple[tuple[str, ...], ...]
    classes: dict[str, np.ndarray] | None = None
    masks: dict[str, torch.Tensor] | None = None
    reparam: SortedBiases | None = None
    sort_every: int = 0
    align_by_bias: bool = False


def _dense_count(widths: Sequence[int]) -> int:
    return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:], strict=True))


def _log10_fact(n: int) -> float:
    return math.lgamma(n + 1) / math.log(10)


def _masked_width(n_in: int, n_out: int, density: float, target: int) -> int:
    """Hidden width ``h`` of a two-layer masked net whose parameter count is nearest ``target``."""

    def count(h: int) -> int:
        k1, k2 = masks_mod.fan_in_for(n_in, density), masks_mod.fan_in_for(h, density)
        return h * (k1 + 1) + h * (k2 + 1) + (h + 1) * n_out

    return min(range(2, 4 * target), key=lambda h: (abs(count(h) - target), h))


def _module_windows(data: Dataset, cfg: RemedyConfig) -> tuple[tuple[int, ...], ...]:
    if data.name == "digits":  # 8x8 images: square patches on a sqrt(m) x sqrt(m) grid
        grid = math.isqrt(cfg.n_modules)
        if grid * grid != cfg.n_modules or grid < 2:
            raise ValueError("digits modules need a square number (>= 4) of modules")
        patch = min(8, round(8 / grid * math.sqrt(1 + cfg.module_overlap)))
        return windows_2d(8, 8, patch, grid)
    width = min(data.n_in, round(data.n_in / cfg.n_modules * (1 + cfg.module_overlap)))
    return windows_1d(data.n_in, cfg.n_modules, width)


def build(variant: str, data: Dataset, cfg: RemedyConfig) -> Architecture:
    """The architecture of ``variant`` for ``data`` (see the module docstring)."""
    n0, c, h = data.n_in, data.n_out, cfg.width
    dense = (n0, h, h, c)
    odd = (("odd",) * h,) * 2
    full_perm, full_sign = 2 * _log10_fact(h), 2 * h * LOG10_2
    base = dict(widths=dense, activation="tanh", n_params=_dense_count(dense), parities=odd)
    if variant in ("baseline", "canonical sort"):
        every = cfg.sort_every if variant == "canonical sort" else 0
        return Architecture(
            variant, **base, log10_perm=full_perm, log10_sign=full_sign, sort_every=every
        )
    if variant == "sorted biases":
        return Architecture(
            variant,
            **base,
            log10_perm=0.0,
            log10_sign=full_sign,
            reparam=SortedBiases((1, 2)),
            align_by_bias=True,
        )
    if variant in ("random masks", "banded masks", "modules"):
        if variant == "modules":
            net = matched_modular(n0, c, _module_windows(data, cfg), 2, _dense_count(dense))
            widths, masks = net.widths, net.masks()
        else:
            hm = _masked_width(n0, c, cfg.density, _dense_count(dense))
            widths = (n0, hm, hm, c)
            gen = torch.Generator().manual_seed(cfg.structure_seed)
            masks = masks_mod.layer_masks(widths, variant.split()[0], cfg.density, generator=gen)
        group = masks_mod.surviving_group(widths, masks)
        if not group.exact:
            raise ValueError(f"{variant}: the surviving group is not a product of twin classes")
        return Architecture(
            variant,
            widths=widths,
            activation="tanh",
            n_params=masks_mod.param_count(widths, masks),
            log10_perm=group.log10_order,
            log10_sign=sum(widths[1:-1]) * LOG10_2,
            parities=tuple(("odd",) * n for n in widths[1:-1]),
            classes=group.labels(),
            masks=masks,
        )
    if variant in ("poly degrees", "poly distinct"):
        gen = torch.Generator().manual_seed(cfg.structure_seed)
        if variant == "poly degrees":
            coefs = tuple(orthopoly.degree_pattern(h, cfg.poly_degrees) for _ in range(2))
        else:
            coefs = tuple(
                orthopoly.random_pattern(h, cfg.poly_max_degree, generator=gen) for _ in range(2)
            )
        act = orthopoly.PolyActivation(coefs, cfg.poly_basis)
        order = orthopoly.log10_group_order(act)
        classes = {f"P{k}": orthopoly.symmetry_classes(co) for k, co in enumerate(coefs, 1)}
        for k, co in enumerate(coefs, 1):  # exchangeable units must compute the same function
            for label in np.unique(classes[f"P{k}"]):
                rows = co[classes[f"P{k}"] == label]
                if not torch.equal(rows, rows[:1].expand_as(rows)):
                    raise ValueError(f"{variant}: units related only up to sign in layer {k}")
        return Architecture(
            variant,
            widths=dense,
            activation=act,
            n_params=_dense_count(dense),
            log10_perm=order["perm"],
            log10_sign=order["sign"],
            parities=tuple(tuple(orthopoly.parities(co)) for co in coefs),
            classes=classes,
        )
    raise ValueError(f"unknown variant {variant!r}; known: {VARIANTS}")


def train(
    arch: Architecture,
    data: Dataset,
    seeds: Sequence[int],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    dtype: torch.dtype = torch.float32,
) -> EnsembleResult:
    """One ``train_ensemble`` call (Adam, one member per seed) for the variant."""
    hook = CanonicalSortHook("tanh", arch.sort_every) if arch.sort_every else None
    return train_ensemble(
        data,
        arch.widths,
        arch.activation,
        seeds,
        optimizer="adam",
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
        dtype=dtype,
        masks=arch.masks,
        reparam=arch.reparam,
        step_hook=hook,
    )


def align_within(arch: Architecture, a: dict, b: dict) -> tuple[dict, dict]:
    """``(a', b')``: both endpoints moved by the variant's own symmetries so ``b'`` is aligned
    to ``a'`` (functions unchanged; masks and sorted domains respected)."""
    if arch.align_by_bias:
        return canonicalize(a, "tanh", key="bias"), canonicalize(b, "tanh", key="bias")
    a = orthopoly.normalize_signs(a, arch.parities)
    b = orthopoly.normalize_signs(b, arch.parities)
    if arch.classes is not None and all(len(np.unique(v)) == len(v) for v in arch.classes.values()):
        return a, b  # no permutation survives: nothing to match
    return a, permute(b, weight_matching(a, b, classes=arch.classes))


@dataclass(frozen=True)
class Measured:
    """Per-seed and per-pair measurements of one variant on one data set."""

    variant: str
    dataset: str
    arch: Architecture
    test_acc: np.ndarray  # (E,)
    test_loss: np.ndarray  # (E,)
    disagreement: np.ndarray  # (E, E) fraction of test predictions that differ
    barrier_raw: np.ndarray  # (E // 2,) test-loss barrier between seeds 2p and 2p + 1
    barrier_aligned: np.ndarray  # (E // 2,) the same after alignment within the group
    ms_per_step: float  # CPU time per optimizer step of the whole ensemble (all members)
    history: History


def measure(
    arch: Architecture, result: EnsembleResult, data: Dataset, name: str, *, n_points: int = 17
) -> Measured:
    """Every metric of the side-by-side table for one trained ensemble."""
    x, y = data.x_test.to(result.params["W1"].dtype), data.y_test
    with torch.no_grad():
        preds = ensemble_forward(result.params, x, arch.activation).argmax(-1)
    disagreement = (preds[:, None, :] != preds[None, :, :]).double().mean(-1).numpy()
    raw, aligned = [], []
    for p in range(len(result.seeds) // 2):
        a, b = member(result.params, 2 * p), member(result.params, 2 * p + 1)
        raw.append(barrier(a, b, x, y, arch.activation, data.task, n_points=n_points))
        a2, b2 = align_within(arch, a, b)
        aligned.append(barrier(a2, b2, x, y, arch.activation, data.task, n_points=n_points))
    h = result.history
    return Measured(
        arch.variant,
        name,
        arch,
        h.test_acc[-1].copy(),
        h.test_loss[-1].copy(),
        disagreement,
        np.array([r["loss_barrier"] for r in raw]),
        np.array([r["loss_barrier"] for r in aligned]),
        1000 * result.step_cpu_seconds / max(result.n_steps, 1),
        h,
    )


def mean_pairwise(matrix: np.ndarray, idx: np.ndarray) -> float:
    """Mean of ``matrix[i, j]`` over pairs of resampled seeds that are distinct seeds."""
    idx = np.asarray(idx)
    keep = idx[:, None] != idx[None, :]
    return float(matrix[np.ix_(idx, idx)][keep].mean())


def seed_bootstrap(
    statistic: Callable[[list[np.ndarray]], float],
    n_units: Sequence[int],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    min_distinct: int = 1,
) -> Estimate:
    """Percentile bootstrap of ``statistic`` over several groups of resampling units.

    ``statistic`` receives one index array per group (``n_units[g]`` indices drawn with
    replacement; a resample with fewer than ``min_distinct`` distinct indices is drawn again,
    so that pairwise statistics, which need ``min_distinct=2``, exist); its value on the
    identity indices is the point estimate. Groups are resampled independently (e.g. the seeds
    of each data set).
    """
    point = float(statistic([np.arange(n) for n in n_units]))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        draw = []
        for n in n_units:
            idx = rng.integers(0, n, n)
            while len(np.unique(idx)) < min(min_distinct, n):
                idx = rng.integers(0, n, n)
            draw.append(idx)
        boots.append(statistic(draw))
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return Estimate(point, float(lo), float(hi), int(min(n_units)))


def summary(m: Measured, *, n_boot: int, seed: int = 0) -> dict:
    """The table row of one variant on one data set (Estimates over seeds, or pairs)."""
    n, pairs = len(m.test_acc), len(m.barrier_raw)

    def over(values: np.ndarray, count: int) -> Estimate:
        return seed_bootstrap(lambda i: values[i[0]].mean(), [count], n_boot=n_boot, seed=seed)

    return {
        "variant": m.variant,
        "dataset": m.dataset,
        "n_params": m.arch.n_params,
        "test_acc": over(m.test_acc, n),
        "test_loss": over(m.test_loss, n),
        "disagreement": seed_bootstrap(
            lambda i: mean_pairwise(m.disagreement, i[0]),
            [n],
            n_boot=n_boot,
            seed=seed,
            min_distinct=2,
        ),
        "barrier_raw": over(m.barrier_raw, pairs),
        "barrier_aligned": over(m.barrier_aligned, pairs),
        "log10_perm": m.arch.log10_perm,
        "log10_group": m.arch.log10_perm + m.arch.log10_sign,
        "ms_per_step": m.ms_per_step,
    }


def change(
    comparisons: Sequence[tuple[Measured, Measured]],
    metric: str,
    *,
    relative: bool,
    n_boot: int,
    seed: int = 0,
) -> Estimate:
    """Mean over ``(base, other)`` comparisons of ``other - base`` (or ``other / base - 1``).

    ``metric`` is ``"disagreement"`` (mean over seed pairs) or ``"test_acc"`` (mean over seeds).
    Seeds are resampled once per data set and shared by every comparison on it (paired).
    """
    names = sorted({b.dataset for b, _ in comparisons})
    sizes = {b.dataset: len(b.test_acc) for b, _ in comparisons}

    def value(m: Measured, idx: np.ndarray) -> float:
        if metric == "disagreement":
            return mean_pairwise(m.disagreement, idx)
        return float(getattr(m, metric)[idx].mean())

    def stat(draw: list[np.ndarray]) -> float:
        idx = dict(zip(names, draw, strict=True))
        diffs = []
        for base, other in comparisons:
            b, o = value(base, idx[base.dataset]), value(other, idx[base.dataset])
            diffs.append(o / b - 1 if relative else o - b)
        return float(np.mean(diffs))

    pairwise = 2 if metric == "disagreement" else 1
    return seed_bootstrap(
        stat, [sizes[n] for n in names], n_boot=n_boot, seed=seed, min_distinct=pairwise
    )


def fmt(est: Estimate, digits: int = 3, scale: float = 1.0) -> str:
    """``value [lo, hi]`` to ``digits`` significant digits, all multiplied by ``scale``."""
    v, lo, hi = (scale * x + 0.0 for x in (est.value, est.lo, est.hi))  # + 0.0: no "-0"

    def num(x: float) -> str:
        return f"{x:.{digits}g}" if abs(x) < 10**digits else f"{x:.0f}"

    return f"{num(v)} [{num(lo)}, {num(hi)}]"


def glue_estimate(rec, name: str, est: Estimate, scale: float = 1.0) -> Estimate:
    """Glue ``name``, ``name_lo`` and ``name_hi`` (times ``scale``) through a ``Recorder``."""
    rec.glue(name, scale * est.value)
    rec.glue(f"{name}_lo", scale * est.lo)
    rec.glue(f"{name}_hi", scale * est.hi)
    return est


def table(rows: Sequence[dict]):
    """A pandas table of ``summary`` rows: accuracies and disagreements in %, intervals shown."""
    import pandas as pd

    out = []
    for row in rows:
        out.append(
            {
                "data": row["dataset"],
                "variant": row["variant"],
                "parameters": row["n_params"],
                "test accuracy %": fmt(row["test_acc"], 3, 100),
                "test loss": fmt(row["test_loss"], 3),
                "disagreement %": fmt(row["disagreement"], 3, 100),
                "barrier": fmt(row["barrier_raw"], 2),
                "barrier aligned": fmt(row["barrier_aligned"], 2),
                "log10 perms": round(row["log10_perm"], 1),
                "log10 group": round(row["log10_group"], 1),
                "CPU ms/step": round(row["ms_per_step"], 2),
            }
        )
    return pd.DataFrame(out)


def plot_intervals(ax, rows: Sequence[dict], metric: str, *, scale: float = 1.0) -> None:
    """Points with 95% intervals of ``metric`` (an Estimate in each ``summary``-like row with
    ``dataset`` and ``variant``), data sets along x and variants side by side."""
    import seaborn as sns

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    colours = sns.color_palette("colorblind", len(variants))
    width = 0.8 / max(len(variants), 1)
    for j, variant in enumerate(variants):
        for row in (r for r in rows if r["variant"] == variant):
            est = row[metric]
            x = datasets.index(row["dataset"]) - 0.4 + width * (j + 0.5)
            ax.errorbar(
                x,
                scale * est.value,
                yerr=[[scale * (est.value - est.lo)], [scale * (est.hi - est.value)]],
                fmt="o",
                color=colours[j],
                capsize=3,
                label=variant if row["dataset"] == datasets[0] else None,
            )
    ax.set_xticks(range(len(datasets)), datasets)
    ax.legend(fontsize=8, frameon=False)


def conditions(parts: dict[str, bool]) -> str:
    """``"name: yes; other: no"``: which conditions of a rule held, for the prose."""
    return "; ".join(f"{name}: **{'yes' if held else 'no'}**" for name, held in parts.items())
