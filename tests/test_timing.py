"""The kernel clock: exclusive seconds (nested kernels pause the outer one), flops and calls."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghost_optima.core import timing


def fake_clock(ticks):
    """A clock whose time advances by the next of ``ticks`` at every reading."""
    elapsed = itertools.accumulate(ticks)
    return timing.Clock(now=lambda: float(next(elapsed)))


def test_nested_kernels_count_exclusive_time():
    clock = fake_clock([0, 1, 2, 4, 8])  # readings 0, 1, 3, 7, 15
    with timing.kernel("training", flops=10, clock=clock):  # starts at 0
        with timing.kernel("evaluation", flops=3, clock=clock):  # 1 .. 3
            pass
    # training ran 0..1 and 3..7, evaluation 1..3; the last reading (15) is never taken
    assert clock.seconds["training"] == 5 and clock.seconds["evaluation"] == 2
    assert clock.flops == {**dict.fromkeys(timing.KERNELS, 0.0), "training": 10, "evaluation": 3}
    assert timing.totals(clock)["training"] == {"seconds": 5, "flops": 10, "calls": 1}
    assert set(timing.totals(clock)) == {"training", "evaluation"}


@settings(max_examples=50, deadline=None)
@given(
    st.recursive(
        st.just([]),
        lambda inner: st.lists(st.tuples(st.sampled_from(timing.KERNELS), inner), max_size=3),
        max_leaves=12,
    ),
    st.lists(st.integers(0, 5), min_size=200, max_size=200),
)
def test_kernel_seconds_add_up_to_the_outermost_wall_time(tree, ticks):
    """However kernels nest, their exclusive seconds sum to the time between the first start and
    the last end of the outermost kernels: no second counted twice, none lost."""
    clock = fake_clock(ticks)
    stamps = []

    def run(nodes):
        for name, children in nodes:
            with timing.kernel(name, clock=clock):
                run(children)

    wrapped = clock.now
    clock.now = lambda: stamps.append(wrapped()) or stamps[-1]
    spans = 0.0
    for name, children in tree or [("training", [])]:
        start = len(stamps)  # the reading this outermost kernel starts with
        with timing.kernel(name, clock=clock):
            run(children)
        spans += stamps[-1] - stamps[start]
    assert sum(clock.seconds.values()) == pytest.approx(spans)


def test_an_unknown_kernel_is_refused_and_reset_empties_the_clock():
    clock = timing.Clock()
    with pytest.raises(ValueError, match="unknown kernel 'sorting'"):
        with timing.kernel("sorting", clock=clock):
            pass
    with timing.kernel("chains", flops=2.0, clock=clock):
        pass
    assert timing.totals(clock)["chains"]["calls"] == 1
    timing.reset(clock)
    assert timing.totals(clock) == {} and clock.running == []


def test_dense_macs_against_a_loop():
    widths = [784, 512, 512, 10]
    assert timing.dense_macs(widths) == 784 * 512 + 512 * 512 + 512 * 10


def test_a_timed_function_runs_as_its_kernel_and_keeps_its_name():
    @timing.timed("alignment")
    def matched(a, b=1):
        """Doc."""
        return a + b

    before = timing.totals().get("alignment", {"calls": 0})["calls"]
    assert matched(2, b=3) == 5 and matched.__name__ == "matched" and matched.__doc__ == "Doc."
    assert timing.totals()["alignment"]["calls"] == before + 1
