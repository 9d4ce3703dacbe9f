"""The deal's structure as typed arrays: tranches, fees, reserve, triggers, providers and the
priority of payments as integer opcodes (a step list the kernel walks each period)."""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from ..scenario import Scenario

# waterfall opcodes: one inlined helper each in simengine._kernels.waterfall; a step's group is a
# row of step_members: tranche indices, or provider rows for OP_REIMBURSE
OP_FEES, OP_INTEREST, OP_RESERVE, OP_PRINCIPAL, OP_RESIDUAL, OP_REIMBURSE = 0, 1, 2, 3, 4, 5
# amortisation modes
AM_SEQUENTIAL, AM_PRO_RATA, AM_BULLET, AM_SCHEDULE = 0, 1, 2, 3
# trigger metrics and effects
TM_CDR, TM_DSCR, TM_ICR, TM_OC = 0, 1, 2, 3
TRIGGER_METRICS = {"cumulative_default_rate": TM_CDR, "dscr": TM_DSCR, "icr": TM_ICR, "oc": TM_OC}
TE_SEQUENTIAL, TE_TRAP, TE_ACCELERATE, TE_EARLY_AMORTISATION = 0, 1, 2, 3
TRIGGER_EFFECTS = {"sequential": TE_SEQUENTIAL, "trap": TE_TRAP, "accelerate": TE_ACCELERATE,
                   "early_amortisation": TE_EARLY_AMORTISATION}
STEP_OPS = {"fees": OP_FEES, "interest": OP_INTEREST, "reserve": OP_RESERVE, "principal": OP_PRINCIPAL,
            "residual": OP_RESIDUAL, "reimburse": OP_REIMBURSE}

WaterfallPlan = namedtuple("WaterfallPlan", [
    "periods", "periods_per_year", "discount_factor",
    "tranche_balance", "tranche_coupon_per_period", "tranche_deferrable", "tranche_mode",
    "tranche_maturity", "tranche_schedule_target", "tranche_contract_target",
    "tranche_interest_on_deferred",  # carried interest shortfalls accrue at the coupon
    "fee_fixed", "fee_rate_per_period",
    "reserve_initial", "reserve_target_amount", "reserve_target_fraction", "reserve_covers",
    "trigger_metric", "trigger_threshold", "trigger_effect", "trigger_curable", "trigger_consecutive",
    "trigger_trap_fraction",  # share of the excess cash a trap holds (several traps: the largest)
    "call_fraction",  # clean-up call when the notes are at most this share of the original (-1: none)
    "oc_on",  # a trigger reads the OC metric (the pool kernel then values the collateral)
    "steps", "steps_accelerated", "step_members",
    # providers, one row each (see plan.providers): kind (index into _layout.PROVIDER_KINDS), cap
    # (amount, inf = none), covers, shape (providers, tranches); reimbursed draws become a claim
    # with interest per period; a revolving cap limits the claim outstanding (a liquidity facility),
    # otherwise the draws so far; a liquidity facility covers fees and interest, never principal
    "provider_kind", "provider_cap", "provider_covers",
    "provider_reimbursed", "provider_claim_rate_per_period", "provider_liquidity",
])


