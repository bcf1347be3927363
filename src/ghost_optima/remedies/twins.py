"""Symmetry-preserving twins of the remedies: the control that makes an effect attributable.

Each remedy changes two things at once: it breaks the permutation symmetry, and it changes the
network in some other way (a sparser layer, another nonlinearity, other coordinates). Its *twin*
makes the same other change but keeps the symmetry, so

    symmetry effect = metric(remedy) - metric(twin)

is the effect of breaking the symmetry alone, and ``metric(twin) - metric(baseline)`` the effect
of everything else. The twins, each sized like its remedy (same widths, same kind of layer):

======================  ==================  =================================================
remedy                  twin                what the twin keeps
======================  ==================  =================================================
sorted biases           cumsum biases       ``b = b_1 + [0, cumsum(d)]``, linear: any order
                                            (``reorder.CumsumBiases``); all permutations
random masks            random twin masks   same density, rows drawn per *block* of
                                            ``cfg.twin_block`` units (``masks.block_masks``):
                                            ``(block!)^{n_l / block}`` per layer
banded masks            banded twin masks   the same with banded windows per block
modules                 full-input          the same modules and units, every module reading
                        modules             the whole input: modules exchangeable as wholes
poly distinct           poly shared         one random Legendre row for every unit
                                            (``orthopoly.shared_pattern``): ``n_l!`` per layer
======================  ==================  =================================================

``architecture(variant, data, cfg)`` builds remedies and twins alike.

The modules' twin gives every module the whole input rather than one window of the remedy's
size: modules that all read one small window lose what lies outside it (on the book's data the
twin that read one spread window of the remedy's size was 30 to 40 accuracy points behind its
remedy, #26), so its effect was mostly lost input. Reading everything, the twin's network sees
exactly what the remedy's sees, at the same widths; the price is a larger first layer (more
parameters than the remedy, reported as ``param_gap``), the one way left to keep whole modules
exchangeable without discarding input.
"""

import numpy as np
import torch

from ghost_optima.core.data import Dataset
from ghost_optima.remedies import masks as masks_mod
from ghost_optima.remedies import orthopoly, protocol
from ghost_optima.remedies.modular import Modular, matched_modular
from ghost_optima.remedies.protocol import Architecture, RemedyConfig
from ghost_optima.remedies.reorder import CumsumBiases

TWIN_OF = {
    "sorted biases": "cumsum biases",
    "random masks": "random twin masks",
    "banded masks": "banded twin masks",
    "modules": "full-input modules",
    "poly distinct": "poly shared",
}
"""The twin of each remedy that has one."""


def _cumsum_biases(variant: str, data: Dataset, cfg: RemedyConfig) -> Architecture:
    return protocol.dense_net(variant, data, cfg, reparam=CumsumBiases((1, 2)))


def _twin_masks(variant: str, data: Dataset, cfg: RemedyConfig) -> Architecture:
    """Block masks of the remedy's pattern, density and widths (``masks.block_masks``)."""
    remedy = protocol.architecture(variant.replace(" twin", ""), data, cfg)
    gen = torch.Generator().manual_seed(cfg.structure_seed)
    pattern = variant.split()[0]
    masks = masks_mod.block_masks(
        remedy.widths, pattern, cfg.density, cfg.twin_block, generator=gen
    )
    return protocol.masked_architecture(variant, remedy.widths, masks, cfg.activation)


def _full_input_modules(variant: str, data: Dataset, cfg: RemedyConfig) -> Architecture:
    """The remedy's modules (same count and units), every one reading the whole input."""
    windows = protocol.module_windows(data, cfg)
    dense = protocol.dense_count(protocol.dense_widths(data, cfg))
    remedy = matched_modular(data.n_in, data.n_out, windows, 2, dense)
    whole = tuple(range(data.n_in))
    net = Modular(data.n_in, data.n_out, (whole,) * len(windows), remedy.units)
    return Architecture(
        variant,
        widths=net.widths,
        activation=cfg.activation,
        n_params=net.n_params(),
        log10_perm=net.log10_perm_order(),
        log10_sign=protocol.log10_sign_flips(cfg.activation, net.widths[1:-1]),
        group=net.within_modules_spec(cfg.activation),
        masks=net.masks(),
    )


def _poly_shared(variant: str, data: Dataset, cfg: RemedyConfig) -> Architecture:
    h, widths = cfg.width, protocol.dense_widths(data, cfg)
    gen = torch.Generator().manual_seed(cfg.structure_seed)
    coefs = tuple(orthopoly.shared_pattern(h, cfg.poly_max_degree, generator=gen) for _ in range(2))
    return protocol.poly_architecture(variant, widths, coefs, cfg.poly_basis)


TWINS = {
    "cumsum biases": _cumsum_biases,
    "random twin masks": _twin_masks,
    "banded twin masks": _twin_masks,
    "full-input modules": _full_input_modules,
    "poly shared": _poly_shared,
}
"""Each twin's builder ``(variant, data, cfg) -> Architecture``."""


def architecture(variant: str, data: Dataset, cfg: RemedyConfig) -> Architecture:
    """A remedy (``protocol.VARIANTS``) or a twin (``TWINS``) for ``data``."""
    if variant in TWINS:
        return TWINS[variant](variant, data, cfg)
    return protocol.architecture(variant, data, cfg)


def param_gap(arch: Architecture, base: Architecture) -> float:
    """Relative parameter gap ``n_params / n_params(base) - 1`` (fair arms keep it within 10%;
    the full-input modules, which read more inputs at the remedy's widths, exceed it)."""
    return arch.n_params / base.n_params - 1


def unit_classes(arch: Architecture) -> list[np.ndarray] | None:
    """Per hidden layer, the exchangeable-unit labels used for alignment (None: whole layer)."""
    classes = arch.group.classes
    return [classes[p] for p in arch.group.names] if classes else None
