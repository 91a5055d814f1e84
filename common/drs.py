"""Discriminator rejection sampling (Azadi et al. 2019) in numpy: F(x), acceptance and gamma.

D~(x) is the calibrated logit of the DRS head, D~_M its maximum over the burn-in sample (kept as a
running maximum while sampling), and a proposal x is accepted with probability sigmoid(F(x) - gamma):

    F(x) = D~(x) - D~_M - log(1 - exp(D~(x) - D~_M - epsilon))

gamma is chosen per target acceptance rate on the burn-in sample (export) and read back from the
manifest's table by interpolation (runtime). Export uses these same functions, so the two agree.
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-6
# Target acceptance rates of the stored gamma table; 1.0 (accept everything) needs no gamma.
RATE_GRID = tuple(round(0.01 * step, 2) for step in range(1, 100))
_BISECTION_STEPS = 200


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow for large |x|."""
    return np.exp(-np.logaddexp(0.0, -np.asarray(x, dtype=np.float64)))


def drs_f(logits: np.ndarray, max_logit: float, epsilon: float = EPSILON) -> np.ndarray:
    """F(x) in float64; a logit above max_logit counts as the maximum (F = -log(1 - exp(-epsilon)))."""
    gap = np.minimum(np.asarray(logits, dtype=np.float64) - max_logit, 0.0)
    # -expm1 keeps 1 - exp(gap - epsilon) accurate when the gap is tiny.
    return gap - np.log(-np.expm1(gap - epsilon))


def acceptance_probability(f: np.ndarray, gamma: float | np.ndarray | None) -> np.ndarray:
    """sigmoid(F - gamma); gamma None means no rejection (target rate 1.0)."""
    if gamma is None:
        return np.ones_like(np.asarray(f, dtype=np.float64))
    return sigmoid(np.asarray(f, dtype=np.float64) - gamma)


def solve_gamma(f: np.ndarray, rate: float) -> float:
    """The gamma whose mean acceptance over the sample `f` is `rate` (bisection; it is monotone)."""
    if not 0.0 < rate < 1.0:
        raise ValueError(f"rate must be in (0, 1) to have a finite gamma, got {rate}")
    f = np.asarray(f, dtype=np.float64)
    margin = 50.0 + abs(np.log(rate / (1.0 - rate)))
    low, high = float(f.min()) - margin, float(f.max()) + margin  # mean acceptance ~1 at low, ~0 at high
    for _ in range(_BISECTION_STEPS):
        middle = 0.5 * (low + high)
        if sigmoid(f - middle).mean() > rate:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def gamma_table(f: np.ndarray, rates: tuple[float, ...] = RATE_GRID) -> list[float]:
    return [solve_gamma(f, rate) for rate in rates]


def interpolate_gamma(rates: list[float], gammas: list[float], rate: float) -> float | None:
    """gamma for any rate in (0, 1] from the table: linear in logit(rate), extrapolated at the ends.

    Mean acceptance behaves like sigmoid(c - gamma) in both tails, so logit(rate) is close to
    linear in gamma there; rate 1.0 returns None (accept everything).
    """
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    if rate == 1.0:
        return None
    x = np.log(np.asarray(rates) / (1.0 - np.asarray(rates)))
    y = np.asarray(gammas, dtype=np.float64)
    target = np.log(rate / (1.0 - rate))
    if target < x[0]:
        return float(y[0] + (target - x[0]) * (y[1] - y[0]) / (x[1] - x[0]))
    if target > x[-1]:
        return float(y[-1] + (target - x[-1]) * (y[-1] - y[-2]) / (x[-1] - x[-2]))
    return float(np.interp(target, x, y))
