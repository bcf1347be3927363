import pytest
from hypothesis import given
from hypothesis import strategies as st

from ghost_optima.book.pages.effect_tables import (
    ARM_PANELS,
    EFFECT_GLUE,
    arm_figure,
    direction,
    effect_figure,
    glue_arm_table,
    glue_effects,
    twin_accuracy,
)
from ghost_optima.book.verdicts import claims
from ghost_optima.core.stats import Estimate

finite = st.floats(-1e6, 1e6, allow_nan=False)


@given(finite, finite, finite)
def test_direction_names_where_the_interval_lies_against_zero(a, b, c):
    lo, value, hi = sorted((a, b, c))
    word = direction(Estimate(value, lo, hi, 10))
    assert word == ("below 0" if hi < 0 else "above 0" if lo > 0 else "includes 0")
    assert (word == "includes 0") == (lo <= 0 <= hi)


class _Rec:
    """A stand-in ``Recorder`` that keeps what is glued."""

    def __init__(self):
        self.values = {}

    def glue(self, name, value):
        self.values[name] = value
        return value


def _est(value):
    return Estimate(value, value - 0.01, value + 0.02, 10)


EFFECTS = {
    "symmetry_effect_disagreement": _est(-0.1),
    "symmetry_effect_per_error": _est(-0.05),
    "symmetry_effect_acc": _est(0.003),
    "disagreement_change": _est(0.2),
    "per_error_change": _est(0.1),
    "acc_change": _est(-0.02),
}


def test_glue_effects_glues_every_effect_the_prose_reads_in_percent():
    rec = _Rec()
    glue_effects(rec, EFFECTS)
    assert set(rec.values) == {f"{n}{end}" for n in EFFECT_GLUE for end in ("", "_lo", "_hi")}
    for name, key in EFFECT_GLUE.items():
        est = EFFECTS[key]
        assert rec.values[name] == pytest.approx(100 * est.value)
        assert (rec.values[f"{name}_lo"], rec.values[f"{name}_hi"]) == pytest.approx(
            (100 * est.lo, 100 * est.hi)
        )


@pytest.mark.parametrize("cid", ["M1", "M3", "M4"])
@pytest.mark.parametrize("acc", [-0.3, -0.021, -0.019, 0.0, 0.005, 0.019, 0.021, 0.3])
def test_twin_accuracy_records_the_gap_and_says_what_the_rule_reads(cid, acc):
    rec = _Rec()
    got = twin_accuracy(rec, cid, dict(EFFECTS, symmetry_effect_acc=_est(acc)))
    assert got == {"twin_accuracy_gap": pytest.approx(abs(acc))}
    assert rec.values["twin_gap_points"] == pytest.approx(100 * abs(acc))
    assert rec.values["twin_margin_points"] == pytest.approx(2.0)
    beyond = abs(acc) > 0.02
    assert rec.values["twin_reads"].startswith("beyond" if beyond else "within")
    # the words agree with the rule: beyond the margin raw disagreement alone cannot decide
    rule = claims.registry()[cid].rule
    figures = {
        "log10_perm_group_max": 0.0,
        "log10_perm_group": 0.0,
        "log10_perm_reduction": 1.0,
        "acc_change": {"value": 0.0, "lo": -0.01, "hi": 0.01},
        "symmetry_effect_disagreement": {"value": 0.0, "lo": -0.01, "hi": 0.01},
        "symmetry_effect_per_error": {"value": -0.3, "lo": -0.4, "hi": -0.2},
    } | got
    assert claims.evaluate(rule, figures) == ("mixed" if beyond else "not supported")


def _row(data, arm, lr, censored):
    metrics = ("test_acc", "disagreement", "disagreement_per_error", "barrier_aligned")
    names = {"dataset": data, "variant": arm, "n_params": 100, "log10_perm": 1.0}
    return names | {"lr": lr, "censored": censored} | {m: _est(0.8) for m in metrics}


def test_arm_table_glues_the_censored_count_and_figures_have_one_panel_each():
    import matplotlib.pyplot as plt

    rows = [_row("d", "baseline", 0.01, True), _row("d", "masks", 0.02, False)]
    rec = _Rec()
    table = glue_arm_table(rec, rows)
    assert rec.values == {"n_censored": 1, "n_arms": 2}
    assert list(table["lr (validation)"]) == ["0.01 (grid edge)", "0.02"]
    fig, axes = arm_figure(rows, ("test_acc", "disagreement", "barrier_aligned"))
    assert [ax.get_title() for ax in axes] == [ARM_PANELS[m][2] for m in ARM_PANELS]
    fig, axes = effect_figure({"d": EFFECTS, "e": EFFECTS})
    assert len(axes) == 2 and axes[1].get_legend() is not None and axes[0].get_legend() is None
    plt.close("all")
