"""Rating tables and maps (issue 13) and honest ranges with no observed loss (issue 12, bug 4).

The shipped tables are checked cell by cell against the verified tables in
``../shared/data/ratings/`` (read here, not copied into the test); the maps against their
documented rules: monotone thresholds, interpolation on the cumulative hazard, the exact
threshold, horizons 1, 2.5, 7, 10 and 15 years and beyond the table.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy import stats

import simengine as se
from simengine import ratings
from simengine.stats import upper_bound_no_events

ROOT = Path(__file__).resolve().parents[1]
VERIFIED = ROOT.parent / "shared" / "data" / "ratings"
DATA = ROOT / "simengine" / "data"
GZ = "scenarios/guangzhou_patent_2019.toml"
HORIZONS = (1.0, 2.5, 7.0, 10.0, 15.0)


def verified(name: str) -> pd.DataFrame:
    if not (VERIFIED / name).exists():
        pytest.skip(f"the verified tables are not beside this checkout ({VERIFIED})")
    return pd.read_csv(VERIFIED / name)


# ------------------------------------------------------------------ shipped cells = verified cells
def test_sp_table_equals_the_verified_2024_table_cell_by_cell():
    want = verified("sp_cumulative_default_2024.csv")
    got = pd.read_csv(DATA / "sp_cumulative_default_2024.csv").set_index(["rating", "year"])
    assert len(want) == 7 * 15
    for r in want.itertuples():
        assert got.loc[(r.rating, r.year), "cumulative_pd"] == r.cumulative_pd, (r.rating, r.year)
        assert got.loc[(r.rating, r.year), "confidence"] == r.confidence
    # and the map reads exactly these numbers at whole years (before the monotone adjustment)
    grades, years, _ = ratings._table("sp")
    assert grades == ratings.SP_LETTERS and list(years) == list(range(1, 16))


def test_one_year_pds_equal_the_verified_table():
    want = verified("one_year_pd.csv")
    got = pd.read_csv(DATA / "one_year_pd.csv").set_index(["rating", "scale"])
    for r in want.itertuples():
        assert got.loc[(r.rating, r.scale), "pd_annual"] == r.pd_annual, (r.rating, r.scale)
    letters = want[want["scale"] == "sp_letter"]
    table24 = verified("sp_cumulative_default_2024.csv").query("year == 1").set_index("rating")["cumulative_pd"]
    for r in letters.itertuples():
        assert ratings.rating_to_pd(r.rating) == r.pd_annual == table24[r.rating]


def test_moodys_table_equals_the_verified_cells_and_labels_the_rest():
    want = verified("moodys_idealized_pd_partial.csv")
    got = pd.read_csv(DATA / "moodys_idealized.csv").set_index(["rating", "year"])
    for r in want.itertuples():
        assert got.loc[(r.rating, r.year), "idealized_pd"] == r.idealized_pd, (r.rating, r.year)
        assert got.loc[(r.rating, r.year), "pd_confidence"] == r.confidence
    known = set(zip(want["rating"], want["year"]))
    others = got[[key not in known for key in got.index]]
    assert (others["pd_confidence"] == "recalled").all() and len(others) == 19 * 10 - len(want)
    # the EL table is derived, as its column metadata and SOURCES.md say
    np.testing.assert_allclose(got["idealized_el"], got["idealized_pd"] * 0.55, rtol=1e-9)
    assert not ratings.TABLES["moodys"].verified and "NOT A PUBLISHED TABLE" in ratings.TABLES["moodys"].source


def test_transition_matrix_default_column_agrees_with_an_independent_transcription():
    """The shipped one-year matrix (S&P 1981-2016, one transcription) rows sum to 1 once NR is
    spread; its default column equals the year-1 rates of the package's former S&P table,
    transcribed from another source (the cross-check SOURCES.md cites)."""
    raw = pd.read_csv(DATA / "sp_transition_1y_1981_2016.csv").set_index("from_rating")
    former_year1 = {"AAA": 0.0, "AA": 0.0002, "A": 0.0006, "BBB": 0.0018, "BB": 0.0072, "B": 0.0376,
                    "CCC/C": 0.2678}
    assert raw["D"].to_dict() == former_year1
    grades, probs = ratings.transition_matrix("sp_1981_2016")
    assert grades == ratings.SP_LETTERS
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)
    row = raw.loc["BBB"]
    assert probs[3, -1] == pytest.approx(row["D"] / row.drop("NR").sum(), rel=1e-12)


# ------------------------------------------------------------------------------------ the maps
@pytest.mark.parametrize("key", ["sp", "moodys"])
@pytest.mark.parametrize("horizon", HORIZONS)
def test_a_higher_estimate_never_gets_a_better_grade(key, horizon):
    if horizon > ratings.max_horizon_years(key):
        assert ratings.implied(key, 1e-3, horizon) == "n/a"
        return
    values = np.concatenate([[0.0], np.geomspace(1e-8, 0.9, 400)])
    ranks = [ratings.grade_rank(key, ratings.implied(key, v, horizon)) for v in values]
    assert ranks == sorted(ranks)
    limits = ratings.thresholds(key, horizon)
    assert (np.diff(limits) >= 0).all()  # thresholds are monotone across grades


@pytest.mark.parametrize("horizon", HORIZONS)
def test_an_estimate_at_a_threshold_gets_that_grade(horizon):
    """Documented rule: the best grade whose threshold is at least the estimate, so an estimate
    exactly at grade g's threshold gets g (or a better grade that shares the threshold), and one
    a hair above it gets a worse grade."""
    grades = ratings.table_grades("sp")
    limits = ratings.thresholds("sp", horizon)
    for i, limit in enumerate(limits):
        first = grades[int(np.argmax(limits >= limit))]
        assert ratings.implied_sp(limit, horizon) == first
        worse = ratings.implied_sp(limit * (1 + 1e-9) + 1e-15, horizon)
        assert ratings.grade_rank("sp", worse) > i


def test_thresholds_at_table_years_and_between_them():
    table = pd.read_csv(DATA / "sp_cumulative_default_2024.csv").pivot(index="rating", columns="year",
                                                                        values="cumulative_pd")
    table = table.loc[list(ratings.SP_LETTERS)]
    for year in (1, 7, 10, 15):
        monotone = np.minimum.accumulate(table[year].to_numpy()[::-1])[::-1]
        assert list(ratings.thresholds("sp", float(year))) == list(monotone)  # exact at table years
    # 2.5 years: halfway between the (monotone) years 2 and 3 in the cumulative hazard
    h2, h3 = (-np.log1p(-np.minimum.accumulate(table[y].to_numpy()[::-1])[::-1]) for y in (2, 3))
    want = -np.expm1(-0.5 * (h2 + h3))
    assert want[0] == pytest.approx(-np.expm1(-0.5 * (-np.log1p(-0.0003) - np.log1p(-0.0011))))  # AAA: AA's 0.11%
    np.testing.assert_allclose(ratings.thresholds("sp", 2.5), want, rtol=1e-14)
    # below a year: the hazard grows in proportion to time
    np.testing.assert_allclose(ratings.thresholds("sp", 0.5), -np.expm1(0.5 * np.log1p(-table[1].to_numpy())),
                               rtol=1e-14)
    assert ratings.thresholds("sp", 15.25) is None and ratings.implied_sp(1e-4, 16.0) == "n/a"


def test_aa_below_aaa_does_not_give_aaa_to_an_estimate_that_fails_aa():
    """Year 5 of S&P's 2024 table: AAA 0.34%, AA 0.28%, A 0.39%. A PD of 0.30% fails AA, so it
    cannot be AAA either: it is A."""
    assert ratings.implied_sp(0.0030, 5.0) == "A"
    assert ratings.implied_sp(0.0028, 5.0) == "AAA"  # AAA's threshold is AA's once made monotone
    assert ratings.implied_sp(0.0, 1.0) == "AAA" and ratings.implied_sp(1e-9, 1.0) == "AA"
    assert ratings.implied_sp(0.6, 15.0) == "below CCC/C"


def test_ten_year_horizon_uses_ten_year_thresholds():
    """The old table stopped at year 6, so a 10-year deal was judged against 6-year thresholds."""
    assert ratings.implied_sp(0.025, 10.0) == "BBB"  # BBB 10-year 2.86%; the 6-year 1.71% would say BB
    assert ratings.implied_sp(0.025, 6.0) == "BB"


def test_rating_symbols_map_to_letter_grade_pds():
    assert ratings.rating_to_pd("BBB-") == ratings.rating_to_pd("BBB+") == ratings.rating_to_pd("BBB") == 0.0014
    assert ratings.rating_to_pd("Baa3") == 0.0014 and ratings.rating_to_pd("Aa1") == 0.0002
    assert ratings.rating_to_pd("CCC+") == ratings.rating_to_pd("Caa2") == 0.2612
    assert ratings.rating_to_pd("AAA") == 0.0
    for bad in ("AAA+", "Baa4", "bbb", "D"):
        with pytest.raises(KeyError):
            ratings.rating_to_pd(bad)
    assert ratings.provider_grade(0.001) == "BBB" and ratings.provider_grade(0.5, "A-") == "A"


def test_capped_rating_follows_the_weaker_of_deal_and_guarantor_never_below_standalone():
    assert ratings.capped_rating("AAA", "BB", ["A"]) == "A"
    assert ratings.capped_rating("AAA", "BB", ["B"]) == "BB"  # the wrap cannot hurt
    assert ratings.capped_rating("BBB", "B", ["AA"]) == "BBB"
    assert ratings.capped_rating("AA", "B", []) == "AA"
    assert ratings.capped_rating("AAA", "below CCC/C", ["BBB", "A"]) == "BBB"


# -------------------------------------------------------------------------- no observed loss
def test_upper_bound_with_no_events_is_clopper_pearson():
    for n in (10, 1_000, 20_000, 123_456.7):
        assert upper_bound_no_events(n) == pytest.approx(stats.beta.ppf(0.95, 1, n), rel=1e-9)
    assert upper_bound_no_events(20_000) == pytest.approx(3.0 / 20_000, rel=0.01)  # the rule of three
    assert math.isnan(upper_bound_no_events(0.0))


def test_no_observed_loss_gives_a_one_sided_bound_and_an_honest_range(tmp_path):
    """Issue 12 bug 4: Guangzhou's senior at 20,000 plain paths has no loss. Its PD is bounded by
    Clopper-Pearson (rule of three), its EL by that bound (a loss fraction is at most 1), the
    rating ranges span 0 to the bounds, and a column says no loss was observed."""
    sc = se.load_scenario(GZ).with_overrides({"simulation.rating_tables": ["sp", "moodys"]})
    res = se.simulate(sc, paths=20_000, seed=20190911, progress=False)
    s = res.summary.set_index("tranche")
    senior = s.loc["senior"]
    assert senior["pd"] == 0.0 and senior["el"] == 0.0 and senior["no_loss_observed"]
    bound = 1.0 - 0.05 ** (1.0 / 20_000)
    assert senior["pd_upper"] == pytest.approx(bound, rel=1e-12) and senior["pd_lower"] == 0.0
    assert senior["el_upper"] == senior["pd_upper"] and senior["el_lower"] == 0.0
    assert senior["pd_n_eff"] == 20_000
    horizon, wal = 3.0, senior["wal_years"]
    assert senior["rating_sp_range"] == ratings.notch_range("AAA", ratings.implied_sp(bound, horizon))
    best, worst = ratings.implied_moodys(0.0, wal), ratings.implied_moodys(bound, wal)
    assert best == "Aaa" and ratings.grade_rank("moodys", worst) >= 3  # Aaa .. A-something: not one notch
    assert senior["rating_moodys_range"] == f"{best} .. {worst}"
    sub = s.loc["subordinated"]  # losses observed: Wilson interval, EL +/- 1.96 SE, as before
    assert not sub["no_loss_observed"]
    assert sub["el_upper"] == pytest.approx(sub["el"] + 1.959963984540054 * sub["el_se"])
    # the run folder carries the flag, and each rating column its provenance in its field metadata
    out = res.to_parquet(tmp_path / "run")
    schema = pq.read_schema(out / "summary.parquet")
    assert b"NOT A PUBLISHED TABLE" in schema.field("rating_moodys_range").metadata[b"source"]
    assert b"letter grades only" in schema.field("standalone_rating_sp").metadata[b"description"]
    assert schema.field("pd").metadata is None


def test_no_observed_loss_under_importance_sampling_uses_the_effective_sample_size():
    """A weighted run with no hit on a tranche: the bound uses Kish's effective sample size."""
    base = se.load_scenario("scenarios/synthetic_homogeneous.toml")
    tranches = [{"name": "top", "balance": 40.0, "interest_deferrable": True},
                {"name": "middle", "balance": 40.0, "interest_deferrable": True},
                {"name": "bottom", "balance": 20.0, "interest_deferrable": True}]
    sc = base.with_overrides({"structure.tranches": tranches})
    res = se.simulate(sc, paths=4_000, seed=2, variance_reduction="importance", tranche="bottom", progress=False)
    top = res.summary.set_index("tranche").loc["top"]
    assert top["no_loss_observed"] and res.sampling.global_shift != 0.0
    ess = top["ess_kish"]
    assert ess < 4_000 and top["pd_n_eff"] == ess
    assert top["pd_upper"] == pytest.approx(upper_bound_no_events(ess), rel=1e-12)


