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


@jit(inline="always")  # inlined (numba IR): called by the period searches
def cum_hazard(clock, j, t, k_obs, base, mult):
    """H(t): ``clock[j, t]`` before the obsolescence period ``k_obs``, ``base + mult * (clock[j, t] -
    base)`` from it on; non-decreasing in t for ``mult`` >= 0."""
    h = clock[j, t]
    if t >= k_obs:
        h = base + mult * (h - base)
    return h


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
    h = cum_hazard(clock, j, T - 1, k_obs, base, mult)
    if not need <= h:  # beyond the legal final (or no hazard)
        return T
    g = int(need / h * T) if h > 0.0 else 0
    if g > T - 1:
        g = T - 1
    while g > 0:
        if cum_hazard(clock, j, g - 1, k_obs, base, mult) < need:
            break
        g -= 1
    while g < T - 1:
        if cum_hazard(clock, j, g, k_obs, base, mult) >= need:
            break
        g += 1
    return g


@jit(inline="always")  # inlined (numba IR): once per industry and path
def fill_clock_start(clock, j, start, scale):
    """Bucket ``j``'s clock for :func:`default_period`: with s = periods / clock[j, -1] (0 without
    hazard), ``scale[j]`` = s and ``start[j, b]`` = the first period t with clock[j, t] * s >= b
    (at most periods - 1), b = 0 .. periods - 1. Any need with int(need * s) = b is first reached
    at or after start[j, b] (rounding is monotone), and clocks are close to linear, so a search
    from there takes ~1 step.

    start : ndarray(int64), shape (industries, periods)   out
    scale : ndarray(float64), shape (industries,)         out
    """
    T = clock.shape[1]
    h = clock[j, T - 1]
    s = T / h if h > 0.0 else 0.0
    scale[j] = s
    t = 0
    for b in range(T):
        while t < T - 1 and clock[j, t] * s < b:
            t += 1
        start[j, b] = t


@jit(inline="always")  # inlined (numba IR): called for every defaulting licensee
def default_period(clock, start, scale, j, k_obs, base, mult, need):
    """:func:`first_period_reaching` (the same period), from the bucket table of
    :func:`fill_clock_start` where the licensee's technology is not obsolete (``k_obs`` >=
    periods, H = the clock), else by the general search."""
    T = clock.shape[1]
    if k_obs < T:
        return first_period_reaching(clock, j, k_obs, base, mult, need)
    if not need <= clock[j, T - 1]:  # beyond the legal final (or no hazard)
        return T
    b = int(need * scale[j])
    g = start[j, b if b < T else T - 1]
    # a bucket spans about one period: two steps without branches (a step past the answer is
    # impossible: once there, the comparison is false), then a loop rarely entered
    g += clock[j, g] < need
    g += clock[j, g] < need
    while clock[j, g] < need:  # stops at T - 1 at the latest: clock[j, T - 1] >= need
        g += 1
    return g


@jit(inline="always")  # inlined (numba IR): called for every defaulting licensee
def tabulated_default_period(latent, inv_hazard, table, l0, inv_step, last, tol, clock, start, scale, j, k_obs, base,
                             mult):
    """A defaulting licensee's period from its exposure interpolated linearly in ``table`` (the
    exposure -log(1 - F(L)) at latents L = l0 + k / inv_step, k = 0 .. last, F the copula's
    marginal CDF), which errs by at most ``tol``: the period of the exact exposure over the hazard
    (1 / ``inv_hazard``), or -1 where the table cannot tell (then the caller computes it exactly).

    The period p found for the upper end of the interval is the exact one when the period before
    it lies below the lower end (H monotone: every exposure in the interval then gives p), or when
    even the lower end lies beyond the legal final; otherwise (a need within ~tol of a period's
    cumulative hazard, about one default in 10^4, or a latent outside the table) -1. The product
    with ``inv_hazard`` instead of a division moves the ends by ~1e-16 relative, far inside ``tol``.
    """
    pos = (latent - l0) * inv_step
    if 0.0 <= pos < last:
        k = int(pos)
        e0 = table[k]
        e = e0 + (table[k + 1] - e0) * (pos - k)
        p = default_period(clock, start, scale, j, k_obs, base, mult, (e + tol) * inv_hazard)
        lo = (e - tol) * inv_hazard
        T = clock.shape[1]
        if p == T:
            if lo > cum_hazard(clock, j, T - 1, k_obs, base, mult):
                return T
        elif p == 0 or cum_hazard(clock, j, p - 1, k_obs, base, mult) < lo:
            return p
    return -1


@jit  # a call, not inlined: the rare exact branch after tabulated_default_period
def exact_default_period(need, clock, start, scale, j, k_obs, base, mult):
    """:func:`default_period` compiled once on its own (a second inlined copy would lengthen the
    path kernel's compile for a branch taken about once in 10^4 defaults)."""
    return default_period(clock, start, scale, j, k_obs, base, mult, need)
