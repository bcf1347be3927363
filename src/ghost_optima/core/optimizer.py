"""The optimizers of the ensemble trainer (``ghost_optima.core.train``), on flat buffers.

Every member's parameters, gradients and optimizer state live end to end in one flat buffer
each (``flat_buffer``), seen through per-tensor views, so an update is a few whole-buffer
kernels in place, whatever the number of members and layers.
"""

import math

import numpy as np
import torch

from ghost_optima.core.mlp import Params


def flat_buffer(like: Params, fill: Params | None = None) -> tuple[torch.Tensor, Params]:
    """One buffer holding tensors shaped like ``like`` end to end, name after name, and the
    contiguous view of each; zeros, or the values of ``fill`` broadcast to each shape."""
    sizes = [v.numel() for v in like.values()]
    flat = torch.zeros(sum(sizes), dtype=next(iter(like.values())).dtype)
    views = {k: part.view(like[k].shape) for k, part in zip(like, flat.split(sizes), strict=True)}
    for k, v in (fill or {}).items():
        views[k].copy_(v.expand_as(views[k]))
    return flat, views


class FlatOptimizer:
    """SGD with heavy-ball momentum or Adam on flat buffers, in place, a few whole-buffer kernels.

    SGD as ``torch.optim.SGD`` (dampening 0, no Nesterov): ``g += wd p``, ``buf = m buf + g``
    (``buf`` starts at 0, so ``buf = g`` at the first step), ``p -= lr buf``. Adam as
    ``torch.optim.Adam`` (betas 0.9, 0.999, eps 1e-8, coupled L2 weight decay): ``g += wd p``,
    ``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g^2``,
    ``p -= lr / (1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps)``. ``lr`` is one number, or a
    buffer of per-element rates when members differ. ``config`` is the run's
    ``ghost_optima.core.train.TrainConfig``. ``state`` is what ``step_hook`` sees: per
    name, SGD's momentum buffer or Adam's pair ``(m, v)`` (views into the flat buffers).
    """

    def __init__(self, like: Params, config, lrs: np.ndarray):
        self.config, self.lr = config, float(lrs[0])
        if (lrs != lrs[0]).any():
            col = torch.as_tensor(lrs, dtype=config.dtype)
            fill = {k: col.view(-1, *[1] * (v.dim() - 1)) for k, v in like.items()}
            self.lr = flat_buffer(like, fill)[0]
        n_slots = 3 if config.optimizer == "adam" else int(config.momentum != 0)
        flats = [flat_buffer(like) for _ in range(n_slots)]
        self.slots, views = [f for f, _ in flats], [v for _, v in flats]
        pairs = {k: (views[0][k], views[1][k]) for k in like} if n_slots == 3 else {}
        self.state: dict = dict(views[0]) if n_slots == 1 else pairs

    def step(self, p: torch.Tensor, g: torch.Tensor, t: int) -> None:
        """Step ``t`` (1-based) of the flat parameters ``p`` with the flat gradient ``g``."""
        config, lr = self.config, self.lr
        if config.weight_decay:
            g.add_(p, alpha=config.weight_decay)
        if config.optimizer == "sgd":
            if config.momentum:
                g = torch.add(g, self.slots[0], alpha=config.momentum, out=self.slots[0])
            p.addcmul_(g, lr, value=-1) if isinstance(lr, torch.Tensor) else p.add_(g, alpha=-lr)
            return
        (beta1, beta2), eps, (m, v, denom) = (0.9, 0.999), 1e-8, self.slots
        bias1, bias2_sqrt = 1 - beta1**t, math.sqrt(1 - beta2**t)
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        torch.sqrt(v, out=denom).add_(eps * bias2_sqrt)  # = c (sqrt(v) / c + eps), c = sqrt(1-b2^t)
        if isinstance(lr, torch.Tensor):
            p.addcdiv_(m, denom.div_(lr), value=-bias2_sqrt / bias1)
        else:
            p.addcdiv_(m, denom, value=-lr * bias2_sqrt / bias1)
