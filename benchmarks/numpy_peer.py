"""An honest vectorised NumPy implementation of the engine's model: the benchmark's peer (SPEC §8).

This is what a competent user would write without numba: every step is vectorised across the
paths of a chunk (arrays of shape ``(paths, licensees)``, ``(paths, licences)``,
``(paths, industries, periods)`` ...), loops run only over periods, tranches and triggers, the
chunk bounds the memory, and the random numbers come from :class:`numpy.random.Generator`
(one generator per chunk, spawned from one :class:`~numpy.random.SeedSequence`). It does not
reproduce the engine's bits, only its distribution: compare statistics within Monte Carlo error.

The model is the one of :func:`simengine._kernels.pool.pool_block` and
:func:`simengine._kernels.waterfall.waterfall_path`, read from the same compiled plan
(:func:`simengine.plan.compile_plan`), so both implementations see identical inputs:

- global factor = scaled sum of per-period shocks (demand sees the same shocks), industry and
  region factors (or a factor correlation matrix), Gaussian or Student-t copula latent per
  licensee;
- log-demand per industry (GBM or OU) with a global loading; the default clock integrates
  ``exp(adjust - elasticity * log-demand)`` (``adjust`` from the plan: volatility alone leaves
  the expected hazard unchanged); obsolescence per technology by a one-factor copula on the
  global factor, multiplying the hazard after it happens; default period = first period whose
  path-dependent cumulative hazard reaches the licensee's exposure (vectorised bisection, the
  same algorithm as the kernel);
- invalidation hazard, expiry, re-licensing after a lag at a (fixed or beta) recovery until
  expiry or invalidation; after its technology's obsolescence a re-licence earns ``1 - severity``
  of its terms (a running one through its royalty group's multiplier, a fixed one cut to the kept
  share), none once the technology is wholly obsolete (severity 1); running royalties scale with
  demand and obsolescence severity, floored by the minimum royalty;
- the default priority of payments: fees, interest in seniority order (reserve, then payment
  commitment, then guarantee cover shortfalls; a carried shortfall accrues at the coupon where
  the tranche says ``interest_on_deferred``), reserve to target (no release above target while a
  trap trigger is on), sequential principal, residual (a trap's fraction of it into the reserve);
  triggers on the cumulative default rate, ``dscr`` (collections over fees, interest and the
  principal the contracts require by the period's end: everything at legal final for sequential
  notes) and ``icr`` (collections over fees and interest), consecutive periods, curable or
  latched, with the effects sequential, trap (the largest active fraction) and accelerate (each
  tranche's interest then its principal, reserve released); contractual principal shortfalls at
  maturity drawn from the enhancers; providers (the plan's provider table, any number of rows,
  asked in row order) default by the same copula (wrong-way loading).

Feature subset: what the reference workloads W1, W2 (``scenarios/w1_workload.toml``,
``w2_workload.toml``) and W3 (``guangzhou_patent_2019.toml``) use, plus cheap extras (Student-t
copula, factor correlation matrix, forced obsolescence, OU or GBM demand, ``icr`` triggers, trap
fractions, interest on deferred interest, the sequential effect). :func:`check_supported` raises
:class:`NotImplementedError` for the rest: any amortisation but ``sequential``; a custom
``[[structure.waterfall]]``; reimbursed providers and liquidity facilities (their claims and
reimburse steps); a clean-up call; the ``oc`` metric; early amortisation; forced licensee
defaults (stresses, a licence's ``default_period``); systematic recoveries
(``recovery_global_loading``); provider credit migration. Importance sampling and antithetic
paths are not offered (plain Monte Carlo only).

Every core: chunks go to one worker process per core (:class:`Workers`), each with its own
generator, and their sums are merged in chunk order, so the statistics do not depend on the
number of workers.

Run it on its own: ``python benchmarks/numpy_peer.py scenarios/w1_workload.toml --paths 20000``.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
from scipy.special import log_ndtr, stdtr

from simengine._layout import PROVIDER_KINDS
from simengine.plan import Plan, compile_plan
from simengine.plan.waterfall import (
    AM_SEQUENTIAL,
    OP_FEES,
    OP_INTEREST,
    OP_PRINCIPAL,
    OP_RESERVE,
    OP_RESIDUAL,
    TE_ACCELERATE,
    TE_EARLY_AMORTISATION,
    TE_TRAP,
    TM_CDR,
    TM_DSCR,
    TM_OC,
)

DEFAULT_CHUNK_PATHS = 4096


def check_supported(plan: Plan) -> None:
    """Raise NotImplementedError for plan features outside the peer's subset (module docstring)."""
    wp, pp = plan.waterfall, plan.pool

    def no(feature: str) -> None:
        raise NotImplementedError(f"numpy peer: {feature} is not implemented")

    if np.any(wp.tranche_mode != AM_SEQUENTIAL):
        no("an amortisation other than sequential")
    n = len(wp.tranche_balance)

    def members(g: int) -> list[int]:
        row = wp.step_members[g]
        return [int(x) for x in row[row >= 0]]

    steps = [(int(op), members(g) if op in (OP_INTEREST, OP_PRINCIPAL) else None) for op, g in wp.steps]
    everyone = list(range(n))
    if steps != [(OP_FEES, None), (OP_INTEREST, everyone), (OP_RESERVE, None), (OP_PRINCIPAL, everyone),
                 (OP_RESIDUAL, None)]:
        no("a custom waterfall or a reimburse step")
    accel = [(int(op), members(g) if op in (OP_INTEREST, OP_PRINCIPAL) else None) for op, g in wp.steps_accelerated]
    if accel != [(OP_FEES, None)] + [s for k in everyone for s in ((OP_INTEREST, [k]), (OP_PRINCIPAL, [k]))] + [
            (OP_RESIDUAL, None)]:
        no("an accelerated waterfall with a reimburse step")
    if np.any(wp.provider_reimbursed) or np.any(wp.provider_liquidity):
        no("a reimbursed provider or a liquidity facility")
    if wp.call_fraction >= 0.0:
        no("a clean-up call")
    if wp.oc_on or pp.oc_on or np.any(wp.trigger_metric == TM_OC):
        no("the oc metric")
    if np.any(wp.trigger_effect == TE_EARLY_AMORTISATION):
        no("early amortisation")
    if pp.licensee_forced_any or np.any(pp.licensee_forced_default >= 0):
        no("a forced licensee default (stress)")
    if pp.recovery_beta and pp.recovery_loading != 0.0:
        no("systematic recoveries (recovery_global_loading)")
    if np.any(pp.provider_migrates != 0):
        no("provider credit migration")


