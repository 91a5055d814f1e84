"""The validation rules (common/validation.py), as the demo and the CLIs use them: whatever the value, a valid
result or a one-line refusal, never another exception (which would reach the user as a traceback)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.validation import (
    NUM_DIGITS,
    InvalidRequest,
    check_count,
    check_digit,
    check_rate,
    check_rate_or_off,
    check_seed,
    check_spread,
)
from demo.service import MAX_SEED, SPREAD_RANGE
from runtime.cli import MAX_IMAGES

from ..conftest import ANY_VALUE, PROPERTY_SETTINGS, one_line


# ---------------------------------------------------------------------- the validation rules, as the demo uses them
@PROPERTY_SETTINGS
@given(value=ANY_VALUE)
def test_demo_whole_numbers_are_in_range_or_refused(value):
    try:
        seed = check_seed(value, "the seed", MAX_SEED)
    except InvalidRequest as error:
        assert one_line(error)
        return
    assert type(seed) is int and 0 <= seed <= MAX_SEED and seed == value


@PROPERTY_SETTINGS
@given(value=ANY_VALUE)
def test_demo_numbers_are_finite_and_in_range_or_refused(value):
    try:
        spread = check_spread(value, "the latent spread", SPREAD_RANGE)
    except InvalidRequest as error:
        assert one_line(error)
        return
    assert type(spread) is float and SPREAD_RANGE[0] <= spread <= SPREAD_RANGE[1]


@PROPERTY_SETTINGS
@given(value=ANY_VALUE, allow_off=st.booleans())
def test_demo_drs_rates_are_in_0_1_or_off_or_refused(value, allow_off):
    try:
        rate = (
            check_rate_or_off(value, "the DRS target rate") if allow_off else check_rate(value, "the DRS target rate")
        )
    except InvalidRequest as error:
        assert one_line(error)
        return
    if rate is None:
        assert allow_off and value == 0
    else:
        assert type(rate) is float and 0 < rate <= 1 and np.isfinite(rate)


# ---------------------------------------------------------------------- the rules the CLIs share
@PROPERTY_SETTINGS
@given(value=ANY_VALUE)
def test_digits_are_0_to_9_or_refused(value):
    try:
        digit = check_digit(value, "--digit")
    except InvalidRequest as error:
        assert one_line(error) and str(error).startswith("--digit must be")
        return
    assert type(digit) is int and 0 <= digit < NUM_DIGITS and digit == value


@PROPERTY_SETTINGS
@given(value=ANY_VALUE)
def test_counts_are_1_to_the_maximum_or_refused(value):
    try:
        count = check_count(value, "--n", MAX_IMAGES)
    except InvalidRequest as error:
        assert one_line(error) and str(error).startswith("--n must be")
        return
    assert type(count) is int and 1 <= count <= MAX_IMAGES and count == value


@PROPERTY_SETTINGS
@given(value=ANY_VALUE)
def test_spreads_without_bounds_are_finite_and_positive_or_refused(value):
    try:
        spread = check_spread(value, "--spread")
    except InvalidRequest as error:
        assert one_line(error) and "--spread must be a finite number > 0" in str(error)
        return
    assert type(spread) is float and 0 < spread < math.inf


@pytest.mark.parametrize(
    "check, value, message",
    [
        (check_digit, 10, "digit must be in 0..9, got 10"),
        (check_digit, 2.5, "digit must be a whole number, got 2.5"),
        (check_count, 0, "the number of images must be >= 1, got 0"),
        (check_seed, -1, "the seed must be >= 0, got -1"),
        (check_seed, True, "the seed must be a whole number, got True"),
        (check_rate, 0, "DRS rate must be a target acceptance rate in (0, 1], got 0"),
        (check_rate_or_off, 2, "DRS rate must be a target acceptance rate in (0, 1] (0 = off), got 2"),
        (check_spread, float("inf"), "spread must be a finite number > 0, got inf"),
    ],
)
def test_each_rule_names_the_value_and_its_range(check, value, message):
    with pytest.raises(InvalidRequest) as refused:
        check(value)
    assert str(refused.value) == message


def test_whole_floats_count_as_whole_numbers_as_web_forms_send_them():
    assert check_seed(4.0) == 4 and type(check_seed(4.0)) is int
    assert check_digit(np.int64(3)) == 3 and check_rate_or_off(0.0) is None
