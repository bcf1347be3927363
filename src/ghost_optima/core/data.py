"""Data sets for the experiments: a planted teacher, two small real tasks, and label noise.

Every loader is a deterministic function of its ``seed``; none touches global random state
(the ``mnist1d`` generator seeds Python's and NumPy's global generators itself, so its state is
saved and restored around the call). Inputs are ``float32`` tensors of shape ``(n, n_in)``;
classification targets are ``int64`` class indices of shape ``(n,)``, regression targets are
``float32`` of shape ``(n, n_out)``.

* ``teacher_student``: inputs ``x ~ N(0, I)`` labelled by a random MLP (the teacher), so the
  global optimum of a student of at least the teacher's width is known exactly.
* ``digits``: the 8x8 handwritten digits bundled with scikit-learn (1797 images, 10 classes).
* ``mnist1d``: the procedural MNIST-1D benchmark (Greydanus & Kobak, "Scaling down deep
  learning with MNIST-1D", ICML 2024), generated offline by its own package.
* ``flip_labels``: symmetric label noise with an exact number of flipped labels;
  ``with_label_noise`` applies it to a data set's training labels.
* ``remedy_datasets``: the three data sets of the remedy chapters.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ghost_optima.core.mlp import Task, mlp_forward


@dataclass(frozen=True)
class Dataset:
    """A fixed train/test split. ``n_classes`` is the number of classes (0 for regression)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    task: Task
    n_classes: int
    name: str

    @property
    def n_in(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_out(self) -> int:
        """Width of the output layer a model needs: classes, or regression targets."""
        return self.n_classes if self.task == "classification" else self.y_train.shape[1]


def _standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x - mean) / std`` per feature with training statistics; constant features get std 1."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std


def teacher_student(
    n_train: int,
    n_test: int,
    n_in: int,
    teacher_widths: Sequence[int],
    task: Task,
    *,
    seed: int,
    noise_std: float = 0.0,
    activation: str = "tanh",
) -> tuple[Dataset, dict[str, torch.Tensor]]:
    """A planted data set labelled by a random teacher MLP; returns ``(data, teacher_params)``.

    ``teacher_widths = (n_1, ..., n_L, n_out)`` lists the teacher's widths after the input. The
    teacher has ``W_l ~ N(0, 1/n_{l-1})`` and ``b_l ~ N(0, 0.01)`` (parameter dict
    ``{"W1": (n_1, n_in), "b1": (n_1,), ...}``) and inputs are ``x ~ N(0, I_{n_in})``. With
    ``f`` the teacher's output and ``eps ~ N(0, noise_std^2)`` elementwise:

    * regression: ``y = f(x) + eps``, shape ``(n, n_out)``;
    * classification: ``y = argmax_k (f(x) + eps)_k``, ``n_classes = n_out``.

    ``activation`` is any name known to ``ghost_optima.core.mlp.ACTIVATIONS``. One
    ``torch.Generator`` seeded with ``seed`` draws, in order: the teacher, the training inputs,
    the test inputs, then the noise.
    """
    if task not in ("regression", "classification"):
        raise ValueError(f"unknown task {task!r}")
    gen = torch.Generator().manual_seed(seed)
    widths = (n_in, *teacher_widths)
    teacher: dict[str, torch.Tensor] = {}
    for layer in range(1, len(widths)):
        fan_in, fan_out = widths[layer - 1], widths[layer]
        teacher[f"W{layer}"] = torch.randn(fan_out, fan_in, generator=gen) / fan_in**0.5
        teacher[f"b{layer}"] = 0.1 * torch.randn(fan_out, generator=gen)
    x_train = torch.randn(n_train, n_in, generator=gen)
    x_test = torch.randn(n_test, n_in, generator=gen)
    with torch.no_grad():
        f_train = mlp_forward(teacher, x_train, activation)
        f_test = mlp_forward(teacher, x_test, activation)
    f_train = f_train + noise_std * torch.randn(f_train.shape, generator=gen)
    f_test = f_test + noise_std * torch.randn(f_test.shape, generator=gen)
    if task == "regression":
        data = Dataset(x_train, f_train, x_test, f_test, task, 0, "teacher_student")
    else:
        data = Dataset(
            x_train,
            f_train.argmax(1),
            x_test,
            f_test.argmax(1),
            task,
            widths[-1],
            "teacher_student",
        )
    return data, teacher


def _classification(x_tr, y_tr, x_te, y_te, n_classes: int, name: str) -> Dataset:
    x_tr, x_te = _standardize(np.asarray(x_tr, np.float64), np.asarray(x_te, np.float64))
    return Dataset(
        torch.as_tensor(x_tr, dtype=torch.float32),
        torch.as_tensor(np.asarray(y_tr), dtype=torch.int64),
        torch.as_tensor(x_te, dtype=torch.float32),
        torch.as_tensor(np.asarray(y_te), dtype=torch.int64),
        "classification",
        n_classes,
        name,
    )


def digits(*, seed: int, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 8x8 digits (64 features, 10 classes), split by a seeded permutation.

    The test set is the first ``round(test_fraction * 1797)`` images of
    ``np.random.default_rng(seed).permutation(1797)``, the rest train; features are standardized
    with the training mean and standard deviation.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    n = len(bunch.target)
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test_fraction * n))
    test, train = order[:n_test], order[n_test:]
    return _classification(
        bunch.data[train], bunch.target[train], bunch.data[test], bunch.target[test], 10, "digits"
    )


