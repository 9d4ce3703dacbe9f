"""Invariants on random deals (SPEC §7), property-based with hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simengine as se
from simengine import _layout as k
from simengine._kernels.hazard import (
    default_period,
    fill_clock_start,
    first_period_reaching,
    tabulated_default_period,
)
from simengine._layout import ledger_columns
from simengine.engine import ledgers, run_chunk
from simengine.plan import compile_plan

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def deals(draw, sequential_only=False, with_triggers=True, recovery=True, features=False, coverage_triggers=True):
    """Random deals; ``features`` switches on issue 12's mechanisms at random (interest on deferred
    interest, reimbursed providers, a liquidity facility, partial traps and the new trigger metrics
    and effects, a clean-up call, systematic recovery)."""
    ppy = draw(st.sampled_from([1, 2, 4, 12]))
    periods = draw(st.integers(1, 16))
    n_lic = draw(st.integers(1, 6))
    licences = []
    for i in range(n_lic):
        # licence 0 pays something: a pool of zero royalties is an error (issue 18), others may be 0
        royalty = draw(st.floats(1e-3 if i == 0 else 0.0, 1_000.0))
        start = draw(st.integers(1, periods))
        lic = {"id": f"L{i}", "licensee": f"E{draw(st.integers(0, n_lic - 1))}", "royalty": royalty,
               "start_period": start, "end_period": draw(st.integers(start, periods)),
               "pd_annual": draw(st.floats(0.0, 0.4)), "recovery": draw(st.floats(0.0, 1.0))}
        licences.append(lic)
    # one licensee, one set of attributes (the copula draws one default time per licensee)
    attrs = {}
    for lic in licences:
        a = attrs.setdefault(lic["licensee"], {
            "industry": draw(st.sampled_from(["i1", "i2"])), "technology": draw(st.sampled_from(["t1", "t2"])),
            "pd_annual": lic["pd_annual"], "royalty_type": draw(st.sampled_from(["fixed", "running"]))})
        lic.update({k_: v for k_, v in a.items() if k_ != "royalty_type"})
        lic["royalty_type"] = a["royalty_type"]
        if lic["royalty_type"] == "running":
            lic["minimum_royalty"] = lic["royalty"] * draw(st.floats(0.0, 1.0))
        if draw(st.booleans()):
            lic["expiry_period"] = draw(st.integers(lic["start_period"], periods))  # before start is an error
    modes = ["sequential"] if sequential_only else ["sequential", "pro_rata", "bullet", "schedule"]
    tranches = []
    for j in range(draw(st.integers(1, 3))):
        mode = draw(st.sampled_from(modes))
        t = {"name": f"T{j}", "balance": draw(st.floats(10.0, 3_000.0)), "coupon": draw(st.floats(0.0, 0.15)),
             "interest_deferrable": draw(st.booleans())}
        if mode == "schedule":
            t["amortisation"] = [1.0 / periods] * draw(st.integers(1, periods))
        else:
            t["amortisation"] = mode
        if mode == "bullet":
            t["maturity_period"] = draw(st.integers(1, periods))
        if features:
            t["interest_on_deferred"] = draw(st.booleans())
        tranches.append(t)
    names = [t["name"] for t in tranches]
    structure = {"tranches": tranches,
                 "fees": {"fixed_per_period": draw(st.floats(0.0, 20.0)), "bps_annual": draw(st.floats(0.0, 100.0))},
                 "reserve": {"initial_amount": draw(st.floats(0.0, 200.0)),
                             "target_fraction": draw(st.floats(0.0, 0.2))}}
    effects = ["sequential", "trap", "accelerate"] + (["early_amortisation"] if features else [])
    if with_triggers and draw(st.booleans()):
        structure["triggers"] = [
            {"name": "cdr", "metric": "cumulative_default_rate", "threshold": draw(st.floats(0.0, 0.5)),
             "effect": draw(st.sampled_from(effects))}]
        if coverage_triggers:
            structure["triggers"].append(
                {"name": "dscr", "metric": draw(st.sampled_from(["dscr", "icr", "oc"])) if features else "dscr",
                 "threshold": draw(st.floats(0.5, 3.0)), "effect": draw(st.sampled_from(effects)),
                 "curable": draw(st.booleans()), "consecutive_periods": draw(st.integers(1, 3))})
        if features and coverage_triggers:
            structure["triggers"].append({"name": "trap_part", "metric": draw(st.sampled_from(["dscr", "icr", "oc"])),
                                          "threshold": draw(st.floats(0.5, 3.0)), "effect": "trap",
                                          "trap_fraction": draw(st.floats(0.01, 1.0)), "curable": True})
            structure["oc_test"] = {"obsolescence": draw(st.sampled_from(["none", "expected"]))}
    if draw(st.booleans()):
        structure["payment_commitment"] = {"provider": "c", "pd_annual": draw(st.floats(0.0, 0.3)),
                                           "loading": draw(st.floats(-0.9, 0.9)), "covers": names[:1],
                                           "cap_amount": draw(st.floats(0.0, 2_000.0))}
        if features:
            structure["payment_commitment"].update(reimbursed=draw(st.booleans()), claim_rate=draw(st.floats(0, 0.2)))
    if draw(st.booleans()):
        structure["guarantee"] = {"provider": "g", "pd_annual": draw(st.floats(0.0, 0.3)),
                                  "loading": draw(st.floats(-0.9, 0.9)), "covers": names}
        if features:
            structure["guarantee"].update(reimbursed=draw(st.booleans()), claim_rate=draw(st.floats(0, 0.2)))
    if features and draw(st.booleans()):
        structure["liquidity_facility"] = {"provider": "l", "pd_annual": draw(st.floats(0.0, 0.3)),
                                           "loading": draw(st.floats(-0.9, 0.9)), "covers": names[:1],
                                           "cap_amount": draw(st.floats(0.0, 500.0)),
                                           "claim_rate": draw(st.floats(0.0, 0.2))}
    if features and draw(st.booleans()):
        structure["clean_up_call"] = {"fraction": draw(st.floats(0.01, 0.5))}
    risk = {
        "default": {"copula": draw(st.sampled_from(["gaussian", "student_t"])), "dof": draw(st.floats(2.0, 30.0)),
                    "recovery_model": "fixed", "relicense_lag_periods": draw(st.integers(1, 4)),
                    "relicense_haircut": draw(st.floats(0.0, 1.0)) if recovery else 1.0},
        "correlation": {"global": draw(st.floats(0.0, 0.4)), "industry": draw(st.floats(0.0, 0.3)),
                        "region": 0.0},
        "obsolescence": {"hazard_annual": draw(st.floats(0.0, 0.5)), "severity": draw(st.floats(0.0, 1.0)),
                         "global_loading": draw(st.floats(-0.9, 0.9)),
                         "hazard_multiplier_after_obsolescence": draw(st.floats(0.5, 5.0))},
        "demand": {"model": draw(st.sampled_from(["gbm", "ou"])), "drift_annual": draw(st.floats(-0.3, 0.3)),
                   "volatility_annual": draw(st.floats(0.0, 0.6)), "mean_reversion_annual": draw(st.floats(0.0, 2.0)),
                   "global_loading": draw(st.floats(-0.9, 0.9)),
                   "demand_hazard_elasticity": draw(st.floats(-2.0, 3.0))},
        "legal": {"invalidation_hazard_annual": draw(st.floats(0.0, 0.3))},
    }
    if not recovery:
        for lic in licences:
            lic.pop("recovery")
    if features and recovery and draw(st.booleans()):
        for lic in licences:
            lic["recovery"] = draw(st.floats(0.05, 0.95))
        risk["default"].update(recovery_model="beta", recovery_stdev=0.04,
                               recovery_global_loading=draw(st.floats(-0.95, 0.95)))
    return {"deal": {"name": "random", "periods_per_year": ppy, "term_years": periods / ppy,
                     "discount_rate": draw(st.floats(0.0, 0.1))},
            "pool": {"licences": licences}, "risk": risk, "structure": structure,
            "simulation": {"seed": draw(st.integers(0, 2**40))}}


def _columns(plan):
    """(deal item -> ledger column, tranche item -> its column of each tranche), by name."""
    cols = ledger_columns(plan.tranche_names)
    deal = {item: c for owner, item, c in cols if owner == "deal"}

    def tr(item):
        return [c for owner, name, c in cols if owner != "deal" and name == item]

    return deal, tr


@SETTINGS
@given(deals(features=True))
def test_cash_is_conserved_every_period(d):
    """collections + reserve drawn + every provider's draws = fees + interest + principal +
    residual + repayments of provider claims (liquidity facility included), every period."""
    sc = se.Scenario.from_dict(d)
    plan = compile_plan(sc)
    led, _ = ledgers(plan, sc.model.simulation.seed, np.arange(12))
    deal, tr = _columns(plan)
    draws = sum(led[:, :, deal[f"{kind}_draw_amount"]] for kind in k.PROVIDER_KINDS)
    repaid = sum(led[:, :, deal[f"{kind}_reimbursed_amount"]] for kind in k.PROVIDER_KINDS)
    inflow = (led[:, :, deal["collections_amount"]] + led[:, :, deal["reserve_start_amount"]]
              - led[:, :, deal["reserve_end_amount"]] + draws)
    outflow = (led[:, :, deal["fees_paid_amount"]] + led[:, :, tr("interest_paid_amount")].sum(axis=2)
               + led[:, :, tr("principal_paid_amount")].sum(axis=2) + led[:, :, deal["residual_amount"]] + repaid)
    scale = 1.0 + sum(t["balance"] for t in d["structure"]["tranches"])
    np.testing.assert_allclose(inflow, outflow, atol=1e-9 * scale, rtol=0)
    assert (led[:, :, deal["residual_amount"]] >= -1e-9 * scale).all()
    assert (led[:, :, deal["reserve_end_amount"]] >= -1e-9 * scale).all()
    # per-tranche draws add up to the deal-level draws (a liquidity facility's also pay fees)
    for kind in ("commitment", "guarantee"):
        np.testing.assert_allclose(led[:, :, tr(f"{kind}_draw_amount")].sum(axis=2),
                                   led[:, :, deal[f"{kind}_draw_amount"]], atol=1e-9 * scale)
    assert (led[:, :, tr("liquidity_draw_amount")].sum(axis=2)
            <= led[:, :, deal["liquidity_draw_amount"]] + 1e-9 * scale).all()
    # claims: never negative; a liquidity facility's within its limit (plus the interest it accrues)
    for kind in k.PROVIDER_KINDS:
        assert (led[:, :, deal[f"{kind}_claim_amount"]] >= -1e-9 * scale).all()
    if "liquidity_facility" in d["structure"]:
        limit = d["structure"]["liquidity_facility"]["cap_amount"]
        rate = 1 + d["structure"]["liquidity_facility"]["claim_rate"] / d["deal"]["periods_per_year"]
        assert (led[:, :, deal["liquidity_claim_amount"]] <= limit * rate ** 16 + 1e-9 * scale).all()


@SETTINGS
@given(deals(features=True))
def test_losses_are_fractions(d):
    sc = se.Scenario.from_dict(d)
    out = run_chunk(compile_plan(sc), sc.model.simulation.seed, 0, 64)
    t = out.tranche
    loss = t[..., k.T_LOSS]
    assert (loss >= 0).all() and (loss <= 1 + 1e-12).all()
    # PV loss adds unpaid interest, so it is bounded by principal plus a whole term of coupons
    # (compounded, where interest on deferred interest accrues)
    term = d["deal"]["term_years"]
    ppy = d["deal"]["periods_per_year"]
    cap = np.array([(1 + tr["coupon"] / ppy) ** (term * ppy) if tr.get("interest_on_deferred")
                    else 1 + tr["coupon"] * term for tr in d["structure"]["tranches"]])
    assert (t[..., k.T_PV_LOSS] >= 0).all() and (t[..., k.T_PV_LOSS] <= cap + 1e-12).all()
    assert (out.weights == 1.0).all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deals(sequential_only=True, coverage_triggers=False))
def test_enhancement_never_hurts_a_sequential_tranche(d):
    """With sequential principal every unit a provider pays reaches the notes in seniority order.

    Not true of every structure: a bullet tranche above an amortising junior, with a reserve
    sized on outstanding notes, can lose from the enhancement of a tranche above it
    (test_waterfall_deterministic.test_enhancement_can_hurt_a_bullet_tranche, by hand); nor with a
    coverage trigger, which a provider's payment can keep from firing
    (test_waterfall_deterministic.test_enhancement_can_keep_a_coverage_trigger_from_firing).
    """
    sc = se.Scenario.from_dict(d)
    t = run_chunk(compile_plan(sc), sc.model.simulation.seed, 0, 64).tranche
    assert (t[:, k.BASIS_ENHANCED, :, k.T_LOSS] <= t[:, k.BASIS_STANDALONE, :, k.T_LOSS] + 1e-12).all()


@SETTINGS
@given(deals(sequential_only=True))
def test_senior_never_loses_where_junior_did_not(d):
    sc = se.Scenario.from_dict(d)
    out = run_chunk(compile_plan(sc), sc.model.simulation.seed, 0, 64)
    loss = out.tranche[:, k.BASIS_STANDALONE, :, k.T_LOSS]  # standalone: no provider protects one tranche only
    for senior in range(loss.shape[1] - 1):
        junior_loss = loss[:, senior + 1:]
        senior_lost = loss[:, senior] > 0
        assert (junior_loss[senior_lost] > 0).all()


@SETTINGS
@given(deals(sequential_only=True, with_triggers=False, recovery=False), st.floats(1.05, 3.0))
def test_el_monotone_in_pd_under_common_random_numbers(d, factor):
    sc = se.Scenario.from_dict(d)
    worse = {**d, "pool": {"licences": [{**lic, "pd_annual": min(0.95, lic["pd_annual"] * factor)}
                                        for lic in d["pool"]["licences"]]}}
    for key in ("payment_commitment", "guarantee"):
        d["structure"].pop(key, None)
    seed = sc.model.simulation.seed
    def standalone_loss(raw):
        return run_chunk(compile_plan(se.Scenario.from_dict(raw)), seed, 0, 64).tranche[:, k.BASIS_STANDALONE, :,
                                                                                      k.T_LOSS]

    base = standalone_loss(d)
    stressed = standalone_loss({**worse, "structure": d["structure"]})
    assert (stressed.mean(axis=0) >= base.mean(axis=0) - 1e-12).all()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0.0, 5.0), min_size=1, max_size=60), st.integers(0, 60), st.floats(0.0, 5.0),
       st.floats(0.0, 1.6), st.integers(0, 59), st.sampled_from(["fraction", "tie", "zero", "inf"]))
def test_default_period_search_equals_the_definition(steps, k_obs, mult, fraction, tie_at, kind):
    """_kernels.hazard.first_period_reaching (a guess-and-step search) = the first t with H(t) >= need."""
    clock = np.cumsum(np.asarray(steps) + 1e-3)[None, :]  # one industry; strictly increasing
    T = clock.shape[1]
    k_obs = min(k_obs, T)
    base = clock[0, k_obs - 1] if 0 < k_obs < T else 0.0
    H = np.where(np.arange(T) >= k_obs, base + mult * (clock[0] - base), clock[0])
    need = {"fraction": fraction * H[-1], "tie": H[min(tie_at, T - 1)], "zero": 0.0, "inf": np.inf}[kind]
    reached = np.nonzero(H >= need)[0]
    expected = int(reached[0]) if reached.size else T
    assert first_period_reaching(clock, 0, k_obs, base, mult, need) == expected
    start, scale = np.empty((1, T), np.int64), np.empty(1)
    fill_clock_start(clock, 0, start, scale)
    assert default_period(clock, start, scale, 0, k_obs, base, mult, need) == expected


def test_tabulated_exposure_is_within_its_derived_bound():
    """The Gaussian plan's exposure table interpolated linearly against the kernels' exact exposure
    -log1p(-(1 - Phi(-L))), on a million latents over the table and every grid midpoint (where
    interpolation errs most): the derived bound step^2 / 8 (g'' < 1) holds, and the kernel's
    tolerance keeps a factor 2 over it."""
    import math

    from simengine._kernels.distributions import upper_tail_normal
    from simengine.plan.pool import exposure_table

    t = exposure_table(False, 0.0)
    step = 1.0 / t["exposure_inv_step"]
    bound = step * step / 8.0
    assert t["exposure_tol"] >= 2.0 * bound
    rng = np.random.default_rng(20261127)
    grid = t["exposure_l0"] + np.arange(t["exposure_last"]) * step
    latents = np.concatenate([rng.uniform(grid[0], grid[-1] + step, 1_000_000), grid + 0.5 * step, grid])
    table = t["exposure"]
    pos = (latents - t["exposure_l0"]) * t["exposure_inv_step"]
    k = pos.astype(np.int64)
    approx = table[k] + (table[k + 1] - table[k]) * (pos - k)
    exact = np.array([-math.log1p(-upper_tail_normal(-x)) for x in latents])
    err = np.abs(approx - exact)
    assert err.max() <= bound, (latents[err.argmax()], err.max())


@pytest.mark.parametrize("dof", [None, 0.5, 3.0, 5.5, 30.0, 1000.0])  # the schema allows 0 < dof <= 1000
def test_tabulated_default_period_is_the_exact_one_or_declines(dof):
    """hazard.tabulated_default_period with the plan's table (plan.pool.exposure_table: Gaussian,
    or Student-t with integer and non-integer dof) returns the period of the exact exposure
    -log1p(-F(L)) / hazard, or -1 (then the kernel computes it exactly): on random clocks with and
    without obsolescence, random latents (some beyond the table) and latents placed 1e-9 .. 1e-5
    either side of a period boundary, where it must decline or still be right. It declines rarely
    away from the boundaries."""
    import math

    from scipy import stats

    from simengine._kernels.distributions import t_tail_norms, upper_tail_normal, upper_tail_t_normed
    from simengine.plan.pool import exposure_table

    t = exposure_table(dof is not None, dof or 0.0)
    if dof is None:
        def exact_u(x):
            return upper_tail_normal(-x)
        dist = stats.norm()
    else:
        ab, ba = t_tail_norms(dof)

        def exact_u(x):
            return upper_tail_t_normed(-x, dof, ab, ba)
        dist = stats.t(dof)
    rng = np.random.default_rng(7 if dof is None else int(dof * 10))
    T, declined_boundary, declined_random, random_total = 40, 0, 0, 0
    for _ in range(120):
        clock = np.cumsum(rng.uniform(0.05, 0.5, (1, T)), axis=1)
        start, scale = np.empty((1, T), np.int64), np.empty(1)
        fill_clock_start(clock, 0, start, scale)
        k_obs = int(rng.choice([T, T, int(rng.integers(0, T))]))
        mult = float(rng.choice([0.5, 1.0, 2.0]))
        base = clock[0, k_obs - 1] if 0 < k_obs < T else 0.0
        H = np.where(np.arange(T) >= k_obs, base + mult * (clock[0] - base), clock[0])
        hazard = float(rng.uniform(0.005, 0.3))
        random_latents = list(dist.rvs(size=40, random_state=rng) * 1.5 - 1.0) + [-20.0, 6.0 if dof is None else 9.0]
        boundary = [float(dist.ppf(-math.expm1(-H[s] * hazard * (1.0 + rel))))
                    for s in rng.integers(0, T, 10) for rel in (-1e-5, -1e-7, -1e-9, 1e-9, 1e-7, 1e-5)]
        for kind, latents in (("random", random_latents), ("boundary", boundary)):
            for latent in latents:
                u = exact_u(latent)  # u rounds to 1 far in the upper tail: infinite need, as log1p(-1) in numba
                want = first_period_reaching(clock, 0, k_obs, base, mult,
                                             math.inf if u >= 1.0 else -math.log1p(-u) / hazard)
                got = tabulated_default_period(latent, 1.0 / hazard, t["exposure"], t["exposure_l0"],
                                               t["exposure_inv_step"], t["exposure_last"], t["exposure_tol"], clock,
                                               start, scale, 0, k_obs, base, mult)
                assert got == want or got == -1, (latent, got, want)
                if kind == "random" and -8.0 < latent < 4.0:
                    random_total += 1
                    declined_random += got == -1
                declined_boundary += kind == "boundary" and got == -1
    assert declined_boundary > 0  # the boundary latents reach the decline: they test it, not just the table
    assert declined_random <= 0.01 * random_total, (declined_random, random_total)


@SETTINGS
@given(deals(features=True), st.booleans())
def test_a_provider_with_pd_0_and_no_cap_makes_its_tranches_lose_nothing(d, reimbursed):
    """A guarantor that cannot default and has no cap, covering every tranche: no enhanced loss,
    whatever else the deal does (reimbursed providers, a liquidity facility, triggers, a call)."""
    names = [t["name"] for t in d["structure"]["tranches"]]
    d["structure"]["guarantee"] = {"provider": "g", "pd_annual": 0.0, "covers": names, "reimbursed": reimbursed}
    sc = se.Scenario.from_dict(d)
    t = run_chunk(compile_plan(sc), sc.model.simulation.seed, 0, 64).tranche
    assert (t[:, k.BASIS_ENHANCED, :, k.T_LOSS] == 0.0).all()


@st.composite
def reimbursed_deals(draw):
    """Sequential deals whose provider claims are repaid at one step of a custom waterfall: after
    the fees, after all interest or after all principal (where the notes take every unit first)."""
    d = draw(deals(sequential_only=True, with_triggers=False, features=True))
    st_ = d["structure"]
    names = [t["name"] for t in st_["tranches"]]
    st_["guarantee"] = {"provider": "g", "pd_annual": draw(st.floats(0.0, 0.3)), "covers": names,
                        "cap_amount": draw(st.floats(0.0, 3_000.0)), "reimbursed": True,
                        "claim_rate": draw(st.floats(0.0, 0.2))}
    st_.pop("clean_up_call", None)
    position = draw(st.sampled_from(["fees", "interest", "principal"]))
    steps = [{"step": "fees"}, {"step": "interest", "tranches": names}, {"step": "reserve"},
             {"step": "principal", "tranches": names}, {"step": "residual"}]
    at = {"fees": 1, "interest": 2, "principal": 4}[position]
    st_["waterfall"] = steps[:at] + [{"step": "reimburse"}] + steps[at:]
    return d, position


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reimbursed_deals())
def test_a_claim_is_never_repaid_ahead_of_its_step(case):
    """Wherever a provider is repaid, everything the waterfall puts before its step was paid in full:
    the fees; then every tranche's interest; then (sequential notes) every note."""
    d, position = case
    sc = se.Scenario.from_dict(d)
    plan = compile_plan(sc)
    led, _ = ledgers(plan, sc.model.simulation.seed, np.arange(16))
    deal, tr = _columns(plan)
    scale = 1.0 + sum(t["balance"] for t in d["structure"]["tranches"])
    repaid = sum(led[:, :, deal[f"{kind}_reimbursed_amount"]] for kind in k.PROVIDER_KINDS) > 0
    tol = 1e-9 * scale
    assert (led[:, :, deal["fees_paid_amount"]] >= led[:, :, deal["fees_due_amount"]] - tol)[repaid].all()
    if position in ("interest", "principal"):
        short = led[:, :, tr("interest_due_amount")] - led[:, :, tr("interest_paid_amount")]
        assert (short.max(axis=2) <= tol)[repaid].all()
    if position == "principal":
        assert (led[:, :, tr("balance_amount")].max(axis=2) <= tol)[repaid].all()


