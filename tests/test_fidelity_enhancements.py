"""Issue 12's enhancements on deterministic deals (every hazard zero, no volatility, forced events),
each ledger checked to the cent against the hand computation in its docstring ("to the cent":
|engine - hand| < 0.005 in deal currency)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hand_deals import obsolescence_cut_deal, quiet_risk

import simengine as se
from simengine import _layout as k
from simengine._layout import ledger_columns
from simengine.engine import ledgers, run_chunk
from simengine.errors import ScenarioError
from simengine.plan import compile_plan

CENT = 0.005


def ledger_frame(d: dict, path: int = 0) -> dict:
    plan = compile_plan(se.Scenario.from_dict(d))
    led, col = ledgers(plan, 0, np.array([path]))
    frame = {item if owner == "deal" else f"{owner}.{item}": led[0, :, c]
             for owner, item, c in ledger_columns(plan.tranche_names)}
    frame["collections"] = col[0]
    return frame


def close(got, want, what=""):
    np.testing.assert_allclose(got, want, atol=CENT, rtol=0, err_msg=what)


def test_forced_default_period_and_relicensing():
    """``default_period`` forces a licensee's default (for stresses and hand computations).

    Licence A 100,000 a quarter, its licensee forced to default at period 3; re-licensed after
    2 periods at recovery 0.4 (40,000 from period 5). Licence B 50,000 a quarter, no default.
    Collections: 150,000, 150,000, then 50,000 in periods 3-4, 90,000 in periods 5-8.
    The cumulative default rate (by scheduled amount) is A's 800,000 of 1,200,000 from period 3.
    """
    d = {"deal": {"name": "forced", "periods_per_year": 4, "term_years": 2.0},
         "pool": {"licences": [{"id": "A", "royalty": 100_000.0, "pd_annual": 0.0, "default_period": 3,
                                "recovery": 0.4},
                               {"id": "B", "royalty": 50_000.0, "pd_annual": 0.0}]},
         "risk": {**quiet_risk(), "default": {"relicense_lag_periods": 2}},
         "structure": {"tranches": [{"name": "notes", "balance": 1_000_000.0}]}}
    led = ledger_frame(d)
    close(led["collections"], [150_000, 150_000, 50_000, 50_000] + [90_000] * 4)
    close(led["cumulative_default_rate"], [0, 0] + [800_000 / 1_200_000] * 6)
    bad = {**d, "pool": {"licences": [{**d["pool"]["licences"][0], "default_period": 9}]}}
    with pytest.raises(ScenarioError, match="default_period"):
        se.Scenario.from_dict(bad)


def test_interest_on_deferred_interest():
    """``interest_on_deferred``: a carried interest shortfall accrues at the coupon.

    J 100,000 at 8% (2% a quarter), deferrable; collections 0, 0, 50,000, 60,000.
    With interest on deferred interest:
    P1 due 2,000, unpaid (carried 2,000). P2 due 2,000 + 2,000 + 2% x 2,000 = 4,040 (carried).
    P3 due 2,000 + 4,040 + 80.80 = 6,120.80, paid; principal 43,879.20 (J 56,120.80).
    P4 due 1,122.416; principal 56,120.80; residual 2,756.784.
    Without it: P2 4,000, P3 6,000 (principal 44,000, J 56,000), P4 1,120, residual 2,880.
    """
    def deal(on):
        return {"deal": {"name": "iod", "periods_per_year": 4, "term_years": 1.0},
                "pool": {"licences": [{"id": "A", "royalty": 50_000.0, "pd_annual": 0.0, "start_period": 3},
                                      {"id": "B", "royalty": 10_000.0, "pd_annual": 0.0, "start_period": 4}]},
                "risk": quiet_risk(),
                "structure": {"tranches": [{"name": "J", "balance": 100_000.0, "coupon": 0.08,
                                            "interest_deferrable": True, "interest_on_deferred": on}]}}
    led = ledger_frame(deal(True))
    close(led["J.interest_due_amount"], [2_000, 4_040, 6_120.80, 1_122.416])
    close(led["J.interest_carried_amount"], [2_000, 4_040, 0, 0])
    close(led["J.principal_paid_amount"], [0, 0, 43_879.20, 56_120.80])
    close(led["residual_amount"], [0, 0, 0, 2_756.784])
    led = ledger_frame(deal(False))
    close(led["J.interest_due_amount"], [2_000, 4_000, 6_000, 1_120])
    close(led["residual_amount"], [0, 0, 0, 2_880])


def reimbursed_deal(waterfall=None) -> dict:
    d = {"deal": {"name": "reimbursed", "periods_per_year": 4, "term_years": 1.5},
         "pool": {"licences": [{"id": "A", "royalty": 100_000.0, "pd_annual": 0.0, "start_period": 2}]},
         "risk": quiet_risk(),
         "structure": {
             "tranches": [{"name": "S", "balance": 400_000.0, "coupon": 0.08},
                          {"name": "J", "balance": 100_000.0, "interest_deferrable": True}],
             "payment_commitment": {"provider": "originator", "pd_annual": 0.0, "covers": ["S"],
                                    "reimbursed": True, "claim_rate": 0.08}}}
    if waterfall is not None:
        d["structure"]["waterfall"] = waterfall
    return d


def test_provider_reimbursement_after_the_covered_interest():
    """A reimbursed commitment's draws are its claim (8% a year: 2% a quarter), repaid by default
    right after the covered tranche's interest, before any principal.

    Collections 0 in P1, then 100,000 a quarter (P2-P6). S 400,000 at 8%, J 100,000, both sequential.
    P1: S interest 8,000 paid by the commitment: claim 8,000.
    P2: claim 8,160 after a quarter's interest; S interest 8,000; the claim is repaid (8,160);
        S principal 83,840 (S 316,160).
    P3: S interest 6,323.20, principal 93,676.80 (S 222,483.20). P4: 4,449.664; 95,550.336
        (S 126,932.864). P5: 2,538.65728; 97,461.34272 (S 29,471.52128).
    P6 (legal final): S interest 589.4304256, S repaid (29,471.52128), J 69,939.0482944 (J loses
        30,060.9517056). Nothing is owed to the commitment at legal final.
    """
    led = ledger_frame(reimbursed_deal())
    close(led["commitment_draw_amount"], [8_000, 0, 0, 0, 0, 0])
    close(led["commitment_claim_amount"], [8_000, 0, 0, 0, 0, 0])
    close(led["commitment_reimbursed_amount"], [0, 8_160, 0, 0, 0, 0])
    close(led["S.balance_amount"], [400_000, 316_160, 222_483.20, 126_932.864, 29_471.52128, 0])
    close(led["J.balance_amount"], [100_000] * 5 + [30_060.9517056])
    res = se.simulate(se.Scenario.from_dict(reimbursed_deal()), paths=2, seed=1, progress=False)
    ps = res.pool_summary
    assert ps["p_commitment_claim_outstanding_at_final"] == 0 and ps["commitment_unreimbursed_mean_amount"] == 0


def test_provider_claim_at_the_bottom_of_the_waterfall_stays_unpaid():
    """The same deal with the claim repaid where the scenario puts it: after all principal. The
    notes take every unit, so the claim only grows (2% a quarter) to 8,000 x 1.02^5 = 8,832.6464256
    owed at legal final, reported as P(claim outstanding at legal final) = 1 and as the expected
    unreimbursed amount.
    P2: S interest 8,000, principal 92,000 (S 308,000). P3: 6,160; 93,840 (S 214,160).
    P4: 4,283.20; 95,716.80 (S 118,443.20). P5: 2,368.864; 97,631.136 (S 20,812.064).
    P6: 416.24128; S repaid; J 78,771.69472 (J loses 21,228.30528, not 30,060.95 as above).
    """
    waterfall = [{"step": "fees"}, {"step": "interest", "tranches": ["S", "J"]},
                 {"step": "principal", "tranches": ["S", "J"]}, {"step": "reimburse"}, {"step": "residual"}]
    led = ledger_frame(reimbursed_deal(waterfall))
    close(led["commitment_claim_amount"], [8_000 * 1.02 ** p for p in range(6)])
    close(led["commitment_reimbursed_amount"], [0] * 6)
    close(led["S.balance_amount"], [400_000, 308_000, 214_160, 118_443.20, 20_812.064, 0])
    close(led["J.balance_amount"], [100_000] * 5 + [21_228.30528])
    res = se.simulate(se.Scenario.from_dict(reimbursed_deal(waterfall)), paths=2, seed=1, progress=False)
    ps = res.pool_summary
    assert ps["p_commitment_claim_outstanding_at_final"] == 1
    assert ps["commitment_unreimbursed_mean_amount"] == pytest.approx(8_832.6464256, abs=CENT)
    assert res.pool_paths["commitment_unreimbursed_amount"].tolist() == pytest.approx([8_832.6464256] * 2, abs=CENT)


def liquidity_deal() -> dict:
    return {"deal": {"name": "liquidity", "periods_per_year": 4, "term_years": 1.0},
            "pool": {"licences": [{"id": "A", "royalty": 200_000.0, "pd_annual": 0.0, "start_period": 3},
                                  {"id": "B", "royalty": 120_000.0, "pd_annual": 0.0, "start_period": 4}]},
            "risk": quiet_risk(),
            "structure": {
                "tranches": [{"name": "S", "balance": 300_000.0, "coupon": 0.08, "amortisation": "bullet"},
                             {"name": "J", "balance": 100_000.0, "interest_deferrable": True}],
                "fees": {"fixed_per_period": 5_000.0},
                "liquidity_facility": {"provider": "bank", "pd_annual": 0.0, "cap_amount": 20_000.0,
                                       "claim_rate": 0.04, "covers": ["S"]},
                "payment_commitment": {"provider": "originator", "pd_annual": 0.0, "covers": ["S"]}}}


def test_liquidity_facility_advances_fees_and_interest_and_is_repaid_senior_to_interest():
    """A liquidity facility (limit 20,000 outstanding, 4% a year on what it lent: 1% a quarter)
    advances fees and the senior's interest, before the commitment is asked; it is repaid senior to
    interest. Fees 5,000 a quarter; S 300,000 at 8% (6,000 a quarter), bullet; J 100,000.
    Collections 0, 0, 200,000, 320,000.
    P1: fees 5,000 and S interest 6,000 from the facility: claim 11,000.
    P2: claim 11,110; fees 5,000 from the facility (claim 16,110), S interest: 3,890 from the
        facility (its limit: claim 20,000), 2,110 from the commitment.
    P3: claim 20,200; fees 5,000; the facility is repaid 20,200; S interest 6,000; J principal
        100,000; residual 68,800.
    P4: fees 5,000; S interest 6,000 and principal 300,000; residual 9,000.
    """
    led = ledger_frame(liquidity_deal())
    close(led["fees_paid_amount"], [5_000] * 4)
    close(led["liquidity_draw_amount"], [11_000, 8_890, 0, 0])
    close(led["S.liquidity_draw_amount"], [6_000, 3_890, 0, 0])
    close(led["S.commitment_draw_amount"], [0, 2_110, 0, 0])
    close(led["liquidity_claim_amount"], [11_000, 20_000, 0, 0])
    close(led["liquidity_reimbursed_amount"], [0, 0, 20_200, 0])
    close(led["S.interest_paid_amount"], [6_000] * 4)
    close(led["residual_amount"], [0, 0, 68_800, 9_000])


def test_a_defaulted_liquidity_facility_fails_its_draws():
    """The deal above with the facility defaulted from period 1 and no commitment: every draw fails
    (flagged), fees and interest are carried. P1: fees 5,000 and S interest 6,000 unpaid; P2: fees
    due 10,000, S interest 12,000, unpaid; P3: fees 15,000, S interest 18,000, J 100,000,
    residual 67,000; P4: fees 5,000, S 6,000 + 300,000, residual 9,000.
    """
    d = liquidity_deal()
    del d["structure"]["payment_commitment"]
    plan = compile_plan(se.Scenario.from_dict(d))
    plan = dataclasses.replace(plan, pool=plan.pool._replace(provider_hazard_annual=np.array([1e9])))
    led, _ = ledgers(plan, 0, np.array([0]))
    cols = {item if owner == "deal" else f"{owner}.{item}": c for owner, item, c in ledger_columns(plan.tranche_names)}
    close(led[0, :, cols["fees_paid_amount"]], [0, 0, 15_000, 5_000])
    close(led[0, :, cols["S.interest_paid_amount"]], [0, 0, 18_000, 6_000])
    close(led[0, :, cols["liquidity_draw_amount"]], [0] * 4)
    close(led[0, :, cols["residual_amount"]], [0, 0, 67_000, 9_000])
    flags = dict(zip(k.PATH_OUT, run_chunk(plan, 0, 0, 1).flags[0]))
    assert flags["liquidity_needed"] == 1 and flags["liquidity_provider_failed"] == 1


def hifi_deal() -> dict:
    licences = [{"id": "L1", "royalty": 12_000.0}]
    for period, extra in ((1, 3_000.0), (2, 1_500.0), (4, 2_500.0), (5, 3_000.0), (6, 1_088_000.0)):
        licences.append({"id": f"X{period}", "royalty": extra, "start_period": period, "end_period": period})
    return {"deal": {"name": "hi-fi", "periods_per_year": 4, "term_years": 1.5},
            "pool": {"licences": [{**lic, "pd_annual": 0.0} for lic in licences]},
            "risk": quiet_risk(),
            "structure": {
                "tranches": [{"name": "S", "balance": 1_000_000.0, "coupon": 0.04, "amortisation": "bullet"}],
                "triggers": [
                    {"name": "trap50", "metric": "dscr", "threshold": 1.40, "effect": "trap", "trap_fraction": 0.5,
                     "curable": True},
                    {"name": "trap100", "metric": "dscr", "threshold": 1.30, "effect": "trap", "curable": True}]}}


def test_partial_cash_traps_at_two_levels():
    """Hi-Fi's DSCR traps: 50% of the excess cash below 1.40x, 100% below 1.30x; curable; trapped
    cash is held in the reserve (target 0) and released once no trap holds.
    S 1,000,000 at 4% (10,000 a quarter), bullet; collections 15,000, 13,500, 12,000, 14,500,
    15,000, 1,100,000.
    P1 DSCR 1.5: residual 5,000.  P2 DSCR 1.35: half of the 3,500 left is trapped (reserve 1,750,
    residual 1,750).  P3 DSCR 1.2: all 2,000 trapped (reserve 3,750).  P4 DSCR 1.45: cured, the
    reserve is released: residual 4,500 + 3,750 = 8,250.  P5: residual 5,000.  P6 (legal final,
    DSCR 1,100,000 / 1,010,000 < 1.3 but nothing is trapped at legal final): residual 90,000.
    """
    led = ledger_frame(hifi_deal())
    close(led["trap_fraction"], [0, 0.5, 1, 0, 0, 1])
    close(led["reserve_end_amount"], [0, 1_750, 3_750, 0, 0, 0])
    close(led["residual_amount"], [5_000, 1_750, 0, 8_250, 5_000, 90_000])
    close(led["dscr"], [1.5, 1.35, 1.2, 1.45, 1.5, 1_100 / 1_010])


def zerit_deal(effect: str = "early_amortisation") -> dict:
    return {"deal": {"name": "zerit-like", "periods_per_year": 4, "term_years": 2.0},
            "pool": {"licences": [{"id": "R", "royalty": 200_000.0, "royalty_type": "running", "pd_annual": 0.0,
                                   "technology": "d4T", "industry": "pharma"}]},
            "risk": {**quiet_risk(),
                     "obsolescence": {"enabled": True, "technologies": {"d4T": {"period": 3, "severity": 0.5}}},
                     "demand": {"enabled": True, "volatility_annual": 0.0}},
            "structure": {
                "tranches": [{"name": "S", "balance": 600_000.0, "coupon": 0.06, "amortisation": [0.125] * 8},
                             {"name": "M", "balance": 300_000.0, "coupon": 0.08, "amortisation": "bullet"}],
                "reserve": {"initial_amount": 30_000.0, "target_amount": 30_000.0},
                "triggers": [{"name": "covenant", "metric": "dscr", "threshold": 1.3, "effect": effect,
                              "consecutive_periods": 3}],
                "guarantee": {"provider": "ZC Specialty (wrap)", "pd_annual": 0.0, "covers": ["M"]}}}


def test_zerit_like_early_amortisation():
    """A single drug (running royalty 200,000 a quarter) loses half its sales at period 3; a 1.30x
    DSCR covenant breached three quarters running puts the deal into early amortisation: the reserve
    goes to principal, all cash after interest pays the notes in order, nothing is released to the
    equity (the residual); the wrapped mezzanine's loss falls on its insurer.
    S 600,000 at 6% (1.5% a quarter), 75,000 a quarter scheduled; M 300,000 at 8% (2%), bullet;
    reserve 30,000 (its target).
    P1 DSCR 200,000 / (9,000 + 6,000 + 75,000) = 2.222222; S 525,000; residual 110,000.
    P2 DSCR 200,000 / 88,875 = 2.250352; S 450,000; residual 111,125.
    P3 (sales halve) DSCR 100,000 / 87,750 = 1.139601 (breach 1); S 375,000; residual 12,250.
    P4 DSCR 100,000 / 86,625 = 1.154401 (breach 2); S 300,000; residual 13,375.
    P5 DSCR 100,000 / 85,500 = 1.169591 (breach 3: early amortisation, latched): cash 130,000 with
        the reserve; interest 10,500; S takes 119,500 (S 180,500).
    P6: interest 2,707.50 + 6,000; S takes 91,292.50 (S 89,207.50).
    P7: interest 1,338.1125 + 6,000; S repaid (89,207.50); M takes 3,454.3875 (M 296,545.6125).
    P8 (legal final): M interest 5,930.91225; M takes 94,069.08775; the wrap pays the other
        202,476.52475. Enhanced: no tranche loses; standalone M loses 202,476.52475 / 300,000.
    """
    led = ledger_frame(zerit_deal())
    close(led["collections"], [200_000] * 2 + [100_000] * 6)
    np.testing.assert_allclose(led["dscr"][:5], [200 / 90, 200 / 88.875, 100 / 87.75, 100 / 86.625, 100 / 85.5],
                               rtol=1e-12)
    np.testing.assert_array_equal(led["early_amortisation"], [0, 0, 0, 0, 1, 1, 1, 1])
    close(led["reserve_end_amount"], [30_000] * 4 + [0] * 4)
    close(led["S.balance_amount"], [525_000, 450_000, 375_000, 300_000, 180_500, 89_207.50, 0, 0])
    close(led["M.balance_amount"], [300_000] * 6 + [296_545.6125, 0])
    close(led["M.guarantee_draw_amount"], [0] * 7 + [202_476.52475])
    close(led["residual_amount"], [110_000, 111_125, 12_250, 13_375, 0, 0, 0, 0])
    out = run_chunk(compile_plan(se.Scenario.from_dict(zerit_deal())), 0, 0, 1).tranche[0]
    assert out[k.BASIS_ENHANCED, :, k.T_LOSS].tolist() == [0, 0]
    assert out[k.BASIS_STANDALONE, 1, k.T_LOSS] == pytest.approx(202_476.52475 / 300_000, abs=CENT / 300_000)


def call_deal(call: bool) -> dict:
    d = {"deal": {"name": "clean-up call", "periods_per_year": 4, "term_years": 2.0},
         "pool": {"licences": [{"id": "A", "royalty": 240_000.0, "pd_annual": 0.0, "end_period": 3},
                               {"id": "B", "royalty": 60_000.0, "pd_annual": 0.0}]},
         "risk": quiet_risk(),
         "structure": {"tranches": [{"name": "S", "balance": 1_000_000.0, "coupon": 0.04}],
                       "reserve": {"initial_amount": 40_000.0, "target_amount": 40_000.0}}}
    if call:
        d["structure"]["clean_up_call"] = {"fraction": 0.1}
    return d


def test_clean_up_call():
    """Clean-up call at 10% of the original notes: exercised on the first date whose collections
    plus reserve repay fees, interest and the notes. S 1,000,000 at 4% (1% a quarter); collections
    300,000 in P1-P3, then 60,000; reserve 40,000.
    P1: interest 10,000, principal 290,000 (S 710,000). P2: 7,100; 292,900 (S 417,100).
    P3: 4,171; 295,829 (S 121,271). P4: notes above 100,000: 1,212.71; 58,787.29 (S 62,483.71).
    P5: notes 62,483.71 <= 100,000 and 60,000 + 40,000 >= 624.8371 + 62,483.71: called. The
        reserve is released, S repaid; residual 36,891.4529. P6-P8: collections go to the residual.
    Without the call: P5 principal 59,375.1629 (S 3,108.5471); P6 interest 31.085471, S repaid,
    residual 56,860.367429; the reserve stays until legal final.
    """
    led = ledger_frame(call_deal(True))
    close(led["S.balance_amount"], [710_000, 417_100, 121_271, 62_483.71, 0, 0, 0, 0])
    close(led["residual_amount"], [0, 0, 0, 0, 36_891.4529, 60_000, 60_000, 60_000])
    close(led["reserve_end_amount"], [40_000] * 4 + [0] * 4)
    np.testing.assert_array_equal(led["called"], [0, 0, 0, 0, 1, 1, 1, 1])
    led = ledger_frame(call_deal(False))
    close(led["S.balance_amount"], [710_000, 417_100, 121_271, 62_483.71, 3_108.5471, 0, 0, 0])
    close(led["residual_amount"], [0, 0, 0, 0, 0, 56_860.367429, 60_000, 100_000])
    assert not led["called"].any()
    ps = se.simulate(se.Scenario.from_dict(call_deal(True)), paths=2, seed=1, progress=False).pool_summary
    assert ps["p_called"] == 1 and ps["call_period_mean"] == 5
    ps = se.simulate(se.Scenario.from_dict(call_deal(False)), paths=2, seed=1, progress=False).pool_summary
    assert ps["p_called"] == 0 and np.isnan(ps["call_period_mean"])


def recovery_deal(loading: float) -> dict:
    return {"deal": {"name": "systematic recovery", "periods_per_year": 4, "term_years": 1.0},
            "pool": {"licences": [{"id": "A", "royalty": 100_000.0, "pd_annual": 0.0, "default_period": 1}]},
            "risk": {**quiet_risk(), "correlation": {"global": 0.2},
                     "default": {"relicense_lag_periods": 1, "relicense_haircut": 0.6, "recovery_model": "beta",
                                 "recovery_stdev": 0.2, "recovery_global_loading": loading}},
            "structure": {"tranches": [{"name": "notes", "balance": 300_000.0}]}}


def test_systematic_recovery_is_the_beta_quantile_of_a_loaded_normal():
    """Beta re-licensing recovery with a loading b on the global factor G: recovery = the
    Beta(2, 3) quantile (mean 0.4, stdev 0.2: concentration 0.4 x 0.6 / 0.04 - 1 = 5) of
    Phi(b G + sqrt(1 - b^2) e), e the licence's recovery normal. The licensee defaults at period 1
    and its licence is re-licensed from period 2, so collections are 0 then 100,000 x recovery;
    the reference rebuilds each path's recovery from its address with SciPy."""
    from scipy import stats

    from simengine import rng
    from simengine._layout import P_Z_GLOBAL

    b, seed, n = 0.8, 3, 40
    plan = compile_plan(se.Scenario.from_dict(recovery_deal(b)))
    _, col = ledgers(plan, seed, np.arange(n))
    z = run_chunk(plan, seed, 0, n).pool[:, P_Z_GLOBAL]
    u64 = np.uint64
    e = np.array([rng.normal_at(u64(rng.stream_key(u64(rng.path_key(u64(seed), u64(i))), u64(rng.S_RECOVERY))), u64(0))
                  for i in range(n)])
    recovery = stats.beta.ppf(stats.norm.cdf(b * z + np.sqrt(1 - b * b) * e), 2.0, 3.0)
    np.testing.assert_allclose(col[:, 0], 0.0)
    np.testing.assert_allclose(col[:, 1:], 100_000.0 * recovery[:, None] * np.ones((1, 3)), atol=CENT, rtol=0)
    assert np.corrcoef(z, recovery)[0, 1] > 0.5  # bad times, low recoveries


