"""Discriminator rejection sampling's maths (common/drs.py), which export (calibration) and the runtime
(sampling) share: F(x), gamma per target rate, and reading gamma back from a manifest's table."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.drs import (
    EPSILON,
    RATE_GRID,
    acceptance_probability,
    drs_f,
    gamma_table,
    interpolate_gamma,
    sigmoid,
    solve_gamma,
)

from .conftest import SHIPPED

# F over three burn-in-like samples: one Gaussian, two separated modes, many ties at the maximum.
SAMPLES = {
    "gaussian": drs_f(np.random.default_rng(1).normal(0, 2, 2000), max_logit=7.0),
    "two modes": drs_f(
        np.concatenate([np.random.default_rng(2).normal(-6, 0.5, 1200), np.random.default_rng(3).normal(1, 1, 800)]),
        max_logit=4.0,
    ),
    "ties at the maximum": drs_f(np.r_[np.full(300, 3.0), np.random.default_rng(4).normal(0, 1, 700)], max_logit=3.0),
}
TABLES = {name: gamma_table(f) for name, f in SAMPLES.items()}
OPEN_RATES = st.floats(1e-4, 1.0, exclude_max=True)


def test_drs_f_follows_the_formula_and_is_monotone():
    logits = np.array([-30.0, -3.0, -0.5, 0.0, 0.7])
    f = drs_f(logits, max_logit=0.0)
    gap = np.minimum(logits, 0.0)
    assert np.allclose(f, gap - np.log(1 - np.exp(gap - EPSILON)), rtol=1e-6)
    assert np.all(np.diff(f) >= 0)
    assert f[3] == f[4] == pytest.approx(-np.log(-np.expm1(-EPSILON)))  # above the maximum counts as it


def test_gamma_hits_each_rate_on_its_sample_and_interpolates_between():
    f = drs_f(np.random.default_rng(1).normal(0, 2, 5000), max_logit=7.0)
    gammas = [solve_gamma(f, rate) for rate in RATE_GRID]
    for rate, gamma in zip(RATE_GRID, gammas, strict=True):
        assert sigmoid(f - gamma).mean() == pytest.approx(rate, abs=1e-9)
    assert np.all(np.diff(gammas) < 0)  # accepting more needs a lower threshold
    assert interpolate_gamma(list(RATE_GRID), gammas, 0.2) == pytest.approx(gammas[19])
    for rate in (0.123, 0.005, 0.995):  # between grid points and beyond both ends
        assert sigmoid(f - interpolate_gamma(list(RATE_GRID), gammas, rate)).mean() == pytest.approx(rate, rel=0.05)
    assert interpolate_gamma(list(RATE_GRID), gammas, 1.0) is None
    with pytest.raises(ValueError):
        interpolate_gamma(list(RATE_GRID), gammas, 0.0)


# ---------------------------------------------------------------------- gamma solves its rate
@pytest.mark.parametrize("sample", SAMPLES)
def test_the_gamma_table_solves_each_of_its_rates(sample):
    f, table = SAMPLES[sample], TABLES[sample]
    assert len(table) == len(RATE_GRID)
    for rate, gamma in zip(RATE_GRID, table, strict=True):
        assert acceptance_probability(f, gamma).mean() == pytest.approx(rate, abs=1e-9)
    assert np.all(np.diff(table) < 0)


@settings(max_examples=60, deadline=None)
@given(rate=OPEN_RATES, sample=st.sampled_from(list(SAMPLES)))
def test_solve_gamma_hits_any_rate_in_0_1(rate, sample):
    f = SAMPLES[sample]
    assert acceptance_probability(f, solve_gamma(f, rate)).mean() == pytest.approx(rate, abs=1e-9)


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.2, 1.5])
def test_solve_gamma_refuses_rates_without_a_finite_gamma(rate):
    with pytest.raises(ValueError, match="rate must be in"):
        solve_gamma(SAMPLES["gaussian"], rate)


# ---------------------------------------------------------------------- reading gamma back: interpolation
@pytest.mark.parametrize("sample", SAMPLES)
def test_interpolation_is_exact_on_the_tables_rates(sample):
    table = TABLES[sample]
    for rate, gamma in zip(RATE_GRID, table, strict=True):
        assert interpolate_gamma(list(RATE_GRID), table, rate) == pytest.approx(gamma, rel=1e-12, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(rates=st.lists(OPEN_RATES, min_size=2, max_size=2, unique=True), sample=st.sampled_from(list(SAMPLES)))
def test_interpolation_is_monotone_inside_and_beyond_the_table(rates, sample):
    low, high = sorted(rates)
    table = TABLES[sample]
    assert interpolate_gamma(list(RATE_GRID), table, low) >= interpolate_gamma(list(RATE_GRID), table, high)


def test_rate_1_gives_no_gamma_and_accepts_everything():
    table = TABLES["gaussian"]
    assert interpolate_gamma(list(RATE_GRID), table, 1.0) is None
    assert np.array_equal(acceptance_probability(SAMPLES["gaussian"], None), np.ones(len(SAMPLES["gaussian"])))
    for rate in (0.0, -0.1, 1.0001, float("nan")):
        with pytest.raises(ValueError, match="rate must be in"):
            interpolate_gamma(list(RATE_GRID), table, rate)


# ---------------------------------------------------------------------- the shipped models' tables
@pytest.mark.parametrize("entry", SHIPPED, ids=[entry.name for entry in SHIPPED])
def test_shipped_gamma_tables_decrease_and_read_back_exactly(entry):
    drs = entry.manifest.drs
    assert drs.rates == list(RATE_GRID) and drs.epsilon == EPSILON
    for table in [drs.gamma, *(drs.gamma_by_digit or [])]:
        assert np.all(np.diff(table) < 0)
        for rate, gamma in zip(drs.rates, table, strict=True):
            assert interpolate_gamma(drs.rates, table, rate) == pytest.approx(gamma, rel=1e-12, abs=1e-12)
        assert interpolate_gamma(drs.rates, table, 1.0) is None
    assert (drs.gamma_by_digit is not None) == entry.manifest.conditional
