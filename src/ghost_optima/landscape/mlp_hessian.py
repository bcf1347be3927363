"""Exact Hessian-vector products of a tanh MLP classifier's loss, written out by hand.

The loss is that of :func:`ghost_optima.sgd.network_chains.mlp_objective` on a flat parameter
vector (``W1, b1, ..., W{L+1}, b{L+1}`` in that order, each row-major):

    L(theta) = (1/N) sum_j CE(F_j, y_j) + (wd / 2) ||theta||^2,
    a_0 = X (N, n_0),  z_l = a_{l-1} W_l^T + b_l,  a_l = tanh(z_l)  (l <= L),
    F = a_L W_{L+1}^T + b_{L+1}  (N, C).

Pearlmutter's R-operator (1994, "Fast exact multiplication by the Hessian") gives
``H v = R{grad L}`` for a direction ``v = (V_l, u_l)``: carry ``R{.} = d/dt (.)(theta + t v)``
through the forward pass and the backward pass. With ``s = softmax(F)``, ``g_{L+1} = (s - Y)/N``
the gradient at the output, ``e_{l-1} = g_l W_l`` and ``g_{l-1} = e_{l-1} * (1 - a_{l-1}^2)``:

    R{z_l} = R{a_{l-1}} W_l^T + a_{l-1} V_l^T + u_l,      R{a_l} = (1 - a_l^2) * R{z_l},
    R{g_{L+1}} = s * (R{F} - rowsum(s * R{F})) / N,
    R{dW_l} = R{g_l}^T a_{l-1} + g_l^T R{a_{l-1}},       R{db_l} = colsum(R{g_l}),
    R{e_{l-1}} = R{g_l} W_l + g_l V_l,
    R{g_{l-1}} = R{e_{l-1}} * (1 - a_{l-1}^2) - 2 e_{l-1} * a_{l-1} * R{a_{l-1}},

plus ``wd v``; ``R{a_0} = 0``. Everything that does not depend on ``v`` (activations, softmax,
backward signals, ``2 e_l a_l``) is formed once per point, and the ``(N, n_l)`` pieces of each
product go into buffers kept from product to product, so one product costs two matmuls of the
first layer's size, four of each later layer's and a few in-place passes: on digits at width
256, about 11 ms against a gradient's 14-17 ms (one core, the other idle; the version that
allocated its temporaries took 20-24 ms) and ``torch.func``'s forward-over-reverse product's 41
ms. It agrees with :func:`ghost_optima.landscape.hessian.hvp` to float64 rounding (tests).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ghost_optima.core.mlp import Params, hidden_and_output
from ghost_optima.landscape.hessian import flatten_params

__all__ = ["MLPHessian"]


class MLPHessian:
    """``v -> H v`` of a tanh MLP classifier's weight-decayed mean cross-entropy at one point.

    ``params``: ``{"W1": (n_1, n_0), "b1": (n_1,), ..., "W{L+1}": (C, n_L), "b{L+1}": (C,)}``,
    the point (float64 for Newton or Lanczos work); ``X``: ``(N, n_0)``; ``y``: ``(N,)`` class
    indices; ``weight_decay``: the ``wd`` of ``(wd / 2) ||theta||^2``. Calling the object with a
    flat ``v`` of shape ``(d,)`` (the parameters' order) returns ``H v``, shape ``(d,)``.
    """

    def __init__(self, params: Params, X: Tensor, y: Tensor, weight_decay: float = 0.0) -> None:
        params = {k: v.detach() for k, v in params.items()}
        self.names = list(params)
        _, self.unflatten = flatten_params(params)
        depth = len(params) // 2
        self.weights = [params[f"W{i}"] for i in range(1, depth + 1)]
        self.weight_decay = weight_decay
        hidden, out = hidden_and_output(params, X.to(self.weights[0].dtype), "tanh")
        n = X.shape[0]
        self.softmax = torch.softmax(out, dim=1)
        g = self.softmax.clone()
        g[torch.arange(n), y] -= 1.0
        g /= n
        # a[l] = a_l and slope[l] = 1 - a_l^2 (l = 1..L; a_0 = X has no slope)
        self.a, self.n = [X.to(out.dtype), *hidden], n
        self.slope = [None, *(1.0 - h * h for h in hidden)]
        # g[l - 1] = dL/dz_l (l = 1..L+1), e[l] = dL/da_l (l = 1..L), from the output down
        # (the products need e only through curvature[l] = 2 e_l a_l, R{a_l}'s factor in
        # R{g_(l-1)}, so e is not kept)
        self.g, e = [None] * (depth - 1) + [g], [None] * depth
        for layer in range(depth - 1, 0, -1):
            e[layer] = self.g[layer] @ self.weights[layer]
            self.g[layer - 1] = e[layer] * self.slope[layer]
        self.curvature = [None, *((2.0 * e_l) * h for e_l, h in zip(e[1:], hidden, strict=True))]
        # per hidden layer, the (N, n_l) buffers every product reuses (fresh megabytes cost page
        # faults each time)
        self._r_a = [None, *(torch.empty_like(h) for h in hidden)]
        self._r_e = [None, *(torch.empty_like(h) for h in hidden)]
        self._spare = [None, *(torch.empty_like(h) for h in hidden)]

    def __call__(self, v: Tensor) -> Tensor:
        pieces = self.unflatten(v.to(self.a[0].dtype))
        depth = len(self.weights)
        V = [pieces[f"W{i}"] for i in range(1, depth + 1)]
        u = [pieces[f"b{i}"] for i in range(1, depth + 1)]
        # forward: R{a_l}, with R{a_0} = 0
        r_a = [None]
        for layer in range(1, depth):
            r_z = torch.matmul(self.a[layer - 1], V[layer - 1].T, out=self._r_a[layer])
            r_z += u[layer - 1]
            if r_a[-1] is not None:
                r_z += torch.matmul(r_a[-1], self.weights[layer - 1].T, out=self._spare[layer])
            r_a.append(r_z.mul_(self.slope[layer]))
        r_out = self.a[depth - 1] @ V[depth - 1].T + u[depth - 1]
        if r_a[-1] is not None:
            r_out += r_a[-1] @ self.weights[depth - 1].T
        s = self.softmax
        r_g = s * (r_out - (s * r_out).sum(1, keepdim=True)) / self.n
        # backward: R{dW_l}, R{db_l}, from the output layer down
        grads: dict[str, Tensor] = {}
        for layer in range(depth, 0, -1):
            g, a_in, r_a_in = self.g[layer - 1], self.a[layer - 1], r_a[layer - 1]
            r_dw = r_g.T @ a_in
            if r_a_in is not None:
                r_dw += g.T @ r_a_in
            grads[f"W{layer}"], grads[f"b{layer}"] = r_dw, r_g.sum(0)
            if layer > 1:
                spare = self._spare[layer - 1]
                r_e = torch.matmul(r_g, self.weights[layer - 1], out=self._r_e[layer - 1])
                r_e += torch.matmul(g, V[layer - 1], out=spare)
                r_e.mul_(self.slope[layer - 1])
                r_g = r_e.sub_(torch.mul(self.curvature[layer - 1], r_a_in, out=spare))
        flat = torch.cat([grads[k].reshape(-1) for k in self.names])
        return flat + self.weight_decay * v if self.weight_decay else flat
