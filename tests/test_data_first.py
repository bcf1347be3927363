from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import precision_score, recall_score

from ghost_optima.core.data import digits, flip_labels, teacher_student
from ghost_optima.core.train import TrainConfig
from ghost_optima.labels import data_first
from ghost_optima.remedies import fair, protocol
from ghost_optima.selection.recipes import Recipe
from ghost_optima.selection.validation import validation_split


def _setup():
    data = digits(seed=0)
    data = replace(data, x_train=data.x_train[:240], y_train=data.y_train[:240])
    return data, Recipe((64, 16, 10), "relu", TrainConfig(6, 40, "adam", 1e-2))


def _poisoned(data):
    return replace(data, x_test=torch.full_like(data.x_test, float("nan")), y_test=-data.y_test - 1)


@pytest.fixture(scope="module")
def small():
    d, _ = teacher_student(200, 80, 8, (6, 3), "classification", seed=0)
    return d, protocol.architecture("baseline", d, protocol.RemedyConfig(width=8))


GRID = [0.003, 0.03, 0.3]


def test_cleaning_removes_exactly_the_flagged_examples_and_finds_flips():
    data, recipe = _setup()
    y, flipped = flip_labels(data.y_train, 0.25, 10, seed=3)
    noisy = replace(data, y_train=y)
    cleaned, flags, fit = data_first.clean_labels(noisy, recipe, [0, 1], n_folds=3, seed=0)
    assert fit.probs.shape == (2, len(noisy.x_train), 10)
    keep = torch.as_tensor(~flags)
    assert torch.equal(cleaned.x_train, noisy.x_train[keep])
    assert torch.equal(cleaned.y_train, noisy.y_train[keep])
    assert torch.equal(cleaned.x_test, noisy.x_test)
    assert flipped.numpy()[flags].mean() > 0.25  # flagged examples are flips more often than chance
    again, flags_b, _ = data_first.clean_labels(_poisoned(noisy), recipe, [0, 1], n_folds=3, seed=0)
    np.testing.assert_array_equal(flags, flags_b)  # the test set is never read


def test_remove_examples_keeps_the_others_in_order_and_refuses_a_wrong_shape():
    data, _ = _setup()
    drop = np.arange(len(data.y_train)) % 3 == 0
    kept = data_first.remove_examples(data, drop)
    idx = [i for i in range(len(data.y_train)) if i % 3]
    assert torch.equal(kept.x_train, data.x_train[idx])
    assert torch.equal(kept.y_train, data.y_train[idx])
    assert torch.equal(kept.x_test, data.x_test) and torch.equal(kept.y_test, data.y_test)
    with pytest.raises(ValueError):
        data_first.remove_examples(data, drop[:-1])


@given(st.integers(1, 60), st.data())
@settings(max_examples=40, deadline=None)
def test_random_drop_draws_exactly_k_and_every_example_alike(n, draw):
    k = draw.draw(st.integers(0, n))
    drop = data_first.random_drop(n, k, seed=7)
    assert drop.dtype == bool and drop.shape == (n,) and drop.sum() == k
    np.testing.assert_array_equal(drop, data_first.random_drop(n, k, seed=7))
    with pytest.raises(ValueError):
        data_first.random_drop(n, n + 1, seed=0)


def test_random_drop_is_uniform_over_examples():
    hits = sum(data_first.random_drop(10, 3, seed=s).astype(int) for s in range(3000))
    # each example is dropped with probability 3/10: 900 expected of 3000, sd about 25
    assert np.all(np.abs(hits - 900) < 6 * np.sqrt(3000 * 0.3 * 0.7))


@given(st.integers(1, 50), st.integers(1, 500), st.integers(1, 500), st.integers(1, 64))
def test_matched_epochs_gives_the_steps_of_the_larger_set(epochs, n_before, n_after, batch):
    got = data_first.matched_epochs(epochs, n_before, n_after, batch)
    steps, per_epoch = epochs * -(-n_before // batch), -(-n_after // batch)
    best = min(range(1, 4 * steps + 2), key=lambda e: (abs(e * per_epoch - steps), e))
    assert abs(got * per_epoch - steps) == abs(best * per_epoch - steps) and got >= 1


def test_cleaning_keeps_the_candidate_of_lowest_out_of_fold_loss():
    data, recipe = _setup()
    y, _ = flip_labels(data.y_train, 0.25, 10, seed=3)
    noisy = replace(data, y_train=y)
    weak = replace(recipe, config=replace(recipe.config, epochs=1, lr=1e-4))  # barely trained
    kw = dict(n_folds=3, seed=0)
    cleaned, flags, fit, name, losses = data_first.clean_labels_best(
        noisy, {"weak": weak, "good": recipe}, [0, 1], **kw
    )
    assert name == "good" and losses["good"] < losses["weak"]
    ref_cleaned, ref_flags, ref_fit = data_first.clean_labels(noisy, recipe, [0, 1], **kw)
    np.testing.assert_array_equal(flags, ref_flags)
    probs = ref_fit.probs.mean(0)[np.arange(len(y)), y.numpy()]
    assert losses["good"] == pytest.approx(-np.log(probs).mean())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=40))
