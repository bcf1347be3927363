"""Weight-space symmetries of MLPs: permutations, sign flips, rescalings, and orbit sizes.

Claim T1 (invariance). Let an MLP with hidden widths ``n_1, ..., n_L`` compute
``h_0 = x``, ``h_l = f(W_l h_{l-1} + b_l)`` for ``l = 1..L`` and ``y = W_{L+1} h_L + b_{L+1}``.
For permutation matrices ``P_l`` (``P_0 = P_{L+1} = I``) and diagonal matrices ``D_l``,

    W_l' = D_l P_l W_l P_{l-1}^T D_{l-1}^{-1},    b_l' = D_l P_l b_l,

computes the same function whenever ``f(D z) = D f(z)`` for the allowed ``D``:

* any activation: ``D = I`` (permutations alone; Hecht-Nielsen 1990, "On the algebraic
  structure of feedforward network weight spaces");
* odd ``f`` (tanh, sin): ``D = diag(+-1)`` (sign flips; Sussmann 1992, "Uniqueness of the
  weights for minimal feedforward nets", shows that for minimal one-hidden-layer tanh nets
  these permutations and sign flips are *all* the function-preserving transformations);
* positively homogeneous ``f`` (relu, leaky_relu): ``D = diag(c)`` with ``c > 0``.

Claim T2 (orbit size). The finite group acting on a point has ``prod_l n_l!`` elements, times
``prod_l 2^{n_l}`` for odd activations. The copies are pairwise distinct unless some
non-identity element fixes the point, which happens only on a measure-zero set (e.g. two units
of a layer with identical incoming weights, bias and outgoing weights, or for odd ``f`` a unit
whose weights are all zero), so for generic weights.
Sizes are reported as ``log10`` via ``math.lgamma`` because ``n!`` overflows floats fast.

Symmetries are declared once, as data, in a ``GroupSpec`` (``ghost_optima.symmetry.spec``:
Git Re-Basin's ``PermutationSpec``, which maps each parameter to one permutation name or
``None`` per axis, plus each unit's parity, classes of exchangeable units and sorted units) and
applied by one function, :func:`apply_transform`. Its convention, that of ``torch.nn.Linear``:
axis 0 of a parameter indexes the units it *produces* (incoming side, multiplied by ``D``),
every other axis indexes the units it *consumes* (outgoing side of the previous layer, divided
by ``D``).

Parameters are a dict ``{"W1": (n1, n0), "b1": (n1,), ..., "W{L+1}": (n_out, n_L),
"b{L+1}": (n_out,)}``; ``widths = (n0, n1, ..., n_L, n_out)`` includes input and output sizes.
"""

import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ghost_optima.core import mlp
from ghost_optima.core.mlp import Params, as_generator, check_widths
from ghost_optima.symmetry.spec import GroupSpec

LOG10_2 = math.log10(2.0)


def mlp_permutation_spec(n_hidden_layers: int, activation: str | None = None) -> GroupSpec:
    """``P_l`` permutes rows of ``W_l`` and ``b_l`` and columns of ``W_{l+1}``, ``l = 1..L``;
    every unit odd when ``activation`` is (``mlp.ACTIVATIONS``: tanh, sin), else no parity
    (None: permutations only, whatever the activation)."""
    if n_hidden_layers < 0:
        raise ValueError(f"n_hidden_layers must be >= 0, got {n_hidden_layers}")
    axes: dict[str, tuple[str | None, ...]] = {}
    for layer in range(1, n_hidden_layers + 2):
        produced = f"P{layer}" if layer <= n_hidden_layers else None
        consumed = f"P{layer - 1}" if layer > 1 else None
        axes[f"W{layer}"] = (produced, consumed)
        axes[f"b{layer}"] = (produced,)
    odd = activation is not None and mlp.activation(activation).symmetry == "odd"
    names = [f"P{layer}" for layer in range(1, n_hidden_layers + 1)]
    return GroupSpec(axes, parities=dict.fromkeys(names, "odd") if odd else {})


