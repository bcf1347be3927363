import math

import pytest
import torch

from ghost_optima.remedies.masks import count_automorphisms_bruteforce, param_count, surviving_group
from ghost_optima.remedies.modular import (
    Modular,
    matched_modular,
    spread_window_1d,
    spread_window_2d,
    windows_1d,
    windows_2d,
)


def test_windows_1d_cover_and_overlap():
    windows = windows_1d(40, 4, 15)
    assert len(windows) == 4 and all(len(w) == 15 for w in windows)
    assert windows[0][0] == 0 and windows[-1][-1] == 39
    assert set().union(*map(set, windows)) == set(range(40))
    assert set(windows[0]) & set(windows[1])  # overlapping
    disjoint = windows_1d(12, 3, 4)
    assert [list(w) for w in disjoint] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


def test_windows_2d_are_square_patches():
    windows = windows_2d(8, 8, 5, 2)
    assert len(windows) == 4 and all(len(w) == 25 for w in windows)
    assert windows[0][:5] == (0, 1, 2, 3, 4) and windows[0][5] == 8
    assert windows[-1][-1] == 63
    assert set().union(*map(set, windows)) == set(range(64))
    quadrants = windows_2d(4, 4, 2, 2)
    assert quadrants == ((0, 1, 4, 5), (2, 3, 6, 7), (8, 9, 12, 13), (10, 11, 14, 15))


def test_masks_receptive_fields_and_parameter_count():
    net = Modular(10, 3, ((0, 1, 2, 3), (3, 4, 5, 6), (6, 7, 8, 9)), (2, 3))
    assert net.widths == (10, 6, 9, 3)
    masks = net.masks()
    assert masks["W1"].shape == (6, 10) and masks["W2"].shape == (9, 6)
    for k, window in enumerate(net.windows):
        for unit in range(2 * k, 2 * k + 2):
            assert set(torch.nonzero(masks["W1"][unit]).flatten().tolist()) == set(window)
    # layer 2: module k reads only module k's layer-1 units
    assert masks["W2"][3:6, 2:4].all() and masks["W2"][3:6, :2].sum() == 0
    per_module = 2 * (4 + 1) + 3 * (2 + 1)
    assert net.n_params() == 3 * per_module + (9 + 1) * 3 == param_count(net.widths, masks)
    assert "3 modules" in repr(net)


def test_symmetry_is_permutations_within_modules():
    net = Modular(6, 2, ((0, 1, 2), (2, 3, 4), (3, 4, 5)), (3, 2))
    closed_form = 3 * (math.lgamma(4) + math.lgamma(3)) / math.log(10)
    assert net.log10_perm_order() == pytest.approx(closed_form)
    group = surviving_group(net.widths, net.masks())
    assert group.exact and group.log10_order == pytest.approx(closed_form)
    labels = group.labels()
    assert len(set(labels["P1"].tolist())) == 3 and len(set(labels["P2"].tolist())) == 3
    tiny = Modular(4, 1, ((0, 1), (2, 3)), (2, 1))
    truth = count_automorphisms_bruteforce(tiny.widths, tiny.masks())
    assert truth == round(10 ** tiny.log10_perm_order()) == 4


def test_matched_parameter_count_and_checks():
    windows = windows_1d(40, 4, 15)
    target = (40 + 1) * 32 + 33 * 32 + 33 * 10
    net = matched_modular(40, 10, windows, 2, target)
    assert abs(net.n_params() - target) <= 0.1 * target
    for u in (net.units[0] - 1, net.units[0] + 1):
        other = Modular(40, 10, windows, (u, u))
        assert abs(other.n_params() - target) >= abs(net.n_params() - target)
    with pytest.raises(ValueError):
        Modular(4, 1, ((0, 4),), (2,))


@pytest.mark.parametrize(
    ("windows", "units"),
    [
        (((0, 1), (0, 1)), (1, 1)),  # two modules on one window: swapped whole, 2
        (((0, 1), (0, 1)), (2, 1)),  # 2! (2! 1!)^2 = 8
        (((0, 1), (0, 1), (2,)), (1, 2)),  # 2! (1! 2!)^3 = 16
        (((0, 1), (0, 1)), (2,)),  # one layer: all 4 units twins, 4! = 24
        (((0,), (1,), (2,)), (2, 1)),  # distinct windows: (2!)^3 = 8
    ],
)
def test_group_with_shared_windows_against_brute_force(windows, units):
    net = Modular(3, 2, windows, units)
    truth = count_automorphisms_bruteforce(net.widths, net.masks())
    assert truth == round(10 ** net.log10_perm_order())


def test_spread_windows_have_the_size_of_a_patch_and_span_the_input():
    assert spread_window_1d(40, 15)[0] == 0 and spread_window_1d(40, 15)[-1] == 39
    assert len(spread_window_1d(40, 15)) == 15
    w = spread_window_2d(8, 8, 5)
    assert len(w) == len(windows_2d(8, 8, 5, 2)[0]) == 25
    assert {0, 7, 56, 63} <= set(w)
