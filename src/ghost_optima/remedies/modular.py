"""Small modules with their own receptive fields, in place of one wide layer.

A modular network has ``m`` modules. Module ``k`` reads only the inputs of its window
``R_k`` (its receptive field, a set of input indices; windows may overlap), passes them through
its own small stack of ``units = (u_1, ..., u_L)`` tanh layers, and a dense linear readout
combines the last layer of every module. Written as one MLP of widths
``(n_0, m u_1, ..., m u_L, n_out)`` with units ordered module by module, it is a masked MLP
(``ghost_optima.remedies.masks``) whose masks are

    M_1[(k, i), j] = [j in R_k],      M_l[(k, i), (k', i')] = [k = k']   (l = 2, ..., L),

so the same trainer and the same symmetry counter serve it. Parameters: per module
``u_1 (|R_k| + 1) + sum_{l >= 2} u_l (u_{l-1} + 1)``, plus ``(m u_L + 1) n_out`` for the readout.

Symmetry. The units of one module in one layer have identical in-rows and out-columns (twins),
so they may be permuted freely; with pairwise distinct windows no unit can move to another
module. The group is

    prod_k prod_l u_l!    (times 2^{m sum_l u_l} sign flips for tanh),

against ``prod_l (m u_l)!`` for the dense MLP of the same widths. ``Modular.log10_perm_order``
gives the closed form; ``masks.surviving_group`` recomputes it from the masks.

Modules may also read *identical* windows (the symmetry-preserving twin: ``spread_window_1d``,
``spread_window_2d`` give one window of the same size spread over the whole input, read by every
module). ``c`` modules with one window can then be exchanged as wholes (all their layers at
once), so with ``L >= 2`` layers a class of ``c`` such modules contributes
``c! prod_l (u_l!)^c`` (a wreath product); with one layer their ``c u_1`` units are all twins,
``(c u_1)!``. ``log10_perm_order`` counts both cases (brute force checks it in the tests).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ghost_optima.remedies.masks import param_count
from ghost_optima.symmetry.group import mlp_permutation_spec
from ghost_optima.symmetry.spec import GroupSpec


def windows_1d(n_in: int, n_modules: int, width: int) -> tuple[tuple[int, ...], ...]:
    """``n_modules`` windows of ``width`` consecutive inputs, starts spread evenly over
    ``[0, n_in - width]`` (they overlap when ``n_modules * width > n_in``)."""
    if not 1 <= width <= n_in or n_modules < 1:
        raise ValueError(f"need 1 <= width <= {n_in} and n_modules >= 1")
    if n_modules == 1:
        starts = [0]
    else:
        starts = [round(k * (n_in - width) / (n_modules - 1)) for k in range(n_modules)]
    return tuple(tuple(range(s, s + width)) for s in starts)


def windows_2d(height: int, width: int, patch: int, per_side: int) -> tuple[tuple[int, ...], ...]:
    """``per_side**2`` square ``patch x patch`` windows of an image flattened row by row, their
    corners spread evenly from one border to the other (they overlap when
    ``per_side * patch`` exceeds the side)."""
    if not 1 <= patch <= min(height, width) or per_side < 1:
        raise ValueError("need 1 <= patch <= image side and per_side >= 1")

    def starts(n: int) -> list[int]:
        if per_side == 1:
            return [0]
        return [round(k * (n - patch) / (per_side - 1)) for k in range(per_side)]

    return tuple(
        tuple((r + i) * width + (c + j) for i in range(patch) for j in range(patch))
        for r in starts(height)
        for c in starts(width)
    )


def spread_window_1d(n_in: int, width: int) -> tuple[int, ...]:
    """``width`` inputs spread evenly over ``[0, n_in - 1]`` (rounded ``linspace``), distinct."""
    if not 1 <= width <= n_in:
        raise ValueError(f"need 1 <= width <= {n_in}")
    return tuple(sorted({round(v) for v in np.linspace(0, n_in - 1, width)}))


def spread_window_2d(height: int, width: int, patch: int) -> tuple[int, ...]:
    """A ``patch x patch`` grid of pixels spread evenly over a ``height x width`` image
    (flattened row by row): the same number of inputs as a ``windows_2d`` patch."""
    rows, cols = spread_window_1d(height, patch), spread_window_1d(width, patch)
    return tuple(r * width + c for r in rows for c in cols)


@dataclass(frozen=True)
class Modular:
    """``len(windows)`` modules of ``units`` hidden units per layer, over ``n_in`` inputs."""

    n_in: int
    n_out: int
    windows: tuple[tuple[int, ...], ...]
    units: tuple[int, ...]

    def __post_init__(self):
        if any(not w or min(w) < 0 or max(w) >= self.n_in for w in self.windows):
            raise ValueError(f"windows must be non-empty subsets of range({self.n_in})")

    @property
    def n_modules(self) -> int:
        return len(self.windows)

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.n_in, *(self.n_modules * u for u in self.units), self.n_out)

    def module_of(self, layer: int) -> np.ndarray:
        """Module index of every unit of hidden layer ``layer`` (units ordered by module)."""
        return np.repeat(np.arange(self.n_modules), self.units[layer - 1])

    def masks(self) -> dict[str, torch.Tensor]:
        """``{"W1": (m u_1, n_in), "W2": (m u_2, m u_1), ...}``; the readout stays dense."""
        first = torch.zeros(self.n_modules * self.units[0], self.n_in)
        for k, window in enumerate(self.windows):
            rows = slice(k * self.units[0], (k + 1) * self.units[0])
            first[rows, list(window)] = 1.0
        masks = {"W1": first}
        for layer in range(2, len(self.units) + 1):
            same = self.module_of(layer)[:, None] == self.module_of(layer - 1)[None, :]
            masks[f"W{layer}"] = torch.as_tensor(same, dtype=torch.float32)
        return masks

    def n_params(self) -> int:
        return param_count(self.widths, self.masks())

    def within_modules_spec(self, activation: str) -> GroupSpec:
        """The group of units permuted within their module (``module_of``), every unit of
        ``activation``'s parity: the whole group when windows are distinct, a subgroup when
        modules share a window (whole-module swaps are not in it)."""
        spec = mlp_permutation_spec(len(self.units), activation)
        classes = {f"P{k}": self.module_of(k) for k in range(1, len(self.units) + 1)}
        return replace(spec, classes=classes)

    def window_classes(self) -> list[int]:
        """Sizes of the classes of modules that read the same window (all 1: distinct)."""
        counts: dict[frozenset, int] = {}
        for w in self.windows:
            counts[frozenset(w)] = counts.get(frozenset(w), 0) + 1
        return list(counts.values())

    def log10_perm_order(self) -> float:
        """``log10`` of the permutation group (module docstring): ``prod_k prod_l u_l!``
        times ``c!`` per class of ``c`` modules sharing a window (``L >= 2``), or
        ``prod_classes (c u_1)!`` for one layer."""
        classes = self.window_classes()
        if len(self.units) == 1:
            total = sum(math.lgamma(c * self.units[0] + 1) for c in classes)
        else:
            total = sum(math.lgamma(c + 1) for c in classes)
            total += self.n_modules * sum(math.lgamma(u + 1) for u in self.units)
        return total / math.log(10)

    def __repr__(self) -> str:
        sizes = sorted({len(w) for w in self.windows})
        return (
            f"Modular({self.n_modules} modules x units {self.units}, "
            f"window sizes {sizes}, {self.n_params()} parameters)"
        )


def matched_modular(
    n_in: int, n_out: int, windows: Sequence[Sequence[int]], depth: int, target: int
) -> Modular:
    """The modular net with ``u`` units per module in each of ``depth`` layers whose parameter
    count is closest to ``target`` (``u`` from 1 to ``target``)."""
    windows = tuple(tuple(w) for w in windows)
    best = None
    for u in range(1, target + 1):
        net = Modular(n_in, n_out, windows, (u,) * depth)
        gap = abs(net.n_params() - target)
        if best is None or gap < best[0]:
            best = (gap, net)
        if net.n_params() > target:
            break
    return best[1]