def compile_waterfall(sc: Scenario, providers: list, T: int, ppy: int) -> tuple[WaterfallPlan, tuple[str, ...]]:
    """The deal's structure as a :class:`WaterfallPlan`, and its trigger names.

    ``providers``: the rows of :func:`simengine.plan.providers.provider_rows`.
    """
    m = sc.model
    st = m.structure
    tranches = st.tranches
    n = len(tranches)
    t_ix = {t.name: k for k, t in enumerate(tranches)}
    bal = np.array([t.balance for t in tranches])
    cpn = np.array([t.coupon / ppy for t in tranches])
    deferrable = np.array([t.interest_deferrable for t in tranches], np.bool_)
    mode = np.empty(n, np.int64)
    maturity = np.empty(n, np.int64)
    schedule = np.ones((n, T))
    contract = np.ones((n, T))
    for k, t in enumerate(tranches):
        maturity[k] = (t.maturity_period or T) - 1
        if isinstance(t.amortisation, list):
            mode[k] = AM_SCHEDULE
            cum = np.cumsum(np.asarray(t.amortisation, float))
            schedule[k, :len(cum)] = 1.0 - cum
            schedule[k, len(cum):] = 1.0 - (cum[-1] if len(cum) else 0.0)
            contract[k] = schedule[k]
        else:
            mode[k] = {"sequential": AM_SEQUENTIAL, "pro_rata": AM_PRO_RATA, "bullet": AM_BULLET}[t.amortisation]
        schedule[k, maturity[k]:] = 0.0
        contract[k, maturity[k]:] = 0.0
        schedule[k, T - 1] = contract[k, T - 1] = 0.0

    iod = np.array([t.interest_on_deferred for t in tranches], np.bool_)

    res = st.reserve
    covers = np.zeros(n, np.bool_)
    for name in (res.covers if res.covers is not None else t_ix):
        covers[t_ix[name]] = True

    trig = st.triggers
    trigger_names = tuple(t.name for t in trig)

    members: list[list[int]] = []

    def group(names) -> int:
        members.append([t_ix[x] for x in names])
        return len(members) - 1

    def provider_group(rows) -> int:
        members.append(list(rows))
        return len(members) - 1

    # claims: the liquidity facility is repaid senior to interest, other reimbursed providers
    # right after the interest of the tranches they cover (and before any principal)
    liquidity = [j for j, row in enumerate(providers) if row.is_liquidity]
    claimants = [j for j, row in enumerate(providers) if row.reimbursed and not row.is_liquidity]
    p_ix = {row.name: j for j, row in enumerate(providers)}
    if st.waterfall is not None:
        steps = []
        for s in st.waterfall:
            if s.step == "reimburse":
                rows = [p_ix[x] for x in s.providers] if s.providers else liquidity + claimants
                steps.append((OP_REIMBURSE, provider_group(rows)))
            else:
                steps.append((STEP_OPS[s.step], group(s.tranches) if s.tranches else -1))
    else:
        all_names = [t.name for t in tranches]
        steps = [(OP_FEES, -1)]
        if liquidity:
            steps.append((OP_REIMBURSE, provider_group(liquidity)))
        steps.append((OP_INTEREST, group(all_names)))
        if claimants:
            steps.append((OP_REIMBURSE, provider_group(claimants)))
        steps += [(OP_RESERVE, -1), (OP_PRINCIPAL, group(all_names)), (OP_RESIDUAL, -1)]
    # acceleration: each tranche's interest then principal, in seniority order; reserve released;
    # a claim is repaid after the interest of the most junior tranche its provider covers
    accel = [(OP_FEES, -1)]
    if liquidity:
        accel.append((OP_REIMBURSE, provider_group(liquidity)))
    last_covered = {j: max((t_ix[x] for x in providers[j].covers), default=-1) for j in claimants}
    for k, t in enumerate(tranches):
        accel.append((OP_INTEREST, group([t.name])))
        after = [j for j in claimants if last_covered[j] == k]
        if after:
            accel.append((OP_REIMBURSE, provider_group(after)))
        accel.append((OP_PRINCIPAL, group([t.name])))
    accel.append((OP_RESIDUAL, -1))
    width = max(1, max(len(x) for x in members))
    step_members = np.full((len(members), width), -1, np.int64)
    for g, row in enumerate(members):
        step_members[g, :len(row)] = row

    kinds = np.array([row.kind for row in providers], np.int64)
    cap = np.array([row.cap_amount for row in providers], float)
    pcov = np.zeros((len(providers), n), np.bool_)
    for j, row in enumerate(providers):
        for name in row.covers:
            pcov[j, t_ix[name]] = True

    reimbursed = np.array([row.reimbursed for row in providers], np.bool_)
    claim_rate = np.array([row.claim_rate / ppy for row in providers], float)
    is_liquidity = np.array([row.is_liquidity for row in providers], np.bool_)

    r = m.deal.discount_rate
    df = (1.0 + r) ** (-(np.arange(T) + 1.0) / ppy)
    wf = WaterfallPlan(
        periods=T, periods_per_year=ppy, discount_factor=df,
        tranche_balance=bal, tranche_coupon_per_period=cpn, tranche_deferrable=deferrable,
        tranche_mode=mode, tranche_maturity=maturity, tranche_schedule_target=schedule,
        tranche_contract_target=contract, tranche_interest_on_deferred=iod,
        fee_fixed=float(st.fees.fixed_per_period), fee_rate_per_period=float(st.fees.bps_annual) / 1e4 / ppy,
        reserve_initial=float(res.initial_amount),
        reserve_target_amount=float(res.target_amount) if res.target_amount is not None else -1.0,
        reserve_target_fraction=float(res.target_fraction) if res.target_fraction is not None else -1.0,
        reserve_covers=covers,
        trigger_metric=np.array([TRIGGER_METRICS[t.metric] for t in trig], np.int64),
        trigger_threshold=np.array([t.threshold for t in trig], float),
        trigger_effect=np.array([TRIGGER_EFFECTS[t.effect] for t in trig], np.int64),
        trigger_curable=np.array([t.curable for t in trig], np.bool_),
        trigger_consecutive=np.array([t.consecutive_periods for t in trig], np.int64),
        oc_on=any(t.metric == "oc" for t in trig),
        trigger_trap_fraction=np.array([t.trap_fraction for t in trig], float),
        call_fraction=float(st.clean_up_call.fraction) if st.clean_up_call is not None else -1.0,
        steps=np.array(steps, np.int64).reshape(-1, 2), steps_accelerated=np.array(accel, np.int64),
        step_members=step_members, provider_kind=kinds, provider_cap=cap, provider_covers=pcov,
        provider_reimbursed=reimbursed, provider_claim_rate_per_period=claim_rate, provider_liquidity=is_liquidity,
    )
    return wf, trigger_names


