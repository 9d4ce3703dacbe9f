"""Regression tests for the model bugs of issue 12; each fails on the code before its fix.

Deterministic deals (every hazard zero, no volatility) are checked to the cent against the hand
computations in the docstrings; "to the cent" means |engine - hand| < 0.005 in deal currency.
"""

from __future__ import annotations

import dataclasses

import numpy as np

import simengine as se
from simengine._layout import ledger_columns
from simengine.engine import ledgers, run_chunk
from simengine.plan import compile_plan
from simengine.plan.pool import survival_screen

CENT = 0.005


def ledger_frame(sc, path=0, seed=0):
    plan = compile_plan(sc)
    led, _ = ledgers(plan, seed, np.array([path]))
    return {item if owner == "deal" else f"{owner}.{item}": led[0, :, c]
            for owner, item, c in ledger_columns(plan.tranche_names)}


def quiet_risk():
    return {"default": {"enabled": True}, "obsolescence": {"enabled": False},
            "demand": {"enabled": False}, "legal": {"enabled": False}}


def expiry_deal(legal_enabled: bool) -> dict:
    return {
        "deal": {"name": "expiry", "periods_per_year": 4, "term_years": 3.0},
        "pool": {"licences": [
            {"id": "A", "royalty": 100_000.0, "pd_annual": 0.0, "expiry_period": 6},
            {"id": "B", "royalty": 50_000.0, "pd_annual": 0.0},
        ]},
        "risk": {**quiet_risk(), "legal": {"enabled": legal_enabled, "invalidation_hazard_annual": 0.0}},
        "structure": {"tranches": [{"name": "notes", "balance": 1_500_000.0}]},
    }


def test_expiry_cliff_applies_with_legal_risk_switched_off():
    """Bug 1: expiry is a contract fact, not a risk driver. Licence A (100,000 a quarter) expires
    after period 6 whatever ``risk.legal.enabled`` says; B (50,000) runs to the legal final (12).

    Collections: 150,000 in periods 1-6, 50,000 in periods 7-12 (total 1,200,000); the notes of
    1,500,000 lose 300,000 (20%) with legal risk on or off. Before the fix, legal off kept A paying
    to period 12 (1,800,000 collected, no loss).
    """
    for enabled in (True, False):
        led = ledger_frame(se.Scenario.from_dict(expiry_deal(enabled)))
        np.testing.assert_allclose(led["collections_amount"], [150_000] * 6 + [50_000] * 6, atol=CENT, rtol=0)
        np.testing.assert_allclose(led["notes.balance_amount"][-1], 300_000, atol=CENT, rtol=0)
    on = run_chunk(compile_plan(se.Scenario.from_dict(expiry_deal(True))), 1, 0, 8)
    off = run_chunk(compile_plan(se.Scenario.from_dict(expiry_deal(False))), 1, 0, 8)
    assert np.array_equal(on.tranche, off.tranche) and np.array_equal(on.pool, off.pool, equal_nan=True)


def force_first_period_defaults(plan):
    """The plan with every licensee defaulting in period 1 (a hazard of 1e9 a year)."""
    pool = plan.pool
    hazard = np.full_like(pool.licensee_hazard_annual, 1e9)
    screen = survival_screen(hazard, pool.periods * pool.dt_years, pool.copula_t, pool.dof)
    return dataclasses.replace(plan, pool=pool._replace(licensee_hazard_annual=hazard, **screen))


def relicence_deal(severity: float, obsolescence: bool = True, royalty_type: str = "fixed") -> dict:
    return {
        "deal": {"name": "relicence", "periods_per_year": 4, "term_years": 3.0},
        "pool": {"licences": [{"id": "A", "royalty": 100_000.0, "pd_annual": 0.0, "technology": "tech",
                               "royalty_type": royalty_type, "recovery": 0.5}]},
        "risk": {**quiet_risk(), "default": {"relicense_lag_periods": 2},
                 "obsolescence": {"enabled": obsolescence,
                                  "technologies": {"tech": {"period": 7, "severity": severity}}},
                 "demand": {"enabled": royalty_type == "running", "volatility_annual": 0.0}},
        "structure": {"tranches": [{"name": "notes", "balance": 1_000_000.0}]},
    }