def test_rating_tables_are_chosen_by_the_scenario_and_default_to_the_verified_one():
    res = se.simulate(se.load_scenario(GZ), paths=500, seed=1, progress=False)
    cols = res.summary.columns
    assert "rating_sp" in cols and "rating_enhanced_capped" in cols
    assert not any("moodys" in c for c in cols)
    only_moodys = se.load_scenario(GZ).with_overrides({"simulation.rating_tables": ["moodys"]})
    cols = se.simulate(only_moodys, paths=500, seed=1, progress=False).summary.columns
    assert "rating_moodys_range" in cols and "rating_sp" not in cols and "rating_enhanced_capped" not in cols


# ------------------------------------------------------------------------ scenario default rates
def test_scenario_default_rates_match_the_finite_pool_quadrature(tmp_path):
    """SDR on the homogeneous pool (100 names, PD 5%, correlation 0.2, one year): the default-rate
    quantile at each grade's one-year PD is the quadrature's quantile within Monte Carlo error.

    The MC quantile k is the smallest count whose empirical CDF reaches 1 - p; so the exact CDF
    at k must reach 1 - p, and at k - 1 stay below it, up to the CDF's own MC error
    sqrt(p (1 - p) / n) (Bonferroni over the grades)."""
    from references import default_count_pmf
    from test_reference import z_tol

    n_names, paths = 100, 100_000
    res = se.simulate(se.load_scenario("scenarios/synthetic_homogeneous.toml"), paths=paths, seed=5,
                      progress=False)
    levels = res.rating_levels
    assert list(levels["grade"]) == list(ratings.SP_LETTERS) and (levels["horizon_years"] == 1.0).all()
    np.testing.assert_array_equal(levels["grade_pd"], ratings.thresholds("sp", 1.0))
    cdf = np.cumsum(default_count_pmf(n_names, 0.05, 0.2))
    rows = levels[levels["grade_pd"] > 0]
    tol = z_tol(len(rows))
    for r in rows.itertuples():
        p, k = r.grade_pd, int(round(r.default_rate * n_names))
        se_cdf = math.sqrt(p * (1 - p) / paths)
        assert cdf[k] >= 1 - p - tol * se_cdf, (r.grade, k, cdf[k], 1 - p)
        assert k == 0 or cdf[k - 1] <= 1 - p + tol * se_cdf, (r.grade, k, cdf[k - 1], 1 - p)
        assert r.pool_loss_rate == pytest.approx(r.default_rate)  # one period, no recovery: loss = defaults
        assert r.default_rate_se >= 0 and r.tail_paths == pytest.approx(p * paths)
    aaa = levels.set_index("grade").loc["AAA"]
    assert aaa["grade_pd"] == 0.0 and math.isnan(aaa["default_rate"])  # the 100% quantile is not estimable
    # worse grades stand for less stress
    assert (np.diff(rows["default_rate"].to_numpy()) <= 0).all()
    out = res.to_parquet(tmp_path / "run")
    back = pq.read_table(out / "rating_levels.parquet")
    assert b"simengine" in back.schema.metadata
    pd.testing.assert_frame_equal(back.to_pandas(), levels)


def test_cli_rating_tables_option(tmp_path):
    """`simengine run --rating-tables sp,moodys` reports both maps; a wrong name is bad input (2)."""
    import subprocess
    import sys

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "simengine", "run", GZ, "--paths", "2000", "--out", str(out), "--no-plot", "--quiet",
           "--rating-tables", "sp,moodys"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "rating_moodys_range" in done.stdout and "no loss observed in 2,000 paths" in done.stdout
    cols = pq.read_schema(out / "summary.parquet").names
    assert "rating_moodys" in cols and "rating_sp" in cols
    cmd[-1] = "sp,moody"
    cmd[cmd.index(str(out))] = str(tmp_path / "bad")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "simulation.rating_tables[1] = 'moody'" in done.stderr
    assert not (tmp_path / "bad").exists()
