"""Forced pre-pruning: fixed sparse masks chosen before training, and the symmetry they leave.

A mask ``M_l`` (0/1, shape ``(n_l, n_{l-1})``, the shape of ``W_l``) fixes which weights of
layer ``l`` exist; the network computes ``h_l = f((M_l * W_l) h_{l-1} + b_l)``. It is chosen
once, before training (pruning at initialisation, Frankle et al. 2021, "Pruning neural networks
at initialization: why are we missing the mark?", ICLR), and ``train.TrainHooks(masks=...)``
keeps the masked weights exactly zero. Two patterns, both *different for every unit*:

* ``random_fanin_mask``: unit ``i`` reads ``k`` inputs drawn uniformly without replacement,
  redrawn until no two units read the same set (possible while ``n_l <= C(n_{l-1}, k)``);
* ``banded_mask``: unit ``i`` reads a window of consecutive inputs (cyclically), windows
  evenly spread; units that would share a start get a wider window, so no two rows coincide.

What symmetry survives. A hidden-unit relabelling ``(P_1, ..., P_L)`` (with ``P_0`` and
``P_{L+1}`` the identity: inputs and outputs keep their meaning) maps the masked family to
itself exactly when it maps every mask to itself,

    M_l[P_l][:, P_{l-1}] = M_l    for l = 1, ..., L + 1            (*)

(the convention of ``ghost_optima.symmetry.group.Transform``: unit ``i`` becomes old unit
``P[i]``). Those relabellings are the automorphisms of the layered connection graph that fix
every input and output vertex; ``surviving_group`` counts them. Sign flips of odd activations
never move a zero, so they all survive: a mask breaks permutations only.

How it counts. Colour refinement (1-dimensional Weisfeiler-Leman) on the layered graph, with
every input and output its own colour, gives a partition of each hidden layer into cells that
every automorphism preserves, so ``|G| <= prod_cells |cell|!``. Two units are *twins* if they
have identical incoming rows (``M_l[i] = M_l[j]``) and outgoing columns
(``M_{l+1}[:, i] = M_{l+1}[:, j]``); swapping twins is an automorphism, so
``|G| >= prod_twin classes |class|!``. When every cell is a twin class the bounds meet, and the
group is exactly the product of the symmetric groups of the cells,

    |G| = prod_l prod_{cells c of layer l} |c|!                    (**)

For a single masked layer over fixed inputs this is the row-class formula: units with
identical mask rows form the classes. When some cell is not a twin class (e.g. two whole
modules reading the same window, which may be swapped together), ``exact`` is False and only
the bounds are reported; ``count_automorphisms_bruteforce`` checks everything on tiny layers by
enumerating all ``prod_l n_l!`` relabellings against (*).
"""

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ghost_optima.symmetry.group import mlp_permutation_spec
from ghost_optima.symmetry.spec import GroupSpec

Masks = Mapping[str, torch.Tensor]
LN10 = math.log(10.0)


def fan_in_for(n_in: int, density: float) -> int:
    """``k = round(density * n_in)``, at least 1 and at most ``n_in``."""
    if not 0 < density <= 1:
        raise ValueError(f"density must lie in (0, 1], got {density}")
    return min(n_in, max(1, round(density * n_in)))


def random_fanin_mask(
    n_out: int, n_in: int, fan_in: int, *, generator: torch.Generator
) -> torch.Tensor:
    """``(n_out, n_in)`` 0/1 mask, each row ``fan_in`` ones at random, rows pairwise distinct.

    Rows are drawn in order (``torch.randperm(n_in)[:fan_in]`` from ``generator``); a row equal
    to an earlier one is drawn again. Raises if ``n_out > C(n_in, fan_in)``.
    """
    if not 1 <= fan_in <= n_in:
        raise ValueError(f"fan_in must lie in [1, {n_in}], got {fan_in}")
    if n_out > math.comb(n_in, fan_in):
        raise ValueError(f"{n_out} distinct rows of {fan_in} ones among {n_in} do not exist")
    mask = torch.zeros(n_out, n_in)
    seen: set[tuple[int, ...]] = set()
    for i in range(n_out):
        while True:
            chosen = tuple(sorted(torch.randperm(n_in, generator=generator)[:fan_in].tolist()))
            if chosen not in seen:
                break
        seen.add(chosen)
        mask[i, list(chosen)] = 1.0
    return mask


