"""Regression tests for the model bugs of issue 12; each fails on the code before its fix.

Deterministic deals (every hazard zero, no volatility) are checked to the cent against the hand
computations in the docstrings; "to the cent" means |engine - hand| < 0.005 in deal currency.
"""

from __future__ import annotations

import numpy as np

import simengine as se
from simengine._layout import ledger_columns
from simengine.engine import ledgers, run_chunk
from simengine.plan import compile_plan

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
