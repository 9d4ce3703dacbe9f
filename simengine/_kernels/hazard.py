"""Event-time searches: the first period a cumulative hazard reaches an exposure."""

from __future__ import annotations

import math

from .._jit import jit


@jit
def first_period_exceeding(exposure, hazard_per_year, dt_years, periods):
    """First period p (0-based) with 1 - exp(-h * dt * (p + 1)) >= the uniform behind ``exposure``.

    ``exposure`` is -log(1 - U); returns ``periods`` when the event falls after the legal final.
    """
    if hazard_per_year <= 0.0:
        return periods
    p = math.ceil(exposure / (hazard_per_year * dt_years)) - 1
    if p < 0:
        p = 0
    return p if p < periods else periods


@jit
def screen_index(cum_hazard, h0, log_ratio, n_grid):
    """Survivor-screen grid point at or above ``cum_hazard`` (-1 beyond the grid).

    A 1e-6 margin keeps rounding in the exact default test from ever disagreeing with the screen.
    """
    h = cum_hazard * (1.0 + 1e-6)
    m = 0
    if h > h0:
        m = int(math.ceil(math.log(h / h0) / log_ratio))
    return m if m < n_grid else -1


@jit(inline="always")  # inlined (numba IR): called for every defaulting licensee
def first_period_reaching(clock, j, k_obs, base, mult, need):
    """First period t whose cumulative hazard H(t) reaches ``need``; ``periods`` if none does.

    H(t) = clock[j, t] before the obsolescence period ``k_obs`` and ``base + mult * (clock[j, t] -
    base)`` from it on (``base`` = clock[j, k_obs - 1], or 0 for k_obs = 0): monotone in t. Clocks
    are close to linear, so the search guesses from the end-of-deal value and steps: the bisection's
    answer in ~2 probes instead of log2(periods), at most ``periods`` in any case.

    clock : ndarray(float64), shape (industries, periods)   years of base hazard
    """
    T = clock.shape[1]
    h = clock[j, T - 1]
    if T - 1 >= k_obs:
        h = base + mult * (h - base)
    if not need <= h:  # beyond the legal final (or no hazard)
        return T
    g = int(need / h * T) if h > 0.0 else 0
    if g > T - 1:
        g = T - 1
    while g > 0:
        h = clock[j, g - 1]
        if g - 1 >= k_obs:
            h = base + mult * (h - base)
        if h < need:
            break
        g -= 1
    while g < T - 1:
        h = clock[j, g]
        if g >= k_obs:
            h = base + mult * (h - base)
        if h >= need:
            break
        g += 1
    return g
