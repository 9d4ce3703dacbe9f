"""The priority of payments over one path's collections, one inlined helper per opcode.

The helpers are inlined into :func:`waterfall_path` at numba's IR level: as calls, each would be
passed the plan's exploded fields once per period and opcode (measured 8% slower on W1). Each
returns the scalars it changes.
Columns of ``out``, ``state``, ``flags`` and ``ledger`` are named in :mod:`simengine._layout`.
"""

from __future__ import annotations

import math

from .._jit import jit
from .._layout import (
    F_FAILED,
    F_NEEDED,
    L_ACCELERATED,
    L_CALLED,
    L_CDR,
    L_CLAIM,
    L_COLLECTIONS,
    L_DRAW,
    L_DSCR,
    L_EARLY,
    L_FEES_DUE,
    L_FEES_PAID,
    L_ICR,
    L_OC,
    L_REIMBURSED,
    L_RESERVE_END,
    L_RESERVE_START,
    L_RESIDUAL,
    L_SEQUENTIAL,
    L_TRAP,
    L_TRAP_FRACTION,
    LT_BALANCE,
    LT_CARRIED,
    LT_DRAW,
    LT_INTEREST_DUE,
    LT_INTEREST_PAID,
    LT_PRINCIPAL_PAID,
    N_LEDGER_DEAL,
    N_LEDGER_TRANCHE,
    N_PROVIDER_KINDS,
    N_TRANCHE_OUT,
    S_CLAIM,
    S_DRAW,
    S_INTEREST_DUE,
    S_INTEREST_PAID,
    S_KIND_DRAWN,
    S_KIND_REIMBURSED,
    S_MISSED,
    S_PRINCIPAL_PAID,
    S_PROVIDER_USED,
    S_TRIGGER_BREACH,
    S_TRIGGER_LATCHED,
    S_WAL_NUMERATOR,
    T_DEFAULTED,
    T_DRAW,
    T_FIRST_SHORTFALL,
    T_INTEREST_SHORTFALL,
    T_LOSS,
    T_PV_LOSS,
    T_WAL,
    W_CALL_PERIOD,
    W_UNREIMBURSED,
)
from ..plan.waterfall import (
    AM_BULLET,
    AM_PRO_RATA,
    AM_SEQUENTIAL,
    OP_FEES,
    OP_INTEREST,
    OP_PRINCIPAL,
    OP_REIMBURSE,
    OP_RESERVE,
    OP_RESIDUAL,
    TE_ACCELERATE,
    TE_EARLY_AMORTISATION,
    TE_SEQUENTIAL,
    TE_TRAP,
    TM_CDR,
    TM_DSCR,
    TM_ICR,
)


# ------------------------------------------------------------------------------------ providers
@jit
def provider_pays(shortfall, covered, p, default_period, room):
    """What a provider pays towards ``shortfall`` in period p: (amount, asked, failed)."""
    if shortfall <= 0.0 or not covered:
        return 0.0, False, False
    if p >= default_period:
        return 0.0, True, True
    pay = shortfall if shortfall < room else room
    return (pay if pay > 0.0 else 0.0), True, False


@jit  # a call with scalars and three arrays (made only on a shortfall): one compiled copy for its callers
def provider_draw(j, k, kind, covered, liquidity, reimbursed, cap, default_period, shortfall, p, flags, out, state):
    """Provider row j's payment towards a ``shortfall`` of tranche k (k < 0: fees), if it ``covered``
    it: counted against its ``cap`` (a ``liquidity`` facility's limit revolves: it caps the claim
    outstanding), added to its claim when its draws are ``reimbursed``, to its kind's total for the
    period and to the tranche's draws of its kind. Returns the amount."""
    used = state[j, S_CLAIM] if liquidity else state[j, S_PROVIDER_USED]
    d, asked, failed = provider_pays(shortfall, covered, p, default_period, cap - used)
    if asked:
        flags[2 * kind + F_NEEDED] = 1.0
    if failed:
        flags[2 * kind + F_FAILED] = 1.0
    state[j, S_PROVIDER_USED] += d
    if reimbursed:
        state[j, S_CLAIM] += d
    if k >= 0:
        out[k, T_DRAW + kind] += d
        state[k, S_DRAW + kind] += d
    state[kind, S_KIND_DRAWN] += d
    return d


