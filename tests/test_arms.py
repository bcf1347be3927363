"""The remedy chapters' scaffold: fit every arm of every data set, measure, summarise, effects."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from ghost_optima.core.data import teacher_student
from ghost_optima.remedies import arms, fair, protocol, twins

VARIANTS = ("baseline", "random masks", "random twin masks", "sorted biases", "cumsum biases")
TRAINING = fair.Training((0, 1, 2), (0.003, 0.03), (5,), epochs=2, batch_size=32)


@pytest.fixture(scope="module")
def datasets():
    a, _ = teacher_student(120, 60, 6, (5, 3), "classification", seed=0)
    b, _ = teacher_student(100, 50, 6, (5, 3), "classification", seed=1)
    return {"a": a, "b": replace(b, name="b")}


@pytest.fixture(scope="module")
def archs(datasets):
    cfg = protocol.RemedyConfig(width=8, twin_block=2)
    return {(n, v): twins.architecture(v, d, cfg) for n, d in datasets.items() for v in VARIANTS}


@pytest.fixture(scope="module")
def fitted(archs, datasets):
    return arms.fit_datasets(archs, datasets, TRAINING)


def test_every_arm_is_the_fit_of_its_data_set(fitted, archs, datasets):
    """Each arm's choice and main run are ``fair.fit_arms`` on its own data set, measured there."""
    assert list(fitted.measured) == list(archs) == list(fitted.choices) == list(fitted.runs)
    for name, data in datasets.items():
        keys = [k for k in archs if k[0] == name]
        direct = fair.fit_arms([archs[k] for k in keys], data, TRAINING)
        for key, (choice, run) in zip(keys, direct, strict=True):
            assert fitted.choices[key].lr == choice.lr
            np.testing.assert_array_equal(
                fitted.choices[key].search.pooled.scores, choice.search.pooled.scores
            )
            for p, v in run.params.items():
                assert torch.equal(fitted.runs[key].params[p], v)
            m = fitted.measured[key]
            ref = protocol.measure(archs[key], run, data, name)
            assert (m.variant, m.dataset) == (key[1], name)
            np.testing.assert_array_equal(m.disagreement, ref.disagreement)
            np.testing.assert_array_equal(m.test_acc, ref.test_acc)


def test_rows_are_estimate_rows_with_the_chosen_rate(fitted):
    rows = fitted.rows(n_boot=100, seed=0)
    assert [(r["dataset"], r["variant"]) for r in rows] == list(fitted.choices)
    for row, (key, m) in zip(rows, fitted.measured.items(), strict=True):
        ref = protocol.estimate_row(m, n_boot=100, seed=0)
        assert row["disagreement"] == ref["disagreement"] and row["test_acc"] == ref["test_acc"]
        choice = fitted.choices[key]
        assert row["lr"] == choice.lr and row["lr"] in TRAINING.grid
        assert row["censored"] == (choice.search.pooled.best_index in (0, len(TRAINING.grid) - 1))


def test_effects_are_fair_effects_of_baseline_remedy_and_twin(fitted):
    labels = {f"{n}, {v}": (n, v) for n in ("a", "b") for v in ("random masks", "sorted biases")}
    triples = fitted.triples(labels)
    m = fitted.measured
    assert triples["b, sorted biases"] == (
        m["b", "baseline"],
        m["b", "sorted biases"],
        m["b", "cumsum biases"],
    )
    per_label, pooled = fitted.effects(labels, n_boot=100, seed=3)
    for label, triple in triples.items():
        assert per_label[label] == fair.effects([triple], n_boot=100, seed=3)
    assert pooled == fair.effects(list(triples.values()), n_boot=100, seed=3)
    disagreement = [
        t[1].disagreement[~np.eye(3, dtype=bool)].mean()
        / t[2].disagreement[~np.eye(3, dtype=bool)].mean()
        - 1
        for t in triples.values()
    ]
    assert pooled["symmetry_effect_disagreement"].value == pytest.approx(np.mean(disagreement))


def test_arms_join_and_main_runs_record_as_asked(fitted, archs, datasets):
    every = replace(TRAINING, record_every=1)
    a = arms.fit_datasets({k: v for k, v in archs.items() if k[0] == "a"}, datasets, every)
    b = arms.fit_datasets({k: v for k, v in archs.items() if k[0] == "b"}, datasets, TRAINING)
    joined = a | b
    assert list(joined.measured) == list(archs)
    for key, run in a.runs.items():  # recording more often changes no trained weight
        assert run.history.test_acc.shape == (TRAINING.epochs + 1, 3)
        for p, v in run.params.items():
            assert torch.equal(fitted.runs[key].params[p], v)
    assert all(r.history.test_acc.shape == (2, 3) for r in b.runs.values())


def test_common_rate_arms_are_each_arm_trained_alone_at_the_baselines_rate(fitted, archs, datasets):
    """``at_common_rate`` trains each arm with the main seeds at its data set's baseline rate:
    the run ``protocol.train`` gives alone (masked arms share one ensemble, so up to rounding;
    the re-parameterised arm is trained alone, so exactly)."""
    keys = [
        (n, v) for n in datasets for v in ("random masks", "random twin masks", "cumsum biases")
    ]
    common = fitted.at_common_rate(archs, datasets, keys, TRAINING)
    assert list(common) == keys
    for name, v in keys:
        rate = fitted.choices[name, "baseline"].lr
        alone = protocol.train(
            archs[name, v], datasets[name], TRAINING.seeds, lr=rate, epochs=2, batch_size=32
        )
        ref = protocol.measure(archs[name, v], alone, datasets[name], name)
        if v == "cumsum biases":
            np.testing.assert_array_equal(common[name, v].test_acc, ref.test_acc)
        np.testing.assert_allclose(common[name, v].disagreement, ref.disagreement, atol=1e-12)
        np.testing.assert_allclose(common[name, v].test_acc, ref.test_acc, atol=1e-12)


def test_common_rate_effect_is_the_remedy_against_its_twin_at_that_rate(fitted, archs, datasets):
    labels = {n: (n, "random masks") for n in datasets}
    est = fitted.common_rate_effect(archs, datasets, labels, TRAINING, n_boot=200, seed=0)
    common = fitted.at_common_rate(
        archs,
        datasets,
        [(n, v) for n in datasets for v in ("random masks", "random twin masks")],
        TRAINING,
    )
    ref = fair.change(
        [(common[n, "random twin masks"], common[n, "random masks"]) for n in datasets],
        "disagreement",
        relative=True,
        n_boot=200,
        seed=0,
    )
    assert est == ref
    by_hand = np.mean(
        [
            np.nanmean(common[n, "random masks"].disagreement)
            / np.nanmean(common[n, "random twin masks"].disagreement)
            - 1
            for n in datasets
        ]
    )
    assert est.value == pytest.approx(by_hand)
