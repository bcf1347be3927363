"""The remedies side by side: every variant built, trained and measured the same way.

A *variant* is an architecture (plus, for two of them, a training procedure) for a data set
with ``n_0`` inputs and ``C`` classes, sized to the dense baseline's parameter count:

=================  =====================================================================
baseline           MLP ``n_0 - h - h - C`` with ``cfg.activation`` (tanh unless set)
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

All train with Adam on the same minibatches (``train.train_ensemble``, one member per seed;
masked layers at the fan-in-correct start). ``measure`` records, per variant and data set: test
accuracy and loss per seed, seed-to-seed test prediction disagreement (``(E, E)``), the test-loss
barrier (``pairwise.barrier``) between seeds ``2p`` and ``2p + 1`` before and after alignment
*within the variant's own symmetry group* (``align.align`` on ``Architecture.group``: signed
weight matching with each unit's parity, permutations within exchangeable units; sorted biases:
flips, then re-sorted), and the CPU time
per step. Intervals are percentile bootstraps over seeds (``stats.bootstrap``), seeds resampled
jointly across the variants of one data set (paired); a pairwise statistic is a mean over pairs
of distinct seeds (``stats.pair_means``), NaN on a resample with fewer than two distinct seeds,
and such resamples are dropped. Twins that keep the symmetry
are in ``ghost_optima.remedies.twins``; learning rates chosen on validation and the paired
comparisons
(``change``) in ``ghost_optima.remedies.fair``.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ghost_optima.core.data import Dataset
from ghost_optima.core.mlp import ACTIVATIONS, ensemble_forward
from ghost_optima.core.stats import Estimate, bootstrap, counts, pair_means
from ghost_optima.core.train import (
    EnsembleResult,
    History,
    TrainConfig,
    TrainHooks,
    member,
    train_ensemble,
)
from ghost_optima.remedies import masks as masks_mod
from ghost_optima.remedies import orthopoly
from ghost_optima.remedies.modular import matched_modular, windows_1d, windows_2d
from ghost_optima.remedies.reorder import CanonicalSortHook, SortedBiases
from ghost_optima.symmetry.align import align
from ghost_optima.symmetry.group import apply_transform, mlp_permutation_spec
from ghost_optima.symmetry.pairwise import barrier, disagreement_matrix
from ghost_optima.symmetry.spec import GroupSpec

LOG10_2 = math.log10(2.0)


def log10_sign_flips(activation: str, widths: Sequence[int]) -> float:
    """``log10`` of the sign flips of hidden layers of ``widths`` units with ``activation``:
    ``2^(sum n_l)`` when it is odd (``mlp.ACTIVATIONS``, tanh), none otherwise (a ReLU's
    positive rescalings are continuous and not counted)."""
    return sum(widths) * LOG10_2 * (ACTIVATIONS[activation].symmetry == "odd")


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
    twin_block: int = 4  # units per exchangeable block of twin masks (masked widths its multiple)
    activation: str = "tanh"  # hidden units of the dense, masked and modular arms (mlp.ACTIVATIONS)

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}"
            )


@dataclass(frozen=True)
class Architecture:
    """A variant sized for one data set, with what its symmetry group leaves.

    ``group`` is the group the alignment searches (``symmetry.spec.GroupSpec``: each hidden
    unit's parity, the classes of units that may be exchanged, sorted units); ``log10_perm``
    and ``log10_sign`` are ``log10`` of the permutation part and of the sign part of the
    remaining group.
    """

    variant: str
    widths: tuple[int, ...]
    activation: str | orthopoly.PolyActivation
    n_params: int
    log10_perm: float
    log10_sign: float
    group: GroupSpec
    masks: dict[str, torch.Tensor] | None = None
    reparam: SortedBiases | None = None
    sort_every: int = 0


def dense_count(widths: Sequence[int]) -> int:
    return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:], strict=True))


def _log10_fact(n: int) -> float:
    return math.lgamma(n + 1) / math.log(10)


def masked_width(n_in: int, n_out: int, density: float, target: int, step: int = 1) -> int:
    """Hidden width ``h`` (a multiple of ``step``) of a two-layer masked net whose parameter
    count is nearest ``target``."""

    def count(h: int) -> int:
        k1, k2 = masks_mod.fan_in_for(n_in, density), masks_mod.fan_in_for(h, density)
        return h * (k1 + 1) + h * (k2 + 1) + (h + 1) * n_out

    return min(range(2 * step, 4 * target, step), key=lambda h: (abs(count(h) - target), h))


def module_windows(data: Dataset, cfg: RemedyConfig) -> tuple[tuple[int, ...], ...]:
    if data.name == "digits":  # 8x8 images: square patches on a sqrt(m) x sqrt(m) grid
        grid = math.isqrt(cfg.n_modules)
        if grid * grid != cfg.n_modules or grid < 2:
            raise ValueError("digits modules need a square number (>= 4) of modules")
        patch = min(8, round(8 / grid * math.sqrt(1 + cfg.module_overlap)))
        return windows_2d(8, 8, patch, grid)
    width = min(data.n_in, round(data.n_in / cfg.n_modules * (1 + cfg.module_overlap)))
    return windows_1d(data.n_in, cfg.n_modules, width)


def dense_widths(data: Dataset, cfg: RemedyConfig) -> tuple[int, ...]:
    return (data.n_in, cfg.width, cfg.width, data.n_out)


def dense_net(variant: str, data: Dataset, cfg: RemedyConfig, **extra) -> Architecture:
    """The dense baseline (``cfg.activation``); ``extra`` sets its training procedure (and
    overrides counts)."""
    h, widths = cfg.width, dense_widths(data, cfg)
    fields = dict(
        log10_perm=2 * _log10_fact(h),
        log10_sign=log10_sign_flips(cfg.activation, (h, h)),
        group=mlp_permutation_spec(2, cfg.activation),
    )
    return Architecture(variant, widths, cfg.activation, dense_count(widths), **fields | extra)


def _canonical_sort(variant: str, data: Dataset, cfg: RemedyConfig) -> Architecture:
    return dense_net(variant, data, cfg, sort_every=cfg.sort_every)


def _sorted_biases(variant: str, data: Dataset, cfg: RemedyConfig) -> Architecture:
    sorted_biases = SortedBiases((1, 2))
    group = sorted_biases.sorted_spec(mlp_permutation_spec(2, cfg.activation))
    return dense_net(variant, data, cfg, log10_perm=0.0, reparam=sorted_biases, group=group)


def _masked(variant: str, data: Dataset, cfg: RemedyConfig) -> Architecture:
    """Random or banded masks (``masks.layer_masks``), or modules (``modular.matched_modular``),
    sized to the dense baseline's parameter count."""
    n0, c, dense = data.n_in, data.n_out, dense_count(dense_widths(data, cfg))
    if variant == "modules":
        net = matched_modular(n0, c, module_windows(data, cfg), 2, dense)
        widths, masks = net.widths, net.masks()
    else:
        hm = masked_width(n0, c, cfg.density, dense, cfg.twin_block)
        widths = (n0, hm, hm, c)
        gen = torch.Generator().manual_seed(cfg.structure_seed)
        masks = masks_mod.layer_masks(widths, variant.split()[0], cfg.density, generator=gen)
    return masked_architecture(variant, widths, masks, cfg.activation)


def masked_architecture(
    variant: str, widths: tuple[int, ...], masks: dict, activation: str = "tanh"
) -> Architecture:
    """A net with ``masks``, its surviving group counted exactly (``surviving_group``; a
    ``ValueError`` when it is not a product of twin classes)."""
    group = masks_mod.surviving_group(widths, masks)
    return Architecture(
        variant,
        widths=widths,
        activation=activation,
        n_params=masks_mod.param_count(widths, masks),
        group=group.spec(activation),
        log10_perm=group.log10_order,
        log10_sign=log10_sign_flips(activation, widths[1:-1]),
        masks=masks,
    )


def _poly(variant: str, data: Dataset, cfg: RemedyConfig) -> Architecture:
    """Per-unit Legendre (or Chebyshev) activations: degrees cycling through
    ``cfg.poly_degrees`` ("poly degrees"), or random rows distinct for every unit."""
    h, widths = cfg.width, dense_widths(data, cfg)
    gen = torch.Generator().manual_seed(cfg.structure_seed)
    if variant == "poly degrees":
        coefs = tuple(orthopoly.degree_pattern(h, cfg.poly_degrees) for _ in range(2))
    else:
        coefs = tuple(
            orthopoly.random_pattern(h, cfg.poly_max_degree, generator=gen) for _ in range(2)
        )
    return poly_architecture(variant, widths, coefs, cfg.poly_basis)


def poly_architecture(variant: str, widths: tuple[int, ...], coefs: tuple, basis: str):
    """Per-unit activations with coefficient rows ``coefs[l - 1]`` and their exact group."""
    act = orthopoly.PolyActivation(coefs, basis)
    order = orthopoly.log10_group_order(act)
    return Architecture(
        variant,
        widths=widths,
        activation=act,
        n_params=dense_count(widths),
        log10_perm=order["perm"],
        log10_sign=order["sign"],
        group=orthopoly.poly_spec(coefs),
    )


Builder = Callable[[str, Dataset, RemedyConfig], Architecture]
VARIANTS: dict[str, Builder] = {  # each variant's builder, in table order
    "baseline": dense_net,
    "canonical sort": _canonical_sort,
    "sorted biases": _sorted_biases,
    "random masks": _masked,
    "banded masks": _masked,
    "modules": _masked,
    "poly degrees": _poly,
    "poly distinct": _poly,
}


def architecture(variant: str, data: Dataset, cfg: RemedyConfig) -> Architecture:
    """The architecture of ``variant`` for ``data`` (see the module docstring)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {tuple(VARIANTS)}")
    return VARIANTS[variant](variant, data, cfg)


def train(
    arch: Architecture,
    data: Dataset,
    seeds: Sequence[int],
    *,
    epochs: int,
    batch_size: int,
    lr: float | Sequence[float],
    dtype: torch.dtype = torch.float32,
    record_every: int = 1,
) -> EnsembleResult:
    """One ``train_ensemble`` call, masks fan-in-correct (``lr``, ``record_every``: TrainConfig)."""
    hook = CanonicalSortHook(arch.activation, arch.sort_every) if arch.sort_every else None
    reparam = arch.reparam
    if reparam is None and arch.masks:
        reparam = masks_mod.FanInInit(arch.masks)
    return train_ensemble(
        data,
        arch.widths,
        arch.activation,
        seeds,
        TrainConfig(epochs, batch_size, "adam", lr, dtype=dtype, record_every=record_every),
        TrainHooks(masks=arch.masks, reparam=reparam, step_hook=hook),
    )


@dataclass(frozen=True)
class Measured:
    """Per-seed and per-pair measurements of one variant on one data set."""

    variant: str
    dataset: str
    arch: Architecture
    test_acc: np.ndarray  # (E,)
    test_loss: np.ndarray  # (E,)
    disagreement: np.ndarray  # (E, E) fraction of test predictions that differ, NaN diagonal
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
        disagreement = disagreement_matrix(ensemble_forward(result.params, x, arch.activation))
    raw, aligned = [], []
    for p in range(len(result.seeds) // 2):
        a, b = member(result.params, 2 * p), member(result.params, 2 * p + 1)
        raw.append(barrier(a, b, x, y, arch.activation, data.task, n_points=n_points))
        moved = apply_transform(b, arch.group, align(a, b, arch.group))
        aligned.append(barrier(a, moved, x, y, arch.activation, data.task, n_points=n_points))
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


def per_error(m: Measured) -> np.ndarray:
    """``(E, E)`` disagreement at matched accuracy: ``d_ij / (e_i + e_j)``, ``e`` the test error
    rates. Two classifiers can differ only where one of them errs, so ``d_ij <= e_i + e_j`` and
    the ratio lies in ``[0, 1]``: it compares arms of different accuracy on one scale."""
    err = 1.0 - m.test_acc
    return m.disagreement / np.maximum(err[:, None] + err[None, :], 1e-12)


def estimate_row(m: Measured, *, n_boot: int, seed: int = 0) -> dict:
    """The table row of one variant on one data set: Estimates over seeds (or seed pairs, for
    barriers), parameter count, group sizes and step time."""
    n, pairs = len(m.test_acc), len(m.barrier_raw)
    boot = {"n_boot": n_boot, "seed": seed, "batched": True}

    def over(values: np.ndarray, count: int) -> Estimate:
        return bootstrap(lambda idx: values[idx].mean(-1), count, **boot)

    def over_pairs(matrix: np.ndarray) -> Estimate:
        return bootstrap(lambda idx: pair_means(matrix, counts(idx, n)), n, **boot)

    return {
        "variant": m.variant,
        "dataset": m.dataset,
        "n_params": m.arch.n_params,
        "test_acc": over(m.test_acc, n),
        "test_loss": over(m.test_loss, n),
        "disagreement": over_pairs(m.disagreement),
        "disagreement_per_error": over_pairs(per_error(m)),
        "barrier_raw": over(m.barrier_raw, pairs),
        "barrier_aligned": over(m.barrier_aligned, pairs),
        "log10_perm": m.arch.log10_perm,
        "log10_group": m.arch.log10_perm + m.arch.log10_sign,
        "ms_per_step": m.ms_per_step,
    }
