"""Array kernels: plan arrays and scalars in, preallocated arrays out.

Every function here is plain Python made fast by :func:`simengine._jit.jit`; with
``SIMENGINE_DISABLE_NUMBA=1`` they run as their own pure-Python twins. One path is simulated by
:func:`pool_path` (risk drivers → per-period collections) and :func:`waterfall_path` (collections
→ tranche cash flows); :func:`simulate_chunk` runs blocks of paths in parallel
(:func:`simulate_block`), each path's randomness addressed by (seed, path index) only.

Cost per path: O(licences + periods · (industries + royalty groups) + industries · technologies);
a defaulting licensee's period search starts from a linear guess (a few steps, at most periods).
No loop runs over licences × periods.

No array is passed to a function called per path or per period: numba reference-counts array
arguments with atomics, which on shared plan arrays cost more than the work (see simulate_block).
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit, parallel_jit, prange
from .plan import (AM_BULLET, AM_PRO_RATA, AM_SEQUENTIAL, OP_FEES, OP_INTEREST, OP_PRINCIPAL,
                   OP_RESERVE, OP_RESIDUAL, TE_ACCELERATE, TE_SEQUENTIAL, TE_TRAP, TM_CDR)
from .rng import (S_CHI2, S_DEMAND, S_FACTOR, S_GLOBAL, S_INVALIDATION, S_LICENSEE,
                  S_OBSOLESCENCE, S_PROVIDER, S_RECOVERY, gamma_at, normal_at, path_key,
                  stream_key, uniform_at)

SQRT1_2 = 0.7071067811865476
N_LEDGER_DEAL = 12
N_LEDGER_TRANCHE = 7
# deal-level per-path flags written by waterfall_path (enhanced basis)
FLAG_COMMITMENT_NEEDED, FLAG_COMMITMENT_FAILED, FLAG_GUARANTEE_NEEDED, FLAG_GUARANTEE_FAILED = 0, 1, 2, 3
N_FLAGS = 4
# per-tranche outputs: (paths, bases, tranches, N_TRANCHE_OUT)
T_LOSS, T_PV_LOSS, T_INTEREST_SHORTFALL, T_FIRST_SHORTFALL, T_WAL, T_COMMITMENT, T_GUARANTEE, T_DEFAULTED = range(8)
N_TRANCHE_OUT = 8
# pool_out columns per path
P_DEFAULTS, P_OBSOLETE, P_INVALIDATED, P_COLLECTIONS, P_Z_GLOBAL, P_CHI2 = range(6)
N_POOL_OUT = 6
STATE_COLUMNS = 11
BLOCK_PATHS = 64


# ------------------------------------------------------------------------------ distributions
@jit
def upper_tail_normal(x):
    """1 - Phi(x), accurate in the far tail."""
    return 0.5 * math.erfc(x * SQRT1_2)


@jit
def betainc_cf(a, b, x):
    """Regularized incomplete beta I_x(a, b) by Lentz's continued fraction (Numerical Recipes 6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - betainc_cf(b, a, 1.0 - x)
    tiny = 1e-300
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1.0)
    if abs(d) < tiny:
        d = tiny
    d = 1.0 / d
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < tiny:
            d = tiny
        c = 1.0 + aa / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0))
        d = 1.0 + aa * d
        if abs(d) < tiny:
            d = tiny
        c = 1.0 + aa / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return front * h / a


@jit
def upper_tail_t(x, dof):
    """1 - F_t(x) for Student's t with ``dof`` degrees of freedom."""
    tail = 0.5 * betainc_cf(0.5 * dof, 0.5, dof / (dof + x * x))
    return tail if x > 0.0 else 1.0 - tail


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
def _screen_index(cum_hazard, h0, log_ratio, n_grid):
    """Survivor-screen grid point at or above ``cum_hazard`` (-1 beyond the grid).

    A 1e-6 margin keeps rounding in the exact default test from ever disagreeing with the screen.
    """
    h = cum_hazard * (1.0 + 1e-6)
    m = 0
    if h > h0:
        m = int(math.ceil(math.log(h / h0) / log_ratio))
    return m if m < n_grid else -1


@jit(inline="always")  # inlined (numba IR): a call would reference-count ``clock`` (atomics)
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