def test_relicensing_after_obsolescence_earns_the_kept_share():
    """Bug 2: after obsolescence a re-licence earns (1 - severity) of its terms, not zero.

    One licence of 100,000 a quarter whose licensee defaults in period 1; re-licensed after 2
    periods at recovery 0.5 (50,000 from period 3); its technology is made obsolete at period 7.
    Fixed royalty, severity 0.4: 50,000 in periods 3-6, then 50,000 x 0.6 = 30,000 in 7-12.
    Running royalty (flat demand), severity 0.4: the same (the group multiplier cuts it).
    Severity 1: 50,000 in periods 3-6, nothing after (as before the fix).
    Before the fix, re-licensing stopped at period 7 whatever the severity.
    """
    want = {0.4: [0, 0] + [50_000] * 4 + [30_000] * 6, 1.0: [0, 0] + [50_000] * 4 + [0] * 6}
    for royalty_type in ("fixed", "running"):
        for severity, collections in want.items():
            plan = force_first_period_defaults(compile_plan(se.Scenario.from_dict(
                relicence_deal(severity, royalty_type=royalty_type))))
            _, col = ledgers(plan, 0, np.array([0, 1]))
            np.testing.assert_allclose(col, [collections] * 2, atol=CENT, rtol=0, err_msg=f"{royalty_type} {severity}")


def test_obsolescence_with_no_severity_and_no_multiplier_changes_nothing():
    """Bug 2, as the issue found it: with severity 0 and hazard multiplier 1, obsolescence must not
    move any bit (fixed royalties, re-licensing recovery 0.5). Before the fix it stopped every
    re-licence at obsolescence (senior EL 0.0036 -> 0.0219 in the issue's deal)."""
    base = {
        "deal": {"name": "no-op obsolescence", "periods_per_year": 4, "term_years": 4.0},
        "pool": {"generate": {"count": 40, "royalty": 1_000.0, "pd_annual": 0.15, "recovery": 0.5,
                              "technology": ["t1", "t2"]}},
        "risk": {**quiet_risk(), "default": {"relicense_lag_periods": 2}, "correlation": {"global": 0.2},
                 "obsolescence": {"enabled": False}},
        "structure": {"tranches": [{"name": "senior", "balance": 450_000.0, "coupon": 0.04},
                                   {"name": "junior", "balance": 100_000.0, "interest_deferrable": True}]},
    }
    on = {**base, "risk": {**base["risk"], "obsolescence": {
        "enabled": True, "hazard_annual": 0.5, "severity": 0.0, "hazard_multiplier_after_obsolescence": 1.0}}}
    a = run_chunk(compile_plan(se.Scenario.from_dict(base)), 5, 0, 400)
    b = run_chunk(compile_plan(se.Scenario.from_dict(on)), 5, 0, 400)
    assert b.pool[:, 1].sum() > 0  # obsolescence happened
    assert a.tranche[:, 1, 0, 0].sum() > 0  # and the senior lost on some paths
    assert np.array_equal(a.tranche, b.tranche)


