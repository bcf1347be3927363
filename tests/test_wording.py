"""Prose words chosen by code: each threshold fed figures on both sides."""

import pytest

from ghost_optima.book.pages.wording import by_interval, by_value, near

WORDS = ("below", "indistinguishable from", "above")


def est(lo, hi):
    return {"value": (lo + hi) / 2, "lo": lo, "hi": hi, "n": 8}


@pytest.mark.parametrize(
    ("lo", "hi", "word"),
    [(-2.0, -0.5, "below"), (-0.5, 0.5, "indistinguishable from"), (0.1, 3.0, "above")],
)
def test_by_interval_reads_the_whole_interval(lo, hi, word):
    assert by_interval(est(lo, hi), 0.0, WORDS) == word


def test_by_interval_at_the_threshold_is_undecided():
    assert by_interval(est(0.0, 1.0), 0.0, WORDS) == "indistinguishable from"
    assert by_interval(est(-1.0, 0.0), 0.0, WORDS) == "indistinguishable from"


def test_by_value_switches_at_the_threshold():
    assert by_value(0.99, 1.0, ("does not reach", "reaches")) == "does not reach"
    assert by_value(1.0, 1.0, ("does not reach", "reaches")) == "reaches"


def test_near_needs_the_whole_interval_within_tolerance():
    assert near(est(0.8, 1.2), 1.0, 0.25, ("close to", "far from")) == "close to"
    assert near(est(0.8, 1.3), 1.0, 0.25, ("close to", "far from")) == "far from"
    assert near(est(1.5, 1.9), 1.0, 0.25, ("close to", "far from")) == "far from"
