"""The multilayer perceptron every chapter trains: parameters, initialisation, forward, losses.

Parameters are a dict ``{"W1": (n_1, n_0), "b1": (n_1,), ..., "W{L+1}": (n_out, n_L),
"b{L+1}": (n_out,)}`` (the layout of ``torch.nn.Linear``); ``widths = (n_0, n_1, ..., n_L,
n_out)`` includes the input and output sizes. An ensemble of ``E`` networks stacks the same
dict along a leading axis, ``W_l: (E, n_l, n_{l-1})``, ``b_l: (E, n_l)``. The network computes

    h_0 = x,   h_l = f(h_{l-1} W_l^T + b_l)  (l = 1..L),   out = h_L W_{L+1}^T + b_{L+1}.

``f`` is a named :class:`Activation` (which also declares the per-unit symmetry it admits, read
by ``ghost_optima.symmetry.group``) or a callable ``act(z, layer)`` of the pre-activations of hidden
layer ``layer`` (1-based), for per-unit activations such as ``ghost_optima.remedies.orthopoly``.

The ensemble trainer does not go through autograd: :func:`ensemble_loss_grad` runs the forward
and backward passes by hand, with one batched matmul per product, in the column layout that
suits these thin matrices best (see its docstring); :func:`ensemble_outputs` is its no-grad
forward for evaluation.
"""

import itertools
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

Params = dict[str, Tensor]
Task = Literal["classification", "regression"]
Symmetry = Literal["odd", "positive_homogeneous", "none"]


@dataclass(frozen=True)
class Activation:
    """A pointwise nonlinearity and the per-unit symmetry it admits.

    ``symmetry`` is ``"odd"`` when ``f(-z) = -f(z)`` (sign flips are exact),
    ``"positive_homogeneous"`` when ``f(c z) = c f(z)`` for ``c > 0`` (rescalings are exact),
    and ``"none"`` when only permutations are exact.
    """

    name: str
    fn: Callable[[Tensor], Tensor]
    symmetry: Symmetry


ACTIVATIONS: dict[str, Activation] = {
    activation.name: activation
    for activation in (
        Activation("tanh", torch.tanh, "odd"),
        Activation("sin", torch.sin, "odd"),
        Activation("relu", torch.relu, "positive_homogeneous"),
        Activation("leaky_relu", F.leaky_relu, "positive_homogeneous"),
        Activation("gelu", F.gelu, "none"),
        # sigmoid(-z) = 1 - sigmoid(z): a flip is exact only if the next layer's bias absorbs
        # the constant (b' = b + W[:, i]), an affine move ghost_optima.symmetry.group does not
        # model.
        Activation("sigmoid", torch.sigmoid, "none"),
        Activation("softplus", F.softplus, "none"),
    )
}
"""Known activations. Orbit counts are of the declared group only: ``sin`` has further
symmetries (bias shifts by ``2 pi``, ``z -> pi - z``) that are not counted."""

LayerActivation = Callable[[Tensor, int], Tensor]
"""A hidden layer's nonlinearity: ``act(z, layer)``, ``z`` of shape ``(..., n_layer)``."""
ActivationLike = str | LayerActivation


