"""One path's risk drivers: systematic factors, demand, obsolescence, licensee defaults,
invalidations and re-licensing, turned into per-period collections; and the providers' default
periods. Everything random is addressed by (seed, path, stream, index) only.

Cost per path: O(licences + periods · (industries + royalty groups) + industries · technologies);
a defaulting licensee's period search starts from a linear guess (a few steps, at most periods).
No loop runs over licences × periods.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import jit
from .._layout import (
    P_CHI2,
    P_COLLECTIONS,
    P_DEFAULTS,
    P_INVALIDATED,
    P_OBSOLETE,
    P_Z_GLOBAL,
    PR_DEFAULT_PERIOD,
    PR_LATENT,
    PR_WORST_GRADE,
)
from ..rng import (
    S_CHI2,
    S_DEMAND,
    S_FACTOR,
    S_GLOBAL,
    S_INVALIDATION,
    S_LICENSEE,
    S_OBSOLESCENCE,
    S_PROVIDER,
    S_RECOVERY,
    gamma_at,
    normal_at,
    path_key,
    stream_key,
    uniform_at,
)
from .distributions import beta_quantile, t_tail_norms, upper_tail_normal, upper_tail_t_normed
from .hazard import (
    exact_default_period,
    fill_clock_start,
    first_period_exceeding,
    screen_index,
    tabulated_default_period,
)


@jit  # a call (not inlined): it runs only for deals with an OC trigger
def oc_add_licence(oc_sched, oc_lost, bases, licence_weight, tech_base, tech_weight, royalty, start, last, stop):
    """A licence's terms in the collateral recursions: in base 0 with ``licence_weight`` and, where
    ``tech_base`` > 0, in its technology's base with ``tech_weight`` (expected obsolescence): its
    royalty while it pays its licensee (``start .. min(stop, last + 1) - 1``), and the value of
    what remains of its schedule at ``stop`` (its default or invalidation period), which leaves
    the collateral then."""
    for b in (0, tech_base):
        if b < 0:
            continue
        amount = (licence_weight if b == 0 else tech_weight) * royalty
        if amount == 0.0:
            continue
        end = min(stop, last + 1)
        if start < end:
            oc_sched[b, start] += amount
            oc_sched[b, end] -= amount
        if 1 <= stop <= last:
            base = bases[b]
            first = max(stop, start)
            n = last - first + 1
            if base == 1.0:
                value = float(n)
            else:
                # math.pow on floats: the C library's pow in numba and in Python alike (an integer
                # power would be repeated multiplication in numba, not bit-equal to its Python twin)
                value = math.pow(base, float(first - stop + 1)) * (1.0 - math.pow(base, float(n))) / (1.0 - base)
            oc_lost[b, stop] += amount * value


@jit  # a call (only for defaulted licences with beta recoveries and a loading): keeps the path kernel small
def systematic_recovery(sk_rec, i, z_global, sign, loading, a, b):
    """Licence i's systematic beta recovery: the Beta(a, b) quantile of Phi(loading G + sqrt(1 -
    loading^2) e), G the global factor and e the licence's recovery normal (negated on an
    antithetic path, ``sign`` = -1)."""
    y = loading * z_global + math.sqrt(1.0 - loading * loading) * sign * normal_at(sk_rec, 2 * i)
    return beta_quantile(upper_tail_normal(-y), a, b)


@jit  # a call, once a path, only for a deal with an OC trigger
def collateral_values(bases, base_technology, obs_period, oc_sched, oc_lost, oc_value):
    """The OC collateral value at the start of each period from the difference arrays of
    :func:`oc_add_licence`: W(p) = base (scheduled(p) + W(p + 1) + lost(p + 1)), backwards from
    W(periods) = 0, per base; the base of technology k counts while k is not yet obsolete. Leaves
    ``oc_sched`` and ``oc_lost`` zero."""
    T = oc_value.shape[0]
    for ob in range(oc_sched.shape[0]):
        acc = 0.0
        for t in range(T):
            acc += oc_sched[ob, t]
            oc_sched[ob, t] = acc
        oc_sched[ob, T] = 0.0
        k = base_technology[ob]
        value = 0.0
        for p in range(T - 1, -1, -1):
            value = bases[ob] * (oc_sched[ob, p] + value + oc_lost[ob, p + 1])
            oc_sched[ob, p] = 0.0
            oc_lost[ob, p + 1] = 0.0
            if ob == 0:
                oc_value[p] = value
            elif p < obs_period[k]:  # technology k not yet obsolete: its expected severity part
                oc_value[p] += value
        oc_lost[ob, 0] = 0.0


@jit
def pool_block(pp, seed, paths, row0, global_shift, chi2_scale, antithetic, provider_shift, scratch, block_collections,
               block_cdr, block_oc_value, block_provider_period, chunk_provider_out, weights, pool_out, cum_default):
    """Simulate the risk drivers and collections of a block of paths, ``paths`` (int64, shape
    (m,)), path q into row q of the block arrays and row ``row0 + q`` of the chunk's outputs.

    One call per block, not per path: a call passes the plan's arrays field by field (hundreds of
    words), which cost a small deal (Guangzhou, 11 licences) a third of its kernel time.

    Parameters
    ----------
    pp : PoolPlan
    seed : int
        With each path's number, its address; nothing else decides its random numbers.
    global_shift : float
        Importance sampling: mean of the global factor (0 = plain Monte Carlo).
    chi2_scale : float
        Importance sampling, Student-t copula: the chi-square mixing variable is drawn with its
        scale times this (1 = plain; below 1 = heavier joint tails).
    antithetic : bool
        Paths 2m and 2m+1 share an address; the odd one negates every normal draw and flips
        every invalidation uniform (gamma draws are shared).
    provider_shift : ndarray(float64), shape (providers,)
        Importance sampling: mean of each provider's idiosyncratic normal (0 = plain).
    scratch : tuple, one slot of :class:`simengine._layout.Scratch`, in this order:
        g_global : ndarray(float64), shape (periods,)          per-period global shocks
        factors : ndarray(float64), shape (factors,)           systematic factors
        demand_x : ndarray(float64), shape (industries, periods)   demand index exp(log-demand),
            filled only for industries with running royalties
        clock : ndarray(float64), shape (industries, periods)      cumulative hazard clock (years)
        clock_start : ndarray(int64), shape (industries, periods)  and clock_scale : ndarray(float64),
            shape (industries,): the clock's bucket table (see :func:`.hazard.fill_clock_start`)
        screen : ndarray(int64), shape (industries, technologies)   survivor-screen grid index
        obs_period : ndarray(int64), shape (technologies,)     obsolescence period or ``periods``
        licensee_period : ndarray(int64), shape (3 licensees,)   [0, licensees): default period or
            ``periods``; then the licensees the survivor screen does not clear, and their latents
            (float64, viewed)
        group_diff : ndarray(float64), shape (groups, periods + 1)   zero on entry, left zero
        cdr_diff, count_diff : ndarray(float64), shape (periods + 1,)
        oc_sched, oc_lost : ndarray(float64), shape (OC bases, periods + 1)   zero on entry, left zero
    block_collections : ndarray(float64), shape (m, periods)     out: royalties collected per period
    block_cdr : ndarray(float64), shape (m, periods)             out: cumulative default rate (amount)
    block_oc_value : ndarray(float64), shape (m, periods)        out, with an OC trigger: the
        collateral value at the start of each period (see :func:`simengine.plan.pool.oc_arrays`)
    block_provider_period : ndarray(int64), shape (m, providers)   out: provider default periods
    chunk_provider_out : ndarray(float64), shape (chunk, providers, N_PROVIDER_OUT)   out: ``_layout.PR_*``
    weights : ndarray(float64), shape (chunk,)   out: the likelihood ratio of the nominal to the
        sampling measure
    pool_out : ndarray(float64), shape (chunk, N_POOL_OUT)   out: ``_layout.P_*`` (chi2 NaN without
        a Student-t copula)
    cum_default : ndarray(float64), shape (chunk, periods)   out: cumulative default fraction by count
    """
    (g_global, factors, demand_x, clock, clock_start, clock_scale, screen, obs_period, licensee_period, group_diff,
     cdr_diff, count_diff, oc_sched, oc_lost) = scratch
    for q in range(paths.shape[0]):  # one call per block: the plan crosses the call once, not once a path
        path = paths[q]
        row = row0 + q
        collections = block_collections[q]
        cdr = block_cdr[q]
        oc_value = block_oc_value[q]
        provider_period = block_provider_period[q]
        provider_out = chunk_provider_out[row]
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
        t_ab, t_ba = t_tail_norms(pp.dof) if pp.copula_t else (0.0, 0.0)
        if pp.copula_t:
            # chi2 = 2 G s, G ~ Gamma(dof/2, 1); the nominal s is 1, so the ratio is s^(dof/2) e^(G(1-s))
            g = gamma_at(stream_key(key, S_CHI2), 0, 0.5 * pp.dof)
            chi2 = 2.0 * g * chi2_scale
            mixing = math.sqrt(pp.dof / chi2)
            if chi2_scale != 1.0:
                log_weight += 0.5 * pp.dof * math.log(chi2_scale) + g * (1.0 - chi2_scale)

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
        n_ls = pp.licensee_hazard_annual.shape[0]
        queue = licensee_period[n_ls:2 * n_ls]
        # the queue and its latents share the scratch row: arrays of their own slowed Guangzhou's
        # whole kernel by 9-11% (benchmarks/results/2026-11-27-vm-session8-tried.md), reason not found
        queue_latent = licensee_period[2 * n_ls:].view(np.float64)
        sk = stream_key(key, S_LICENSEE)
        n_defaults = 0
        # survivor screen: the grid point at or above the end-of-deal cumulative hazard of each
        # industry and technology (a technology made obsolete with a multiplier bends the clock from
        # then on; monotone, so the end value bounds every period's)
        n_grid = pp.survival_threshold.shape[1]
        for j in range(n_ind):
            if pp.default_on:
                fill_clock_start(clock, j, clock_start, clock_scale)
            h = clock[j, T - 1]
            m = screen_index(h, pp.threshold_h0, pp.threshold_log_ratio, n_grid)
            for k in range(n_tech):
                k_obs = obs_period[k]
                mult = pp.obsolescence_multiplier[k]
                if k_obs < T and mult != 1.0:
                    base = clock[j, k_obs - 1] if k_obs > 0 else 0.0
                    screen[j, k] = screen_index(base + mult * (h - base), pp.threshold_h0, pp.threshold_log_ratio,
                                                 n_grid)
                else:
                    screen[j, k] = m
        # two passes: the screen for every licensee, then the period search for those it does not
        # clear (a third of W1's). One pass branched on the screen's verdict, at random, which
        # stalled the pipeline once a licensee and kept the searches from overlapping (same bits)
        n_pass = 0
        for i in range(n_ls):
            licensee_period[i] = T
            if pp.default_on and pp.licensee_forced_default[i] >= 0:  # a stress or a hand computation
                licensee_period[i] = pp.licensee_forced_default[i]
                if licensee_period[i] < T:
                    n_defaults += 1
                    count_diff[licensee_period[i]] += 1.0
                continue
            if not pp.default_on:
                continue
            latent = (pp.licensee_load_global * factors[0]
                      + pp.licensee_load_industry * factors[pp.licensee_industry_factor[i]]
                      + pp.licensee_load_region * factors[pp.licensee_region_factor[i]]
                      + pp.licensee_idio[i] * sign * normal_at(sk, i)) * mixing
            m = screen[pp.licensee_industry[i], pp.licensee_technology[i]]
            cleared = (m >= 0) & (latent > pp.survival_threshold[pp.licensee_hazard_class[i], max(m, 0)])
            queue[n_pass] = i  # written always, kept only where not cleared: no branch
            queue_latent[n_pass] = latent
            n_pass += 0 if cleared else 1
        for n in range(n_pass):
            i = queue[n]
            latent = queue_latent[n]
            hazard = pp.licensee_hazard_annual[i]
            j = pp.licensee_industry[i]
            k_obs = obs_period[pp.licensee_technology[i]]
            mult = pp.obsolescence_multiplier[pp.licensee_technology[i]]
            base = clock[j, k_obs - 1] if 0 < k_obs < T else 0.0
            period = T
            if hazard > 0.0:  # the tabulated exposure (plan.pool.exposure_table), else the exact one
                period = tabulated_default_period(latent, 1.0 / hazard, pp.exposure, pp.exposure_l0,
                                                  pp.exposure_inv_step, pp.exposure_last, pp.exposure_tol, clock,
                                                  clock_start, clock_scale, j, k_obs, base, mult)
                if period < 0:  # exposure = -log(1 - U), U the copula uniform: low latent = early default
                    u = (upper_tail_t_normed(-latent, pp.dof, t_ab, t_ba) if pp.copula_t
                         else upper_tail_normal(-latent))
                    period = exact_default_period(-math.log1p(-u) / hazard, clock, clock_start, clock_scale, j,
                                                  k_obs, base, mult)
            licensee_period[i] = period
            if period < T:
                n_defaults += 1
                count_diff[period] += 1.0
        if pp.licensee_forced_any:  # deterministic stresses: named licensees default by a given period at the latest
            for i in range(n_ls):
                forced = pp.licensee_forced_period[i]
                if 0 <= forced < licensee_period[i]:
                    if licensee_period[i] < T:
                        count_diff[licensee_period[i]] -= 1.0
                    else:
                        n_defaults += 1
                    count_diff[forced] += 1.0
                    licensee_period[i] = forced

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
            if pp.oc_on:
                k = pp.licence_technology[i]
                oc_add_licence(oc_sched, oc_lost, pp.oc_base, pp.licence_oc_weight[i], pp.technology_oc_base[k],
                               pp.technology_oc_weight[k], amount, start, last, min(tau, inval))
            if start < stop:
                group_diff[g, start] += amount
                group_diff[g, stop] -= amount
            if tau <= last:
                cdr_diff[tau] += pp.licence_scheduled_amount[i]
                # re-licensing, from the lag to expiry, invalidation or the licence end; after
                # obsolescence it earns (1 - severity) of its terms (a running re-licence through its
                # royalty group, like the licence), nothing once the technology is wholly obsolete
                t_obs = obs_period[pp.licence_technology[i]]
                kept = 1.0 - pp.obsolescence_severity[pp.licence_technology[i]]
                r_start = max(tau + pp.relicense_lag, start)
                r_end = min(last + 1, inval)
                r_last = r_end if kept > 0.0 else min(r_end, t_obs)
                rec = pp.licence_recovery[i]
                if pp.recovery_beta and 0.0 < rec < 1.0 and r_start < r_last:  # addressed: skipping is free
                    s2 = pp.recovery_stdev * pp.recovery_stdev
                    conc = rec * (1.0 - rec) / s2 - 1.0
                    if pp.recovery_loading != 0.0:
                        rec = systematic_recovery(sk_rec, i, z_global, sign, pp.recovery_loading, rec * conc,
                                                  (1.0 - rec) * conc)
                    else:
                        ga = gamma_at(sk_rec, 2 * i, rec * conc)
                        gb = gamma_at(sk_rec, 2 * i + 1, (1.0 - rec) * conc)
                        rec = ga / (ga + gb)
                if rec > 0.0 and r_start < r_last:
                    v = rec * amount
                    if pp.group_running[g] or t_obs >= r_end or kept == 1.0:
                        group_diff[g, r_start] += v
                        group_diff[g, r_last] -= v
                    elif t_obs <= r_start:  # a fixed re-licence of an obsolete technology
                        group_diff[g, r_start] += v * kept
                        group_diff[g, r_end] -= v * kept
                    else:  # a fixed re-licence that obsolescence cuts from t_obs on
                        group_diff[g, r_start] += v
                        if kept > 0.0:
                            group_diff[g, t_obs] -= v * (1.0 - kept)
                            group_diff[g, r_end] -= v * kept
                        else:
                            group_diff[g, t_obs] -= v

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
        if pp.oc_on:
            collateral_values(pp.oc_base, pp.oc_base_technology, obs_period, oc_sched, oc_lost, oc_value)
        acc = 0.0
        cnt = 0.0
        for t in range(T):
            acc += cdr_diff[t]
            cdr[t] = acc / pp.scheduled_total if pp.scheduled_total > 0.0 else 0.0
            cnt += count_diff[t]
            count_diff[t] = cnt / n_ls

        # providers: same copula, loading on the global factor only (wrong-way risk); each row draws
        # at its own stream index, so adding or removing one provider leaves the others' draws alone.
        # Importance sampling may shift a row's idiosyncratic normal e to mean nu: ratio exp(-nu e + nu^2 / 2)
        sk = stream_key(key, S_PROVIDER)
        for j in range(provider_period.shape[0]):
            a = pp.provider_loading[j]
            nu = provider_shift[j]
            if j < pp.provider_migrates.shape[0] and pp.provider_migrates[j] != 0:  # a plan edited row-wise: static
                log_weight += provider_migration(pp, j, sk, sign, nu, g_global, provider_period, provider_out)
                continue
            e = sign * normal_at(sk, pp.provider_stream[j])
            if nu != 0.0:
                e += nu
                log_weight += nu * (0.5 * nu - e)
            latent = (a * factors[0] + math.sqrt(max(0.0, 1.0 - a * a)) * e) * mixing
            u = upper_tail_t_normed(-latent, pp.dof, t_ab, t_ba) if pp.copula_t else upper_tail_normal(-latent)
            provider_period[j] = first_period_exceeding(-math.log1p(-u), pp.provider_hazard_annual[j], dt, T)
            provider_out[j, PR_LATENT] = e
            provider_out[j, PR_DEFAULT_PERIOD] = provider_period[j]
            provider_out[j, PR_WORST_GRADE] = -1.0
        weights[row] = math.exp(log_weight)
        pool_out[row, P_DEFAULTS] = n_defaults
        pool_out[row, P_OBSOLETE] = n_obsolete
        pool_out[row, P_INVALIDATED] = n_invalidated
        total = 0.0
        for t in range(T):
            total += collections[t]
            cum_default[row, t] = count_diff[t]
        pool_out[row, P_COLLECTIONS] = total
        pool_out[row, P_Z_GLOBAL] = z_global
        pool_out[row, P_CHI2] = chi2


MIGRATION_DRAW0 = 1 << 20  # a migrating row's year-y normal: draw MIGRATION_DRAW0 + 64 y + its stream index


@jit  # a call, not inlined: compiled once on its own, so the path loop's compile does not grow with it
def provider_migration(pp, j, sk, sign, nu, g_global, provider_period, provider_out):
    """Provider row j's grade, one year at a time, and its default period; returns the log
    likelihood ratio of its shifted draws (0 when ``nu`` is 0).

    Year y's latent is ``a·Z_y + sqrt(1 - a²)·e_y``, Z_y the year's global shocks scaled to
    N(0, 1) (so the provider shares the pool's bad years) and e_y its own normal (mean ``nu``
    under importance sampling); the next state is the worst whose threshold the latent is below
    (plan.providers.migration_arrays). Grades change at each anniversary of closing up to the
    legal final; a default falls within its year at the fraction Φ(latent) / P(default | grade)
    of the year (uniform given default) and counts if before the legal final.
    Fills provider_period[j] and provider_out[j, PR_*] (PR_LATENT: the mean of its draws).
    """
    T = pp.periods
    ppy = pp.periods_per_year
    a = pp.provider_loading[j]
    b = math.sqrt(max(0.0, 1.0 - a * a))
    default_state = pp.migration_states[j] - 1
    grade = pp.provider_initial_grade[j]
    worst = grade
    period = T
    log_weight = 0.0
    e_sum = 0.0
    draws = 0
    years = (T + ppy - 1) // ppy
    for y in range(years):
        t0 = y * ppy
        t1 = min(T, t0 + ppy)
        zy = 0.0
        for t in range(t0, t1):
            zy += g_global[t]
        zy /= math.sqrt(t1 - t0)
        e = sign * normal_at(sk, MIGRATION_DRAW0 + 64 * y + pp.provider_stream[j])
        if nu != 0.0:
            e += nu
            log_weight += nu * (0.5 * nu - e)
        e_sum += e
        draws += 1
        x = a * zy + b * e
        nxt = 0
        for st in range(default_state, 0, -1):
            if x < pp.migration_threshold[j, grade, st]:
                nxt = st
                break
        if nxt == default_state:
            k = int(upper_tail_normal(-x) / pp.migration_default_pd[j, grade] * ppy)
            p = t0 + (k if k < ppy else ppy - 1)
            if p < T:
                period = p
                worst = default_state
            break
        if (y + 1) * ppy <= T:
            grade = nxt
            if grade > worst:
                worst = grade
    provider_period[j] = period
    provider_out[j, PR_LATENT] = e_sum / draws if draws > 0 else 0.0
    provider_out[j, PR_DEFAULT_PERIOD] = period
    provider_out[j, PR_WORST_GRADE] = worst
    return log_weight