# -------------------------------------------------------------------------------- pool path
@jit
def pool_scratch(pp, n_factors):
    """Working arrays of :func:`pool_path`, one set per thread, in its ``scratch`` order."""
    T = pp.periods
    n_ind = pp.demand_drift_annual.shape[0]
    return (np.empty(T), np.empty(n_factors), np.empty((n_ind, T)), np.empty((n_ind, T)),
            np.empty((n_ind, pp.obsolescence_hazard_annual.shape[0]), np.int64),
            np.empty(pp.obsolescence_hazard_annual.shape[0], np.int64),
            np.empty(pp.licensee_hazard_annual.shape[0], np.int64),
            np.zeros((pp.group_running.shape[0], T + 1)), np.empty(T + 1), np.empty(T + 1))


@jit
def pool_path(pp, seed, path, global_shift, chi2_scale, antithetic, scratch, collections, cdr,
              provider_period):
    """Simulate one path's risk drivers and collections.

    Parameters
    ----------
    pp : PoolPlan
    seed, path : int
        The path's address; nothing else decides its random numbers.
    global_shift : float
        Importance sampling: mean of the global factor (0 = plain Monte Carlo).
    chi2_scale : float
        Importance sampling, Student-t copula: the chi-square mixing variable is drawn with its
        scale times this (1 = plain; below 1 = heavier joint tails).
    antithetic : bool
        Paths 2m and 2m+1 share an address; the odd one negates every normal draw and flips
        every invalidation uniform (gamma draws are shared).
    scratch : tuple from :func:`pool_scratch`:
        g_global : ndarray(float64), shape (periods,)          per-period global shocks
        factors : ndarray(float64), shape (factors,)           systematic factors
        demand_x : ndarray(float64), shape (industries, periods)   demand index exp(log-demand),
            filled only for industries with running royalties
        clock : ndarray(float64), shape (industries, periods)      cumulative hazard clock (years)
        screen : ndarray(int64), shape (industries, technologies)   survivor-screen grid index
        obs_period : ndarray(int64), shape (technologies,)     obsolescence period or ``periods``
        licensee_period : ndarray(int64), shape (licensees,)   default period or ``periods``
        group_diff : ndarray(float64), shape (groups, periods + 1)   zero on entry, left zero
        cdr_diff, count_diff : ndarray(float64), shape (periods + 1,)
    collections : ndarray(float64), shape (periods,)       out: royalties collected per period
    cdr : ndarray(float64), shape (periods,)               out: cumulative default rate (amount)
    provider_period : ndarray(int64), shape (2,)           out: provider default periods

    Returns
    -------
    (weight, z_global, chi2, n_defaults, n_obsolete, n_invalidated) ; weight is the likelihood
    ratio of the nominal to the sampling measure, chi2 is NaN without a Student-t copula; the
    cumulative default fraction by count is left in ``count_diff[:periods]`` (``scratch[9]``).
    """
    (g_global, factors, demand_x, clock, screen, obs_period, licensee_period, group_diff, cdr_diff,
     count_diff) = scratch
    T = pp.periods
    dt = pp.dt_years
    flip = antithetic and (path & 1) == 1
    sign = -1.0 if flip else 1.0
    key = path_key(seed, path >> 1 if antithetic else path)
    # global factor as the scaled sum of per-period shocks: N(0, 1), and demand sees the same shocks
    sk = stream_key(key, S_GLOBAL)
    delta = global_shift / math.sqrt(T)
    total = 0.0
    for t in range(T):
        g_global[t] = sign * normal_at(sk, t) + delta
        total += g_global[t]
    z_global = total / math.sqrt(T)
    log_weight = -global_shift * z_global + 0.5 * global_shift * global_shift

    n_f = factors.shape[0]
    sk = stream_key(key, S_FACTOR)
    if pp.factor_identity:
        factors[0] = z_global
        for k in range(1, n_f):
            factors[k] = sign * normal_at(sk, k)
    else:
        for k in range(n_f):
            acc = pp.factor_root[k, 0] * z_global
            for j in range(1, k + 1):
                acc += pp.factor_root[k, j] * sign * normal_at(sk, j)
            factors[k] = acc
    mixing = 1.0
    chi2 = math.nan
    if pp.copula_t:
        # chi2 = 2 G s, G ~ Gamma(dof/2, 1); the nominal s is 1, so the ratio is s^(dof/2) e^(G(1-s))
        g = gamma_at(stream_key(key, S_CHI2), 0, 0.5 * pp.dof)
        chi2 = 2.0 * g * chi2_scale
        mixing = math.sqrt(pp.dof / chi2)
        if chi2_scale != 1.0:
            log_weight += 0.5 * pp.dof * math.log(chi2_scale) + g * (1.0 - chi2_scale)
    weight = math.exp(log_weight)

    # demand: log-demand per industry; clock = integral of the demand hazard multiplier
    n_ind = demand_x.shape[0]
    sk = stream_key(key, S_DEMAND)
    sqdt = math.sqrt(dt)
    for j in range(n_ind):
        x = 0.0
        acc = 0.0
        vol = pp.demand_vol_annual[j]
        c = pp.demand_loading[j]
        idio = math.sqrt(max(0.0, 1.0 - c * c))
        elas = pp.demand_elasticity[j]
        for t in range(T):
            if pp.demand_on:
                drift = pp.demand_drift_annual[j]
                if t < pp.demand_shock_periods:
                    drift += pp.demand_shock_drift_annual
                e = c * g_global[t]
                if vol > 0.0:
                    e += idio * sign * normal_at(sk, j * T + t)
                x += (drift - 0.5 * vol * vol - pp.demand_reversion_annual[j] * x) * dt + vol * sqdt * e
            if pp.industry_running[j]:  # exp once here, not once per royalty group
                demand_x[j, t] = math.exp(x)
            acc += dt * (math.exp(pp.demand_hazard_adjust[j, t] - elas * x) if elas != 0.0 else 1.0)
            clock[j, t] = acc

    # obsolescence per technology: a one-factor Gaussian copula on the global factor
    n_tech = obs_period.shape[0]
    sk = stream_key(key, S_OBSOLESCENCE)
    b = pp.obsolescence_loading
    b_idio = math.sqrt(max(0.0, 1.0 - b * b))
    n_obsolete = 0
    for k in range(n_tech):
        period = T
        if pp.obsolescence_on:
            if pp.obsolescence_forced_period[k] >= 0:
                period = pp.obsolescence_forced_period[k]
            elif pp.obsolescence_hazard_annual[k] > 0.0:
                y = b * z_global + b_idio * sign * normal_at(sk, k)
                exposure = -math.log(upper_tail_normal(y))
                period = first_period_exceeding(exposure, pp.obsolescence_hazard_annual[k], dt, T)
        obs_period[k] = period
        if period < T:
            n_obsolete += 1

    # licensee default: latent variable against the path-dependent cumulative hazard
    for t in range(T + 1):
        cdr_diff[t] = 0.0
        count_diff[t] = 0.0
    n_ls = licensee_period.shape[0]
    sk = stream_key(key, S_LICENSEE)
    n_defaults = 0
    # survivor screen: the grid point at or above the end-of-deal cumulative hazard of each
    # industry and technology (a technology made obsolete with a multiplier bends the clock from
    # then on; monotone, so the end value bounds every period's)
    n_grid = pp.survival_threshold.shape[1]
    for j in range(n_ind):
        h = clock[j, T - 1]
        m = _screen_index(h, pp.threshold_h0, pp.threshold_log_ratio, n_grid)
        for k in range(n_tech):
            k_obs = obs_period[k]
            mult = pp.obsolescence_multiplier[k]
            if k_obs < T and mult != 1.0:
                base = clock[j, k_obs - 1] if k_obs > 0 else 0.0
                screen[j, k] = _screen_index(base + mult * (h - base), pp.threshold_h0, pp.threshold_log_ratio,
                                             n_grid)
            else:
                screen[j, k] = m
    for i in range(n_ls):
        period = T
        if pp.default_on:
            latent = (pp.licensee_load_global * factors[0]
                      + pp.licensee_load_industry * factors[pp.licensee_industry_factor[i]]
                      + pp.licensee_load_region * factors[pp.licensee_region_factor[i]]
                      + pp.licensee_idio[i] * sign * normal_at(sk, i)) * mixing
            m = screen[pp.licensee_industry[i], pp.licensee_technology[i]]
            if m >= 0 and latent > pp.survival_threshold[pp.licensee_hazard_class[i], m]:
                licensee_period[i] = T
                continue
            # exposure = -log(1 - U) with U the copula uniform; low latent = early default
            u = upper_tail_t(-latent, pp.dof) if pp.copula_t else upper_tail_normal(-latent)
            exposure = -math.log1p(-u)
            need = exposure / pp.licensee_hazard_annual[i] if pp.licensee_hazard_annual[i] > 0.0 else math.inf
            j = pp.licensee_industry[i]
            k_obs = obs_period[pp.licensee_technology[i]]
            mult = pp.obsolescence_multiplier[pp.licensee_technology[i]]
            base = clock[j, k_obs - 1] if 0 < k_obs < T else 0.0
            period = first_period_reaching(clock, j, k_obs, base, mult, need)
        licensee_period[i] = period
        if period < T:
            n_defaults += 1
            count_diff[period] += 1.0

    # licences → royalty groups (difference arrays over periods; all zero on entry, see below)
    n_grp = group_diff.shape[0]
    sk_inv = stream_key(key, S_INVALIDATION)
    sk_rec = stream_key(key, S_RECOVERY)
    n_lic = pp.licence_royalty.shape[0]
    n_invalidated = 0
    for i in range(n_lic):
        start = pp.licence_start[i]
        last = pp.licence_last[i]
        g = pp.licence_group[i]
        tau = licensee_period[pp.licence_licensee[i]]
        inval = T
        h_inv = pp.licence_invalidation_hazard_annual[i]
        if h_inv > 0.0:
            u_inv = uniform_at(sk_inv, i)
            if flip:
                u_inv = 1.0 - u_inv
            if u_inv <= pp.licence_invalidation_u_max[i]:
                inval = first_period_exceeding(-math.log1p(-u_inv), h_inv, dt, T)
            if inval < T:
                n_invalidated += 1
        stop = min(last + 1, min(tau, inval))
        amount = pp.licence_royalty[i]
        if start < stop:
            group_diff[g, start] += amount
            group_diff[g, stop] -= amount
        if tau <= last:
            cdr_diff[tau] += pp.licence_scheduled_amount[i]
            # re-licensing: recovers nothing once the IP is obsolete, expired or invalidated
            r_start = max(tau + pp.relicense_lag, start)
            r_stop = min(last + 1, min(inval, obs_period[pp.licence_technology[i]]))
            rec = pp.licence_recovery[i]
            if pp.recovery_beta and 0.0 < rec < 1.0 and r_start < r_stop:  # addressed: skipping is free
                s2 = pp.recovery_stdev * pp.recovery_stdev
                conc = rec * (1.0 - rec) / s2 - 1.0
                ga = gamma_at(sk_rec, 2 * i, rec * conc)
                gb = gamma_at(sk_rec, 2 * i + 1, (1.0 - rec) * conc)
                rec = ga / (ga + gb)
            if rec > 0.0 and r_start < r_stop:
                group_diff[g, r_start] += rec * amount
                group_diff[g, r_stop] -= rec * amount

    for t in range(T):
        collections[t] = 0.0
    # each difference is zeroed as it is consumed, ready for the scratch's next path
    for g in range(n_grp):
        running_amount = 0.0
        if pp.group_running[g]:
            j = pp.group_industry[g]
            k = pp.group_technology[g]
            kept = 1.0 - pp.obsolescence_severity[k]
            floor = pp.group_floor_ratio[g]
            t_obs = obs_period[k]
            for t in range(T):
                running_amount += group_diff[g, t]
                group_diff[g, t] = 0.0
                m = demand_x[j, t]
                if t >= t_obs:
                    m *= kept
                if m < floor:
                    m = floor
                collections[t] += running_amount * m
        else:
            for t in range(T):
                running_amount += group_diff[g, t]
                group_diff[g, t] = 0.0
                collections[t] += running_amount
        group_diff[g, T] = 0.0
    acc = 0.0
    cnt = 0.0
    for t in range(T):
        acc += cdr_diff[t]
        cdr[t] = acc / pp.scheduled_total if pp.scheduled_total > 0.0 else 0.0
        cnt += count_diff[t]
        count_diff[t] = cnt / n_ls

    # providers: same copula, loading on the global factor only (wrong-way risk)
    sk = stream_key(key, S_PROVIDER)
    for j in range(2):
        provider_period[j] = T
        if pp.provider_on[j]:
            a = pp.provider_loading[j]
            latent = (a * factors[0] + math.sqrt(max(0.0, 1.0 - a * a)) * sign * normal_at(sk, j)) * mixing
            u = upper_tail_t(-latent, pp.dof) if pp.copula_t else upper_tail_normal(-latent)
            provider_period[j] = first_period_exceeding(-math.log1p(-u), pp.provider_hazard_annual[j], dt, T)
    return weight, z_global, chi2, n_defaults, n_obsolete, n_invalidated