def banded_mask(n_out: int, n_in: int, width: int) -> torch.Tensor:
    """``(n_out, n_in)`` cyclic windows: unit ``i`` reads ``start_i, ..., start_i + w_i - 1``.

    ``start_i = floor(i * n_in / n_out)`` spreads the windows evenly over the inputs and
    ``w_i = width + #{j < i : start_j = start_i}`` widens a window whose start is taken, so the
    pairs ``(start_i, w_i)``, hence the rows, are distinct while every ``w_i < n_in``.
    """
    if not 1 <= width <= n_in:
        raise ValueError(f"width must lie in [1, {n_in}], got {width}")
    mask = torch.zeros(n_out, n_in)
    taken: dict[int, int] = {}
    for i in range(n_out):
        start = (i * n_in) // n_out
        w = width + taken.get(start, 0)
        taken[start] = taken.get(start, 0) + 1
        if w >= n_in and n_out > 1:
            raise ValueError(f"{n_out} distinct windows of width >= {width} in {n_in} inputs")
        mask[i, [(start + j) % n_in for j in range(min(w, n_in))]] = 1.0
    return mask


def layer_masks(
    widths: Sequence[int], pattern: str, density: float, *, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Masks ``{"W1": ..., "WL": ...}`` of every hidden layer (the output layer stays dense).

    Layer ``l`` gets fan-in ``fan_in_for(n_{l-1}, density)``; ``pattern`` is ``"random"``
    (``random_fanin_mask``) or ``"banded"`` (``banded_mask``).
    """
    widths = tuple(widths)
    masks = {}
    for layer in range(1, len(widths) - 1):
        n_in, n_out = widths[layer - 1], widths[layer]
        k = fan_in_for(n_in, density)
        if pattern == "random":
            masks[f"W{layer}"] = random_fanin_mask(n_out, n_in, k, generator=generator)
        elif pattern == "banded":
            masks[f"W{layer}"] = banded_mask(n_out, n_in, k)
        else:
            raise ValueError(f"unknown mask pattern {pattern!r}")
    return masks


def param_count(widths: Sequence[int], masks: Masks | None = None) -> int:
    """Trainable parameters: unmasked weights plus every bias (masked weights do not count)."""
    total = 0
    for layer, (n_in, n_out) in enumerate(itertools.pairwise(widths), start=1):
        mask = (masks or {}).get(f"W{layer}")
        total += (n_in * n_out if mask is None else int(mask.count_nonzero())) + n_out
    return total


def _dense_masks(widths: Sequence[int], masks: Masks | None) -> list[np.ndarray]:
    """``[M_1, ..., M_{L+1}]`` as boolean arrays, dense layers all true."""
    out = []
    for layer, (n_in, n_out) in enumerate(itertools.pairwise(widths), start=1):
        mask = (masks or {}).get(f"W{layer}")
        if mask is None:
            out.append(np.ones((n_out, n_in), dtype=bool))
        else:
            if tuple(mask.shape) != (n_out, n_in):
                raise ValueError(
                    f"mask W{layer} has shape {tuple(mask.shape)}, not {(n_out, n_in)}"
                )
            out.append(mask.detach().cpu().numpy() != 0)
    return out


@dataclass(frozen=True)
class SurvivingGroup:
    """The hidden-unit relabellings that map every mask to itself (see the module docstring).

    ``cells[l - 1]`` lists the colour-refinement cells of hidden layer ``l`` (index arrays);
    ``exact`` says whether every cell is a twin class, in which case ``log10_order`` is
    ``log10 |G|`` by (**); otherwise it is None and ``log10_lower <= log10 |G| <=
    log10_upper``.
    """

    cells: list[list[np.ndarray]]
    exact: bool
    log10_lower: float
    log10_upper: float

    @property
    def log10_order(self) -> float | None:
        return self.log10_upper if self.exact else None

    def labels(self) -> dict[str, np.ndarray]:
        """``{"P{l}": class label per unit}``: the unit's cell (``GroupSpec.classes``)."""
        out = {}
        for layer, cells in enumerate(self.cells, start=1):
            label = np.empty(sum(len(c) for c in cells), dtype=np.int64)
            for k, cell in enumerate(cells):
                label[cell] = k
            out[f"P{layer}"] = label
        return out

    def spec(self, activation: str) -> GroupSpec:
        """The group as a ``GroupSpec``: permutations within cells, every unit of
        ``activation``'s parity (a mask moves no sign flip). Valid when ``exact``: the group is
        then the product of the cells' symmetric groups."""
        if not self.exact:
            raise ValueError("the surviving group is not a product of twin classes")
        return replace(mlp_permutation_spec(len(self.cells), activation), classes=self.labels())


def _log10_factorials(sizes) -> float:
    return sum(math.lgamma(s + 1) for s in sizes) / LN10


def surviving_group(widths: Sequence[int], masks: Masks | None) -> SurvivingGroup:
    """Cells, bounds and (when exact) the order of the group of relabellings preserving masks.

    ``widths = (n_0, ..., n_{L+1})``; ``masks`` maps ``"W{l}"`` to ``(n_l, n_{l-1})`` 0/1
    tensors, missing layers being dense. With no masks at all the answer is ``prod_l n_l!``.
    """
    widths = tuple(widths)
    mats = _dense_masks(widths, masks)
    n_hidden = len(widths) - 2
    # Colours per layer; inputs (layer 0) and outputs (layer L+1) are individually fixed.
    colours = [np.arange(widths[0])]
    colours += [np.zeros(widths[layer], dtype=np.int64) for layer in range(1, n_hidden + 1)]
    colours += [np.arange(widths[-1])]
    n_cells = sum(len(np.unique(c)) for c in colours)
    while True:
        new = [colours[0]]
        for layer in range(1, n_hidden + 1):
            m_in, m_out = mats[layer - 1], mats[layer]
            signatures = [
                (
                    int(colours[layer][i]),
                    tuple(sorted(colours[layer - 1][m_in[i]].tolist())),
                    tuple(sorted(colours[layer + 1][m_out[:, i]].tolist())),
                )
                for i in range(widths[layer])
            ]
            index = {sig: k for k, sig in enumerate(sorted(set(signatures)))}
            new.append(np.array([index[sig] for sig in signatures], dtype=np.int64))
        new.append(colours[-1])
        colours = new
        count = sum(len(np.unique(c)) for c in colours)
        if count == n_cells:
            break
        n_cells = count
    cells, exact, lower, upper = [], True, 0.0, 0.0
    for layer in range(1, n_hidden + 1):
        m_in, m_out = mats[layer - 1], mats[layer]
        layer_cells = [np.flatnonzero(colours[layer] == c) for c in np.unique(colours[layer])]
        cells.append(layer_cells)
        upper += _log10_factorials(len(c) for c in layer_cells)
        twins: dict[bytes, int] = {}
        for i in range(widths[layer]):
            key = m_in[i].tobytes() + b"|" + m_out[:, i].tobytes()
            twins[key] = twins.get(key, 0) + 1
        lower += _log10_factorials(twins.values())
        exact &= len(twins) == len(layer_cells)  # twins always lie in one cell
    return SurvivingGroup(cells, exact, lower, upper)


def count_automorphisms_bruteforce(
    widths: Sequence[int], masks: Masks | None, *, max_size: int = 10**6
) -> int:
    """``|G|`` by checking (*) for every one of the ``prod_l n_l!`` relabellings (tiny nets)."""
    widths = tuple(widths)
    mats = _dense_masks(widths, masks)
    hidden = widths[1:-1]
    if math.prod(math.factorial(n) for n in hidden) > max_size:
        raise ValueError(f"more than max_size={max_size} relabellings; use smaller layers")
    count = 0
    for perms in itertools.product(*(itertools.permutations(range(n)) for n in hidden)):
        full = [np.arange(widths[0]), *map(np.array, perms), np.arange(widths[-1])]
        if all(
            np.array_equal(m[np.ix_(full[layer], full[layer - 1])], m)
            for layer, m in enumerate(mats, start=1)
        ):
            count += 1
    return count


def block_masks(
    widths: Sequence[int], pattern: str, density: float, block: int, *, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Twin masks: the masks of ``layer_masks`` drawn for *blocks* of ``block`` units, so the
    units of a block are exchangeable (the symmetry-preserving twin of a distinct-row mask).

    Hidden layer ``l`` has ``n_l / block`` blocks (``block`` must divide every hidden width).
    Layer 1: a coarse ``(n_1 / block, n_0)`` mask of the pattern, each row repeated for the
    ``block`` units of its block. Layer ``l >= 2``: a coarse ``(n_l / block, n_{l-1} / block)``
    mask between blocks, expanded by ``kron(., ones(block, block))``: a unit reads whole
    blocks. The units of a block then have identical incoming rows and outgoing columns (twins),
    and with pairwise distinct coarse rows no two blocks are related, so by (**)

        |G| = prod_l (block!)^{n_l / block}.

    Density: each unit reads ``fan_in_for(n_0, density)`` inputs in layer 1 and
    ``block * fan_in_for(n_{l-1} / block, density)`` units in layer ``l >= 2``, the same counts
    as ``layer_masks`` up to rounding to whole blocks.
    """
    widths = tuple(widths)
    if block < 1 or any(n % block for n in widths[1:-1]):
        raise ValueError(f"block {block} must divide every hidden width of {widths}")
    coarse = (widths[0], *(n // block for n in widths[1:-1]), widths[-1])
    small = layer_masks(coarse, pattern, density, generator=generator)
    out = {"W1": small["W1"].repeat_interleave(block, dim=0)}
    for layer in range(2, len(widths) - 1):
        out[f"W{layer}"] = torch.kron(small[f"W{layer}"], torch.ones(block, block))
    return out


@dataclass(frozen=True)
class FanInInit:
    """A ``train.train_ensemble`` reparameterization that only fixes the initialisation of masked
    layers: ``to_raw`` rescales unit ``i`` of layer ``l`` (its incoming row and bias) by
    ``sqrt(n_{l-1} / k_i)``, ``k_i = sum_j M_l[i, j]`` (at least 1); ``to_params`` is the
    identity.

    The trainer draws the dense default ``U(-1, 1) / sqrt(n_{l-1})``; after the rescaling every
    unit has ``U(-1, 1) / sqrt(k_i)``, which is ``mlp.init_mlp(..., masks=masks)`` (the same draws),
    so a masked unit's pre-activation variance ``k_i Var(w) E[h^2] = E[h^2] / 3`` equals the
    dense layer's whatever the density (He et al. 2015 keep the variance by the fan-in the same
    way). A rescaling of the start only: training then runs in the ordinary coordinates.
    """

    masks: Masks
    identity_to_params = True  # the trainer may skip autograd through ``to_params``

    def to_raw(self, params):
        out = dict(params)
        for name, mask in self.masks.items():
            layer = name[1:]
            n_in = mask.shape[-1]
            scale = (n_in / mask.sum(-1).clamp(min=1.0)).sqrt().to(params[name].dtype)
            out[name] = params[name] * scale.unsqueeze(-1)
            out[f"b{layer}"] = params[f"b{layer}"] * scale
        return out

    def to_params(self, raw):
        return raw
