from dataclasses import replace
from itertools import permutations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from ghost_optima.core.data import corrupt_inputs, digits, flip_labels_pairwise
from ghost_optima.core.mlp import ensemble_forward
from ghost_optima.core.train import TrainConfig, TrainHooks, train_ensemble
from ghost_optima.labels import scores as ls
from ghost_optima.selection.recipes import Recipe


@given(st.integers(2, 60), st.integers(2, 8), st.integers(0, 100))
def test_kfold_partitions_the_examples(n, k, seed):
    if k > n:
        with pytest.raises(ValueError):
            ls.kfold(n, k, seed=seed)
        return
    folds = ls.kfold(n, k, seed=seed)
    assert len(folds) == k
    assert np.array_equal(np.sort(np.concatenate(folds)), np.arange(n))
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1


def test_disagreement_and_loss_against_brute_force():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=(5, 30))  # (M, n, C)
    y = rng.integers(0, 4, 30)
    pred = probs.argmax(-1)
    brute = [
        np.mean([pred[a, i] != pred[b, i] for a, b in permutations(range(5), 2)]) for i in range(30)
    ]
    np.testing.assert_allclose(ls.disagreement(probs), brute)
    loss = [-np.mean([np.log(probs[m, i, y[i]]) for m in range(5)]) for i in range(30)]
    np.testing.assert_allclose(ls.oof_loss(probs, y), loss)


def test_margin_recorder_against_a_loop():
    data = digits(seed=0)
    data = replace(data, x_train=data.x_train[:120], y_train=data.y_train[:120])
    config = TrainConfig(epochs=3, batch_size=40, optimizer="adam", lr=1e-2)
    snaps, margins = [], ls.MarginRecorder(data.x_train, data.y_train, "relu", 3)

    def hook(step, params, state):
        margins(step, params, state)
        if step % 3 == 0:
            snaps.append({k: v.detach().clone() for k, v in params.items()})

    train_ensemble(data, (64, 8, 10), "relu", [1, 2], config, TrainHooks(step_hook=hook))
    expected = torch.zeros(2, 120, dtype=torch.float64)
    for p in snaps:
        z = ensemble_forward(p, data.x_train, "relu").double()
        for m in range(2):
            for i in range(120):
                yi = int(data.y_train[i])
                others = [z[m, i, c] for c in range(10) if c != yi]
                expected[m, i] += z[m, i, yi] - max(others)
    assert len(snaps) == 3
    torch.testing.assert_close(margins.mean(), expected / 3, rtol=1e-5, atol=1e-5)


def test_out_of_fold_scores_never_read_the_example_itself():
    """Changing one training label leaves that example's out-of-fold probabilities unchanged:
    the models that predict it never trained on it."""
    data = digits(seed=0)
    data = replace(data, x_train=data.x_train[:150], y_train=data.y_train[:150])
    recipe = Recipe((64, 8, 10), "relu", TrainConfig(3, 50, "adam", 1e-2))
    a = ls.cross_fit(data, recipe, [0, 1], n_folds=3, seed=4)
    y = data.y_train.clone()
    y[7] = (y[7] + 1) % 10
    b = ls.cross_fit(replace(data, y_train=y), recipe, [0, 1], n_folds=3, seed=4)
    np.testing.assert_array_equal(a.probs[:, 7], b.probs[:, 7])
    assert not np.allclose(a.probs, b.probs)  # the changed label did reach the other folds
    np.testing.assert_allclose(a.probs.sum(-1), 1.0)


def test_confident_learning_flags_a_planted_error():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 40)
    probs = np.full((2, 120, 3), 0.05)
    probs[:, np.arange(120), y] = 0.9
    wrong = rng.choice(120, 10, replace=False)
    y_given = y.copy()
    y_given[wrong] = (y[wrong] + 1) % 3
    flags, score = ls.confident_learning(probs, y_given)
    assert set(np.flatnonzero(flags)) == set(wrong)
    assert score[wrong].min() > np.delete(score, wrong).max()


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 1000))
def test_auroc_estimate_point_matches_sklearn_and_lies_in_its_interval(seed):
    rng = np.random.default_rng(seed)
    masks = [rng.random(80) < 0.3 for _ in range(2)]
    for m in masks:
        m[:2] = [True, False]
    scores = [rng.normal(size=80) + m for m in masks]
    est = ls.auroc_estimate(scores, masks, n_boot=200, seed=seed)
    expected = np.mean([roc_auc_score(m, s) for s, m in zip(scores, masks, strict=True)])
    assert est.value == pytest.approx(expected)
    assert est.lo <= est.value <= est.hi


@given(st.integers(2, 12), st.floats(0, 1), st.integers(0, 500))
def test_pairwise_flips_follow_one_cyclic_confusion(k, rate, seed):
    y = torch.arange(200) % k
    y_noisy, mask = flip_labels_pairwise(y, rate, k, seed=seed)
    assert int(mask.sum()) == round(rate * 200)
    assert torch.equal(y_noisy != y, mask)
    targets = {}
    for a, b in zip(y[mask].tolist(), y_noisy[mask].tolist(), strict=True):
        assert targets.setdefault(a, b) == b  # one confusing class per class
    if rate == 1.0:  # every class flipped: the map is a single cycle through all classes
        c, seen = 0, set()
        while c not in seen:
            seen.add(c)
            c = targets[c]
        assert len(seen) == k


def test_corrupt_inputs_touches_exactly_the_masked_rows():
    x = torch.randn(100, 5, generator=torch.Generator().manual_seed(0))
    x_noisy, mask = corrupt_inputs(x, 0.25, 3.0, seed=2)
    assert int(mask.sum()) == 25
    assert torch.equal(x_noisy[~mask], x[~mask])
    assert bool((x_noisy[mask] != x[mask]).all())
    assert (x_noisy[mask] - x[mask]).std().item() == pytest.approx(3.0, rel=0.3)