# -------------------------------------------------------------------------------------- opcodes
@jit(inline="always")
def evaluate_triggers(wp, p, cdr, dscr, icr, oc, state, trig_fired):
    """Breach counts, latches and the effects active this period: (sequential, trap fraction (the
    largest of the active traps; 0 = none), accelerated, early amortisation)."""
    sequential = False
    trap = 0.0
    accelerated = False
    early = False
    for c in range(trig_fired.shape[0]):
        metric = wp.trigger_metric[c]
        if metric == TM_CDR:
            hit = cdr[p] > wp.trigger_threshold[c]
        elif metric == TM_DSCR:
            hit = dscr < wp.trigger_threshold[c]
        elif metric == TM_ICR:
            hit = icr < wp.trigger_threshold[c]
        else:  # TM_OC
            hit = oc < wp.trigger_threshold[c]
        state[c, S_TRIGGER_BREACH] = state[c, S_TRIGGER_BREACH] + 1.0 if hit else 0.0
        active = state[c, S_TRIGGER_BREACH] >= wp.trigger_consecutive[c]
        if not wp.trigger_curable[c]:
            if active:
                state[c, S_TRIGGER_LATCHED] = 1.0
            active = state[c, S_TRIGGER_LATCHED] > 0.0
        if active:
            trig_fired[c] = 1
            e = wp.trigger_effect[c]
            if e == TE_SEQUENTIAL:
                sequential = True
            elif e == TE_TRAP:
                trap = max(trap, wp.trigger_trap_fraction[c])
            elif e == TE_ACCELERATE:
                accelerated = True
                sequential = True
            elif e == TE_EARLY_AMORTISATION:
                early = True
                sequential = True
    return sequential, trap, accelerated, early


@jit(inline="always")
def op_fees(wp, p, enhanced, avail, reserve, fees_due, fees_paid, provider_period, flags, out, state):
    """Fees from available cash, then the reserve, then (enhanced basis) a liquidity facility; the
    rest is carried: (avail, reserve, fees_paid, fee_carry)."""
    pay = min(avail, fees_due)
    avail -= pay
    short = fees_due - pay
    d = min(reserve, short)
    reserve -= d
    fees_paid += pay + d
    short -= d
    if enhanced and short > 0.0:
        for j in range(provider_period.shape[0]):
            if wp.provider_liquidity[j]:
                d = provider_draw(j, -1, wp.provider_kind[j], True, True, True, wp.provider_cap[j], provider_period[j],
                                  short, p, flags, out, state)
                fees_paid += d
                short -= d
    return avail, reserve, fees_paid, short


@jit(inline="always")
def op_interest(wp, grp, p, enhanced, avail, reserve, provider_period, carry, state, out, flags):
    """Interest of the step's tranches in order; shortfalls from the reserve, then the providers
    (enhanced basis). Returns (avail, reserve)."""
    for m in range(wp.step_members.shape[1]):
        k = wp.step_members[grp, m]
        if k < 0:
            break
        due = state[k, S_INTEREST_DUE] - state[k, S_INTEREST_PAID]
        pay = min(avail, due)
        avail -= pay
        short = due - pay
        if wp.reserve_covers[k]:
            d = min(reserve, short)
            reserve -= d
            pay += d
            short -= d
        if enhanced and short > 0.0:
            for j in range(provider_period.shape[0]):
                d = provider_draw(j, k, wp.provider_kind[j], wp.provider_covers[j, k], wp.provider_liquidity[j],
                                  wp.provider_reimbursed[j], wp.provider_cap[j], provider_period[j], short, p, flags,
                                  out, state)
                pay += d
                short -= d
        state[k, S_INTEREST_PAID] += pay
        if short > 1e-9 * wp.tranche_balance[k]:
            if out[k, T_FIRST_SHORTFALL] < 0.0:
                out[k, T_FIRST_SHORTFALL] = p + 1.0
            if not wp.tranche_deferrable[k]:
                state[k, S_MISSED] = 1.0
        else:
            short = 0.0
        carry[k] = short
    return avail, reserve