@dataclass(frozen=True)
class Transform:
    """One element of the symmetry group: ``unit i`` of layer ``p`` becomes old unit
    ``perms[p][i]``, then its incoming weights and bias are multiplied by
    ``signs[p][i] * scales[p][i] * even_signs[p][i]`` and its outgoing weights divided by
    ``signs[p][i] * scales[p][i]``.

    ``perms`` holds a ``LongTensor`` permutation of ``range(n)`` per permutation name;
    ``signs`` (+-1, odd units), ``scales`` (> 0) and ``even_signs`` (+-1: flips of the incoming
    side alone, exact for an even activation ``phi(-z) = phi(z)``) are optional per-unit
    factors, ``None`` meaning 1.
    """

    perms: dict[str, Tensor]
    signs: dict[str, Tensor] | None = None
    scales: dict[str, Tensor] | None = None
    even_signs: dict[str, Tensor] | None = None

    def unit_factor(self, perm_name: str, *, incoming: bool = False) -> Tensor | None:
        """Per-unit multiplier of ``perm_name``'s outgoing side, ``signs * scales`` (of its
        incoming side with ``incoming``: times ``even_signs``); ``None`` if it is all ones."""
        parts = [self.signs, self.scales, self.even_signs if incoming else None]
        factors = [part[perm_name] for part in parts if part is not None]
        return math.prod(factors[1:], start=factors[0]) if factors else None


def random_transform(
    spec: GroupSpec,
    widths: Iterable[int],
    activation: str,
    generator: torch.Generator | int,
    *,
    max_scale: float = 4.0,
) -> Transform:
    """A random symmetry valid for ``activation``.

    Permutations are uniform on ``S_n``; signs (odd activations only) uniform on ``{-1, +1}``.
    The scaling group of positively homogeneous activations is non-compact, so it has no
    uniform law: scales are log-uniform on ``[1/max_scale, max_scale]``.
    """
    symmetry = mlp.activation(activation).symmetry
    generator = as_generator(generator)
    sizes = spec.sizes(_mlp_shapes(check_widths(widths, min_len=2)))
    perms = {p: torch.randperm(n, generator=generator) for p, n in sizes.items()}
    signs = scales = None
    if symmetry == "odd":
        signs = {
            p: 2.0 * torch.randint(0, 2, (n,), generator=generator, dtype=torch.float64) - 1
            for p, n in sizes.items()
        }
    elif symmetry == "positive_homogeneous":
        log_range = math.log(max_scale)
        scales = {
            p: torch.exp(
                (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1) * log_range
            )
            for p, n in sizes.items()
        }
    return Transform(perms, signs, scales)


def _mlp_shapes(widths: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(widths), start=1):
        shapes[f"W{layer}"], shapes[f"b{layer}"] = (fan_out, fan_in), (fan_out,)
    return shapes


def apply_transform(params: Params, spec: GroupSpec, transform: Transform) -> Params:
    """``theta -> g . theta`` for any group element ``g`` (the only place symmetries act).

    For each axis carrying permutation ``p``: gather by ``perms[p]``; then multiply by the unit
    factor on axis 0 (units this parameter produces; even flips included) and divide on other
    axes (units it consumes). Works for any depth, and any spec following that axis convention.
    Only the axes of ``spec`` are read: what the group allows is ``align``'s business.
    """
    sizes = spec.sizes({name: tuple(value.shape) for name, value in params.items()})
    if set(transform.perms) != set(sizes):
        raise ValueError(
            f"transform permutes {sorted(transform.perms)}, spec needs {sorted(sizes)}"
        )
    for p, n in sizes.items():
        perm = transform.perms[p]
        if perm.dtype != torch.long or not torch.equal(
            perm.sort().values, torch.arange(n, device=perm.device)
        ):
            raise ValueError(f"perms[{p!r}] must be a LongTensor permutation of range({n})")
        for part_name in ("signs", "scales", "even_signs"):
            part = getattr(transform, part_name)
            if part is not None and (p not in part or part[p].shape != (n,)):
                raise ValueError(f"{part_name}[{p!r}] must be a tensor of shape ({n},)")
    out: Params = {}
    for name, value in params.items():
        for axis, p in enumerate(spec.axes[name]):
            if p is None:
                continue
            value = value.index_select(axis, transform.perms[p].to(value.device))
            factor = transform.unit_factor(p, incoming=axis == 0)
            if factor is not None:
                shape = [1] * value.dim()
                shape[axis] = -1
                factor = factor.to(value).reshape(shape)
                value = value * factor if axis == 0 else value / factor
        out[name] = value
    return out


def compose_transforms(first: Transform, second: Transform) -> Transform:
    """The transform equal to applying ``first`` then ``second``.

    New unit ``i`` is ``second``'s old unit ``pi2[i]``, which was ``first``'s ``pi1[pi2[i]]``,
    so ``perm = pi1[pi2]`` and ``factor = d1[pi2] * d2`` (for each kind of factor).
    """

    def merged(part: str) -> dict[str, Tensor] | None:
        a, b = getattr(first, part), getattr(second, part)
        if a is None and b is None:
            return None
        return {
            p: (a[p][second.perms[p]] if a is not None else 1) * (b[p] if b is not None else 1)
            for p in first.perms
        }

    perms = {p: first.perms[p][second.perms[p]] for p in first.perms}
    return Transform(perms, merged("signs"), merged("scales"), merged("even_signs"))


