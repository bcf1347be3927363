from hypothesis import given
from hypothesis import strategies as st

from ghost_optima.book.pages.effect_tables import direction
from ghost_optima.core.stats import Estimate

finite = st.floats(-1e6, 1e6, allow_nan=False)


@given(finite, finite, finite)
def test_direction_names_where_the_interval_lies_against_zero(a, b, c):
    lo, value, hi = sorted((a, b, c))
    word = direction(Estimate(value, lo, hi, 10))
    assert word == ("below 0" if hi < 0 else "above 0" if lo > 0 else "includes 0")
    assert (word == "includes 0") == (lo <= 0 <= hi)
