"""Train an ensemble of identical MLPs at once, one member per seed, with stacked weights.

Parameters follow the book's MLP convention ``{"W1": (n_1, n_0), "b1": (n_1,), ...,
"W{L+1}": (n_out, n_L), "b{L+1}": (n_out,)}``; an ensemble of ``E`` members stacks them along a
leading axis, ``W_l: (E, n_l, n_{l-1})``, ``b_l: (E, n_l)``. The forward pass of all members is
one batched matmul per layer,

    h_0 = x,   h_l = act(h_{l-1} W_l^T + b_l)  (l <= L),   f = h_L W_{L+1}^T + b_{L+1},

with ``x`` shared ``(N, n_0)`` or per member ``(E, N, n_0)``. The loss of member ``e`` is the
mean over its minibatch of the per-example loss (cross-entropy for classification, the mean
over outputs of the squared error for regression); the sum over members is differentiated
once, which gives each member exactly its own gradient because members share nothing.

Member ``e`` with seed ``s_e`` is an ordinary single-model run: ``member_generators(s_e)``
gives one generator for its initialisation (``ghost_optima.core.mlp.init_mlp``, PyTorch's
``nn.Linear`` default) and one for its minibatch order (a fresh
``torch.randperm`` of the training set every epoch, consumed in batches of ``batch_size``, the
last one possibly short). SGD (optionally with heavy-ball momentum) and Adam follow the update
rules of ``torch.optim.SGD`` and ``torch.optim.Adam`` (coupled L2 weight decay), with a learning
rate per member, so a seed-by-learning-rate grid is one ensemble.

Optional hooks let the same trainer serve variants of the architecture (the remedies of
``ghost_optima.remedies.protocol``), each off by default so plain runs are unchanged bit for bit:

* ``activation`` may be a callable ``act(z, layer)`` of the pre-activations ``z`` of hidden
  layer ``layer`` (1-based), shape ``(E, N, n_l)``, instead of a name: per-unit activations
  such as ``ghost_optima.remedies.orthopoly.PolyActivation``;
* ``masks`` fixes a sparsity pattern: ``W_l`` starts as ``W_l * M_l`` and its gradient is
  multiplied by ``M_l``, so masked weights stay exactly zero under SGD, momentum, Adam and
  weight decay alike (``ghost_optima.remedies.masks``, ``ghost_optima.remedies.modular``);
* ``reparam`` trains other coordinates ``raw`` with ``params = reparam.to_params(raw)``
  (``ghost_optima.remedies.reorder.SortedBiases``);
* ``step_hook(step, raw, state)`` runs after every optimizer step and may edit the parameters
  and the optimizer state in place (``ghost_optima.remedies.reorder.CanonicalSortHook``).

Speed (``benchmarks/bench_trainer.py``): no autograd graph, the gradient written by hand
(``mlp.ensemble_loss_grad``: one batched matmul per product, examples in columns, ``tanh`` by
NumPy), except through a reparameterization (unless ``identity_to_params``: a start-only
rescaling) or a callable activation without ``value_and_slope``. Updates run in place on flat
buffers (``ghost_optima.core.optimizer``). The training loop and evaluation are timed as kernels of
``ghost_optima.core.timing`` (with their flops).
"""

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch

from ghost_optima.core import timing
from ghost_optima.core.data import Dataset, Task
from ghost_optima.core.mlp import (
    ActivationLike,
    Params,
    ensemble_loss_grad,
    ensemble_outputs,
    init_mlp,
    loss_per_example,
)
from ghost_optima.core.optimizer import FlatOptimizer, flat_buffer


class Reparameterization(Protocol):
    """Coordinates ``raw`` in which training happens, for stacked parameter dicts.

    ``to_params(raw)`` must be differentiable; ``to_raw(params)`` may relabel hidden units (a
    symmetry, so the initial network function is unchanged) before inverting.
    """

    def to_raw(self, params: Params) -> Params: ...

    def to_params(self, raw: Params) -> Params: ...


