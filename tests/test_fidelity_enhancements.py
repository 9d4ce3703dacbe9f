"""Issue 12's enhancements on deterministic deals (every hazard zero, no volatility, forced events),
each ledger checked to the cent against the hand computation in its docstring ("to the cent":
|engine - hand| < 0.005 in deal currency)."""

from __future__ import annotations

import numpy as np
import pytest

import simengine as se
from simengine._layout import ledger_columns
from simengine.engine import ledgers
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


def quiet_risk() -> dict:
    return {"default": {"enabled": True}, "obsolescence": {"enabled": False},
            "demand": {"enabled": False}, "legal": {"enabled": False}}


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