# ---------------------------------------------------------------------------------------- pool
def _first_period(exposure: np.ndarray, hazard_per_year, dt: float, periods: int) -> np.ndarray:
    """First 0-based period whose cumulative hazard reaches ``exposure``; ``periods`` = never."""
    hazard_per_year = np.asarray(hazard_per_year, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        steps = np.where(hazard_per_year > 0.0, exposure / (hazard_per_year * dt), np.inf)
    steps = np.minimum(steps, periods + 1.0)  # inf and huge values: never
    return np.clip(np.ceil(steps) - 1.0, 0, periods).astype(np.int64)


def _exposure(latent: np.ndarray, copula_t: bool, dof: float) -> np.ndarray:
    """-log(1 - U) with U = F(latent) the copula uniform (low latent = early default)."""
    if copula_t:
        return -np.log(stdtr(dof, -latent))
    return -log_ndtr(-latent)


def simulate_pool(plan: Plan, rng: np.random.Generator, n: int) -> dict:
    """Risk drivers and collections of ``n`` paths.

    Returns a dict of arrays: ``collections`` and ``cdr`` (float64, shape (n, periods)),
    ``provider_period`` (int64, shape (n, providers)), ``defaults``, ``obsolete``, ``invalidated``
    (int64, shape (n,)).
    """
    pp = plan.pool
    T, dt = pp.periods, pp.dt_years
    periods = np.arange(T)

    # global factor: scaled sum of per-period shocks (demand sees the shocks themselves)
    g = rng.standard_normal((n, T))
    z = g.sum(axis=1) / math.sqrt(T)
    n_f = pp.factor_root.shape[0]
    if pp.factor_identity:
        factors = np.empty((n, n_f))
        factors[:, 0] = z
        factors[:, 1:] = rng.standard_normal((n, n_f - 1))
    else:
        g_all = np.empty((n, n_f))
        g_all[:, 0] = z
        g_all[:, 1:] = rng.standard_normal((n, n_f - 1))
        factors = g_all @ pp.factor_root.T
    mixing = np.sqrt(pp.dof / rng.chisquare(pp.dof, n)) if pp.copula_t else None

    # demand: log-demand per industry, loop over periods only
    n_ind = len(pp.demand_drift_annual)
    x = np.zeros((n, n_ind))
    log_demand = np.zeros((n, n_ind, T))
    if pp.demand_on:
        vol = pp.demand_vol_annual
        c = pp.demand_loading
        idio = np.sqrt(np.maximum(0.0, 1.0 - c * c))
        eps = rng.standard_normal((n, n_ind, T))
        for t in range(T):
            drift = pp.demand_drift_annual + (pp.demand_shock_drift_annual if t < pp.demand_shock_periods else 0.0)
            e = c * g[:, t, None] + idio * eps[:, :, t]
            x = x + (drift - 0.5 * vol * vol - pp.demand_reversion_annual * x) * dt + vol * math.sqrt(dt) * e
            log_demand[:, :, t] = x
    elas = pp.demand_elasticity[None, :, None]
    # hazard multiplier exp(adjust - elasticity * log-demand): the plan's adjustment makes volatility
    # alone leave the expected hazard unchanged (absent in older plans: no adjustment)
    adjust = getattr(pp, "demand_hazard_adjust", None)
    adjust = np.zeros((n_ind, T)) if adjust is None else adjust
    multiplier = np.where(elas != 0.0, np.exp(adjust[None, :, :] - elas * log_demand), 1.0)
    clock = np.cumsum(dt * multiplier, axis=2)  # (n, industries, T), years of base hazard

    # obsolescence: one-factor copula on the global factor
    n_tech = len(pp.obsolescence_hazard_annual)
    obs = np.full((n, n_tech), T, np.int64)
    if pp.obsolescence_on:
        b = pp.obsolescence_loading
        y = b * z[:, None] + math.sqrt(max(0.0, 1.0 - b * b)) * rng.standard_normal((n, n_tech))
        drawn = _first_period(-log_ndtr(-y), pp.obsolescence_hazard_annual[None, :], dt, T)
        forced = pp.obsolescence_forced_period
        obs = np.where(forced[None, :] >= 0, forced[None, :], drawn)

    # licensee default: latent against the path-dependent cumulative hazard of its (industry, technology)
    n_ls = len(pp.licensee_hazard_annual)
    latent = (pp.licensee_load_global * factors[:, :1]
              + pp.licensee_load_industry * factors[:, pp.licensee_industry_factor]
              + pp.licensee_load_region * factors[:, pp.licensee_region_factor]
              + pp.licensee_idio * rng.standard_normal((n, n_ls)))
    if mixing is not None:
        latent *= mixing[:, None]
    h = pp.licensee_hazard_annual
    with np.errstate(divide="ignore"):
        need = _exposure(latent, pp.copula_t, pp.dof) / np.where(h > 0.0, h, 0.0)
    combos, combo_of = np.unique(np.stack([pp.licensee_industry, pp.licensee_technology]), axis=1,
                                 return_inverse=True)
    combo_of = combo_of.reshape(-1)
    c_ind, c_tech = combos
    clock_c = clock[:, c_ind, :]                                   # (n, combos, T)
    k_obs = obs[:, c_tech]                                         # (n, combos)
    base = np.take_along_axis(clock_c, np.clip(k_obs - 1, 0, T - 1)[:, :, None], axis=2)[:, :, 0]
    base = np.where((k_obs > 0) & (k_obs < T), base, 0.0)
    mult = pp.obsolescence_multiplier[c_tech][None, :, None]
    cum_hazard = np.where(periods[None, None, :] >= k_obs[:, :, None],
                          base[:, :, None] + mult * (clock_c - base[:, :, None]), clock_c)
    flat = cum_hazard.reshape(n, -1)
    offset = (combo_of * T)[None, :]
    lo = np.zeros((n, n_ls), np.int64)
    hi = np.full((n, n_ls), T, np.int64)
    for _ in range(max(1, math.ceil(math.log2(T + 1)))):        # bisection, as in the kernel
        mid = (lo + hi) // 2
        h_mid = np.take_along_axis(flat, offset + np.minimum(mid, T - 1), axis=1)
        reached = h_mid >= need
        open_ = lo < hi
        hi = np.where(open_ & reached, mid, hi)
        lo = np.where(open_ & ~reached, mid + 1, lo)
    licensee_period = lo if pp.default_on else np.full((n, n_ls), T, np.int64)

    # licences: regular royalties until default / invalidation / expiry, then re-licensing
    start, last = pp.licence_start, pp.licence_last
    amount = pp.licence_royalty
    tau = licensee_period[:, pp.licence_licensee]                 # (n, licences)
    n_lic = len(amount)
    inval = np.full((n, n_lic), T, np.int64)
    legal = pp.licence_invalidation_hazard_annual > 0.0
    if legal.any():
        u = rng.random((n, int(legal.sum())))
        inval[:, legal] = _first_period(-np.log1p(-u), pp.licence_invalidation_hazard_annual[legal], dt, T)
    stop = np.minimum(last + 1, np.minimum(tau, inval))
    defaulted = tau <= last
    rec = np.broadcast_to(pp.licence_recovery, (n, n_lic)).copy()
    if pp.recovery_beta:
        rows, cols = np.nonzero(defaulted & (rec > 0.0) & (rec < 1.0))
        mean = pp.licence_recovery[cols]
        conc = mean * (1.0 - mean) / pp.recovery_stdev ** 2 - 1.0
        rec[rows, cols] = rng.beta(mean * conc, (1.0 - mean) * conc)
    # re-licensing from the lag to expiry or invalidation; after obsolescence it earns the kept share
    # (1 - severity) of its terms: a running re-licence through its royalty group's multiplier (as
    # the licence), a fixed one cut to the kept share from then on; none once wholly obsolete
    t_obs = obs[:, pp.licence_technology]                         # (n, licences)
    kept = (1.0 - pp.obsolescence_severity[pp.licence_technology])[None, :]
    r_start = np.maximum(tau + pp.relicense_lag, start)
    r_end = np.minimum(last + 1, inval)
    r_last = np.where(kept > 0.0, r_end, np.minimum(r_end, t_obs))
    relicensed = defaulted & (rec > 0.0) & (r_start < r_last)
    v = np.where(relicensed, rec * amount, 0.0)
    fixed = ~pp.group_running[pp.licence_group][None, :]
    cut = relicensed & fixed & (kept > 0.0) & (kept < 1.0) & (t_obs < r_end)
    v_cut = np.where(cut, v * (1.0 - kept), 0.0)
    cut_from = np.maximum(t_obs, r_start)

    # difference arrays per (path, royalty group, period) by bincount, then a cumulative sum
    n_grp = len(pp.group_running)
    width = T + 1
    row = (np.arange(n)[:, None] * n_grp + pp.licence_group[None, :]) * width
    active = start < stop
    idx = np.concatenate([(row + start).ravel(), (row + np.minimum(stop, T)).ravel(),
                          (row + np.minimum(r_start, T)).ravel(), (row + np.minimum(r_last, T)).ravel(),
                          (row + np.minimum(cut_from, T)).ravel(), (row + np.minimum(r_end, T)).ravel()])
    wts = np.concatenate([np.where(active, amount, 0.0).ravel(), np.where(active, -amount, 0.0).ravel(),
                          v.ravel(), -v.ravel(), -v_cut.ravel(), v_cut.ravel()])
    diff = np.bincount(idx, weights=wts, minlength=n * n_grp * width).reshape(n, n_grp, width)
    group_amount = np.cumsum(diff[:, :, :T], axis=2)
    running = np.flatnonzero(pp.group_running)
    collections = group_amount[:, ~pp.group_running, :].sum(axis=1)
    if running.size:
        k = pp.group_technology[running]
        m = np.exp(log_demand[:, pp.group_industry[running], :])  # (n, running groups, T)
        m = np.where(periods[None, None, :] >= obs[:, k][:, :, None],
                     m * (1.0 - pp.obsolescence_severity[k])[None, :, None], m)
        m = np.maximum(m, pp.group_floor_ratio[running][None, :, None])
        collections += (group_amount[:, running, :] * m).sum(axis=1)

    # cumulative default rate by scheduled amount
    cdr_idx = (np.arange(n)[:, None] * width + np.minimum(tau, T)).ravel()
    cdr_w = np.where(defaulted, pp.licence_scheduled_amount, 0.0).ravel()
    cdr = np.cumsum(np.bincount(cdr_idx, weights=cdr_w, minlength=n * width).reshape(n, width)[:, :T], axis=1)
    cdr = cdr / pp.scheduled_total if pp.scheduled_total > 0 else np.zeros_like(cdr)

    # providers, one row each: same copula, loading on the global factor only
    n_prov = len(pp.provider_loading)
    provider_period = np.full((n, n_prov), T, np.int64)
    eps = rng.standard_normal((n, n_prov))
    for j in range(n_prov):
        a = pp.provider_loading[j]
        lat = a * factors[:, 0] + math.sqrt(max(0.0, 1.0 - a * a)) * eps[:, j]
        if mixing is not None:
            lat = lat * mixing
        provider_period[:, j] = _first_period(_exposure(lat, pp.copula_t, pp.dof), pp.provider_hazard_annual[j], dt, T)

    return {"collections": collections, "cdr": cdr, "provider_period": provider_period,
            "defaults": (licensee_period < T).sum(axis=1), "obsolete": (obs < T).sum(axis=1),
            "invalidated": (inval < T).sum(axis=1)}


# ----------------------------------------------------------------------------------- waterfall
def run_waterfall(plan: Plan, collections: np.ndarray, cdr: np.ndarray, provider_period: np.ndarray,
                  enhanced: bool) -> dict:
    """The default priority of payments for every path at once (loops over periods and tranches).

    collections, cdr : ndarray(float64), shape (n, periods); provider_period : int64, shape (n, providers).
    Returns ``loss`` and ``defaulted`` (shape (n, tranches)), ``trigger_fired`` (n, triggers) and,
    for each provider kind of :data:`simengine._layout.PROVIDER_KINDS`, ``<kind>_drawn`` (n,): a
    provider of that kind paid something.
    """
    wp = plan.waterfall
    n, T = collections.shape
    orig = wp.tranche_balance
    n_tr = len(orig)
    tiny = 1e-9 * orig
    iod_rate = np.where(wp.tranche_interest_on_deferred, wp.tranche_coupon_per_period, 0.0)
    balance = np.tile(orig, (n, 1))
    carry = np.zeros((n, n_tr))
    missed = np.zeros((n, n_tr), bool)
    reserve = np.full(n, wp.reserve_initial)
    fee_carry = np.zeros(n)
    n_prov = len(wp.provider_kind)
    used = np.zeros((n, n_prov))
    drawn = np.zeros((n, n_prov), bool)
    n_trig = len(wp.trigger_metric)
    breach = np.zeros((n, n_trig), np.int64)
    latched = np.zeros((n, n_trig), bool)
    fired = np.zeros((n, n_trig), bool)

    def draw(provider: int, k: int, short: np.ndarray, p: int) -> np.ndarray:
        if not (enhanced and wp.provider_covers[provider, k]):
            return np.zeros(n)
        able = (short > 0.0) & (p < provider_period[:, provider])
        room = wp.provider_cap[provider] - used[:, provider]
        pay = np.where(able, np.clip(np.minimum(short, room), 0.0, None), 0.0)
        used[:, provider] += pay
        drawn[:, provider] |= pay > 0.0
        return pay

    def pay_principal(k: int, p: int, mask: np.ndarray, avail: np.ndarray) -> None:
        pay = np.where(mask, np.minimum(avail, balance[:, k]), 0.0)  # sequential: all of it
        balance[:, k] -= pay
        avail -= pay

    def principal_shortfall(k: int, p: int, mask: np.ndarray) -> None:
        short = np.where(mask, balance[:, k] - wp.tranche_contract_target[k, p] * orig[k], 0.0)
        short = np.where(short > tiny[k], short, 0.0)
        for provider in range(n_prov):
            d = draw(provider, k, short, p)
            balance[:, k] -= d
            short = short - d

    for p in range(T):
        final = p == T - 1
        avail = collections[:, p].copy()
        fees_due = wp.fee_fixed + wp.fee_rate_per_period * balance.sum(axis=1) + fee_carry
        # a carried shortfall accrues at the coupon where the tranche says so
        interest_due = balance * wp.tranche_coupon_per_period + carry * (1.0 + iod_rate)
        # coverage: icr = collections / (fees + interest); dscr adds the principal the contracts
        # require by the period's end (schedule, maturity, everything at legal final)
        scheduled = np.maximum(balance - wp.tranche_contract_target[:, p] * orig, 0.0).sum(axis=1)
        denom = fees_due + interest_due.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            icr = np.where(denom > 0.0, collections[:, p] / denom, np.inf)
            dscr = np.where(denom + scheduled > 0.0, collections[:, p] / (denom + scheduled), np.inf)
        trap = np.zeros(n)  # the largest trap fraction active
        accelerated = np.zeros(n, bool)
        for c in range(n_trig):
            threshold = wp.trigger_threshold[c]
            metric = wp.trigger_metric[c]
            hit = cdr[:, p] > threshold if metric == TM_CDR else (dscr if metric == TM_DSCR else icr) < threshold
            breach[:, c] = np.where(hit, breach[:, c] + 1, 0)
            active = breach[:, c] >= wp.trigger_consecutive[c]
            if not wp.trigger_curable[c]:
                latched[:, c] |= active
                active = latched[:, c]
            fired[:, c] |= active
            effect = wp.trigger_effect[c]
            if effect == TE_TRAP:
                trap = np.where(active, np.maximum(trap, wp.trigger_trap_fraction[c]), trap)
            elif effect == TE_ACCELERATE:
                accelerated |= active
            # TE_SEQUENTIAL changes nothing when every tranche is sequential
        release = accelerated | final
        avail += np.where(release, reserve, 0.0)
        reserve = np.where(release, 0.0, reserve)

        # fees (the reserve covers them)
        pay = np.minimum(avail, fees_due)
        avail -= pay
        short = fees_due - pay
        d = np.minimum(reserve, short)
        reserve -= d
        fee_carry = short - d

        # interest in seniority order; accelerated paths pay each tranche's principal right after
        for k in range(n_tr):
            due = interest_due[:, k]
            pay = np.minimum(avail, due)
            avail -= pay
            short = due - pay
            if wp.reserve_covers[k]:
                d = np.minimum(reserve, short)
                reserve -= d
                short = short - d
            for provider in range(n_prov):
                short = short - draw(provider, k, short, p)
            is_short = short > tiny[k]
            if not wp.tranche_deferrable[k]:
                missed[:, k] |= is_short
            carry[:, k] = np.where(is_short, short, 0.0)
            if accelerated.any():
                pay_principal(k, p, accelerated, avail)
                principal_shortfall(k, p, accelerated)

        normal = ~accelerated
        # reserve to target (paths not accelerated)
        if wp.reserve_target_amount >= 0.0:
            target = np.full(n, wp.reserve_target_amount)
        elif wp.reserve_target_fraction >= 0.0:
            target = wp.reserve_target_fraction * balance.sum(axis=1)
        else:
            target = np.full(n, wp.reserve_initial)
        if final:
            target[:] = 0.0
        # above target the excess is released, except while a trap trigger holds it
        move = np.where(reserve > target, np.where(trap > 0.0, 0.0, reserve - target),
                        -np.minimum(avail, target - reserve))
        move = np.where(normal, move, 0.0)
        avail += move
        reserve -= move

        # sequential principal, then the enhancers' contractual shortfalls
        for k in range(n_tr):
            pay_principal(k, p, normal, avail)
        for k in range(n_tr):
            principal_shortfall(k, p, normal)

        # residual: its trap fraction goes into the reserve while a trap trigger is on
        if not final:
            reserve += trap * avail

    lost = np.where(balance > tiny, balance, 0.0)
    out = {"loss": lost / orig, "defaulted": (lost > 0.0) | (carry > 0.0) | missed, "trigger_fired": fired}
    for kind, name in enumerate(PROVIDER_KINDS):
        out[f"{name}_drawn"] = drawn[:, wp.provider_kind == kind].any(axis=1)
    return out


# ------------------------------------------------------------------------------------- driver
_DRAWN = tuple(f"{kind}_drawn" for kind in PROVIDER_KINDS)  # commitment_drawn, guarantee_drawn
_KEYS = [(b, m) for b in ("enhanced", "standalone") for m in ("loss", "defaulted")] + [
    ("pool", m) for m in ("defaults", "obsolete", "invalidated", "collections", "trigger_fired", *_DRAWN)]


def simulate_chunk(plan: Plan, seed: np.random.SeedSequence, n: int) -> dict:
    """One chunk of ``n`` paths: per statistic, (count, sum, sum of squares) over its paths."""
    rng = np.random.default_rng(seed)
    sim = simulate_pool(plan, rng, n)
    values = {}
    for basis in ("standalone", "enhanced"):
        out = run_waterfall(plan, sim["collections"], sim["cdr"], sim["provider_period"], basis == "enhanced")
        values[(basis, "loss")] = out["loss"]
        values[(basis, "defaulted")] = out["defaulted"]
    for m in ("defaults", "obsolete", "invalidated"):
        values[("pool", m)] = sim[m]
    values[("pool", "collections")] = sim["collections"].sum(axis=1)
    for m in ("trigger_fired", *_DRAWN):
        values[("pool", m)] = out[m]  # enhanced basis
    sums = {}
    for key in _KEYS:
        x = np.asarray(values[key], float)
        sums[key] = (x.shape[0], x.sum(axis=0), (x * x).sum(axis=0))
    return sums


_WORKER_PLAN: Plan | None = None


def _worker_init(plan: Plan) -> None:
    global _WORKER_PLAN
    _WORKER_PLAN = plan


def _worker_chunk(seed: np.random.SeedSequence, n: int) -> dict:
    return simulate_chunk(_WORKER_PLAN, seed, n)


class Workers:
    """One NumPy process per core, each holding the plan: how a NumPy user puts every core to work.

    NumPy runs this model on one core (its element-wise kernels are single-threaded), so the peer
    spreads chunks over worker processes, as the engine spreads blocks over threads. Start it
    before timing (the engine's timings exclude compilation too); ``close`` when done.
    """

    def __init__(self, plan: Plan, workers: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers
        # spawn, not fork: the parent has numba's worker threads running
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_worker_init, initargs=(plan,))
        list(self.pool.map(_worker_chunk, np.random.SeedSequence(0).spawn(2 * workers), [64] * (2 * workers)))

    def map(self, seeds, sizes):
        return self.pool.map(_worker_chunk, seeds, sizes)

    def pids(self) -> list[int]:
        return [p.pid for p in self.pool._processes.values()]

    def close(self) -> None:
        self.pool.shutdown()


def simulate(plan: Plan, paths: int, seed: int, chunk_paths: int = DEFAULT_CHUNK_PATHS,
             workers: Workers | None = None) -> dict:
    """Simulate ``paths`` paths in chunks; returns per-tranche EL and PD with standard errors.

    Chunk c draws from child c of ``SeedSequence(seed)`` and the sums are merged in chunk order,
    so the result does not depend on ``workers`` (None: this process only).

    The result holds, per basis (``enhanced`` and ``standalone``), ``el``, ``el_se``, ``pd``,
    ``pd_se`` as lists over ``tranche_names``, plus pool statistics and ``seconds``.
    """
    check_supported(plan)
    start = time.perf_counter()
    n_chunks = (paths + chunk_paths - 1) // chunk_paths
    seeds = np.random.SeedSequence(seed).spawn(n_chunks)
    sizes = [min(chunk_paths, paths - c * chunk_paths) for c in range(n_chunks)]
    if workers is None:
        chunks = (simulate_chunk(plan, s, n) for s, n in zip(seeds, sizes))
    else:
        chunks = workers.map(seeds, sizes)
    total = {key: [0, 0.0, 0.0] for key in _KEYS}
    for sums in chunks:
        for key, (n, s1, s2) in sums.items():
            t = total[key]
            t[0] += n
            t[1] = t[1] + s1
            t[2] = t[2] + s2

    def mean_se(key):
        n, s1, s2 = total[key]
        mean = s1 / n
        var = np.maximum(s2 / n - mean * mean, 0.0) * n / max(n - 1, 1)
        return mean, np.sqrt(var / n)

    result = {"paths": paths, "seed": seed, "chunk_paths": chunk_paths, "tranche_names": list(plan.tranche_names),
              "trigger_names": list(plan.trigger_names), "workers": workers.workers if workers else 1,
              "seconds": time.perf_counter() - start}
    for basis in ("enhanced", "standalone"):
        el, el_se = mean_se((basis, "loss"))
        pd_, pd_se = mean_se((basis, "defaulted"))
        result[basis] = {"el": el.tolist(), "el_se": el_se.tolist(), "pd": pd_.tolist(), "pd_se": pd_se.tolist()}
    result["pool"] = {}
    for (_, m) in _KEYS[4:]:
        mean, se = mean_se(("pool", m))
        result["pool"][m] = {"mean": np.atleast_1d(mean).tolist(), "se": np.atleast_1d(se).tolist()}
    return result


def main(argv=None) -> None:
    """Command line: simulate a scenario with the peer and print its tranche EL and PD."""
    from simengine import load_scenario

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario")
    ap.add_argument("--paths", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--chunk-paths", type=int, default=DEFAULT_CHUNK_PATHS)
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="processes (default: every core)")
    args = ap.parse_args(argv)
    plan = compile_plan(load_scenario(args.scenario))
    workers = Workers(plan, args.workers) if args.workers > 1 else None
    try:
        res = simulate(plan, args.paths, args.seed, args.chunk_paths, workers)
    finally:
        if workers:
            workers.close()
    print(f"{args.paths:,} paths in {res['seconds']:.2f}s on {res['workers']} process(es)")
    for basis in ("enhanced", "standalone"):
        for k, name in enumerate(res["tranche_names"]):
            r = res[basis]
            print(f"{basis:10s} {name:14s} EL {r['el'][k]:.5f} ± {r['el_se'][k]:.5f}   "
                  f"PD {r['pd'][k]:.5f} ± {r['pd_se'][k]:.5f}")


if __name__ == "__main__":
    main()