StepHook = Callable[[int, Params, dict], None]


def member_generators(seed: int) -> tuple[torch.Generator, torch.Generator]:
    """``(init_generator, order_generator)`` of the member with this seed.

    Two independent streams: ``torch.Generator().manual_seed(k)`` with
    ``k = SeedSequence([seed, stream]).generate_state(1)[0]``, stream 0 for the initial weights
    and stream 1 for the minibatch order.
    """

    def stream(i: int) -> torch.Generator:
        key = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        return torch.Generator().manual_seed(key)

    return stream(0), stream(1)


def stack_params(params_list: Sequence[Params]) -> Params:
    """Stack single-network dicts along a new leading ensemble axis."""
    return {k: torch.stack([p[k] for p in params_list]) for k in params_list[0]}


def member(stacked: Params, i: int) -> Params:
    """The single-network dict of member ``i`` (a detached copy)."""
    return {k: v[i].detach().clone() for k, v in stacked.items()}


_CHUNK = 4096  # examples per forward pass when evaluating, to bound activation memory


def _scan(
    stacked: Params, x: torch.Tensor, y: torch.Tensor, activation: ActivationLike, task: Task
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-example losses ``(E, N)`` and, for classification, correctness ``(E, N)``."""
    losses, correct = [], []
    members = next(iter(stacked.values())).shape[0]
    flops = 2 * members * len(x) * sum(v[0].numel() for k, v in stacked.items() if k[0] == "W")
    with torch.no_grad(), timing.kernel("evaluation", flops):
        for start in range(0, len(x), _CHUNK):
            xs, ys = x[start : start + _CHUNK], y[start : start + _CHUNK]
            out = ensemble_outputs(stacked, xs, activation)
            losses.append(loss_per_example(out, ys, task))
            if task == "classification":
                correct.append(out.argmax(-1) == ys)
    return torch.cat(losses, 1), torch.cat(correct, 1) if correct else None


def per_example_loss(
    stacked: Params, x: torch.Tensor, y: torch.Tensor, activation: ActivationLike, task: Task
) -> torch.Tensor:
    """Loss of every example for every member, shape ``(E, N)`` (no gradient)."""
    return _scan(stacked, x, y, activation, task)[0]


def evaluate(
    stacked: Params, x: torch.Tensor, y: torch.Tensor, activation: ActivationLike, task: Task
) -> tuple[np.ndarray, np.ndarray]:
    """``(loss, accuracy)`` per member, each of shape ``(E,)``; accuracy is NaN for regression."""
    losses, correct = _scan(stacked, x, y, activation, task)
    loss = losses.mean(1).double().numpy()
    acc = np.full(len(loss), np.nan) if correct is None else correct.double().mean(1).numpy()
    return loss, acc


@dataclass(frozen=True)
class History:
    """Per-epoch metrics ``(epochs + 1, E)``, row 0 at initialisation (``record_every`` > 1: fewer).

    ``noisy_train_loss`` and ``clean_train_loss`` are the mean training losses over the examples
    inside and outside ``label_noise_mask`` (None when no mask was given).
    """

    train_loss: np.ndarray
    test_loss: np.ndarray
    test_acc: np.ndarray
    noisy_train_loss: np.ndarray | None = None
    clean_train_loss: np.ndarray | None = None


@dataclass(frozen=True)
class EnsembleResult:
    """Final stacked parameters, the per-epoch history, and what produced them."""

    params: Params
    history: History
    seeds: tuple[int, ...]
    lrs: np.ndarray
    widths: tuple[int, ...]
    activation: ActivationLike
    optimizer: str
    step_seconds: float = 0.0  # wall time inside the minibatch loop (no evaluation), all steps
    step_cpu_seconds: float = 0.0  # CPU time of this process over the same loop (all threads)
    n_steps: int = 0  # optimizer steps taken (each one step of every member)


@dataclass(frozen=True)
class TrainConfig:
    """How an ensemble is trained: the optimizer and its settings, epochs, minibatches, precision.

    ``lr`` is one learning rate for all members or one per member (repeat a seed with several
    learning rates to sweep them from a common start). ``weight_decay`` is coupled L2, as in
    ``torch.optim``; ``momentum`` is heavy-ball momentum of SGD (ignored by Adam). The history
    gets a row every ``record_every`` epochs and after the last (evaluation is not free).
    """

    epochs: int
    batch_size: int
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float | Sequence[float] = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    dtype: torch.dtype = torch.float32
    record_every: int = 1


@dataclass(frozen=True)
class TrainHooks:
    """What turns the plain trainer into a variant of the architecture (module docstring).

    ``masks`` maps weight names (``"W1"``, ...) to 0/1 tensors of shape ``(n_l, n_{l-1})``
    (shared) or ``(E, n_l, n_{l-1})``; unnamed weights are dense. ``reparam`` trains other
    coordinates; ``step_hook`` sees the trained coordinates (``raw``) and the optimizer state
    keyed like them after every step.
    """

    masks: Mapping[str, torch.Tensor] | None = None
    reparam: Reparameterization | None = None
    step_hook: StepHook | None = None


def train_ensemble(
    data: Dataset,
    widths: Sequence[int],
    activation: ActivationLike,
    seeds: Sequence[int],
    config: TrainConfig,
    hooks: TrainHooks | None = None,
    *,
    label_noise_mask: torch.Tensor | None = None,
    progress: bool | Callable[[int, History], None] = False,
) -> EnsembleResult:
    """Train one MLP of ``widths = (n_0, ..., n_out)`` per seed, all members in lockstep.

    Training runs on ``data.y_train`` as given (flip labels beforehand for label-noise runs;
    ``label_noise_mask`` then only splits the recorded training loss into noisy and clean
    examples). ``progress=True`` prints one line per epoch; a callable receives
    ``(epoch, history_so_far)`` instead. With ``hooks=None`` the run is a plain one.
    """
    hooks = hooks or TrainHooks()
    optimizer, dtype, batch_size = config.optimizer, config.dtype, config.batch_size
    masks, reparam, step_hook = hooks.masks, hooks.reparam, hooks.step_hook
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"unknown optimizer {optimizer!r}")
    if widths[0] != data.n_in or widths[-1] != data.n_out:
        raise ValueError(
            f"widths {tuple(widths)} do not fit {data.n_in} inputs and {data.n_out} outputs"
        )
    seeds = tuple(int(s) for s in seeds)
    lrs = np.broadcast_to(np.asarray(config.lr, dtype=float), (len(seeds),)).copy()

    gens = [member_generators(s) for s in seeds]
    init = stack_params([init_mlp(widths, g_init, dtype=dtype) for g_init, _ in gens])
    mask_t = _check_masks(masks, init, dtype)
    if reparam is not None:
        init = {k: v.detach() for k, v in reparam.to_raw(init).items()}
        reparam = None if getattr(reparam, "identity_to_params", False) else reparam
    init = {k: v * mask_t[k] if k in mask_t else v for k, v in init.items()}
    # Trained coordinates, gradients and optimizer state: flat buffers, seen through views.
    flat_p, params = flat_buffer(init, init)
    flat_g, grads = flat_buffer(init)
    opt, work = FlatOptimizer(init, config, lrs), {}

    def network() -> Params:  # the network's parameters as a function of the trained ones
        return params if reparam is None else reparam.to_params(params)

    def gradients(x: torch.Tensor, y: torch.Tensor) -> None:
        """``dL/d raw`` into ``grads``: by hand, then through ``to_params`` by autograd."""
        if reparam is None:
            ensemble_loss_grad(params, x, y, activation, data.task, grads, work)
            return
        raw = {k: v.detach().requires_grad_() for k, v in params.items()}
        with torch.enable_grad():
            net = reparam.to_params(raw)
        by_net = ensemble_loss_grad(net, x, y, activation, data.task)
        pulled = torch.autograd.grad(list(net.values()), list(raw.values()), list(by_net.values()))
        for k, g in zip(raw, pulled, strict=True):
            grads[k].copy_(g)

    x_train, x_test = data.x_train.to(dtype), data.x_test.to(dtype)
    y_train, y_test = data.y_train, data.y_test
    if data.task == "regression":
        y_train, y_test = y_train.to(dtype), y_test.to(dtype)
    n = len(x_train)
    if label_noise_mask is not None and label_noise_mask.shape != (n,):
        raise ValueError(f"label_noise_mask must have shape ({n},)")

    rows: dict[str, list[np.ndarray]] = {k: [] for k in History.__dataclass_fields__}

    def record() -> History:
        with torch.no_grad():
            net = network()
        losses = per_example_loss(net, x_train, y_train, activation, data.task)
        rows["train_loss"].append(losses.mean(1).double().numpy())
        test_loss, test_acc = evaluate(net, x_test, y_test, activation, data.task)
        rows["test_loss"].append(test_loss)
        rows["test_acc"].append(test_acc)
        if label_noise_mask is not None:
            rows["noisy_train_loss"].append(losses[:, label_noise_mask].mean(1).double().numpy())
            rows["clean_train_loss"].append(losses[:, ~label_noise_mask].mean(1).double().numpy())
        return History(**{k: np.stack(v) if v else None for k, v in rows.items()})

    history = record()
    step, seconds = 0, {"step_seconds": 0.0, "step_cpu_seconds": 0.0}
    epoch_flops = 6 * timing.dense_macs(widths) * n * len(seeds)  # forward and backward
    for epoch in range(1, config.epochs + 1):
        started, started_cpu = time.perf_counter(), time.process_time()
        order = torch.stack([torch.randperm(n, generator=g_order) for _, g_order in gens])
        with timing.kernel("training", epoch_flops):
            for start in range(0, n, batch_size):
                idx = order[:, start : start + batch_size]
                gradients(_take(x_train, idx), _take(y_train, idx))
                for k, m in mask_t.items():
                    grads[k].mul_(m)
                step += 1
                with torch.no_grad():
                    opt.step(flat_p, flat_g, step)
                    if step_hook is not None:
                        step_hook(step, params, opt.state)
        seconds["step_seconds"] += time.perf_counter() - started
        seconds["step_cpu_seconds"] += time.process_time() - started_cpu
        history = history if epoch % config.record_every and epoch < config.epochs else record()
        if callable(progress):
            progress(epoch, history)
        elif progress:
            print(
                f"epoch {epoch}/{config.epochs}: train loss {history.train_loss[-1].mean():.4g}, "
                f"test loss {history.test_loss[-1].mean():.4g}, "
                f"test acc {history.test_acc[-1].mean():.4g}"
            )
    with torch.no_grad():
        final = {k: v.detach().clone() for k, v in network().items()}
    return EnsembleResult(
        final, history, seeds, lrs, tuple(widths), activation, optimizer, n_steps=step, **seconds
    )


def _take(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``t[idx]`` by ``index_select`` (four times faster than advanced indexing here)."""
    return t.index_select(0, idx.reshape(-1)).view(*idx.shape, *t.shape[1:])


def _check_masks(
    masks: Mapping[str, torch.Tensor] | None, params: Params, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """Masks as 0/1 tensors of ``dtype``, checked to name weights and broadcast to them."""
    if not masks:
        return {}
    out = {}
    for name, mask in masks.items():
        if not name.startswith("W") or name not in params:
            raise ValueError(
                f"masks may only name weights {sorted(k for k in params if k[0] == 'W')}"
            )
        target = params[name].shape
        if tuple(mask.shape) not in (tuple(target), tuple(target[1:])):
            raise ValueError(
                f"mask {name} has shape {tuple(mask.shape)}, weight has {tuple(target)}"
            )
        mask = mask.to(dtype)
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"mask {name} must hold only 0 and 1")
        out[name] = mask
    return out