@jit(inline="always")
def op_reimburse(wp, grp, avail, state):
    """Repay the claims of the step's provider rows in order, as far as cash goes: avail."""
    for m in range(wp.step_members.shape[1]):
        j = wp.step_members[grp, m]
        if j < 0:
            break
        claim = state[j, S_CLAIM]
        if claim > 0.0 and avail > 0.0:
            pay = min(avail, claim)
            avail -= pay
            state[j, S_CLAIM] = claim - pay
            state[wp.provider_kind[j], S_KIND_REIMBURSED] += pay
    return avail


@jit(inline="always")
def op_reserve(wp, balance, final, trap, avail, reserve):
    """Top the reserve up to its target (0 at legal final or a clean-up call), or release the
    excess unless a trap holds it: (avail, reserve)."""
    if wp.reserve_target_amount >= 0.0:
        target = wp.reserve_target_amount
    elif wp.reserve_target_fraction >= 0.0:
        notes = 0.0
        for k in range(balance.shape[0]):
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
    return avail, reserve


@jit(inline="always")
def op_principal(wp, grp, p, sequential, final, enhanced, avail, balance, provider_period, state, out, flags):
    """Principal of the step's tranches by their amortisation, then the providers' cover of
    contractual principal shortfalls (enhanced basis). Returns avail."""
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
                state[kk, S_PRINCIPAL_PAID] += pay
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
        state[k, S_PRINCIPAL_PAID] += pay
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
            for j in range(provider_period.shape[0]):
                # a liquidity facility never pays principal
                d = provider_draw(j, k, wp.provider_kind[j], wp.provider_covers[j, k] and not wp.provider_liquidity[j],
                                  False, wp.provider_reimbursed[j], wp.provider_cap[j], provider_period[j], short, p,
                                  flags, out, state)
                short -= d
                balance[k] -= d
                state[k, S_PRINCIPAL_PAID] += d
    return avail


@jit(inline="always")
def op_residual(final, trap, avail, reserve, residual):
    """What is left goes to the originator, or the ``trap`` fraction of it into the reserve while a
    trap holds: (avail, reserve, residual)."""
    if trap > 0.0 and not final:
        if trap >= 1.0:
            reserve += avail
        else:
            held = avail * trap
            reserve += held
            residual += avail - held
    else:
        residual += avail
    return 0.0, reserve, residual


@jit  # a call, not inlined: it runs only for ledgers, and the simulation kernel compiles faster without it
def record_ledger(provider_kind, ledger, p, collections, cdr, fees_due, fees_paid, reserve_start, reserve, residual,
                  dscr, icr, oc, sequential, trap, accelerated, early, called, balance, carry, state):
    """Period p's row of the ledger (columns: :data:`simengine._layout.LEDGER_DEAL`, then per tranche)."""
    ledger[p, L_COLLECTIONS] = collections[p]
    ledger[p, L_FEES_PAID] = fees_paid
    ledger[p, L_RESERVE_START] = reserve_start
    ledger[p, L_RESERVE_END] = reserve
    for kind in range(N_PROVIDER_KINDS):
        ledger[p, L_DRAW + kind] = state[kind, S_KIND_DRAWN]
        ledger[p, L_REIMBURSED + kind] = state[kind, S_KIND_REIMBURSED]
        ledger[p, L_CLAIM + kind] = 0.0
    for j in range(provider_kind.shape[0]):
        ledger[p, L_CLAIM + provider_kind[j]] += state[j, S_CLAIM]
    ledger[p, L_RESIDUAL] = residual
    ledger[p, L_CDR] = cdr[p]
    ledger[p, L_DSCR] = dscr
    ledger[p, L_ICR] = icr
    ledger[p, L_OC] = oc
    ledger[p, L_SEQUENTIAL] = 1.0 if sequential else 0.0
    ledger[p, L_TRAP] = 1.0 if trap > 0.0 else 0.0
    ledger[p, L_ACCELERATED] = 1.0 if accelerated else 0.0
    ledger[p, L_FEES_DUE] = fees_due
    ledger[p, L_TRAP_FRACTION] = trap
    ledger[p, L_EARLY] = 1.0 if early else 0.0
    ledger[p, L_CALLED] = 1.0 if called else 0.0
    for k in range(balance.shape[0]):
        base = N_LEDGER_DEAL + k * N_LEDGER_TRANCHE
        ledger[p, base + LT_INTEREST_DUE] = state[k, S_INTEREST_DUE]
        ledger[p, base + LT_INTEREST_PAID] = state[k, S_INTEREST_PAID]
        ledger[p, base + LT_PRINCIPAL_PAID] = state[k, S_PRINCIPAL_PAID]
        ledger[p, base + LT_BALANCE] = balance[k]
        ledger[p, base + LT_CARRIED] = carry[k]
        for kind in range(N_PROVIDER_KINDS):
            ledger[p, base + LT_DRAW + kind] = state[k, S_DRAW + kind]


