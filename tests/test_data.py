import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ghost_optima.core.data import Dataset, digits, flip_labels, mnist1d, teacher_student


def _assert_same(a: Dataset, b: Dataset) -> None:
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert (a.task, a.n_classes, a.name) == (b.task, b.n_classes, b.name)


def test_digits_shapes_split_and_standardization():
    data = digits(seed=0, test_fraction=0.2)
    assert data.x_train.shape == (1438, 64) and data.x_test.shape == (359, 64)
    assert data.y_train.shape == (1438,) and data.y_train.dtype == torch.int64
    assert data.x_train.dtype == torch.float32
    assert (data.task, data.n_classes, data.n_in, data.n_out) == ("classification", 10, 64, 10)
    assert set(data.y_train.tolist()) == set(range(10))
    varying = data.x_train.std(0) > 0
    torch.testing.assert_close(data.x_train.mean(0), torch.zeros(64), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        data.x_train.std(0, unbiased=False)[varying],
        torch.ones(int(varying.sum())),
        atol=1e-4,
        rtol=0,
    )


def test_digits_is_a_deterministic_partition_of_sklearn_digits():
    from sklearn.datasets import load_digits

    _assert_same(digits(seed=3), digits(seed=3))
    a, b = digits(seed=3), digits(seed=4)
    assert not torch.equal(a.y_test, b.y_test)
    # Every image lands in exactly one of train and test: label counts add up.
    counts = np.bincount(load_digits().target, minlength=10)
    total = torch.bincount(a.y_train, minlength=10) + torch.bincount(a.y_test, minlength=10)
    np.testing.assert_array_equal(total.numpy(), counts)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_teacher_student_labels_come_from_the_teacher(task):
    data, teacher = teacher_student(300, 100, 5, (7, 3), task, seed=1)
    assert data.x_train.shape == (300, 5) and data.x_test.shape == (100, 5)
    assert teacher["W1"].shape == (7, 5) and teacher["W2"].shape == (3, 7)
    # Independent forward pass of the documented teacher.
    f = torch.tanh(data.x_train @ teacher["W1"].T + teacher["b1"]) @ teacher["W2"].T
    f = f + teacher["b2"]
    if task == "regression":
        assert data.y_train.shape == (300, 3) and data.n_classes == 0 and data.n_out == 3
        torch.testing.assert_close(data.y_train, f)
    else:
        assert data.y_train.dtype == torch.int64 and data.n_classes == 3
        assert torch.equal(data.y_train, f.argmax(1))
    again, teacher_again = teacher_student(300, 100, 5, (7, 3), task, seed=1)
    _assert_same(data, again)
    assert all(torch.equal(teacher[k], teacher_again[k]) for k in teacher)


def test_teacher_student_noise():
    clean, _ = teacher_student(400, 10, 4, (6, 1), "regression", seed=2)
    noisy, _ = teacher_student(400, 10, 4, (6, 1), "regression", seed=2, noise_std=0.5)
    assert torch.equal(clean.x_train, noisy.x_train)
    residual = noisy.y_train - clean.y_train
    assert 0.4 < residual.std().item() < 0.6


def test_mnist1d_small_deterministic_and_leaves_global_rng_alone():
    import random

    np_state, py_state = np.random.get_state(), random.getstate()
    data = mnist1d(seed=5, n_samples=200)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert random.getstate() == py_state
    assert data.x_train.shape == (160, 40) and data.x_test.shape == (40, 40)
    assert data.y_train.dtype == torch.int64 and data.n_classes == 10
    torch.testing.assert_close(data.x_train.mean(0), torch.zeros(40), atol=1e-5, rtol=0)
    _assert_same(data, mnist1d(seed=5, n_samples=200))
    assert not torch.equal(data.x_train, mnist1d(seed=6, n_samples=200).x_train)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 300),
    rate=st.floats(0.0, 1.0),
    n_classes=st.integers(2, 12),
    seed=st.integers(0, 2**31 - 1),
)
def test_flip_labels_exact_rate_and_mask(n, rate, n_classes, seed):
    y = torch.randint(0, n_classes, (n,), generator=torch.Generator().manual_seed(seed))
    y_noisy, mask = flip_labels(y, rate, n_classes, seed=seed)
    assert mask.dtype == torch.bool and mask.shape == (n,)
    assert int(mask.sum()) == round(rate * n)
    assert torch.equal(y_noisy != y, mask)
    assert int(y_noisy.min()) >= 0 and int(y_noisy.max()) < n_classes
    y_again, mask_again = flip_labels(y, rate, n_classes, seed=seed)
    assert torch.equal(y_again, y_noisy) and torch.equal(mask_again, mask)


def test_flip_labels_new_class_is_uniform_over_the_others():
    y = torch.zeros(20000, dtype=torch.int64)
    y_noisy, mask = flip_labels(y, 1.0, 5, seed=0)
    counts = torch.bincount(y_noisy, minlength=5)
    assert counts[0] == 0 and mask.all()
    assert (counts[1:] - 5000).abs().max() < 300  # ~4 standard deviations
