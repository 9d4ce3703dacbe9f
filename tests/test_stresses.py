"""Deterministic stresses (issue 14): the largest-obligor test and the breakeven default rate on a
deal small enough to compute by hand, and ``[[stress.defaults]]`` through an ordinary run.

The deal: annual payments over 4 years, seven licensees paying 25, 20, 15, 10, 10, 10, 10 a year
(400 scheduled), no fees, zero coupons, a senior note of 250 and a junior of 150, sequential, no
recovery (haircut 1) unless stated. Collections go to the senior until it is repaid.
"""

from __future__ import annotations

import numpy as np
import pytest

import simengine as se
from simengine.analysis.stresses import breakeven_default_rate, largest_obligor_test

ROYALTIES = (25.0, 20.0, 15.0, 10.0, 10.0, 10.0, 10.0)


def deal(**extra) -> se.Scenario:
    raw = {
        "deal": {"name": "hand deal", "periods_per_year": 1, "term_years": 4.0},
        "pool": {"licences": [{"id": f"L{i}", "licensee": f"firm-{i}", "royalty": r, "pd_annual": 0.01}
                              for i, r in enumerate(ROYALTIES)]},
        "risk": {"default": {"relicense_haircut": 1.0, "relicense_lag_periods": 1},
                 "obsolescence": {"enabled": False}, "demand": {"enabled": False}, "legal": {"enabled": False}},
        "structure": {"tranches": [{"name": "senior", "balance": 250.0},
                                   {"name": "junior", "balance": 150.0, "interest_deferrable": True}]},
        "simulation": {"paths": 64, "seed": 3},
    }
    raw.update(extra)
    return se.Scenario.from_dict(raw)


def pick(frame, **where):
    for key, value in where.items():
        frame = frame[frame[key] == value]
    assert len(frame) == 1, where
    return frame.iloc[0]


def test_largest_obligor_front_and_back_by_hand():
    lo = largest_obligor_test(deal(), max_k=5, timings=("front", "back"))
    # front (period 1): k = 1 leaves 75 a year = 300: senior paid, junior gets 50 of 150;
    # k = 2 leaves 55 a year = 220: the senior loses 30 of 250
    junior = pick(lo, timing="front", k=1, tranche="junior", basis="enhanced")
    assert junior["loss_fraction"] == pytest.approx(100 / 150)
    assert pick(lo, timing="front", k=1, tranche="senior", basis="enhanced")["paid_in_full"]
    assert pick(lo, timing="front", k=2, tranche="senior", basis="enhanced")["loss_fraction"] == pytest.approx(30 / 250)
    # back (period 4 // 2 + 1 = 3): two full years of 100, then 100 - (defaulted royalties) twice;
    # k = 4 (70 a year) leaves 260 >= 250, k = 5 (80) leaves 240: the senior loses 10
    assert pick(lo, timing="back", k=4, tranche="senior", basis="enhanced")["paid_in_full"]
    assert pick(lo, timing="back", k=5, tranche="senior", basis="enhanced")["loss_fraction"] == pytest.approx(10 / 250)
    assert pick(lo, timing="back", k=1, tranche="junior", basis="enhanced")["loss_fraction"] == pytest.approx(50 / 150)
    survived = lo.groupby(["timing", "tranche"])["largest_k_survived"].first().to_dict()
    assert survived == {("front", "senior"): 1, ("front", "junior"): 0, ("back", "senior"): 4, ("back", "junior"): 0}
    assert pick(lo, timing="front", k=1, tranche="senior", basis="enhanced")["licensees"] == "firm-0"
    assert pick(lo, timing="front", k=2, tranche="senior", basis="enhanced")["default_rate"] == pytest.approx(45 / 100)


def test_breakeven_default_rate_by_hand():
    bdr = breakeven_default_rate(deal(), timings=("front", "back", "even"), tol=1e-7)
    senior = bdr[(bdr.tranche == "senior") & (bdr.basis == "enhanced")].set_index("timing")["breakeven_default_rate"]
    # front: 400 (1 - r) >= 250; back (period 3): 200 + 200 (1 - r) >= 250; even (r/4 a period
    # from each period on): 400 - 100 r / 4 (4 + 3 + 2 + 1) >= 250
    assert senior["front"] == pytest.approx(0.375, abs=1e-6)
    assert senior["back"] == pytest.approx(0.75, abs=1e-6)
    assert senior["even"] == pytest.approx(0.6, abs=1e-6)
    junior = bdr[(bdr.tranche == "junior") & (bdr.basis == "enhanced")]
    assert (junior["breakeven_default_rate"] == 0.0).all()  # any default at all leaves it short
    # with half the royalty re-licensed one period after a period-1 default: 400 - 100 r (1 + 0.5 x 3) >= 250
    rec = breakeven_default_rate(deal(), timings=("front",), recovery=0.5, tol=1e-7)
    assert pick(rec, tranche="senior", basis="enhanced")["breakeven_default_rate"] == pytest.approx(0.6, abs=1e-6)


def test_stress_defaults_block_runs_through_the_ordinary_waterfall():
    sc = deal(stress={"expected_path": True, "defaults": [{"largest": 1, "period": 1}]})
    res = se.simulate(sc, paths=64, seed=3, progress=False)
    tl = res.tranche_losses
    np.testing.assert_allclose(tl.loc[tl.tranche == "junior", "loss_fraction"], 100 / 150)
    np.testing.assert_allclose(tl.loc[tl.tranche == "senior", "loss_fraction"], 0.0)
    assert (res.pool_paths["licensee_defaults"] == 1).all()
    # by name, at period 3, on top of drawn defaults (PD 1%): never later than period 3
    named = deal(stress={"defaults": [{"licensee": "firm-1", "period": 3}]})
    free = se.simulate(deal(), paths=2_000, seed=3, progress=False).pool_paths["licensee_defaults"].to_numpy()
    hit = se.simulate(named, paths=2_000, seed=3, progress=False).pool_paths["licensee_defaults"].to_numpy()
    assert (hit >= free).all() and (hit >= 1).all() and (hit - free <= 1).all()


@pytest.mark.parametrize("stress,key", [
    ({"defaults": [{"licensee": "firm-9"}]}, "stress.defaults[0].licensee"),
    ({"defaults": [{"largest": 8}]}, "stress.defaults[0].largest"),
    ({"defaults": [{"largest": 1, "period": 5}]}, "stress.defaults[0].period"),
    ({"defaults": [{"largest": 1, "licensee": "firm-1"}]}, "stress.defaults[0]"),
])
def test_bad_stress_block_names_key_and_expectation(stress, key):
    with pytest.raises(se.ScenarioError) as err:
        deal(stress=stress)
    assert err.value.key_path == key
    assert "expected" in str(err.value)