def test_dscr_counts_scheduled_principal_and_icr_keeps_the_old_meaning():
    """Bug 3: ``dscr`` = collections / (fees + interest + scheduled principal), the royalty-deal
    covenant; ``icr`` = collections / (fees + interest), what ``dscr`` used to be. A Zerit-like
    senior amortising 12.5% a quarter with a 1.30x DSCR covenant (effect: sequential) trips it;
    under the old definition (ICR >= 8 throughout) it never would.

    Collections: licence A 150,000 in every quarter, B 60,000 in periods 1-3. Senior S 1,000,000 at
    8% (2% a quarter), schedule 125,000 a quarter; junior J 200,000, 0%, sequential, deferrable.
    P1: int S 20,000; scheduled 125,000; DSCR 210,000 / 145,000 = 1.448276 (ICR 10.5); S pays
        125,000 (S 875,000); J takes 65,000 (J 135,000).
    P2: int 17,500; DSCR 210,000 / 142,500 = 1.473684; S 750,000; J takes 67,500 (J 67,500).
    P3: int 15,000; DSCR 210,000 / 140,000 = 1.5; S 625,000; J 67,500 (J 0); residual 2,500.
    P4: int 12,500; DSCR 150,000 / 137,500 = 1.090909 < 1.30 (ICR 12): sequential from now on
        (not curable): S takes all 137,500 (S 487,500).
    P5: int 9,750; scheduled 487,500 - 375,000 = 112,500; DSCR 150,000 / 122,250 = 1.226994;
        S takes 140,250 (S 347,250).
    P6: int 6,945; scheduled 97,250; DSCR 150,000 / 104,195 = 1.439608; S takes 143,055 (204,195).
    P7: int 4,083.90; scheduled 79,195; DSCR 150,000 / 83,278.90 = 1.801196; S takes 145,916.10
        (S 58,278.90).
    P8 (legal final): int 1,165.578; scheduled 58,278.90; DSCR 150,000 / 59,444.478 = 2.523363;
        S repaid; residual 90,555.522.
    """
    d = {
        "deal": {"name": "zerit-like", "periods_per_year": 4, "term_years": 2.0},
        "pool": {"licences": [{"id": "A", "royalty": 150_000.0, "pd_annual": 0.0},
                              {"id": "B", "royalty": 60_000.0, "pd_annual": 0.0, "end_period": 3}]},
        "risk": quiet_risk(),
        "structure": {
            "tranches": [{"name": "S", "balance": 1_000_000.0, "coupon": 0.08, "amortisation": [0.125] * 8},
                         {"name": "J", "balance": 200_000.0, "interest_deferrable": True}],
            "triggers": [{"name": "covenant", "metric": "dscr", "threshold": 1.3, "effect": "sequential"}],
        },
    }
    led = ledger_frame(se.Scenario.from_dict(d))
    np.testing.assert_allclose(led["dscr"], [210 / 145, 210 / 142.5, 1.5, 150 / 137.5, 150 / 122.25, 150 / 104.195,
                                             150 / 83.2789, 150 / 59.444478], rtol=1e-12)
    np.testing.assert_allclose(led["icr"], [10.5, 12.0, 14.0, 12.0, 150 / 9.75, 150 / 6.945, 150 / 4.0839,
                                            150 / 1.165578], rtol=1e-12)
    np.testing.assert_array_equal(led["sequential"], [0, 0, 0, 1, 1, 1, 1, 1])
    np.testing.assert_allclose(led["S.balance_amount"], [875_000, 750_000, 625_000, 487_500, 347_250, 204_195,
                                                         58_278.90, 0], atol=CENT, rtol=0)
    np.testing.assert_allclose(led["J.balance_amount"], [135_000, 67_500, 0, 0, 0, 0, 0, 0], atol=CENT, rtol=0)
    np.testing.assert_allclose(led["residual_amount"], [0, 0, 2_500, 0, 0, 0, 0, 90_555.522], atol=CENT, rtol=0)
    # the same covenant on icr never trips
    icr = {**d, "structure": {**d["structure"], "triggers": [{**d["structure"]["triggers"][0], "metric": "icr"}]}}
    assert not ledger_frame(se.Scenario.from_dict(icr))["sequential"].any()


def oc_deal(rate: float = 0.0, obsolescence: str = "none") -> dict:
    return {
        "deal": {"name": "oc", "periods_per_year": 4, "term_years": 2.0, "discount_rate": rate},
        "pool": {"licences": [
            {"id": "A", "royalty": 100_000.0, "pd_annual": 0.0, "technology": "ta"},
            {"id": "B", "royalty": 50_000.0, "pd_annual": 0.0, "technology": "ta", "default_period": 4},
            {"id": "C", "royalty": 30_000.0, "pd_annual": 0.0, "technology": "tc", "start_period": 3,
             "end_period": 6},
        ]},
        "risk": {**quiet_risk(), "obsolescence": {"enabled": True, "technologies": {
            "ta": {"period": 6, "severity": 0.3},
            "tc": {"period": 5, "severity": 0.5, "hazard_annual": 0.4}}}},
        "structure": {
            "tranches": [{"name": "notes", "balance": 1_000_000.0}],
            "triggers": [{"name": "oc", "metric": "oc", "threshold": 1.2, "effect": "trap", "curable": True}],
            "oc_test": {"obsolescence": obsolescence},
        },
    }