def log10_orbit_size(hidden_widths: Iterable[int], activation: str) -> float:
    """``log10`` of the finite group order: ``sum_l log10(n_l!)``, ``+ sum_l n_l log10 2`` if odd.

    For positively homogeneous activations the rescalings form a continuous group (each
    point lies on a manifold of equivalent points, not in a finite orbit), so only the
    permutations are counted.
    """
    symmetry = mlp.activation(activation).symmetry
    widths = check_widths(hidden_widths, min_len=0)
    log10_perms = sum(math.lgamma(n + 1) for n in widths) / math.log(10)
    return log10_perms + (sum(widths) * LOG10_2 if symmetry == "odd" else 0.0)


def transformer_mlp_log10_orbit(
    d_model: int, d_ff: int, n_layers: int, n_heads: int
) -> dict[str, float]:
    """``log10`` of the discrete permutation group of a pre-LN transformer stack.

    Per block, with ``d_head = d_model / n_heads``, exact symmetries counted (learned absolute
    positions assumed; rotary embeddings break the query/key permutations):

    * ``mlp_hidden``: the ``d_ff`` hidden units (rows of ``W_in``, columns of ``W_out``), ``d_ff!``;
    * ``heads``: whole heads (their Q, K, V columns and ``W_O`` rows together), ``n_heads!``;
    * ``head_qk_dims``: per head, one permutation of its query and key dims jointly (scores
      ``sum_j q_j k_j`` are unchanged), ``(d_head!)^n_heads``;
    * ``head_v_dims``: per head, its value dims (``W_V`` columns and ``W_O`` rows),
      ``(d_head!)^n_heads``.

    Heads and within-head permutations form a wreath product of order
    ``n_heads! (d_head!)^(2 n_heads)``, so the parts multiply. Each part is summed over the
    ``n_layers`` blocks; ``total`` is their sum. Not counted: the continuous ``GL(d_head)``
    symmetries of ``W_Q W_K^T`` and ``W_V W_O`` (of which permutations are a finite subgroup).

    ``residual_stream`` (``d_model!``, once: one basis is shared by all blocks) is exact only if
    embeddings, unembedding, every block's input and output projections, and every LayerNorm's
    gain and bias are permuted together (LayerNorm's mean and variance are permutation
    invariant); ``total_with_residual`` adds it.
    """
    if min(d_model, d_ff, n_layers, n_heads) < 1 or d_model % n_heads:
        raise ValueError(
            f"need positive sizes with n_heads dividing d_model; got d_model={d_model}, "
            f"d_ff={d_ff}, n_layers={n_layers}, n_heads={n_heads}"
        )
    d_head = d_model // n_heads
    log10_head_dims = n_layers * n_heads * log10_orbit_size([d_head], "gelu")
    parts = {
        "mlp_hidden": n_layers * log10_orbit_size([d_ff], "gelu"),
        "heads": n_layers * log10_orbit_size([n_heads], "gelu"),
        "head_qk_dims": log10_head_dims,
        "head_v_dims": log10_head_dims,
    }
    parts["total"] = sum(parts.values())
    parts["residual_stream"] = log10_orbit_size([d_model], "gelu")
    parts["total_with_residual"] = parts["total"] + parts["residual_stream"]
    return parts