def test_systematic_recovery_keeps_the_beta_mean():
    """The loading moves recoveries with the cycle, not their mean: over 4,000 paths the mean
    recovery is 0.4 within 4.5 standard errors (0.2 / sqrt(4,000) each), as with no loading."""
    n = 4_000
    for loading in (0.0, 0.9):
        plan = compile_plan(se.Scenario.from_dict(recovery_deal(loading)))
        rec = run_chunk(plan, 11, 0, n).pool[:, 3] / 300_000.0  # collections over 3 periods of 100,000
        assert abs(rec.mean() - 0.4) < 4.5 * 0.2 / np.sqrt(n), (loading, rec.mean())


def test_recovery_loading_needs_beta_recoveries():
    bad = recovery_deal(0.5)
    bad["risk"]["default"]["recovery_model"] = "fixed"
    with pytest.raises(ScenarioError, match="recovery_global_loading"):
        se.Scenario.from_dict(bad)


@pytest.mark.parametrize("a,b", [(0.5, 0.5), (1.0, 1.0), (2.0, 3.0), (5.0, 0.7), (30.0, 45.0), (0.2, 8.0)])
def test_beta_quantile_matches_scipy(a, b):
    from scipy import stats

    from simengine._kernels.distributions import beta_quantile

    for u in (1e-12, 1e-6, 1e-3, 0.05, 0.3, 0.5, 0.77, 0.99, 0.999999, 1 - 1e-12):
        want = stats.beta.ppf(u, a, b)
        got = beta_quantile(u, a, b)
        assert abs(got - want) <= 1e-10 * max(1.0, want) or abs(stats.beta.cdf(got, a, b) - u) <= 1e-12 * max(u, 1e-3)