# --------------------------------------------------------------------------------- waterfall
@jit
def _provider_pays(shortfall, covered, p, default_period, room):
    """What a provider pays towards ``shortfall`` in period p: (amount, asked, failed)."""
    if shortfall <= 0.0 or not covered:
        return 0.0, False, False
    if p >= default_period:
        return 0.0, True, True
    pay = shortfall if shortfall < room else room
    return (pay if pay > 0.0 else 0.0), True, False


@jit(inline="always")
def _ask_providers(covers, cap, k, shortfall, p, provider_period, used, flags, out, state, drawn):
    """The commitment, then the guarantee, towards tranche k's ``shortfall``: their draws (d0, d1).

    Inlined (numba IR): as a call, its array arguments would be reference-counted (atomics) twelve
    times a period; that made the enhanced waterfall 20x slower than the standalone one.
    """
    d0 = 0.0
    d1 = 0.0
    for j in range(2):
        d, asked, failed = _provider_pays(shortfall, covers[j, k], p, provider_period[j], cap[j] - used[j])
        if asked:
            flags[2 * j] = 1.0
        if failed:
            flags[2 * j + 1] = 1.0
        used[j] += d
        out[k, T_COMMITMENT + j] += d
        state[k, 5 + j] += d
        drawn[j] += d
        shortfall -= d
        if j == 0:
            d0 = d
        else:
            d1 = d
    return d0, d1