# ------------------------------------------------------------------------------------ one path
@jit
def waterfall_path(wp, collections, cdr, oc_value, provider_period, enhanced, balance, carry, state,
                   out, trig_fired, flags, ledger, record):
    """Run the priority of payments over one path's collections.

    Parameters
    ----------
    wp : WaterfallPlan
    collections, cdr : ndarray(float64), shape (periods,)
    oc_value : ndarray(float64), shape (periods,)   collateral value (read only with an OC trigger)
    provider_period : ndarray(int64), shape (providers,)   default period of each provider row
    enhanced : bool                 False = standalone (no provider is asked)
    balance, carry : ndarray(float64), shape (tranches,)   scratch
    state : ndarray(float64), shape (state_rows(...), STATE_COLUMNS)   scratch
    out : ndarray(float64), shape (tranches, N_TRANCHE_OUT)  out: per-tranche results
    trig_fired : ndarray(uint8), shape (triggers,)           out: 1 if the trigger was ever active
    flags : ndarray(float64), shape (N_PATH_OUT,)            out: provider flags and claims by kind, call
    ledger : ndarray(float64), shape (periods, ledger width) out when ``record``
    """
    T = wp.periods
    n = balance.shape[0]
    n_prov = provider_period.shape[0]
    notes_original = 0.0
    for k in range(n):
        balance[k] = wp.tranche_balance[k]
        notes_original += wp.tranche_balance[k]
        carry[k] = 0.0
        for c in range(N_TRANCHE_OUT):
            out[k, c] = 0.0
        out[k, T_FIRST_SHORTFALL] = -1.0
        state[k, S_WAL_NUMERATOR] = 0.0
        state[k, S_MISSED] = 0.0
    for c in range(flags.shape[0]):
        flags[c] = 0.0
    flags[W_CALL_PERIOD] = -1.0
    for j in range(n_prov):
        state[j, S_PROVIDER_USED] = 0.0
        state[j, S_CLAIM] = 0.0
    for c in range(trig_fired.shape[0]):
        trig_fired[c] = 0
        state[c, S_TRIGGER_BREACH] = 0.0
        state[c, S_TRIGGER_LATCHED] = 0.0
    reserve = wp.reserve_initial
    fee_carry = 0.0
    called = False
    for p in range(T):
        final = p == T - 1
        reserve_start = reserve
        for kind in range(N_PROVIDER_KINDS):
            state[kind, S_KIND_DRAWN] = 0.0
            state[kind, S_KIND_REIMBURSED] = 0.0
        avail = collections[p]
        notes = 0.0
        for k in range(n):
            notes += balance[k]
        fees_due = 0.0  # after a clean-up call the deal is over: collections go to the residual holder
        if not called:
            fees_due = wp.fee_fixed + wp.fee_rate_per_period * notes + fee_carry
        claims = 0.0
        for j in range(n_prov):
            if wp.provider_claim_rate_per_period[j] > 0.0:
                state[j, S_CLAIM] += state[j, S_CLAIM] * wp.provider_claim_rate_per_period[j]
            claims += state[j, S_CLAIM]
        interest_due_total = 0.0
        principal_scheduled = 0.0
        for k in range(n):
            due = balance[k] * wp.tranche_coupon_per_period[k] + carry[k]
            if wp.tranche_interest_on_deferred[k]:
                due += carry[k] * wp.tranche_coupon_per_period[k]
            state[k, S_INTEREST_DUE] = due
            state[k, S_INTEREST_PAID] = 0.0
            state[k, S_PRINCIPAL_PAID] = 0.0
            for kind in range(N_PROVIDER_KINDS):
                state[k, S_DRAW + kind] = 0.0
            interest_due_total += state[k, S_INTEREST_DUE]
            # scheduled principal: down to the contractual target (schedule, bullet maturity, legal final)
            principal_scheduled += max(0.0, balance[k] - wp.tranche_contract_target[k, p] * wp.tranche_balance[k])
        denom = fees_due + interest_due_total
        icr = collections[p] / denom if denom > 0.0 else math.inf
        denom += principal_scheduled
        dscr = collections[p] / denom if denom > 0.0 else math.inf
        oc = math.nan
        if wp.oc_on:
            oc = oc_value[p] / notes if notes > 0.0 else math.inf
        sequential = accelerated = early = False
        trap = 0.0
        if not called:
            sequential, trap, accelerated, early = evaluate_triggers(wp, p, cdr, dscr, icr, oc, state, trig_fired)
        ends = final or called
        if not ends and wp.call_fraction >= 0.0 and 0.0 < notes <= wp.call_fraction * notes_original:
            # clean-up call: exercised when this date's cash repays everything the notes and claims need
            if collections[p] + reserve >= fees_due + interest_due_total + notes + claims:
                called = True
                ends = True
                flags[W_CALL_PERIOD] = p + 1.0
        if ends or accelerated or early:
            avail += reserve  # the reserve is released at legal final, a call, acceleration, early amortisation
            reserve = 0.0
        fees_paid = 0.0
        residual = 0.0
        steps = wp.steps_accelerated if accelerated else wp.steps
        for s in range(steps.shape[0]):
            op = steps[s, 0]
            grp = steps[s, 1]
            if op == OP_FEES:
                avail, reserve, fees_paid, fee_carry = op_fees(wp, p, enhanced, avail, reserve, fees_due, fees_paid,
                                                               provider_period, flags, out, state)
            elif op == OP_INTEREST:
                avail, reserve = op_interest(wp, grp, p, enhanced, avail, reserve, provider_period, carry, state,
                                             out, flags)
            elif op == OP_RESERVE:
                avail, reserve = op_reserve(wp, balance, ends or early, trap > 0.0, avail, reserve)
            elif op == OP_PRINCIPAL:
                avail = op_principal(wp, grp, p, sequential, ends, enhanced, avail, balance, provider_period,
                                     state, out, flags)
            elif op == OP_RESIDUAL:
                avail, reserve, residual = op_residual(ends, trap, avail, reserve, residual)
            elif op == OP_REIMBURSE:
                avail = op_reimburse(wp, grp, avail, state)
        residual += avail  # a custom waterfall without a residual step still releases the rest
        years = (p + 1.0) / wp.periods_per_year
        for k in range(n):
            state[k, S_WAL_NUMERATOR] += years * state[k, S_PRINCIPAL_PAID]
        if record:
            record_ledger(wp.provider_kind, ledger, p, collections, cdr, fees_due, fees_paid, reserve_start, reserve,
                          residual, dscr, icr, oc, sequential, trap, accelerated, early, called, balance, carry, state)
    for j in range(n_prov):
        flags[W_UNREIMBURSED + wp.provider_kind[j]] += state[j, S_CLAIM]
    horizon = T / wp.periods_per_year
    df_final = wp.discount_factor[T - 1]
    for k in range(n):
        orig = wp.tranche_balance[k]
        lost = balance[k] if balance[k] > 1e-9 * orig else 0.0
        unpaid = carry[k]
        out[k, T_LOSS] = lost / orig
        out[k, T_PV_LOSS] = df_final * (lost + unpaid) / orig
        out[k, T_INTEREST_SHORTFALL] = unpaid
        out[k, T_WAL] = (state[k, S_WAL_NUMERATOR] + horizon * lost) / orig
        out[k, T_DEFAULTED] = 1.0 if (lost > 0.0 or unpaid > 0.0 or state[k, S_MISSED] > 0.0) else 0.0