def rows_deal(**structure) -> dict:
    return obsolescence_cut_deal("provider rows", "icr", **structure)


def test_providers_table_in_the_scenario():
    """``[[structure.providers]]`` rows of any kind beside the sections: the deal of
    test_waterfall_deterministic's hand2 (S short by 212,000 at legal final), asked in order: the
    commitment section (cap 100,000), the commitment row "c2" (cap 50,000), then the uncapped
    guarantee (62,000). Draws add up by kind: commitment 150,000, guarantee 62,000."""
    d = rows_deal(payment_commitment={"provider": "orig", "pd_annual": 0.0, "cap_amount": 100_000.0, "covers": ["S"]},
                  guarantee={"provider": "soe", "pd_annual": 0.0, "covers": ["S"]},
                  providers=[{"kind": "commitment", "name": "c2", "provider": "parent", "pd_annual": 0.0,
                              "cap_amount": 50_000.0, "covers": ["S"]}])
    plan = compile_plan(se.Scenario.from_dict(d))
    assert list(plan.waterfall.provider_kind) == [k.K_COMMITMENT, k.K_COMMITMENT, k.K_GUARANTEE]
    assert list(plan.pool.provider_stream) == [k.K_COMMITMENT, k.N_PROVIDER_KINDS, k.K_GUARANTEE]
    led = ledger_frame(d)
    close(led["S.commitment_draw_amount"], [0, 0, 0, 150_000])
    close(led["S.guarantee_draw_amount"], [0, 0, 0, 62_000])
    close(led["S.balance_amount"], [300_000, 300_000, 300_000, 0])


