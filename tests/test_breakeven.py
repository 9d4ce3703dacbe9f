"""Breakevens and tornado sensitivities under common random numbers (issue 14).

Tolerances come from the Monte Carlo standard errors the analyses report, with fixed seeds and a
family-wise false-alarm rate of 1e-3 (Bonferroni over the comparisons of a test), as in
tests/test_reference.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from references import granularity_gap, tranche_el_large_pool
from scipy import optimize, stats

import simengine as se
from simengine.analysis import breakevens, sensitivity, spec_from_run
from simengine.analysis.breakeven import evaluate, grade_limit, grades
from simengine.analysis.crn import CommonRandomNumbers
from simengine.simulation import prepare


def z_tol(comparisons: int, family_alpha: float = 1e-3) -> float:
    return float(stats.norm.isf(family_alpha / (2 * comparisons)))


SLICES = {"senior": (0.10, 1.00), "mezzanine": (0.03, 0.10), "equity": (0.0, 0.03)}


def homogeneous(n: int, pd_: float, rho: float) -> se.Scenario:
    base = se.load_scenario("scenarios/synthetic_homogeneous.toml")
    tranches = [{"name": name, "balance": (d - a) * n, "interest_deferrable": True} for name, (a, d) in SLICES.items()]
    return base.with_overrides({"pool.generate.count": n, "pool.generate.pd_annual": pd_,
                                "risk.correlation.global": rho, "structure.tranches": tranches})


def test_pd_multiplier_breakeven_matches_vasicek():
    """One period, no recovery, zero coupons: the mezzanine [3%, 10%] loses (L - a)+ capped, L the
    default fraction, so its EL at PD m * pd is the large-pool (Vasicek) value. The multiplier at
    which it reaches the target is solved from that formula and must lie within the breakeven's
    reported uncertainty (its Monte Carlo standard error and half its final bracket)."""
    n, pd_, rho, paths = 1_000, 0.02, 0.2, 4_000
    a, d = SLICES["mezzanine"]
    m_true = 2.4  # not a grid value: the grid brackets it in [2, 4]
    target = tranche_el_large_pool(pd_ * m_true, rho, a, d)
    assert optimize.brentq(lambda m: tranche_el_large_pool(pd_ * m, rho, a, d) - target, 1.0, 8.0) == \
        pytest.approx(m_true, rel=1e-6)
    spec = prepare(homogeneous(n, pd_, rho), paths=paths, seed=17)
    be = breakevens(spec, drivers=["pd_multiplier"], tranches=["mezzanine"], bases=["enhanced"], criteria=["el"],
                    el_target=target, ranges={"pd_multiplier": (None, 8.0)}, rtol=0.002)
    row = be.iloc[0]
    assert row["status"] == "found" and row["statistic_at_bracket_lo"] <= target < row["statistic_at_bracket_hi"]
    se_ = row["breakeven_se"]
    half = 0.5 * (row["bracket_hi"] - row["bracket_lo"])
    # the test has teeth: the reported uncertainty is a few percent of the value, and granularity
    # (1,000 names against the infinite pool) is far inside it
    assert 0 < se_ < 0.03 * m_true, se_
    slope = (tranche_el_large_pool(pd_ * 2.5, rho, a, d) - tranche_el_large_pool(pd_ * 2.3, rho, a, d)) / 0.2
    assert abs(granularity_gap(n, pd_ * m_true, rho, a, d)) / slope < 0.25 * se_
    assert abs(row["breakeven"] - m_true) <= z_tol(1) * np.hypot(se_, half), (row["breakeven"], se_, half)


def test_breakeven_statuses_on_guangzhou():
    """The standalone senior leaves its grade at some PD multiplier above 1; provider PD cannot
    touch the standalone basis; every bracket found straddles its threshold."""
    spec = prepare(se.load_scenario("scenarios/guangzhou_patent_2019.toml"), paths=4_000, seed=5)
    be = breakevens(spec, drivers=["pd_multiplier", "provider_pd_multiplier"], tranches=["senior"],
                    criteria=["rating"]).set_index(["driver", "basis"])
    row = be.loc[("pd_multiplier", "standalone")]
    assert row["status"] == "found" and row["breakeven"] > 1.0 and row["headroom"] > 0
    assert row["statistic_at_bracket_lo"] <= row["threshold"] < row["statistic_at_bracket_hi"]
    assert be.loc[("provider_pd_multiplier", "standalone"), "status"] == "not_broken_in_range"
    found = be[be.status == "found"]
    assert (found["statistic_at_bracket_lo"] <= found["threshold"]).all()
    assert (found["bracket_lo"] < found["bracket_hi"]).all()


def test_target_grade_better_than_base_searches_down_and_bad_input_says_what():
    spec = prepare(se.load_scenario("scenarios/guangzhou_patent_2019.toml"), paths=2_000, seed=5)
    be = breakevens(spec, drivers=["royalty_decline"], tranches=["senior"], bases=["standalone"],
                    criteria=["rating"], target_rating="A1")
    row = be.iloc[0]
    # already below A1 at the base: the value where it would reach A1 is below the base (negative headroom)
    assert row["status"] in ("found", "broken_in_whole_range")
    if row["status"] == "found":
        assert row["headroom"] < 0
    for kwargs, words in (({"drivers": ["pd"]}, "pd_multiplier"), ({"tranches": ["sen"]}, "senior"),
                          ({"target_rating": "AAA"}, "Aaa"), ({"criteria": ["el"]}, "el_target")):
        with pytest.raises(ValueError, match=words):
            breakevens(spec, **kwargs)


def test_grade_limits_follow_the_table():
    assert grades("moodys")[0] == "Aaa" and grades("sp")[:3] == ("AAA", "AA", "A")
    limit = grade_limit("moodys", "Aa2", 3.0)
    assert se.ratings.implied_moodys(limit, 3.0) == "Aa2"
    assert se.ratings.implied_moodys(limit * (1 + 1e-9), 3.0) != "Aa2"


# ------------------------------------------------------------------------------------- tornado
@pytest.fixture(scope="module")
def guangzhou_spec():
    return prepare(se.load_scenario("scenarios/guangzhou_patent_2019.toml"), paths=20_000, seed=9)


def test_tornado_signs(guangzhou_spec):
    """More PD, more correlation and more obsolescence raise the standalone senior's EL (its
    enhanced EL is too small to test at this size); less of each lowers it."""
    drivers = ["pd_multiplier", "correlation", "obsolescence_multiplier"]
    tor = sensitivity(guangzhou_spec, drivers=drivers)
    rows = tor[(tor.tranche == "senior") & (tor.basis == "standalone")].set_index(["driver", "side"])
    z = z_tol(2 * len(drivers))
    for d in drivers:
        up, down = rows.loc[(d, "up")], rows.loc[(d, "down")]
        assert up["el_change"] > z * up["el_change_se"] > 0, (d, up["el_change"], up["el_change_se"])
        assert down["el_change"] < -z * down["el_change_se"] < 0, (d, down["el_change"], down["el_change_se"])
        assert up["el"] == pytest.approx(up["el_base"] + up["el_change"], abs=1e-15)
    # paired: the change is known better than from two independent runs
    assert (rows["el_change_se"] < np.hypot(rows["el_se"], rows["el_base_se"])).all()
    assert tor.attrs["timings"]["variants"] == 6


def test_zero_shock_changes_nothing(guangzhou_spec):
    spec = guangzhou_spec._replace(paths=2_000)
    names = ["pd_multiplier", "obsolescence_multiplier", "royalty_decline", "demand_drift", "correlation",
             "relicense_haircut", "provider_pd_multiplier"]
    tor = sensitivity(spec, drivers=names, shocks={n: (0.0, 0.0) for n in names})
    assert set(tor.driver) == set(names)
    for col in ("el_change", "el_change_se", "pd_change", "pd_change_se"):
        assert (tor[col] == 0.0).all(), col
    assert (tor["el"] == tor["el_base"]).all() and tor["el_base"].gt(0).any()


def test_run_folder_rebuilds_the_run(tmp_path):
    """A run folder's spec re-runs the run's own paths under its frozen measure: the base EL and
    PD equal the summary's to the last bit (importance sampling, so the weights matter)."""
    sc = se.load_scenario("scenarios/guangzhou_patent_2019.toml").with_overrides(
        {"simulation.importance.pilot_paths": 1_000})
    res = se.simulate(sc, paths=3_000, seed=4, chunk_paths=1_100, progress=False, variance_reduction="importance")
    res.to_parquet(tmp_path / "run")
    spec = spec_from_run(tmp_path / "run")
    assert spec.sampling == res.sampling and spec.sampling.global_shift != 0.0
    base = evaluate(CommonRandomNumbers(spec, spec.paths))
    s = res.summary.set_index("tranche")
    for k, t in enumerate(spec.plan.tranche_names):
        assert base.el[1, k] == s.loc[t, "el"] and base.pd[1, k] == s.loc[t, "pd"]
        assert base.el[0, k] == s.loc[t, "standalone_el"] and base.el_se[1, k] == s.loc[t, "el_se"]