def test_oc_is_collateral_value_over_notes():
    """Bug 3's over-collateralisation metric: present value of the scheduled royalties still to come
    from licences still paying their licensee, over the notes at the period's start.

    Discount rate 0. A 100,000 a quarter (periods 1-8); B 50,000 (1-8) until its licensee's forced
    default at period 4; C 30,000 in periods 3-6. Notes 1,000,000, sequential, no coupon or fees.
    P1: 800,000 + 400,000 + 120,000 = 1,320,000 over 1,000,000 = 1.32; collections 150,000.
    P2: 1,170,000 / 850,000 = 1.376471.  P3: 1,020,000 / 700,000 = 1.457143 (collections 180,000).
    P4 (B gone): 500,000 + 90,000 = 590,000 / 520,000 = 1.134615 < 1.2: the (curable) trap holds
        the 0 left after principal; P5: 460,000 / 390,000 = 1.179487; P6: 330,000 / 260,000 =
        1.269231; P7: 200,000 / 130,000 = 1.538462; P8: 100,000 / 30,000 = 3.333333.
    With obsolescence "none" the technologies' obsolescence changes nothing.
    """
    led = ledger_frame(se.Scenario.from_dict(oc_deal()))
    np.testing.assert_allclose(led["oc"], [1.32, 1_170 / 850, 1_020 / 700, 590 / 520, 460 / 390, 330 / 260,
                                           200 / 130, 100 / 30], rtol=1e-12)
    np.testing.assert_array_equal(led["trap"], [0, 0, 0, 1, 1, 0, 0, 0])
    assert np.isnan(ledger_frame(se.Scenario.from_dict(expiry_deal(True)))["oc"]).all()  # no OC trigger


def test_oc_discounts_and_takes_expected_obsolescence():
    """The OC collateral value discounted at 8% a year and, with ``obsolescence = "expected"``, each
    royalty due j periods ahead weighted by 1 - severity (1 - exp(-hazard j / 4)) while its
    technology is not obsolete, 1 - severity once it is (ta: forced at period 6, hazard 0, severity
    0.3; tc: forced at period 5, hazard 0.4, severity 0.5). The reference sums every term directly.
    """
    rate = 0.08
    paying = {"A": (1, 8, 100_000.0, "ta"), "B": (1, 3, 50_000.0, "ta"), "C": (3, 6, 30_000.0, "tc")}
    dies = {"A": 9, "B": 4, "C": 9}
    obs = {"ta": (6, 0.3, 0.0), "tc": (5, 0.5, 0.4)}
    schedule = {"A": (1, 8), "B": (1, 8), "C": (3, 6)}
    for mode in ("none", "expected"):
        led = ledger_frame(se.Scenario.from_dict(oc_deal(rate, mode)))
        notes = np.concatenate([[1_000_000.0], led["notes.balance_amount"][:-1]])
        want = []
        for p in range(1, 9):
            value = 0.0
            for lic, (s, last) in schedule.items():
                if p >= dies[lic]:
                    continue
                royalty, tech = paying[lic][2], paying[lic][3]
                period, severity, hazard = obs[tech]
                for t in range(max(p, s), last + 1):
                    j = t - p + 1
                    w = 1.0
                    if mode == "expected":
                        w = 1 - severity if p >= period else 1 - severity * (1 - np.exp(-hazard * j / 4))
                    value += royalty * w * (1 + rate) ** (-j / 4)
            want.append(value / notes[p - 1])
        np.testing.assert_allclose(led["oc"], want, rtol=1e-12, err_msg=mode)