@jit
def waterfall_path(wp, collections, cdr, provider_period, enhanced, balance, carry, state,
                   out, trig_fired, flags, ledger, record):
    """Run the priority of payments over one path's collections.

    Parameters
    ----------
    wp : WaterfallPlan
    collections, cdr : ndarray(float64), shape (periods,)
    provider_period : ndarray(int64), shape (2,)   default period of commitment / guarantee provider
    enhanced : bool                 False = standalone (no commitment, no guarantee)
    balance, carry : ndarray(float64), shape (tranches,)   scratch
    state : ndarray(float64), shape (max(tranches, triggers, 2), STATE_COLUMNS)   scratch
    out : ndarray(float64), shape (tranches, N_TRANCHE_OUT)  out: per-tranche results
    trig_fired : ndarray(uint8), shape (triggers,)           out: 1 if the trigger was ever active
    flags : ndarray(float64), shape (N_FLAGS,)               out: provider need / failure
    ledger : ndarray(float64), shape (periods, width)        out when ``record``
    """
    T = wp.periods
    n = balance.shape[0]
    n_trig = trig_fired.shape[0]
    for k in range(n):
        balance[k] = wp.tranche_balance[k]
        carry[k] = 0.0
        for c in range(N_TRANCHE_OUT):
            out[k, c] = 0.0
        out[k, T_FIRST_SHORTFALL] = -1.0
        state[k, 0] = 0.0  # wal numerator (years x amount)
        state[k, 1] = 0.0  # missed non-deferrable interest
    for c in range(N_FLAGS):
        flags[c] = 0.0
    # views into the scratch, not fresh arrays: this runs once or twice per path
    used = state[:2, 7]
    breach = state[:n_trig, 8]
    latched = state[:n_trig, 9]
    drawn = state[:2, 10]  # this period's commitment and guarantee draws
    used[0] = 0.0
    used[1] = 0.0
    for c in range(n_trig):
        trig_fired[c] = 0
        breach[c] = 0.0
        latched[c] = 0.0
    reserve = wp.reserve_initial
    fee_carry = 0.0
    for p in range(T):
        final = p == T - 1
        reserve_start = reserve
        avail = collections[p]
        notes = 0.0
        for k in range(n):
            notes += balance[k]
        fees_due = wp.fee_fixed + wp.fee_rate_per_period * notes + fee_carry
        interest_due_total = 0.0
        for k in range(n):
            state[k, 2] = balance[k] * wp.tranche_coupon_per_period[k] + carry[k]  # interest due
            state[k, 3] = 0.0  # interest paid this period
            state[k, 4] = 0.0  # principal paid this period
            state[k, 5] = 0.0  # commitment draws this period
            state[k, 6] = 0.0  # guarantee draws this period
            interest_due_total += state[k, 2]
        denom = fees_due + interest_due_total
        dscr = collections[p] / denom if denom > 0.0 else math.inf
        sequential = False
        trap = False
        accelerated = False
        for c in range(n_trig):
            if wp.trigger_metric[c] == TM_CDR:
                hit = cdr[p] > wp.trigger_threshold[c]
            else:
                hit = dscr < wp.trigger_threshold[c]
            breach[c] = breach[c] + 1.0 if hit else 0.0
            active = breach[c] >= wp.trigger_consecutive[c]
            if not wp.trigger_curable[c]:
                if active:
                    latched[c] = 1.0
                active = latched[c] > 0.0
            if active:
                trig_fired[c] = 1
                e = wp.trigger_effect[c]
                if e == TE_SEQUENTIAL:
                    sequential = True
                elif e == TE_TRAP:
                    trap = True
                elif e == TE_ACCELERATE:
                    accelerated = True
                    sequential = True
        if final or accelerated:
            avail += reserve  # the reserve is released at legal final and on acceleration
            reserve = 0.0
        drawn[0] = 0.0
        drawn[1] = 0.0
        fees_paid = 0.0
        residual = 0.0
        steps = wp.steps_accelerated if accelerated else wp.steps
        for s in range(steps.shape[0]):
            op = steps[s, 0]
            grp = steps[s, 1]
            if op == OP_FEES:
                pay = min(avail, fees_due)
                avail -= pay
                short = fees_due - pay
                d = min(reserve, short)
                reserve -= d
                fees_paid += pay + d
                fee_carry = short - d
            elif op == OP_INTEREST:
                for m in range(wp.step_members.shape[1]):
                    k = wp.step_members[grp, m]
                    if k < 0:
                        break
                    due = state[k, 2] - state[k, 3]
                    pay = min(avail, due)
                    avail -= pay
                    short = due - pay
                    if wp.reserve_covers[k]:
                        d = min(reserve, short)
                        reserve -= d
                        pay += d
                        short -= d
                    if enhanced:
                        d0, d1 = _ask_providers(wp.provider_covers, wp.provider_cap, k, short, p, provider_period,
                                                used, flags, out, state, drawn)
                        pay += d0
                        pay += d1
                        short -= d0
                        short -= d1
                    state[k, 3] += pay
                    if short > 1e-9 * wp.tranche_balance[k]:
                        if out[k, T_FIRST_SHORTFALL] < 0.0:
                            out[k, T_FIRST_SHORTFALL] = p + 1.0
                        if not wp.tranche_deferrable[k]:
                            state[k, 1] = 1.0
                    else:
                        short = 0.0
                    carry[k] = short
            elif op == OP_RESERVE:
                if wp.reserve_target_amount >= 0.0:
                    target = wp.reserve_target_amount
                elif wp.reserve_target_fraction >= 0.0:
                    notes = 0.0
                    for k in range(n):
                        notes += balance[k]
                    target = wp.reserve_target_fraction * notes
                else:
                    target = wp.reserve_initial
                if final:
                    target = 0.0
                if reserve > target:
                    if not trap:  # trapped cash stays in the reserve until the trigger cures
                        avail += reserve - target
                        reserve = target
                else:
                    d = min(avail, target - reserve)
                    reserve += d
                    avail -= d
            elif op == OP_PRINCIPAL:
                m = 0
                width = wp.step_members.shape[1]
                while m < width and wp.step_members[grp, m] >= 0:
                    k = wp.step_members[grp, m]
                    mode = wp.tranche_mode[k]
                    if mode == AM_PRO_RATA and not sequential and not final:
                        # a run of pro-rata tranches shares the cash in proportion to balances
                        m2 = m
                        total = 0.0
                        while m2 < width and wp.step_members[grp, m2] >= 0 and \
                                wp.tranche_mode[wp.step_members[grp, m2]] == AM_PRO_RATA:
                            total += balance[wp.step_members[grp, m2]]
                            m2 += 1
                        cash = min(avail, total)
                        paid = 0.0
                        for q in range(m, m2):
                            kk = wp.step_members[grp, q]
                            if cash >= total:
                                pay = balance[kk]
                            elif q == m2 - 1:
                                pay = min(balance[kk], cash - paid)
                            else:
                                pay = cash * (balance[kk] / total)
                            paid += pay
                            balance[kk] -= pay
                            avail -= pay
                            state[kk, 4] += pay
                        m = m2
                        continue
                    if sequential or final or mode == AM_SEQUENTIAL:
                        due = balance[k]
                    elif mode == AM_BULLET:
                        due = balance[k] if p >= wp.tranche_maturity[k] else 0.0
                    else:  # AM_SCHEDULE
                        due = max(0.0, balance[k] - wp.tranche_schedule_target[k, p] * wp.tranche_balance[k])
                    pay = min(avail, due)
                    balance[k] -= pay
                    avail -= pay
                    state[k, 4] += pay
                    m += 1
                # contractual principal shortfalls: what the enhancers promise
                m = 0
                while m < width and wp.step_members[grp, m] >= 0:
                    k = wp.step_members[grp, m]
                    m += 1
                    short = balance[k] - wp.tranche_contract_target[k, p] * wp.tranche_balance[k]
                    if short <= 1e-9 * wp.tranche_balance[k]:
                        continue
                    if out[k, T_FIRST_SHORTFALL] < 0.0:
                        out[k, T_FIRST_SHORTFALL] = p + 1.0
                    if enhanced:
                        d0, d1 = _ask_providers(wp.provider_covers, wp.provider_cap, k, short, p, provider_period,
                                                used, flags, out, state, drawn)
                        balance[k] -= d0
                        state[k, 4] += d0
                        balance[k] -= d1
                        state[k, 4] += d1
            elif op == OP_RESIDUAL:
                if trap and not final:
                    reserve += avail
                else:
                    residual += avail
                avail = 0.0
        residual += avail  # a custom waterfall without a residual step still releases the rest
        years = (p + 1.0) / wp.periods_per_year
        for k in range(n):
            state[k, 0] += years * state[k, 4]
        if record:
            ledger[p, 0] = collections[p]
            ledger[p, 1] = fees_paid
            ledger[p, 2] = reserve_start
            ledger[p, 3] = reserve
            ledger[p, 4] = drawn[0]
            ledger[p, 5] = drawn[1]
            ledger[p, 6] = residual
            ledger[p, 7] = cdr[p]
            ledger[p, 8] = dscr
            ledger[p, 9] = 1.0 if sequential else 0.0
            ledger[p, 10] = 1.0 if trap else 0.0
            ledger[p, 11] = 1.0 if accelerated else 0.0
            for k in range(n):
                base = N_LEDGER_DEAL + k * N_LEDGER_TRANCHE
                ledger[p, base + 0] = state[k, 2]
                ledger[p, base + 1] = state[k, 3]
                ledger[p, base + 2] = state[k, 4]
                ledger[p, base + 3] = balance[k]
                ledger[p, base + 4] = carry[k]
                ledger[p, base + 5] = state[k, 5]
                ledger[p, base + 6] = state[k, 6]
    horizon = T / wp.periods_per_year
    df_final = wp.discount_factor[T - 1]
    for k in range(n):
        orig = wp.tranche_balance[k]
        lost = balance[k] if balance[k] > 1e-9 * orig else 0.0
        unpaid = carry[k]
        out[k, T_LOSS] = lost / orig
        out[k, T_PV_LOSS] = df_final * (lost + unpaid) / orig
        out[k, T_INTEREST_SHORTFALL] = unpaid
        out[k, T_WAL] = (state[k, 0] + horizon * lost) / orig
        out[k, T_DEFAULTED] = 1.0 if (lost > 0.0 or unpaid > 0.0 or state[k, 1] > 0.0) else 0.0