_TRANCHE_ARRAYS = ("tranche_balance", "tranche_coupon_per_period", "tranche_deferrable", "tranche_mode",
                   "tranche_maturity", "tranche_schedule_target", "tranche_contract_target",
                   "tranche_interest_on_deferred", "reserve_covers")
_TRIGGER_ARRAYS = ("trigger_metric", "trigger_threshold", "trigger_effect", "trigger_curable", "trigger_consecutive",
                   "trigger_trap_fraction")
_PROVIDER_ARRAYS = ("provider_kind", "provider_cap", "provider_covers", "provider_reimbursed",
                    "provider_claim_rate_per_period", "provider_liquidity")


def check_waterfall_plan(wp: WaterfallPlan, providers: int) -> None:
    """Raise ValueError if the structure's arrays disagree in length, or a step names a tranche or
    provider row that is not there (``providers``: the pool plan's provider rows). The kernels
    run without bounds checks: see :func:`simengine.plan.pool.check_pool_plan`."""
    n = len(wp.tranche_balance)
    for name in _TRANCHE_ARRAYS:
        if np.shape(getattr(wp, name))[0] != n:
            raise ValueError(f"plan.waterfall.{name} has {np.shape(getattr(wp, name))[0]} rows; expected one per "
                             f"tranche ({n})")
    for name in ("tranche_schedule_target", "tranche_contract_target"):
        if np.shape(getattr(wp, name))[1] < wp.periods:
            raise ValueError(f"plan.waterfall.{name} has fewer than {wp.periods} periods")
    m = len(wp.trigger_metric)
    for name in _TRIGGER_ARRAYS:
        if len(getattr(wp, name)) != m:
            raise ValueError(f"plan.waterfall.{name} has {len(getattr(wp, name))} rows; expected one per trigger ({m})")
    for name in _PROVIDER_ARRAYS:
        if np.shape(getattr(wp, name))[0] != providers:
            raise ValueError(f"plan.waterfall.{name} has {np.shape(getattr(wp, name))[0]} rows; expected one per "
                             f"provider row of the pool plan ({providers})")
    if np.shape(wp.provider_covers)[1:] != (n,):
        raise ValueError(f"plan.waterfall.provider_covers has shape {np.shape(wp.provider_covers)}; expected "
                         f"({providers}, {n})")
    for steps in (wp.steps, wp.steps_accelerated):
        for op, grp in steps:
            if op in (OP_INTEREST, OP_PRINCIPAL, OP_REIMBURSE):
                if not 0 <= grp < len(wp.step_members):
                    raise ValueError(f"plan.waterfall step group {grp} is not a row of step_members")
                members = wp.step_members[grp]
                bound = providers if op == OP_REIMBURSE else n
                if (members >= bound).any():
                    raise ValueError(f"plan.waterfall.step_members[{grp}] names a row past {bound - 1}")