def mnist1d(*, seed: int, n_samples: int = 5000) -> Dataset:
    """MNIST-1D (Greydanus & Kobak): 40-sample 1-D signals of 10 digit templates.

    Generated procedurally by ``mnist1d.data.make_dataset`` with ``args.seed = seed`` and
    ``args.num_samples = n_samples`` (the package's default 80/20 train/test split), never
    downloaded; features are then standardized with training statistics.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    args.num_samples = n_samples
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        raw = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return _classification(raw["x"], raw["y"], raw["x_test"], raw["y_test"], 10, "mnist1d")


def flip_labels(
    y: torch.Tensor, rate: float, n_classes: int, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric label noise: returns ``(y_noisy, flip_mask)``.

    Exactly ``m = round(rate * n)`` examples, chosen uniformly without replacement, get a label
    drawn uniformly from the ``n_classes - 1`` *other* classes (``(y + u) mod K`` with
    ``u ~ U{1, ..., K-1}``), so ``y_noisy != y`` exactly where ``flip_mask`` is true.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must lie in [0, 1], got {rate}")
    if n_classes < 2:
        raise ValueError("flipping labels needs at least two classes")
    gen = torch.Generator().manual_seed(seed)
    n = len(y)
    m = int(round(rate * n))
    flipped = torch.randperm(n, generator=gen)[:m]
    shift = torch.randint(1, n_classes, (m,), generator=gen)
    y_noisy = y.clone()
    y_noisy[flipped] = (y[flipped] + shift) % n_classes
    mask = torch.zeros(n, dtype=torch.bool)
    mask[flipped] = True
    return y_noisy, mask


def remedy_datasets(*, seed: int, mnist1d_samples: int, ts_train: int) -> dict[str, Dataset]:
    """The three data sets of the remedy chapters, by display name.

    Teacher-student: 16 Gaussian inputs labelled by the argmax of a random 16-8-4 tanh teacher
    (``ts_train`` training and as many test points); digits (scikit-learn, 8x8); MNIST-1D with
    ``mnist1d_samples`` signals (80/20 split).
    """
    ts, _ = teacher_student(ts_train, ts_train, 16, (8, 4), "classification", seed=seed)
    return {
        "teacher-student": ts,
        "digits": digits(seed=seed),
        "MNIST-1D": mnist1d(seed=seed, n_samples=mnist1d_samples),
    }


def with_label_noise(data: Dataset, rate: float, *, seed: int) -> tuple[Dataset, torch.Tensor]:
    """``data`` with a fraction ``rate`` of its training labels flipped (``flip_labels``) and the
    flip mask; test labels stay clean. With one ``seed``, the flips at rate ``r/2`` are the first
    half of those at rate ``r`` (same permutation and draws), so halving the rate cleans half."""
    y, flipped = flip_labels(data.y_train, rate, data.n_classes, seed=seed)
    return replace(data, y_train=y), flipped


def flip_labels_pairwise(
    y: torch.Tensor, rate: float, n_classes: int, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-conditional ("pair") label noise: returns ``(y_noisy, flip_mask)``.

    A seeded random cyclic order ``c_0 -> c_1 -> ... -> c_{K-1} -> c_0`` of the classes fixes
    one confusing class ``T(c)`` per class; exactly ``m = round(rate * n)`` examples, chosen
    uniformly without replacement, get ``T(y)``. The noise matrix is class-dependent (row ``c``
    puts all its off-diagonal mass on ``T(c)``), the "pair flipping" of Han et al. (2018,
    Co-teaching) and the structured noise that confident learning (Northcutt et al. 2021)
    targets, unlike :func:`flip_labels`, whose off-diagonal mass is uniform.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must lie in [0, 1], got {rate}")
    if n_classes < 2:
        raise ValueError("flipping labels needs at least two classes")
    gen = torch.Generator().manual_seed(seed)
    cycle = torch.randperm(n_classes, generator=gen)
    target = torch.empty(n_classes, dtype=torch.int64)
    target[cycle] = torch.roll(cycle, -1)
    n = len(y)
    flipped = torch.randperm(n, generator=gen)[: int(round(rate * n))]
    y_noisy = y.clone()
    y_noisy[flipped] = target[y[flipped]]
    mask = torch.zeros(n, dtype=torch.bool)
    mask[flipped] = True
    return y_noisy, mask


def corrupt_inputs(
    x: torch.Tensor, rate: float, scale: float, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sensor noise on a subset of examples: returns ``(x_noisy, corrupted_mask)``.

    Exactly ``m = round(rate * n)`` rows of ``x`` ``(n, d)``, chosen uniformly without
    replacement, get ``x_i + scale * eps_i`` with ``eps_i ~ N(0, I_d)`` (on standardized
    inputs, ``scale`` is the noise-to-signal ratio per feature); labels are untouched.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must lie in [0, 1], got {rate}")
    gen = torch.Generator().manual_seed(seed)
    n = len(x)
    rows = torch.randperm(n, generator=gen)[: int(round(rate * n))]
    x_noisy = x.clone()
    x_noisy[rows] = x[rows] + scale * torch.randn(x[rows].shape, generator=gen, dtype=x.dtype)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[rows] = True
    return x_noisy, mask