# ------------------------------------------------------------------------------------ chunk
# the same functions inlined into simulate_block's path loop (numba IR inlining; never compiled
# on their own, so nothing to cache)
_pool_path_inline = jit(getattr(pool_path, "py_func", pool_path), inline="always", cache=False)
_waterfall_path_inline = jit(getattr(waterfall_path, "py_func", waterfall_path), inline="always", cache=False)


@parallel_jit
def simulate_chunk(pp, wp, seed, first_path, global_shift, chi2_scale, antithetic, n_factors,
                   tranche_out, trig_out, flag_out, pool_out, cum_default, weights):
    """Simulate paths ``first_path .. first_path + n - 1`` (n = ``weights.shape[0]``).

    ``global_shift``, ``chi2_scale`` and ``antithetic`` are the sampling measure (see
    :func:`pool_path`); the waterfall never sees it, only ``weights`` do.

    Outputs (n = paths in the chunk, B = 2 bases: 0 standalone, 1 enhanced):
    tranche_out : ndarray(float64), shape (n, 2, tranches, N_TRANCHE_OUT)
    trig_out : ndarray(uint8), shape (n, triggers)          enhanced basis
    flag_out : ndarray(float64), shape (n, N_FLAGS)         enhanced basis
    pool_out : ndarray(float64), shape (n, N_POOL_OUT)   columns P_*
    cum_default : ndarray(float32), shape (n, periods)      cumulative licensee default fraction
    weights : ndarray(float64), shape (n,)                  likelihood-ratio weights
    """
    n = weights.shape[0]
    n_blocks = (n + BLOCK_PATHS - 1) // BLOCK_PATHS
    no_ledgers = np.empty((0, 0, 0))
    no_collections = np.empty((0, 0))
    for b in prange(n_blocks):
        lo = b * BLOCK_PATHS
        hi = min(n, lo + BLOCK_PATHS)
        simulate_block(pp, wp, seed, np.arange(first_path + lo, first_path + hi), lo, global_shift, chi2_scale,
                       antithetic, n_factors, tranche_out, trig_out, flag_out, pool_out, cum_default, weights,
                       no_ledgers, no_collections)