def test_student_t_tail_agrees_with_scipy_in_both_branches():
    """upper_tail_t: the closed form (integer dof <= 30, |x| <= 4) and the continued fraction (other
    dof, far tails) against SciPy's t.sf. Bound: the closed form's lower-tail cancellation costs
    eps / F(-4) <= 2.2e-16 / 1.9e-4 (dof 30, the smallest F(-4) it serves) ~ 1.2e-12 relative, the
    continued fraction ~1e-14; 2e-12 covers both. Points within 1e-6 of 0 are left out: SciPy's
    Cauchy (dof 1) returns exactly 0.5 there (the closed form keeps the atan term)."""
    from scipy import stats

    from simengine._kernels.distributions import T_CLOSED_X, upper_tail_t

    xs = np.concatenate([np.linspace(-12.0, 12.0, 241), [-T_CLOSED_X, T_CLOSED_X, -4.0001, 4.0001]])
    xs = xs[np.abs(xs) > 1e-6]
    assert stats.t.sf(-T_CLOSED_X, 30) > 1.9e-4 and stats.t.cdf(-T_CLOSED_X, 30) > 1.9e-4
    for dof in [1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 12.0, 30.0, 2.5, 5.5, 31.0, 60.0]:
        got = np.array([upper_tail_t(float(x), dof) for x in xs])
        want = stats.t.sf(xs, dof)
        rel = np.abs(got - want) / want
        assert rel.max() <= 2e-12, (dof, xs[rel.argmax()], rel.max())
