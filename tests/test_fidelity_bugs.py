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