@jit
def ledger_paths(pp, wp, seed, paths, global_shift, chi2_scale, antithetic, n_factors, ledgers,
                 collections_out):
    """Full per-period ledgers (enhanced basis) for the listed paths.

    paths : ndarray(int64), shape (n,)
    ledgers : ndarray(float64), shape (n, periods, ledger width)     out
    collections_out : ndarray(float64), shape (n, periods)          out
    """
    n = paths.shape[0]
    n_tr = wp.tranche_balance.shape[0]
    # np.int64(0), not 0: a literal would type-specialise a second compiled simulate_block
    simulate_block(pp, wp, seed, paths, np.int64(0), global_shift, chi2_scale, antithetic, n_factors,
                   np.empty((n, 2, n_tr, N_TRANCHE_OUT)), np.empty((n, wp.trigger_metric.shape[0]), np.uint8),
                   np.empty((n, N_FLAGS)), np.empty((n, N_POOL_OUT)), np.empty((n, pp.periods), np.float32),
                   np.empty(n), ledgers, collections_out)


@jit
def simulate_block(pp, wp, seed, paths, row0, global_shift, chi2_scale, antithetic, n_factors,
                   tranche_out, trig_out, flag_out, pool_out, cum_default, weights, ledgers, collections_out):
    """Paths ``paths`` (int64, shape (m,)) into rows ``row0 .. row0 + m - 1`` of the outputs of
    :func:`simulate_chunk`, on one thread; where ``ledgers`` has rows, also each path's enhanced
    ledger and collections (rows ``0 .. m - 1``, as :func:`ledger_paths`).

    One call per block, with pool_path and waterfall_path inlined: a call per path would
    reference-count each of the plans' ~75 arrays twice (atomics on cache lines every thread
    shares), and inlining into the parallel loop itself makes numba's parfor passes crawl. Chunks
    and ledgers share this one compiled function.
    """
    T = pp.periods
    n_tr = wp.tranche_balance.shape[0]
    n_trig = trig_out.shape[1]
    record = ledgers.shape[0] > 0
    scratch = pool_scratch(pp, n_factors)
    count_diff = scratch[9]
    collections = np.empty(T)
    cdr = np.empty(T)
    provider_period = np.empty(2, np.int64)
    balance = np.empty(n_tr)
    carry = np.empty(n_tr)
    state = np.empty((max(n_tr, max(n_trig, 2)), STATE_COLUMNS))
    res = np.empty((2, n_tr, N_TRANCHE_OUT))
    trig = np.empty((2, n_trig), np.uint8)
    flags = np.empty((2, N_FLAGS))
    no_ledger = np.empty((0, 0))
    for q in range(paths.shape[0]):
        i = row0 + q
        w, z, chi2, n_def, n_obs, n_inv = _pool_path_inline(
            pp, seed, paths[q], global_shift, chi2_scale, antithetic, scratch, collections, cdr, provider_period)
        weights[i] = w
        pool_out[i, P_DEFAULTS] = n_def
        pool_out[i, P_OBSOLETE] = n_obs
        pool_out[i, P_INVALIDATED] = n_inv
        total = 0.0
        for t in range(T):
            total += collections[t]
            cum_default[i, t] = count_diff[t]
        pool_out[i, P_COLLECTIONS] = total
        pool_out[i, P_Z_GLOBAL] = z
        pool_out[i, P_CHI2] = chi2
        if record:
            for t in range(T):
                collections_out[q, t] = collections[t]
        # enhanced basis (1) first; the standalone one (0) differs only in provider draws, so it
        # is run only where a provider was asked
        asked = False
        for basis in range(1, -1, -1):
            if basis == 0 and not asked:
                break
            rec = record and basis == 1
            _waterfall_path_inline(wp, collections, cdr, provider_period, basis == 1, balance, carry, state,
                                   res[basis], trig[basis], flags[basis], ledgers[q] if rec else no_ledger, rec)
            for c in range(N_FLAGS):
                if flags[1, c] != 0.0:
                    asked = True
        for c in range(N_FLAGS):
            flag_out[i, c] = flags[1, c]
        for c in range(n_trig):
            trig_out[i, c] = trig[1, c]
        for k in range(n_tr):
            for c in range(N_TRANCHE_OUT):
                tranche_out[i, 1, k, c] = res[1, k, c]
                tranche_out[i, 0, k, c] = res[0, k, c] if asked else res[1, k, c]