def activation(name: str) -> Activation:
    """The registered activation called ``name``; a clear error for an unknown one."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def layer_activation(act: ActivationLike) -> LayerActivation:
    """``act(z, layer)`` for an activation name (the same function for every layer) or callable."""
    if callable(act):
        return act
    fn = activation(act).fn
    return lambda z, layer: fn(z)


def as_generator(generator: torch.Generator | int) -> torch.Generator:
    """A generator as given, or a fresh one seeded with the int."""
    if isinstance(generator, torch.Generator):
        return generator
    return torch.Generator().manual_seed(generator)


def check_widths(widths: Iterable[int], *, min_len: int) -> tuple[int, ...]:
    widths = tuple(widths)
    if len(widths) < min_len or any(not isinstance(n, int) or n < 1 for n in widths):
        raise ValueError(f"widths must be at least {min_len} positive ints, got {widths}")
    return widths


def mlp_widths(params: Params) -> tuple[int, ...]:
    """``(n0, n1, ..., n_out)`` of a single-network dict, checking that the shapes chain."""
    n_layers = len(params) // 2
    expected = {f"{kind}{layer}" for layer in range(1, n_layers + 1) for kind in "Wb"}
    if n_layers == 0 or set(params) != expected:
        raise ValueError(
            f"MLP params must be W1, b1, ..., W{{L+1}}, b{{L+1}}; got {sorted(params)}"
        )
    widths: list[int] = []
    for layer in range(1, n_layers + 1):
        weight, bias = params[f"W{layer}"], params[f"b{layer}"]
        fan_in = widths[-1] if widths else None
        if (
            weight.dim() != 2
            or bias.shape != weight.shape[:1]
            or fan_in not in (None, weight.shape[1])
        ):
            raise ValueError(
                f"layer {layer}: W{layer} {tuple(weight.shape)} and b{layer} "
                f"{tuple(bias.shape)} do not chain with widths {tuple(widths)}"
            )
        widths += [weight.shape[0]] if widths else [weight.shape[1], weight.shape[0]]
    return tuple(widths)


def init_mlp(
    widths: Iterable[int],
    generator: torch.Generator | int,
    dtype: torch.dtype = torch.float64,
    masks: Mapping[str, Tensor] | None = None,
) -> Params:
    """PyTorch's ``nn.Linear`` default: ``W_l, b_l ~ U(-1/sqrt(k), 1/sqrt(k))``, ``k = n_{l-1}``.

    With ``masks`` (``{"W_l": (n_l, n_{l-1}) of 0/1}``, any subset of layers), unit ``i`` of a
    masked layer takes ``k = sum_j M_l[i, j]``, the inputs it really reads, and its masked
    weights are zero: the pre-activation variance ``k * bound^2 / 3 * E[h^2]`` is then that of
    the dense layer, whatever the density (a unit that reads nothing keeps ``k = 1``). The
    random draws are the same with and without masks. Continuous i.i.d. draws make the weights
    generic (T2's copies distinct) with probability 1.
    """
    widths = check_widths(widths, min_len=2)
    generator = as_generator(generator)
    masks = dict(masks or {})
    params: Params = {}
    for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(widths), start=1):
        mask = masks.pop(f"W{layer}", None)
        if mask is None:
            bound = torch.tensor(fan_in**-0.5, dtype=dtype)
        else:
            if tuple(mask.shape) != (fan_out, fan_in):
                raise ValueError(f"mask of W{layer} must be {(fan_out, fan_in)}, got {mask.shape}")
            bound = mask.to(dtype).sum(1).clamp(min=1.0).rsqrt()
        for name, shape in ((f"W{layer}", (fan_out, fan_in)), (f"b{layer}", (fan_out,))):
            draw = 2 * torch.rand(shape, generator=generator, dtype=dtype) - 1
            params[name] = draw * (bound.unsqueeze(-1) if draw.dim() == 2 else bound)
        if mask is not None:
            params[f"W{layer}"] = params[f"W{layer}"] * mask.to(dtype)
    if masks:
        raise ValueError(f"masks name no layer of widths {widths}: {sorted(masks)}")
    return params


def mlp_forward(params: Params, x: Tensor, activation: str) -> Tensor:
    """``(batch, n0) -> (batch, n_out)`` of one network (checks shapes)."""
    widths = mlp_widths(params)
    if x.dim() != 2 or x.shape[1] != widths[0]:
        raise ValueError(f"x must have shape (batch, {widths[0]}), got {tuple(x.shape)}")
    return hidden_and_output(params, x, activation)[1]


def ensemble_forward(stacked: Params, x: Tensor, activation: ActivationLike) -> Tensor:
    """Outputs ``(E, N, n_out)`` of all members on ``x``: ``(N, n_0)`` or ``(E, N, n_0)``.

    One batched matmul (``torch.baddbmm``) per layer for all members at once.
    """
    return hidden_and_output(stacked, x, activation)[1]


def hidden_and_output(
    params: Params, x: Tensor, activation: ActivationLike
) -> tuple[list[Tensor], Tensor]:
    """Post-activations ``[h_1, ..., h_L]`` and the output of one network or an ensemble.

    One network (``W_l`` of rank 2): ``x`` is ``(N, n_0)``. An ensemble (rank 3): ``x`` is
    ``(N, n_0)``, shared, or ``(E, N, n_0)``, per member.
    """
    act = layer_activation(activation)
    n_layers = len(params) // 2
    stacked = params["W1"].dim() == 3
    if stacked and x.dim() == 2:
        x = x.expand(params["W1"].shape[0], *x.shape)
    hidden, h = [], x
    for layer in range(1, n_layers + 1):
        w, b = params[f"W{layer}"], params[f"b{layer}"]
        h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2)) if stacked else h @ w.T + b
        if layer < n_layers:
            h = act(h, layer)
            hidden.append(h)
    return hidden, h


def loss_per_example(out: Tensor, y: Tensor, task: Task) -> Tensor:
    """Per-example losses of outputs ``(..., N, C)``: shape ``(..., N)``.

    Classification (targets ``(N,)``, or ``(E, N)`` per member): the cross-entropy
    ``logsumexp_k f_k - f_y`` (written out: several times faster on CPU than
    ``F.cross_entropy`` for few classes). Regression (targets ``(N, C)`` or ``(E, N, C)``):
    ``mean_k (f_k - y_k)^2``.
    """
    if task == "classification":
        target = y.expand(out.shape[:-1]) if y.dim() < out.dim() - 1 else y
        return torch.logsumexp(out, -1) - out.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return (out - y).pow(2).mean(-1)


def _tanh_(z: Tensor) -> Tensor:
    """``tanh`` in place. On CPU through NumPy's vectorized loop: torch 2.13's CPU ``tanh`` took
    2.9 ns per float32 element on the book's machine against NumPy's 0.4 ns, both within one
    ulp of the float64 value (largest errors 3e-8 and 6e-8). Tensors NumPy cannot view (other
    devices, autograd or functorch wrappers) keep ``torch.tanh_``."""
    if z.device.type != "cpu" or z.requires_grad:
        return z.tanh_()
    try:
        values = z.numpy()
    except (RuntimeError, TypeError):
        return z.tanh_()
    np.tanh(values, out=values)
    return z


_aten = torch.ops.aten
_FROM_OUTPUT: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor, Tensor], Tensor]]] = {
    "tanh": (_tanh_, lambda dh, h: _aten.tanh_backward.grad_input(dh, h, grad_input=dh)),
    "sigmoid": (
        torch.sigmoid_,
        lambda dh, h: _aten.sigmoid_backward.grad_input(dh, h, grad_input=dh),
    ),
    "relu": (
        torch.relu_,
        lambda dh, h: _aten.threshold_backward.grad_input(dh, h, 0, grad_input=dh),
    ),
}
"""Activations applied in place whose derivative is a function of the output ``h``: the
derivative turns ``dh`` into ``dh (1 - h^2)``, ``dh h (1 - h)``, ``dh [h > 0]`` in place
(autograd's own kernels). A callable activation with a method ``value_and_slope(z, layer)``
(``(act(z), act'(z))`` elementwise, e.g. ``ghost_optima.remedies.orthopoly.PolyActivation``)
is differentiated by hand too, ``dh act'(z)``; every other one by autograd, layer by layer."""

Backward = Callable[[Tensor], Tensor]


def _slot(work: dict[str, Tensor] | None, key: str, shape: tuple[int, ...], like: Tensor):
    """The reusable buffer ``work[key]`` of this shape (made when missing), or None (a fresh
    tensor) without ``work``: reused memory spares the page faults of fresh megabytes."""
    if work is None:
        return None
    buffer = work.get(key)
    if buffer is None or buffer.shape != shape or buffer.dtype != like.dtype:
        buffer = work[key] = torch.empty(shape, dtype=like.dtype)
    return buffer


def _forward_columns(
    params: Params, x: Tensor, activation: ActivationLike, keep: bool, work: dict | None = None
) -> tuple[list[Tensor], list[Backward], Tensor]:
    """Column layout forward of a stacked ensemble: ``H_l = h_l^T`` of shape ``(E, n_l, N)``,

        H_0 = x^T,   Z_l = W_l H_{l-1} + b_l 1^T (one ``baddbmm``),   H_l = act(Z_l),

    and ``F = Z_{L+1}`` of shape ``(E, n_out, N)``. Returns ``[H_0, ..., H_L]``, the map
    ``dL/dH_l -> dL/dZ_l`` of each hidden layer (when ``keep``; it may overwrite its argument)
    and ``F``. With ``work``, each ``Z_l`` goes into a reused buffer (``_slot``).
    """
    n_layers, n_members = len(params) // 2, params["W1"].shape[0]
    h = x.mT if x.dim() == 3 else x.T.expand(n_members, *x.T.shape)
    fast = _FROM_OUTPUT.get(activation) if isinstance(activation, str) else None
    act = layer_activation(activation)
    slope_of = getattr(activation, "value_and_slope", None)  # act and act' at once, by hand
    inputs, backs = [h], []
    for layer in range(1, n_layers + 1):
        w, b = params[f"W{layer}"], params[f"b{layer}"]
        buffer = _slot(work, f"Z{layer}", (*w.shape[:2], h.shape[-1]), h)
        z = torch.baddbmm(b.unsqueeze(-1), w, h, out=buffer)
        if layer == n_layers:
            return inputs, backs, z
        if fast is not None:
            h = fast[0](z)
            backs.append(lambda dh, h=h, derivative=fast[1]: derivative(dh, h))
        elif keep and slope_of is not None:  # units last, as everywhere else
            out, slope = slope_of(z.mT, layer)
            backs.append(lambda dh, slope=slope: dh.mul_(slope.mT))
            h = out.mT
        else:  # act sees units last, (E, N, n_l), as everywhere else
            z_units = z.mT.detach().requires_grad_(keep)
            with torch.enable_grad() if keep else nullcontext():
                out = act(z_units, layer)
            backs.append(lambda dh, z=z_units, out=out: torch.autograd.grad(out, z, dh.mT)[0].mT)
            h = out.detach().mT
        inputs.append(h)
    raise AssertionError("unreachable")


def ensemble_outputs(params: Params, x: Tensor, activation: ActivationLike) -> Tensor:
    """``ensemble_forward`` without autograd, for evaluation: ``(E, N, n_out)``."""
    with torch.no_grad():
        return _forward_columns(params, x, activation, keep=False)[2].mT.contiguous()


def ensemble_loss_grad(
    params: Params,
    x: Tensor,
    y: Tensor,
    activation: ActivationLike,
    task: Task,
    out: Params | None = None,
    work: dict[str, Tensor] | None = None,
) -> Params:
    """Gradient of ``L = sum_e mean_n loss(f_e(x_en), y_en)`` for each member, by hand.

    ``params`` stacked ``(E, ...)`` (no autograd needed), ``x`` ``(E, N, n_0)`` or ``(N, n_0)``,
    targets as in :func:`loss_per_example`. In the column layout of ``_forward_columns``
    (``H_l = h_l^T``, ``(E, n_l, N)``), with ``G_l = dL/dZ_l``:

        G_{L+1} = (softmax(F) - onehot(y)) / N      (cross-entropy, softmax over classes)
                = 2 (F - y^T) / (n_out N)           (mean squared error)
        dW_l = G_l H_{l-1}^T,   db_l = G_l 1,   G_{l-1} = act'(Z_{l-1}) * (W_l^T G_l),

    each product one ``bmm`` over the members (the input's own gradient is not formed), written
    into ``out`` (contiguous tensors shaped like ``params``) when given; ``work`` (a dict kept
    from call to call) lends reused buffers for ``Z_l`` and ``G_l``. Member ``e`` gets exactly
    the gradient of its own mean loss, since members share nothing; the values equal autograd's
    up to float rounding. Columns (examples last) let MKL run the ``n_out x n_L`` products two
    to three times faster than with examples first.
    """
    params = {k: v.detach() for k, v in params.items()}
    inputs, backs, f = _forward_columns(params, x.detach(), activation, True, work)
    return _backward(params, inputs, backs, f, y, task, out, work)


def ensemble_value_and_grad(
    params: Params,
    x: Tensor,
    y: Tensor,
    activation: ActivationLike,
    task: Task,
    work: dict[str, Tensor] | None = None,
) -> tuple[Tensor, Params]:
    """Each member's mean loss ``mean_n loss(f_e(x_en), y_en)``, shape ``(E,)``, and the
    gradients of :func:`ensemble_loss_grad`, from one forward pass (arguments as there).

    What a full-batch optimiser needs at every evaluation (e.g. the L-BFGS polish of
    ``ghost_optima.sgd.network_chains``): 1.5 to 1.75 times faster than reverse-mode autograd
    through :func:`mlp_forward` for one tanh network on digits (``benchmarks/bench_polish.py``).
    """
    params = {k: v.detach() for k, v in params.items()}
    inputs, backs, f = _forward_columns(params, x.detach(), activation, True, work)
    value = loss_per_example(f.mT, y, task).mean(-1)
    return value, _backward(params, inputs, backs, f, y, task, None, work)


def _backward(
    params: Params,
    inputs: list[Tensor],
    backs: list[Backward],
    f: Tensor,
    y: Tensor,
    task: Task,
    out: Params | None,
    work: dict[str, Tensor] | None,
) -> Params:
    """The backward pass of :func:`ensemble_loss_grad` from ``_forward_columns``' results."""
    n = f.shape[-1]
    if task == "classification":
        target = (y.expand(f.shape[0], n) if y.dim() == 1 else y).unsqueeze(1)
        g = torch.softmax(f, 1)
        g.scatter_add_(1, target, torch.full(target.shape, -1.0, dtype=g.dtype)).div_(n)
    else:
        g = (f - y.mT).mul_(2 / (f.shape[1] * n))
    grads = dict.fromkeys(params) if out is None else out
    for layer in range(len(inputs), 0, -1):
        w, b = f"W{layer}", f"b{layer}"
        grads[w] = torch.bmm(g, inputs[layer - 1].mT, out=grads[w])
        grads[b] = torch.sum(g, -1, out=grads[b])
        if layer > 1:
            dh = _slot(work, f"G{layer - 1}", inputs[layer - 1].shape, g)
            g = backs[layer - 2](torch.bmm(params[w].mT, g, out=dh))
    return grads