def test_flag_quality_matches_scikit_learn(pairs):
    flags, flips = (np.array(v, bool) for v in zip(*pairs, strict=True))
    q = data_first.flag_quality(flags, flips)
    assert q["flagged share"] == pytest.approx(flags.mean())
    if flags.any():
        assert q["precision"] == pytest.approx(precision_score(flips, flags))
    else:
        assert np.isnan(q["precision"])
    if flips.any():
        assert q["recall"] == pytest.approx(recall_score(flips, flags))


def _val(history, score):
    return history.test_loss if score == "loss" else 1 - history.test_acc


@pytest.mark.parametrize("score", ["loss", "error"])
def test_tune_is_brute_force_selection_of_rate_and_early_stopping(small, score):
    data, arch = small
    kw = dict(epochs=3, batch_size=32)
    plan = data_first.Plan((5, 6), 3, 32, split_seed=1, score=score)
    plain, stopped = data_first.tune(arch, data, GRID, plan, stopping=True)
    if score == "loss":  # the same scores as fair.select_lr, an independent implementation
        ref = fair.select_lr(arch, data, GRID, [5, 6], split_seed=1, **kw)
        np.testing.assert_allclose(plain.lr_selection.scores, ref.search.pooled.scores, rtol=1e-6)
        assert plain.lr == ref.lr
    split = validation_split(data, 0.2, seed=1)
    curves = np.stack(  # (G, T): one separate run per rate, validation score after each epoch
        [
            _val(protocol.train(arch, split, [5, 6], lr=g, **kw).history, score)[1:].mean(1)
            for g in GRID
        ]
    )
    np.testing.assert_allclose(plain.lr_selection.scores, curves[:, -1], rtol=1e-5, atol=1e-9)
    g, t = np.unravel_index(np.argmin(curves), curves.shape)  # first minimum: earliest, smallest
    assert stopped.lr == GRID[g] and stopped.other.best == t + 1 and plain.other is None
    np.testing.assert_allclose(stopped.other.scores, curves.min(0), rtol=1e-5, atol=1e-9)
    alone, none = data_first.tune(arch, data, GRID, plan)
    assert none is None and alone.lr == plain.lr  # evaluating only at the end changes nothing
    again_plain, again = data_first.tune(arch, _poisoned(data), GRID, plan, stopping=True)
    assert (again_plain.lr, again.lr, again.other.best) == (
        plain.lr,
        stopped.lr,
        stopped.other.best,
    )


def test_one_step_of_decoupled_decay_is_the_adam_step_shrunk_per_member(small):
    data, arch = small
    n = len(data.x_train)
    lrs, wds = [0.01, 0.05, 0.01], [0.0, 2.0, 5.0]
    one = dict(epochs=1, batch_size=n)  # a single full-batch step
    decayed = data_first.train_decayed(arch, data, [3, 3, 4], lr=lrs, weight_decay=wds, **one)
    plain = protocol.train(arch, data, [3, 3, 4], lr=lrs, **one)
    for k, v in decayed.params.items():
        shrink = torch.tensor([1 - a * b for a, b in zip(lrs, wds, strict=True)], dtype=v.dtype)
        expected = plain.params[k] * shrink.view(-1, *[1] * (v.dim() - 1))
        torch.testing.assert_close(v, expected, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="plain dense"):
        masked = protocol.architecture("random masks", data, protocol.RemedyConfig(width=8))
        data_first.train_decayed(masked, data, [0], lr=0.01, weight_decay=0.1, **one)


@pytest.mark.parametrize("score", ["loss", "error"])
def test_tune_decay_is_the_best_pair_of_separate_runs_and_blind_to_test(small, score):
    data, arch = small
    kw = dict(epochs=2, batch_size=32)
    wd_grid = [0.1, 3.0, 30.0]
    plan = data_first.Plan((2,), 2, 32, split_seed=0, score=score)
    tuned = data_first.tune_decay(arch, data, GRID, wd_grid, plan)
    split = validation_split(data, 0.2, seed=0)
    table = np.array(
        [
            [
                _val(
                    data_first.train_decayed(arch, split, [2], lr=g, weight_decay=w, **kw).history,
                    score,
                )[-1].mean()
                for w in wd_grid
            ]
            for g in GRID
        ]
    )
    g, w = np.unravel_index(np.argmin(table.T), table.T.shape)[::-1]  # decay first, then rate
    assert (tuned.lr, tuned.other.best) == (GRID[g], wd_grid[w])
    np.testing.assert_allclose(tuned.other.scores, table.min(0), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(tuned.lr_selection.scores, table[:, w], rtol=1e-5, atol=1e-9)
    blind = data_first.tune_decay(arch, _poisoned(data), GRID, wd_grid, plan)
    assert (blind.lr, blind.other.best) == (tuned.lr, tuned.other.best)
