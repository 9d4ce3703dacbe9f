"""The Chinese and Japanese deals of the scenario library (issue 16) and the Guangzhou backtest.

Guangzhou 2019 ended with all eleven obligors repaying on schedule (DEALS §1.1, China Daily JP,
Aug 2022) and its senior was rated AAA. The backtest asks the engine two things of that outcome:
the modal outcome, no licensee default over the deal, has positive probability (estimated from
the run's per-path default counts, with its binomial standard error), and the enhanced senior is
investment grade on both implied-rating scales, read from the run's own rating columns, with the
whole 95% range of the estimate investment grade (a rating the sample cannot support fails).

The other tests hold every deal file of this part of the library to the shared plan: its header
names its sources and deal_history.csv has one row per tranche, in the file's order, citing DEALS.md
(tests/test_deal_library.py runs and tag-checks every deal file).
"""

from __future__ import annotations

import csv
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

import simengine as se
from simengine import ratings
from simengine.scenario.notes import scenario_notes

ROOT = Path(__file__).resolve().parents[1]
DEALS = ROOT / "scenarios" / "deals"
HISTORY = ROOT / "scenarios" / "deal_history.csv"
GUANGZHOU = DEALS / "guangzhou_patent_2019.toml"
STEMS = ("guangzhou_patent_2019", "guangzhou_biomedical_2021", "nanshan_gaoxintou_ip5", "changcheng_jiaxin_trademark",
         "zhongguancun_leasing_2022_1", "wenke_leasing_1", "japan_electronics_patents",
         "japan_newdrug_patents_wrapped", "japan_anime_library")
# plain Monte Carlo: 20,000 paths bound a senior PD with no observed default below 1.5e-4 (one-sided
# 95%), AAA at 3 years on S&P's table (0.11%) and A2 on the Moody's-style EL scale, so both ranges
# are supported; the run takes about 2 s once compiled
PATHS, SEED = 20_000, 20190911
Z = 5.0  # standard errors a probability must clear: a false failure about 3e-7


@pytest.fixture(scope="module")
def guangzhou():
    sc = se.load_scenario(GUANGZHOU).with_overrides({"simulation.rating_tables": ["sp", "moodys"]})
    return se.simulate(sc, paths=PATHS, seed=SEED, progress=False)


def test_guangzhou_no_licensee_default_is_the_modal_outcome_with_positive_probability(guangzhou):
    paths = guangzhou.pool_paths
    assert np.all(paths["weight"].to_numpy() == 1.0), "plain sampling: the binomial standard error applies"
    counts = np.bincount(paths["licensee_defaults"].to_numpy())
    share = counts / counts.sum()
    p0, p1 = share[0], share[1]
    se0 = math.sqrt(p0 * (1 - p0) / PATHS)
    assert p0 > Z * se0, f"P(no licensee default) = {p0:.4f} +/- {se0:.4f}"
    # the mode: P(0) above every other count, P(1) the nearest; multinomial variance of p0 - p1
    assert share.argmax() == 0 and p1 == np.sort(share)[-2]
    se_diff = math.sqrt((p0 + p1 - (p0 - p1) ** 2) / PATHS)
    assert p0 - p1 > Z * se_diff, f"P(0) - P(1) = {p0 - p1:.4f} +/- {se_diff:.4f}"


def _range_ends(text: str) -> list[str]:
    return [g.strip() for g in text.split("..")]


def test_guangzhou_enhanced_senior_is_investment_grade_on_both_scales(guangzhou):
    senior = guangzhou.summary.set_index("tranche").loc["senior"]
    assert bool(senior["sampling_ok"]), senior["sampling_note"]
    for key in ("sp", "moodys"):
        point, span = senior[f"rating_{key}"], senior[f"rating_{key}_range"]
        for grade in (point, *_range_ends(span)):
            assert grade not in (ratings.NOT_RATED, "unreliable"), f"rating_{key} withheld: {point} [{span}]"
            assert ratings.letter_grade(grade) in ratings.INVESTMENT_GRADE, f"rating_{key}: {point} [{span}]"


def test_old_guangzhou_path_loads_the_moved_deal():
    old = se.load_scenario(ROOT / "scenarios" / "guangzhou_patent_2019.toml").model.model_dump()
    new = se.load_scenario(GUANGZHOU).model.model_dump()
    assert old.pop("extends") == "deals/guangzhou_patent_2019.toml" and new.pop("extends") is None
    assert old == new


@pytest.mark.parametrize("stem", STEMS)
def test_deal_header_names_its_sources(stem):
    """The header names DEALS.md and carries both verified and estimated figures. That the deal
    validates and runs, and that every number is tagged (``simengine.scenario.notes``), is checked
    for every deal file of the library by tests/test_deal_library.py."""
    notes = scenario_notes(DEALS / f"{stem}.toml")
    assert len(notes) == 1  # a deal file extends nothing
    header = notes[0].header
    assert "DEALS.md" in header and "[V" in header and "[E]" in header


def test_deal_history_has_one_row_per_tranche_of_each_deal():
    with HISTORY.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["file", "tranche", "agency_rating", "outcome", "explanation", "source"]
        rows = list(reader)
    for stem in STEMS:
        tranches = [t["name"] for t in tomllib.loads((DEALS / f"{stem}.toml").read_text(encoding="utf-8"))
                    ["structure"]["tranches"]]
        mine = [r for r in rows if r["file"] == stem]
        assert [r["tranche"] for r in mine] == tranches, stem
        for r in mine:
            assert r["agency_rating"] and r["outcome"] and r["source"].startswith("DEALS §"), r
            if stem.startswith("japan_"):
                assert r["agency_rating"] == "stylised"