def architecture_table() -> list[dict]:
    """Orbit sizes of reference architectures, one dict per row.

    Keys: ``name``, ``hidden_widths``, ``activation``, ``n_params``, ``log10_orbit_perm``
    (permutations only) and ``log10_orbit_with_signs`` (as if the hidden activation were odd,
    e.g. tanh; hypothetical for relu and gelu rows). Anchors: 6x16 gives 8.39e79 (rigl,
    ``rigl/experimental/jax/README.md``, MNIST_FC model); 784-512-512-512-10 gives 10^3499.6
    (Git Re-Basin MNIST MLP). The transformer row uses :func:`transformer_mlp_log10_orbit`'s
    ``total`` (MLP, head and head-dim permutations, no residual stream) and counts the
    parameters of its blocks (attention, MLP, LayerNorms), not embeddings or the final LayerNorm.
    """
    mlps = [
        ("tiny 2-3-2", (2, 3, 2), "tanh"),
        ("2x32 (MNIST-1D)", (40, 32, 32, 10), "relu"),
        ("2x64 (MNIST-1D)", (40, 64, 64, 10), "relu"),
        ("6x16 (MNIST, rigl weight symmetry)", (784, *[16] * 6, 10), "relu"),
        ("784-512-512-10", (784, 512, 512, 10), "relu"),
        ("784-512-512-512-10 (Git Re-Basin MNIST)", (784, 512, 512, 512, 10), "relu"),
    ]
    rows = []
    for name, widths, activation in mlps:
        hidden = widths[1:-1]
        n_params = sum((fan_in + 1) * fan_out for fan_in, fan_out in itertools.pairwise(widths))
        rows.append(
            _table_row(name, hidden, activation, n_params, log10_orbit_size(hidden, "relu"))
        )
    d_model, d_ff, n_layers, n_heads = 768, 3072, 12, 12
    attention_params = (d_model + 1) * 3 * d_model + (d_model + 1) * d_model  # QKV, output
    mlp_params = (d_model + 1) * d_ff + (d_ff + 1) * d_model
    layer_norm_params = 2 * 2 * d_model  # two LayerNorms, gain and bias each
    rows.append(
        _table_row(
            "GPT-2-small-like transformer (768/3072, 12 layers, 12 heads)",
            (d_ff,) * n_layers,
            "gelu",
            n_layers * (attention_params + mlp_params + layer_norm_params),
            transformer_mlp_log10_orbit(d_model, d_ff, n_layers, n_heads)["total"],
        )
    )
    return rows


def _table_row(
    name: str, hidden_widths: tuple[int, ...], activation: str, n_params: int, log10_perm: float
) -> dict:
    return {
        "name": name,
        "hidden_widths": hidden_widths,
        "activation": activation,
        "n_params": n_params,
        "log10_orbit_perm": log10_perm,
        "log10_orbit_with_signs": log10_perm + sum(hidden_widths) * LOG10_2,
    }


def enumerate_orbit(
    params: Params, spec: GroupSpec, activation: str, *, max_size: int = 10**6
) -> Iterator[Params]:
    """Every copy ``g . theta`` for ``g`` in the finite group of ``activation`` (T2).

    All permutations of every permuted axis, times all sign patterns for odd activations;
    rescalings are continuous and not enumerated. The first copy is ``theta`` itself.
    Raises ``ValueError`` (before yielding) if the group has more than ``max_size`` elements.
    """
    odd = mlp.activation(activation).symmetry == "odd"
    sizes = spec.sizes({name: tuple(value.shape) for name, value in params.items()})
    order = math.prod(math.factorial(n) * (2**n if odd else 1) for n in sizes.values())
    if order > max_size:
        raise ValueError(f"orbit has {order} elements (> max_size={max_size}); use a smaller net")
    return _orbit_copies(params, spec, sizes, odd)


def _orbit_copies(
    params: Params, spec: GroupSpec, sizes: dict[str, int], odd: bool
) -> Iterator[Params]:
    names = list(sizes)
    perm_choices = itertools.product(*(itertools.permutations(range(sizes[p])) for p in names))
    sign_choices = (
        itertools.product(*(itertools.product((1.0, -1.0), repeat=sizes[p]) for p in names))
        if odd
        else [None]
    )
    for perms, signs in itertools.product(perm_choices, sign_choices):
        transform = Transform(
            perms={p: torch.tensor(perm) for p, perm in zip(names, perms, strict=True)},
            signs=None
            if signs is None
            else {
                p: torch.tensor(s, dtype=torch.float64) for p, s in zip(names, signs, strict=True)
            },
        )
        yield apply_transform(params, spec, transform)


def orbit_distinctness(copies: Iterable[Params]) -> float:
    """``min_{i != j} ||theta_i - theta_j||_2`` over flattened copies (all with the same keys).

    Uses exact pairwise differences (``torch.cdist`` without the matmul shortcut, whose
    cancellation error would hide small distances); memory is ``O(k^2)`` for ``k`` copies.
    """
    copies = list(copies)
    if len(copies) < 2:
        raise ValueError(f"need at least two copies, got {len(copies)}")
    names = sorted(copies[0])
    if any(sorted(copy) != names for copy in copies):
        raise ValueError("all copies must have the same parameter names")
    flat = torch.stack(
        [torch.cat([copy[name].reshape(-1).to(torch.float64) for name in names]) for copy in copies]
    )
    distances = torch.cdist(flat, flat, compute_mode="donot_use_mm_for_euclid_dist")
    distances.fill_diagonal_(math.inf)
    return distances.min().item()
