"""The symmetry group an architecture keeps, declared as data: a :class:`GroupSpec`.

Git Re-Basin (Ainsworth, Hayase & Srinivasa 2023, ICLR) declares which permutation acts on
which axis of which parameter (its ``PermutationSpec``). The group of the architectures in this
book needs three more things, so a ``GroupSpec`` holds

* ``axes[name][k]``: the permutation (a name) acting on axis ``k`` of parameter ``name``, or
  ``None``. Convention of ``torch.nn.Linear``: axis 0 indexes the units the parameter
  *produces* (their incoming weights and bias), every other axis the units it *consumes* (the
  outgoing weights of the layer below);
* ``parities[p]``: each unit's sign symmetry, one ``Parity`` for every unit of ``p`` or a tuple
  with one per unit. ``"odd"``, ``phi(-z) = -phi(z)`` (tanh): flip a unit's incoming and
  outgoing weights together (Sussmann 1992); ``"even"``, ``phi(-z) = phi(z)``: flip its
  incoming weights alone (``ghost_optima.remedies.orthopoly``); ``"none"``: no flip. A
  permutation not named is ``"none"``. Positive rescalings (ReLU) form a continuous group and
  are not declared;
* ``classes[p]``: a label per unit of ``p``; ``p`` maps units only within a label (masked
  layers, modules, per-unit activations: ``ghost_optima.remedies``). Not named: one class.
  Units of one class share a parity (sending an odd unit to an even one changes the function);
* ``sorted_by[p]``: the 1-D parameter (a bias) whose entries ``p``'s units keep increasing
  (``ghost_optima.remedies.reorder.SortedBiases``). The sorted region is a fundamental domain
  of the permutations: what is left of ``p``'s group is the flips of its units, each followed
  by sorting the layer again.

Architectures produce their spec (``ghost_optima.symmetry.group.mlp_permutation_spec``, the
remedies' ``Architecture.group``); ``ghost_optima.symmetry.group.apply_transform`` applies one
element of the group, ``ghost_optima.symmetry.align.align`` searches it.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Parity = Literal["odd", "even", "none"]
PARITIES = ("odd", "even", "none")


@dataclass(frozen=True)
class GroupSpec:
    """The group of an architecture (module docstring): axes, parities, classes, sorted units."""

    axes: dict[str, tuple[str | None, ...]]
    parities: Mapping[str, Parity | tuple[Parity, ...]] = field(default_factory=dict)
    classes: Mapping[str, np.ndarray] = field(default_factory=dict)
    sorted_by: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        names = set(self.names)
        for part in ("parities", "classes", "sorted_by"):
            unknown = set(getattr(self, part)) - names
            if unknown:
                raise ValueError(f"{part} names {sorted(unknown)}, not permutations of the spec")
        for p, parity in self.parities.items():
            values = {parity} if isinstance(parity, str) else set(parity)
            if not values <= set(PARITIES):
                raise ValueError(f"parities[{p!r}] must be among {PARITIES}, got {parity!r}")
        for p, name in self.sorted_by.items():
            if self.axes.get(name) != (p,):
                raise ValueError(f"sorted_by[{p!r}] = {name!r} is not a 1-D parameter of {p}")

    @property
    def names(self) -> list[str]:
        """The permutations, in order of first appearance in ``axes`` (``P1, ..., PL``)."""
        return list(dict.fromkeys(p for axes in self.axes.values() for p in axes if p))

    def sizes(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
        """Size of each permutation, read off the axes it acts on; they must all agree."""
        if set(shapes) != set(self.axes):
            raise ValueError(f"params {sorted(shapes)} do not match spec {sorted(self.axes)}")
        sizes: dict[str, int] = {}
        for name, axes in self.axes.items():
            if len(axes) != len(shapes[name]):
                raise ValueError(f"{name} has shape {shapes[name]} but spec gives {len(axes)} axes")
            for perm, size in zip(axes, shapes[name], strict=True):
                if perm is not None and sizes.setdefault(perm, size) != size:
                    raise ValueError(
                        f"{perm} acts on axes of sizes {sizes[perm]} and {size} ({name})"
                    )
        return sizes

    def unit_parities(self, p: str, n: int) -> np.ndarray:
        """The parity of each of the ``n`` units of ``p``, an array of strings."""
        parity = self.parities.get(p, "none")
        out = np.array([parity] * n if isinstance(parity, str) else list(parity), dtype=object)
        if len(out) != n:
            raise ValueError(f"parities[{p!r}] gives {len(out)} units, {p} has {n}")
        return out

    def unit_classes(self, p: str, n: int) -> np.ndarray | None:
        """The class label of each of the ``n`` units of ``p`` (None: one class), checked to
        hold units of one parity only."""
        labels = self.classes.get(p)
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (n,):
                raise ValueError(f"classes[{p!r}] has shape {labels.shape}, {p} has {n} units")
        parities = self.unit_parities(p, n)
        for label in np.unique(labels) if labels is not None else [None]:
            if len(set(parities if label is None else parities[labels == label])) > 1:
                raise ValueError(f"{p}: units of different parities need classes apart")
        return labels

    def has_signs(self) -> bool:
        """Whether some unit has a sign symmetry (odd or even)."""
        return any(
            unit != "none"
            for parity in self.parities.values()
            for unit in ([parity] if isinstance(parity, str) else parity)
        )
