"""Per-unit orthogonal-polynomial activations, and which weight-space symmetries they leave.

Unit ``i`` of hidden layer ``l`` applies its own fixed function

    phi_i(z) = sum_{d=0}^{D} c_{i,d} B_d(tanh z),

where ``B_d`` is the Legendre polynomial ``P_d`` or the Chebyshev polynomial ``T_d`` of the first
kind, evaluated on ``[-1, 1]`` after ``tanh`` squashes the pre-activation (polynomials grow
without bound outside it). Both bases come from their stable three-term recurrences
(Abramowitz & Stegun 1964, 22.7.10 and 22.7.4), run forwards in ``basis_values`` and
backwards (Clenshaw's algorithm, no basis stored) in the activation itself:

    P_0 = 1, P_1 = x,  (d + 1) P_{d+1} = (2d + 1) x P_d - d P_{d-1}
    T_0 = 1, T_1 = x,  T_{d+1} = 2 x T_d - T_{d-1}

The coefficient rows ``c_i`` are fixed, not trained (trained coefficients would move with their
unit under a relabelling and restore the full permutation symmetry). Two patterns:

* ``degree_pattern``: unit ``i`` is ``B_{d_i}`` with ``d_i`` cycling through a list of degrees;
* ``random_pattern``: a random unit-norm row on degrees ``1..D``, distinct for every unit.

Symmetry. A relabelling may send unit ``i`` to position ``j`` (whose function is ``phi_j``),
with its incoming weights times ``a`` and outgoing weights times ``b`` (``a, b`` in ``+-1``),
exactly when ``b phi_j(a z) = phi_i(z)`` for all ``z``, i.e. ``c_j[d] = b a^d c_i[d]``.
Call ``i ~ j`` when such ``(a, b)`` exist; ``S_i``, the pairs that fix ``phi_i``, is
``{(1, 1), (-1, -1)}`` for an odd row (odd degrees only: the usual sign flip),
``{(1, 1), (-1, 1)}`` for an even row (flip the incoming weights alone), and ``{(1, 1)}`` for a
row of mixed parity. The group of one dense layer then has order

    prod_{classes C of ~} |C|!  *  prod_i |S_i|,

and layers multiply. The degree pattern keeps permutations among units of equal degree and
every unit's sign symmetry; the random pattern keeps nothing.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ghost_optima.symmetry.group import mlp_permutation_spec
from ghost_optima.symmetry.spec import GroupSpec, Parity

Basis = Literal["legendre", "chebyshev"]
Params = dict[str, Tensor]
LOG10_2 = math.log10(2.0)


def basis_values(x: Tensor, degree: int, basis: Basis = "legendre") -> Tensor:
    """``(..., degree + 1)``: ``B_0(x), ..., B_degree(x)`` by the three-term recurrence."""
    if degree < 0:
        raise ValueError(f"degree must be >= 0, got {degree}")
    values = [torch.ones_like(x), x]
    for d in range(1, degree):
        if basis == "legendre":
            values.append(((2 * d + 1) * x * values[d] - d * values[d - 1]) / (d + 1))
        elif basis == "chebyshev":
            values.append(2 * x * values[d] - values[d - 1])
        else:
            raise ValueError(f"unknown basis {basis!r}")
    return torch.stack(values[: degree + 1], dim=-1)


def _recurrence(basis: Basis) -> tuple:
    """``(A, beta)`` with ``B_{k+1} = A(k) x B_k + beta(k) B_{k-1}`` for ``k >= 1``."""
    if basis == "legendre":
        return (lambda k: (2 * k + 1) / (k + 1)), (lambda k: -k / (k + 1))
    if basis == "chebyshev":
        return (lambda k: 2.0), (lambda k: -1.0)
    raise ValueError(f"unknown basis {basis!r}")


def clenshaw(x: Tensor, c: Tensor, basis: Basis, *, slope: bool = False):
    """``S(x) = sum_d c[:, d] B_d(x)`` (and ``S'(x)`` if ``slope``) by Clenshaw's algorithm.

    Clenshaw (1955) runs the three-term recurrence backwards,
    ``b_k = c_k + A_k x b_{k+1} + beta_{k+1} b_{k+2}`` from ``k = D`` down to 1, then
    ``S = c_0 + x b_1 + beta_1 b_2``; differentiating each line gives ``S'``. It costs two fused
    operations per degree on ``x`` of shape ``(..., n)`` (``c``: ``(n, D + 1)``, or per member
    ``(E, n, D + 1)`` with ``x`` ``(E, N, n)``), without
    materialising the basis, and is as stable as the forward recurrence. The ``b_k``, and their
    slopes, rotate through three buffers each, shaped like ``x`` (a fresh tensor per degree cost
    more in allocation than in arithmetic), and the zeros that start them are skipped, not added.
    """
    A, beta = _recurrence(basis)
    # (D + 1, n): one contiguous row per degree; per-member rows c (E, n, D + 1) for x (E, N, n)
    cols = c.T.contiguous() if c.dim() == 2 else c.movedim(-1, 0).unsqueeze(-2).contiguous()
    free = [torch.empty_like(x) for _ in range(6 if slope else 3)]  # b_k, b_k+1, b_k+2; slopes
    b1 = b2 = d1 = d2 = None  # None: the zeros that start the recurrence, never materialised
    for k in range(c.shape[-1] - 1, 0, -1):
        b_k = _three_term(cols[k], b2, beta(k + 1), x, b1, A(k), free.pop())
        if slope:  # d_k = A_k (b_{k+1} + x d_{k+1}) + beta_{k+1} d_{k+2}, from b_{k+1}
            d_k = None
            if b1 is not None:
                d_k = _three_term(b1, d2, beta(k + 1) / A(k), x, d1, 1.0, free.pop()).mul_(A(k))
            if d2 is not None:
                free.append(d2)
            d2, d1 = d1, d_k
        if b2 is not None:
            free.append(b2)
        b2, b1 = b1, b_k
    value = _last_term(cols[0], x, b1, b2, beta(1), free.pop())
    if not slope:
        return value
    if b1 is None:  # degree 0: a constant
        return value, free.pop().zero_()
    return value, _last_term(b1, x, d1, d2, beta(1), free.pop())


def _last_term(c, x: Tensor, b1, b2, beta: float, out: Tensor) -> Tensor:
    """``(c + x b1) + beta b2`` into ``out`` (``_three_term``'s terms in Clenshaw's last order)."""
    value = out.copy_(c) if b1 is None else torch.addcmul(c, x, b1, out=out)
    return value if b2 is None else value.add_(b2, alpha=beta)


def _three_term(c, b2, beta: float, x: Tensor, b1, a: float, out: Tensor) -> Tensor:
    """``c + beta b2 + a x b1`` into ``out``, skipping the terms whose factor is None (zero);
    the same operations, in the same order, as with zeros."""
    if b1 is None:
        return out.copy_(c) if b2 is None else torch.add(c, b2, alpha=beta, out=out)
    if b2 is None:
        return torch.addcmul(c, x, b1, value=a, out=out)
    return torch.add(c, b2, alpha=beta, out=out).addcmul_(x, b1, value=a)


def poly_of_tanh(z: Tensor, c: Tensor, basis: Basis) -> tuple[Tensor, Tensor]:
    """``(phi(z), phi'(z))`` of ``phi(z) = S(tanh z)``: ``phi' = S'(tanh z) (1 - tanh^2 z)``
    (``clenshaw``'s shapes), no autograd."""
    x = torch.tanh(z)
    value, slope = clenshaw(x, c, basis, slope=True)
    return value, slope.mul_(1 - x * x)


class _PolyOfTanh(torch.autograd.Function):
    """``poly_of_tanh`` as one autograd node, its slope saved in the forward pass (first
    derivatives only; the coefficients are fixed and get no gradient)."""

    @staticmethod
    def forward(ctx, z: Tensor, c: Tensor, basis: Basis) -> Tensor:
        if not ctx.needs_input_grad[0]:  # evaluation: the value alone
            return clenshaw(torch.tanh(z), c, basis)
        value, dphi = poly_of_tanh(z, c, basis)
        ctx.save_for_backward(dphi)
        return value

    @staticmethod
    def backward(ctx, grad: Tensor):
        (dphi,) = ctx.saved_tensors
        return grad * dphi, None, None


def degree_pattern(n_units: int, degrees: Sequence[int]) -> Tensor:
    """``(n_units, max(degrees) + 1)`` one-hot rows: unit ``i`` is ``B_{degrees[i mod len]}``."""
    rows = torch.zeros(n_units, max(degrees) + 1, dtype=torch.float64)
    for i in range(n_units):
        rows[i, degrees[i % len(degrees)]] = 1.0
    return rows


def random_pattern(n_units: int, max_degree: int, *, generator: torch.Generator) -> Tensor:
    """``(n_units, max_degree + 1)``: rows ``N(0, I)`` on degrees ``1..max_degree``, unit norm.

    Degree 0 is left out (a constant is absorbed by the next layer's bias). With
    ``max_degree >= 2`` the rows mix odd and even degrees, so no unit has a parity.
    """
    rows = torch.zeros(n_units, max_degree + 1, dtype=torch.float64)
    draw = torch.randn(n_units, max_degree, generator=generator, dtype=torch.float64)
    rows[:, 1:] = draw / draw.norm(dim=1, keepdim=True)
    return rows


def shared_pattern(n_units: int, max_degree: int, *, generator: torch.Generator) -> Tensor:
    """``(n_units, max_degree + 1)``: one ``random_pattern`` row, the same for every unit.

    The symmetry-preserving twin of ``random_pattern``: the same kind of nonlinearity (a random
    unit-norm Legendre mix of degrees ``1..max_degree``), but every unit computes it, so any
    relabelling of the layer maps the network to itself and all ``n_units!`` permutations
    survive (sign flips do not, a mixed-parity row being neither odd nor even).
    """
    return random_pattern(1, max_degree, generator=generator).expand(n_units, -1).clone()


@dataclass(frozen=True)
class PolyActivation:
    """Per-unit activations ``phi_i(z) = sum_d c[l][i, d] B_d(tanh z)`` for every hidden layer.

    ``coefficients[l - 1]`` has shape ``(n_l, D_l + 1)``, or ``(E, n_l, D_l + 1)`` for rows per
    ensemble member. Called as ``act(z, layer)`` with ``z`` of shape ``(..., n_layer)``, or
    ``(E, N, n_layer)`` with per-member rows (the ``train_ensemble`` convention).
    """

    coefficients: tuple[Tensor, ...]
    basis: Basis = "legendre"

    def __call__(self, z: Tensor, layer: int) -> Tensor:
        return _PolyOfTanh.apply(z, self._rows(z, layer), self.basis)

    def value_and_slope(self, z: Tensor, layer: int) -> tuple[Tensor, Tensor]:
        """``(phi(z), phi'(z))`` elementwise, shapes as ``__call__``, without autograd: what
        ``ghost_optima.core.mlp`` differentiates by hand (``dL/dz = dL/dphi * phi'``)."""
        return poly_of_tanh(z, self._rows(z, layer), self.basis)

    def _rows(self, z: Tensor, layer: int) -> Tensor:
        c = self.coefficients[layer - 1].to(z.dtype)
        if z.shape[-1] != c.shape[-2]:
            n = c.shape[-2]
            raise ValueError(f"layer {layer} has {n} units, got input of width {z.shape[-1]}")
        return c

    def __repr__(self) -> str:
        widths = [len(c) for c in self.coefficients]
        return f"PolyActivation({self.basis}, widths={widths})"


def parities(coefficients: Tensor, *, tol: float = 0.0) -> list[Parity]:
    """``"odd"``, ``"even"`` or ``"none"`` per row (entries with ``|c| <= tol`` count as zero)."""
    out: list[Parity] = []
    for row in coefficients.double().abs() > tol:
        odd, even = bool(row[1::2].any()), bool(row[0::2].any())
        out.append("odd" if odd and not even else "even" if even and not odd else "none")
    return out


def _canonical(row: np.ndarray) -> tuple:
    """One representative of ``{b a^d c_d}`` over ``a, b`` in ``+-1`` (the largest tuple)."""
    d = np.arange(len(row))
    forms = [b * (a**d) * row for a in (1, -1) for b in (1, -1)]
    return max(tuple(np.round(f, 12).tolist()) for f in forms)


def symmetry_classes(coefficients: Tensor) -> np.ndarray:
    """Class label per unit: ``i ~ j`` when ``phi_j(z) = b phi_i(a z)`` for some signs."""
    keys = [_canonical(row) for row in coefficients.double().numpy()]
    index = {k: n for n, k in enumerate(dict.fromkeys(keys))}
    return np.array([index[k] for k in keys], dtype=np.int64)


def log10_group_order(activation: PolyActivation) -> dict[str, float]:
    """``{"perm": log10 prod |C|!, "sign": log10 prod |S_i|, "total": their sum}`` over layers."""
    perm = sign = 0.0
    for c in activation.coefficients:
        _, sizes = np.unique(symmetry_classes(c), return_counts=True)
        perm += sum(math.lgamma(s + 1) for s in sizes) / math.log(10)
        sign += sum(p != "none" for p in parities(c)) * LOG10_2
    return {"perm": perm, "sign": sign, "total": perm + sign}


def poly_spec(coefficients: Sequence[Tensor]) -> GroupSpec:
    """The group of an MLP whose hidden layer ``l`` has the per-unit coefficient rows
    ``coefficients[l - 1]``: each unit's parity (``parities``), permutations within
    ``symmetry_classes``. Units of one class must compute the same function (``c_j = c_i``): a
    class of rows equal only up to sign would need a flip with every exchange, which a
    ``GroupSpec`` does not declare."""
    names = [f"P{k}" for k in range(1, len(coefficients) + 1)]
    classes = {p: symmetry_classes(co) for p, co in zip(names, coefficients, strict=True)}
    for p, co in zip(names, coefficients, strict=True):
        for label in np.unique(classes[p]):
            rows = co[classes[p] == label]
            if not torch.equal(rows, rows[:1].expand_as(rows)):
                raise ValueError(f"units related only up to sign in layer {p}")
    return replace(
        mlp_permutation_spec(len(coefficients)),
        parities={p: tuple(parities(co)) for p, co in zip(names, coefficients, strict=True)},
        classes=classes,
    )