@pytest.mark.parametrize("structure,key", [
    ({"providers": [{"kind": "guarantee", "name": "guarantee", "provider": "x", "pd_annual": 0.0, "covers": ["S"]}]},
     "structure.providers[0].name"),
    ({"liquidity_facility": {"provider": "bank", "pd_annual": 0.0, "covers": ["S"]}},
     "structure.liquidity_facility.cap_amount"),
    ({"guarantee": {"provider": "soe", "pd_annual": 0.0, "covers": ["S"], "reimbursed": True},
      "waterfall": [{"step": "interest", "tranches": ["S", "J"]}, {"step": "principal", "tranches": ["S", "J"]},
                    {"step": "reimburse", "providers": ["guarantor"]}]},
     "structure.waterfall[2].providers[0]"),
    ({"guarantee": {"provider": "soe", "pd_annual": 0.0, "covers": ["S"], "reimbursed": True},
      "waterfall": [{"step": "interest", "tranches": ["S", "J"]}, {"step": "principal", "tranches": ["S", "J"]}]},
     "structure.waterfall"),
    ({"triggers": [{"name": "x", "metric": "dscr", "threshold": 1.2, "effect": "sequential", "trap_fraction": 0.5}]},
     "structure.triggers[0].trap_fraction"),
])
def test_bad_provider_and_trigger_settings_name_their_key(structure, key):
    with pytest.raises(ScenarioError) as info:
        se.Scenario.from_dict(rows_deal(**structure))
    assert key in str(info.value)
