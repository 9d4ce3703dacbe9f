"""Bad scenarios give errors for people: file, key path, value and what was expected (SPEC §3).

Every case edits a copy of the shipped Guangzhou scenario (as TOML text, or as a dict through
``Scenario.from_dict``) and checks the message, not only that something was raised.
"""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import simengine as se
from simengine.errors import ScenarioError, ScenarioErrors

GUANGZHOU = Path(__file__).resolve().parents[1] / "scenarios" / "deals" / "guangzhou_patent_2019.toml"
TEXT = GUANGZHOU.read_text(encoding="utf-8")
RAW = tomllib.loads(TEXT)

# the industries and regions of the Guangzhou pool, in the order of an explicit factor matrix
FACTORS = ["global"] + [f"industry.{x}" for x in sorted({l["industry"] for l in RAW["pool"]["licences"]})] \
    + ["region.default"]


# ------------------------------------------------------------------------------------ helpers
def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the shipped scenario changed: {old!r} is not there exactly once"
    return text.replace(old, new)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        se.load_scenario(path)
    return info.value


def dict_error(raw: dict, source: str = "deal.toml") -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        se.Scenario.from_dict(raw, source)
    return info.value


def assert_says(exc: ScenarioError, file, key_path: str, value: str, *expected: str) -> None:
    """The message names the file, the key path with its value, and what was expected."""
    msg = str(exc)
    assert str(file) in msg, msg
    assert f"{key_path} = {value}" in msg, msg
    for part in expected:
        assert part in msg, msg
    singles = getattr(exc, "errors", [exc])
    assert any(e.key_path == key_path and Path(e.file).name == Path(str(file)).name for e in singles), msg


def without_licences(text: str, pool: str) -> str:
    """The scenario text with its inline licences replaced by ``pool`` (TOML)."""
    start, end = text.index("[[pool.licences]]"), text.index("[risk.default]")
    return text[:start] + pool + "\n" + text[end:]


def matrix_toml(factors, matrix) -> str:
    rows = ",\n  ".join("[" + ", ".join(repr(float(x)) for x in row) + "]" for row in matrix)
    names = ", ".join(f'"{f}"' for f in factors)
    return f"factors = [{names}]\nmatrix = [\n  {rows},\n]\n"


# ----------------------------------------------------------------- one bad value, one message
SENIOR = 'balance = 286_000_000.0'
SUB = 'balance = 15_000_000.0'
GZ01_PD = 'pd_annual = 0.025'

TEXT_CASES = {
    # id: (old, new, key path, value as shown, expectation fragments)
    "unknown top-level key": (
        "[deal]\n", "dela = 3\n[deal]\n", "dela", "3", ["a known key", "did you mean 'deal'"]),
    "typo in [deal]": (
        "[deal]\n", '[deal]\nnmae = "typo"\n', "deal.nmae", "'typo'", ["a known key", "did you mean 'name'"]),
    "typo in a nested table": (
        "hazard_annual = 0.03            # [E] electronics", "hazard_anual = 0.03            # [E] electronics",
        "risk.obsolescence.technologies.display.hazard_anual", "0.03", ["did you mean 'hazard_annual'"]),
    "typo in an array of tables": (
        "interest_deferrable = true", "interest_defferable = true",
        "structure.tranches[1].interest_defferable", "True", ["did you mean 'interest_deferrable'"]),
    "string for a float": (
        SENIOR, 'balance = "lots"', "structure.tranches[0].balance", "'lots'", ["a number"]),
    "boolean for a float": (
        SENIOR, "balance = true", "structure.tranches[0].balance", "True", ["not true/false"]),
    "negative tranche balance": (
        SUB, "balance = -15_000_000.0", "structure.tranches[1].balance", "-15000000.0", ["a number > 0"]),
    "infinite royalty": (
        "royalty = 4_500_000.0", "royalty = inf", "pool.licences[0].royalty", "inf", ["finite"]),
    "nan stdev": (
        "recovery_stdev = 0.1", "recovery_stdev = nan", "risk.default.recovery_stdev", "nan", ["finite"]),
    "pd_annual of 1": (
        GZ01_PD, "pd_annual = 1.0", "pool.licences[0].pd_annual", "1.0", ["a number in [0, 1)"]),
    "pd_annual in percent": (
        GZ01_PD, "pd_annual = 2.5", "pool.licences[0].pd_annual", "2.5", ["a number in [0, 1)"]),
    "both pd_annual and rating": (
        GZ01_PD, GZ01_PD + '\nrating = "BBB"', "pool.licences[0]", "{'pd_annual': 0.025, 'rating': 'BBB'}",
        ["exactly one of pd_annual or rating", "not both", "'GZ01'"]),
    "neither pd_annual nor rating": (
        GZ01_PD + "\n", "", "pool.licences[0]", "{'pd_annual': <missing>, 'rating': <missing>}",
        ["exactly one of pd_annual or rating", "neither", "'GZ01'"]),
    "unknown rating symbol": (
        GZ01_PD, 'rating = "AAA+"', "pool.licences[0].rating", "'AAA+'",
        ["a rating symbol", "Baa2", "did you mean 'AAA'"]),
    "unknown provider rating": (
        "pd_annual = 0.001               # [E]", 'rating = "AA++"', "structure.guarantee.rating", "'AA++'",
        ["a rating symbol", "did you mean 'AA+'"]),
    "provider with neither pd nor rating": (
        "pd_annual = 0.001               # [E]", "", "structure.guarantee",
        "{'pd_annual': <missing>, 'rating': <missing>}", ["exactly one of pd_annual or rating", "GDD state-owned"]),
    "correlation shares above 1": (
        "global = 0.15", "global = 0.9", "risk.correlation",
        "{'global': 0.9, 'industry': 0.08, 'region': 0.05}", ["global + industry + region <= 1", "1.03"]),
    "guarantee covers an unknown tranche": (
        'loading = 0.4                   # [E]\ncovers = ["senior"]',
        'loading = 0.4\ncovers = ["senior", "mezzanine"]', "structure.guarantee.covers[1]", "'mezzanine'",
        ["a tranche name", "'senior', 'subordinated'"]),
    "reserve covers an unknown tranche": (
        'of senior interest and fees\ncovers = ["senior"]', 'of senior interest and fees\ncovers = ["senoir"]',
        "structure.reserve.covers[0]", "'senoir'", ["a tranche name", "did you mean 'senior'"]),
    "end_period beyond the legal final": (
        "pd_annual = 0.05                # [E]\n\n[risk.default]",
        "pd_annual = 0.05                # [E]\nend_period = 13\n\n[risk.default]",
        "pool.licences[10].end_period", "13", ["a period in 1..12", "'GZ11'"]),
    "expiry_period beyond the legal final": (
        GZ01_PD, GZ01_PD + "\nexpiry_period = 40", "pool.licences[0].expiry_period", "40", ["a period in 1..12"]),
    "end_period before start_period": (
        GZ01_PD, GZ01_PD + "\nstart_period = 5\nend_period = 4", "pool.licences[0].end_period", "4",
        ["a period >= start_period (5)"]),
    "duplicated licence id": (
        'id = "GZ02"', 'id = "GZ01"', "pool.licences[1].id", "'GZ01'", ["a unique licence id"]),
    "duplicated tranche name": (
        'name = "subordinated"', 'name = "senior"', "structure.tranches[1].name", "'senior'",
        ["a unique tranche name", "structure.tranches[0]"]),
    "duplicated trigger name": (
        'name = "dscr_trap"', 'name = "cdr_acceleration"', "structure.triggers[1].name", "'cdr_acceleration'",
        ["a unique trigger name"]),
    "default-rate trigger in percent": (
        "threshold = 0.10 ", "threshold = 10.0 ", "structure.triggers[0].threshold", "10.0",
        ["a fraction in [0, 1]"]),
    "term not a whole number of periods": (
        "term_years = 3.0", "term_years = 3.1", "deal.term_years", "3.1",
        ["a whole number of periods at 4 per year", "12.4"]),
    "periods_per_year not allowed": (
        "periods_per_year = 4", "periods_per_year = 3", "deal.periods_per_year", "3", ["one of 1, 2, 4 or 12"]),
    "unknown copula": (
        'copula = "gaussian"', 'copula = "gauss"', "risk.default.copula", "'gauss'",
        ["one of 'gaussian' or 'student_t'"]),
    "misspelt technology in [risk.obsolescence]": (
        "[risk.obsolescence.technologies.software]", "[risk.obsolescence.technologies.sofware]",
        "risk.obsolescence.technologies.sofware", "'sofware'", ["a technology that some licence has",
                                                                "did you mean 'software'"]),
    "fractional period": (
        GZ01_PD, GZ01_PD + "\nstart_period = 1.5", "pool.licences[0].start_period", "1.5",
        ["a whole number"]),
    "bad date": (
        "closing_date = 2019-09-11", 'closing_date = "2019-13-45"', "deal.closing_date", "'2019-13-45'",
        ["a date such as"]),
}


@pytest.mark.parametrize("case", list(TEXT_CASES), ids=list(TEXT_CASES))
def test_bad_value_names_file_key_value_and_expectation(tmp_path, case):
    old, new, key_path, value, expected = TEXT_CASES[case]
    path = write(tmp_path, "gz_bad.toml", edit(TEXT, old, new))
    exc = load_error(path)
    assert isinstance(exc, ValueError)  # callers that catch ValueError keep working
    assert_says(exc, path, key_path, value, "expected", *expected)


def test_missing_required_key_says_missing(tmp_path):
    path = write(tmp_path, "gz.toml", edit(TEXT, "term_years = 3.0", "#"))
    msg = str(load_error(path))
    assert f"{path}: deal.term_years is missing: expected a value (this key is required)" in msg


def test_every_problem_is_listed_once(tmp_path):
    text = edit(edit(TEXT, SENIOR, 'balance = "lots"'), 'id = "GZ02"', 'id = "GZ01"')
    text = edit(text, "[deal]\n", '[deal]\nnmae = "x"\n')
    exc = load_error(write(tmp_path, "gz.toml", text))
    assert isinstance(exc, ScenarioErrors)
    paths = [e.key_path for e in exc.errors]
    assert "deal.nmae" in paths and "structure.tranches[0].balance" in paths
    assert len(paths) == len(set(paths))
    assert str(exc).count("\n") == len(exc.errors) - 1


def test_errors_survive_pickling(tmp_path):
    """Batch workers send errors back to the scheduler."""
    exc = load_error(write(tmp_path, "gz.toml", edit(TEXT, SENIOR, 'balance = "lots"')))
    again = pickle.loads(pickle.dumps(exc))
    assert str(again) == str(exc) and again.key_path == exc.key_path and again.file == exc.file


# -------------------------------------------------------------------------- TOML syntax and files
def test_invalid_toml_names_line_and_column_not_the_text(tmp_path):
    """The position of the problem, never the line: a file that is not TOML may hold anything."""
    path = write(tmp_path, "gz.toml", edit(TEXT, "term_years = 3.0", "term_years = = 3.0"))
    line = next(i for i, l in enumerate(TEXT.splitlines(), 1) if l.startswith("term_years"))
    exc = load_error(path)
    assert exc.key_path.startswith(f"line {line}, column ")
    assert str(exc) == f"{path}: {exc.key_path}: expected valid TOML (Invalid value)"
    assert "term_years" not in str(exc)


def test_duplicate_toml_key(tmp_path):
    path = write(tmp_path, "gz.toml", edit(TEXT, "[deal]\n", '[deal]\nname = "first"\n'))
    exc = load_error(path)
    assert str(path) in str(exc) and "line " in exc.key_path and "valid TOML" in str(exc)


def test_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "gz.toml"
    path.write_bytes(TEXT.encode() + b"\n# \xff\xfe\n")
    exc = load_error(path)
    assert str(path) in str(exc) and exc.key_path.startswith("line ") and "UTF-8" in str(exc)


def test_missing_scenario_file(tmp_path):
    exc = load_error(tmp_path / "nope.toml")
    assert "nope.toml" in str(exc) and "an existing scenario file" in str(exc)


def test_a_folder_is_not_a_scenario(tmp_path):
    exc = load_error(tmp_path)
    assert str(tmp_path) in str(exc) and "a readable scenario file" in str(exc)


# ----------------------------------------------------------------------------------- pool files
def pool_frame() -> pd.DataFrame:
    return pd.DataFrame(RAW["pool"]["licences"])


def csv_scenario(tmp_path: Path, frame: pd.DataFrame | None, pool_file: str = "data/pool.csv") -> Path:
    if frame is not None:
        (tmp_path / "data").mkdir(exist_ok=True)
        frame.to_csv(tmp_path / "data" / "pool.csv", index=False)
    return write(tmp_path, "gz_csv.toml", without_licences(TEXT, f'[pool]\nfile = "{pool_file}"\n'))


def test_pool_csv_loads_like_inline_licences(tmp_path):
    sc = se.load_scenario(csv_scenario(tmp_path, pool_frame()))
    assert sc.licences == se.load_scenario(GUANGZHOU).licences


def test_missing_pool_file(tmp_path):
    path = csv_scenario(tmp_path, None, "nope.csv")
    exc = load_error(path)
    assert_says(exc, path, "pool.file", repr(str(tmp_path / "nope.csv")), "an existing CSV or Parquet file")


def test_pool_file_of_unknown_kind(tmp_path):
    write(tmp_path, "pool.xlsx", "")
    path = csv_scenario(tmp_path, None, "pool.xlsx")
    assert_says(load_error(path), path, "pool.file", repr(str(tmp_path / "pool.xlsx")), "a .csv or .parquet file")


@pytest.mark.parametrize("column, cell, expected", [
    ("royalty", "abc", "a number"),
    ("pd_annual", "5%", "a number"),
    ("start_period", "one", "a whole number"),
    ("ip_type", "patnet", "one of 'patent', 'trademark' or 'copyright'"),
])
def test_pool_csv_bad_cell_names_csv_line_and_column(tmp_path, column, cell, expected):
    frame = pool_frame().astype(object)
    if column not in frame:
        frame[column] = None
    frame.loc[2, column] = cell  # the third licence: line 4 of the file, after the header
    csv_scenario(tmp_path, frame)
    exc = load_error(tmp_path / "gz_csv.toml")
    assert_says(exc, tmp_path / "data" / "pool.csv", f"line 4, column {column}", repr(cell), expected)


def test_pool_csv_row_with_both_credits(tmp_path):
    frame = pool_frame()
    frame["rating"] = None
    frame.loc[4, "rating"] = "BBB"
    csv_scenario(tmp_path, frame)
    exc = load_error(tmp_path / "gz_csv.toml")
    assert_says(exc, tmp_path / "data" / "pool.csv", "line 6", "{'pd_annual': 0.03, 'rating': 'BBB'}",
                "not both", "'GZ05'")


def test_pool_csv_unknown_column(tmp_path):
    csv_scenario(tmp_path, pool_frame().rename(columns={"royalty": "royalti"}))
    exc = load_error(tmp_path / "gz_csv.toml")
    assert_says(exc, tmp_path / "data" / "pool.csv", "columns", "['royalti']", "licence fields only",
                "did you mean 'royalty'")


def test_pool_csv_duplicated_id_and_period_out_of_range(tmp_path):
    frame = pool_frame()
    frame.loc[1, "id"] = "GZ01"
    frame["end_period"] = 12
    frame.loc[7, "end_period"] = 14
    csv_scenario(tmp_path, frame)
    exc = load_error(tmp_path / "gz_csv.toml")
    csv = tmp_path / "data" / "pool.csv"
    assert_says(exc, csv, "line 3, column id", "'GZ01'", "a unique licence id")
    assert_says(exc, csv, "line 9, column end_period", "14", "a period in 1..12")


def test_pool_csv_without_rows(tmp_path):
    csv_scenario(tmp_path, pool_frame().iloc[:0])
    assert_says(load_error(tmp_path / "gz_csv.toml"), tmp_path / "data" / "pool.csv", "rows", "0",
                "at least one licence row")


def test_pool_parquet_bad_value_names_row(tmp_path):
    frame = pool_frame()
    frame.loc[2, "royalty"] = -1.0
    frame.to_parquet(tmp_path / "pool.parquet")
    path = write(tmp_path, "gz.toml", without_licences(TEXT, '[pool]\nfile = "pool.parquet"\n'))
    assert_says(load_error(path), tmp_path / "pool.parquet", "row 3, column royalty", "-1.0", "a number >= 0")


def test_pool_with_two_sources(tmp_path):
    path = write(tmp_path, "gz.toml", edit(TEXT, "[risk.default]", '[pool]\nfile = "pool.csv"\n\n[risk.default]'))
    exc = load_error(path)
    assert_says(exc, path, "pool", "['licences', 'file']", "exactly one pool source")


def test_generated_pool_bad_value(tmp_path):
    raw = copy.deepcopy(RAW)
    raw["pool"] = {"generate": {"count": 4, "royalty": 1e6, "pd_annual": 0.02, "ip_type": ["patent", "pattent"]}}
    exc = dict_error(raw)
    assert_says(exc, "deal.toml", "pool.generate.ip_type", "'pattent'", "one of 'patent'", "generated licence L2")
    raw["pool"]["generate"]["ip_type"] = []
    assert_says(dict_error(raw), "deal.toml", "pool.generate.ip_type", "[]", "a non-empty list")


# --------------------------------------------------------------------------- correlation matrix
def _write_matrix(tmp_path, factors, matrix) -> Path:
    text = edit(TEXT, "industry = 0.08\n", "industry = 0.08\n" + matrix_toml(factors, matrix))
    return write(tmp_path, "gz.toml", text)


def test_psd_factor_matrix_is_accepted(tmp_path):
    n = len(FACTORS)
    C = np.full((n, n), 0.3) + 0.7 * np.eye(n)
    sc = se.load_scenario(_write_matrix(tmp_path, FACTORS, C))
    assert sc.model.risk.correlation.factors == FACTORS


def test_non_psd_matrix_prints_smallest_eigenvalue(tmp_path):
    n = len(FACTORS)
    C = np.eye(n)
    C[1, 2] = C[2, 1] = C[1, 3] = C[3, 1] = 0.9
    C[2, 3] = C[3, 2] = -0.9  # three factors that cannot be pairwise like this
    smallest = np.linalg.eigvalsh(C).min()
    assert smallest < 0
    path = _write_matrix(tmp_path, FACTORS, C)
    exc = load_error(path)
    assert_says(exc, path, "risk.correlation.matrix", "[[1.0, 0.0", "positive semi-definite",
                f"smallest eigenvalue is {smallest:.6g}", FACTORS[1])


def test_matrix_not_symmetric_names_the_entry(tmp_path):
    n = len(FACTORS)
    C = np.eye(n)
    C[1, 2], C[2, 1] = 0.5, 0.4
    path = _write_matrix(tmp_path, FACTORS, C)
    assert_says(load_error(path), path, "risk.correlation.matrix[1][2]", "0.5", "symmetric", "matrix[2][1] is 0.4")


def test_matrix_of_the_wrong_shape(tmp_path):
    path = _write_matrix(tmp_path, FACTORS, np.eye(len(FACTORS) - 1))
    assert_says(load_error(path), path, "risk.correlation.matrix", "'6 rows of lengths [6]'", "a 7x7 matrix")


def test_matrix_factors_that_are_not_the_pools(tmp_path):
    factors = [f.replace("industry.electronics", "industry.electronix") for f in FACTORS]
    path = _write_matrix(tmp_path, factors, np.eye(len(factors)))
    assert_says(load_error(path), path, "risk.correlation.factors", "['global', 'industry.advanced",
                "not in the pool: ['industry.electronix']", "missing: ['industry.electronics']")


def test_matrix_without_factor_names(tmp_path):
    path = write(tmp_path, "gz.toml", edit(TEXT, "industry = 0.08\n", "industry = 0.08\nmatrix = [[1.0]]\n"))
    exc = load_error(path)
    assert str(path) in str(exc) and "risk.correlation.factors is missing" in str(exc)


# ---------------------------------------------------------------------------------------- extends
def test_extends_cycle(tmp_path):
    write(tmp_path, "a.toml", 'extends = "b.toml"\n')
    write(tmp_path, "b.toml", 'extends = "a.toml"\n')
    exc = load_error(tmp_path / "a.toml")
    assert_says(exc, tmp_path / "b.toml", "extends", "'a.toml'", "cycle: a.toml -> b.toml -> a.toml")


def test_extends_itself(tmp_path):
    write(tmp_path, "a.toml", 'extends = "a.toml"\n')
    assert_says(load_error(tmp_path / "a.toml"), tmp_path / "a.toml", "extends", "'a.toml'", "cycle")


def test_extends_missing_target(tmp_path):
    path = write(tmp_path, "stress.toml", 'extends = "nope.toml"\n[risk.correlation]\nglobal = 0.3\n')
    assert_says(load_error(path), path, "extends", "'nope.toml'", "an existing scenario file",
                str(tmp_path / "nope.toml"))


def test_extends_not_a_string(tmp_path):
    path = write(tmp_path, "stress.toml", "extends = 3\n")
    assert_says(load_error(path), path, "extends", "3", "a path to the base scenario")


@pytest.fixture
def base_with_pool_file(tmp_path) -> Path:
    """base/gz.toml with its pool in base/data/pool.csv (a path relative to the base file)."""
    base = tmp_path / "base"
    base.mkdir()
    return csv_scenario(base, pool_frame())


def test_extends_overrides_one_value_and_keeps_the_rest(tmp_path, base_with_pool_file, monkeypatch):
    write(tmp_path, ".simengine-library", "")  # stress/ and base/ are one scenario library
    write(tmp_path, "stress/high_corr.toml",
          'extends = "../base/gz_csv.toml"\n\n[risk.correlation]\nglobal = 0.30\n')
    monkeypatch.chdir(tmp_path / "stress")  # the pool path must not depend on the working folder
    stress = se.load_scenario("high_corr.toml")
    base = se.load_scenario(base_with_pool_file)
    assert stress.model.risk.correlation.global_ == 0.30
    assert stress.model.risk.correlation.industry == base.model.risk.correlation.industry == 0.08
    assert stress.model.risk.correlation.region == 0.05
    assert stress.model.structure == base.model.structure and stress.model.deal == base.model.deal
    assert stress.licences == base.licences == se.load_scenario(GUANGZHOU).licences
    assert Path(stress.model.pool.file) == (tmp_path / "base" / "data" / "pool.csv").resolve()


def test_extends_variant_with_its_own_pool_replaces_the_base_pool(tmp_path):
    write(tmp_path, "base.toml", TEXT)  # inline licences
    small = pool_frame().iloc[:3]
    small.to_csv(tmp_path / "small.csv", index=False)
    sc = se.load_scenario(write(tmp_path, "small.toml", 'extends = "base.toml"\n[pool]\nfile = "small.csv"\n'))
    assert [l.id for l in sc.licences] == ["GZ01", "GZ02", "GZ03"]


def test_error_in_the_base_names_the_base_file(tmp_path):
    base = write(tmp_path, "base.toml", edit(TEXT, SUB, 'balance = "lots"'))
    stress = write(tmp_path, "stress.toml", 'extends = "base.toml"\n[risk.correlation]\nglobal = 0.3\n')
    exc = load_error(stress)
    assert_says(exc, base, "structure.tranches[1].balance", "'lots'", "a number", f"through extends from {stress}")


def test_error_in_the_variant_names_the_variant(tmp_path):
    write(tmp_path, "base.toml", TEXT)
    stress = write(tmp_path, "stress.toml", 'extends = "base.toml"\n[risk.correlation]\nglobal = 0.95\n')
    assert_says(load_error(stress), stress, "risk.correlation", "{'global': 0.95", "<= 1")


def test_extends_missing_pool_file_names_the_base(tmp_path):
    (tmp_path / "base").mkdir()
    base = csv_scenario(tmp_path / "base", None, "gone.csv")
    stress = write(tmp_path, "stress.toml", 'extends = "base/gz_csv.toml"\n')
    exc = load_error(stress)
    assert_says(exc, base, "pool.file", repr(str(tmp_path / "base" / "gone.csv")), "an existing CSV")


# ---------------------------------------------------------------------------------- from_dict etc.
def test_from_dict_errors_name_the_source():
    raw = copy.deepcopy(RAW)
    raw["structure"]["tranches"][0]["balance"] = -1.0
    assert_says(dict_error(raw, "<dict>"), "<dict>", "structure.tranches[0].balance", "-1.0", "a number > 0")


def test_from_dict_unknown_key_and_wrong_table():
    raw = copy.deepcopy(RAW)
    raw["simulation"]["pahts"] = 10
    raw["deal"] = 5
    exc = dict_error(raw)
    assert_says(exc, "deal.toml", "simulation.pahts", "10", "did you mean 'paths'")
    assert_says(exc, "deal.toml", "deal", "5", "a table")


@pytest.fixture(scope="module")
def guangzhou():
    return se.load_scenario(GUANGZHOU)


@pytest.mark.parametrize("key, value, shown_key, expected", [
    ("risk.correlation.global", 2.0, "risk.correlation.global", "a number in [0, 1]"),
    ("structure.tranches.0.balance", "lots", "structure.tranches[0].balance", "a number"),
    ("structure.tranches[1].balance", -5.0, "structure.tranches[1].balance", "a number > 0"),
    ("deal.periods_per_year", 3, "deal.periods_per_year", "one of 1, 2, 4 or 12"),
    ("pool.licences.0.pd_annual", 1.5, "pool.licences[0].pd_annual", "a number in [0, 1)"),
    ("simulation.variance_reduction", "importanse", "simulation.variance_reduction", "'importance'"),
    ("risk.default.pd_multiplier", 40.0, "risk.default.pd_multiplier", "keeps every annual PD below 1"),
])
def test_with_overrides_bad_value(guangzhou, key, value, shown_key, expected):
    with pytest.raises(ScenarioError) as info:
        guangzhou.with_overrides({key: value})
    assert_says(info.value, GUANGZHOU, shown_key, repr(value), expected, f"set by with_overrides {key!r}")


@pytest.mark.parametrize("table, key, value, expected", [
    ("simulation.importance", "tranche", "senoir", "did you mean 'senior'"),
    ("simulation.importance", "chi2_scale", 1.5, "a number in (0, 1]"),
])
def test_bad_importance_settings(guangzhou, table, key, value, expected):
    with pytest.raises(ScenarioError) as info:
        guangzhou.with_overrides({table: {key: value}})
    assert_says(info.value, GUANGZHOU, f"{table}.{key}", repr(value), expected)


def test_with_overrides_key_that_is_not_there(guangzhou):
    with pytest.raises(ScenarioError) as info:
        guangzhou.with_overrides({"risk.correlaton.global": 0.3})
    assert_says(info.value, GUANGZHOU, "risk.correlaton", "{'global': 0.3}", "did you mean 'correlation'")
    with pytest.raises(ScenarioError) as info:
        guangzhou.with_overrides({"structure.tranches.5.balance": 1.0})
    assert_says(info.value, GUANGZHOU, "structure.tranches.5.balance", "1.0", "a key path that exists")


def test_with_overrides_good_value_keeps_the_rest(guangzhou):
    sc = guangzhou.with_overrides({"risk.correlation.global": 0.3, "structure.tranches[1].balance": 1e7})
    assert sc.model.risk.correlation.global_ == 0.3
    assert sc.model.structure.tranches[1].balance == 1e7
    assert sc.model.risk.correlation.industry == guangzhou.model.risk.correlation.industry
    assert guangzhou.model.risk.correlation.global_ == 0.15  # the original is unchanged


def test_shipped_scenario_is_valid(guangzhou):
    assert guangzhou.periods == 12 and len(guangzhou.licences) == 11


# ------------------------------------------------------------------ confinement (issue 18, point 6)
SECRET = "DB_PASSWORD=hunter2-do-not-print"


@pytest.mark.parametrize("reference", ["extends", "pool.file"])
def test_references_outside_the_scenario_folder_are_refused_without_reading(tmp_path, reference):
    """extends / pool.file must stay inside the scenario's folder tree (or its library, or an
    allowed folder); the refusal names the file, the key, the value written and where it resolves."""
    outside = write(tmp_path, "secrets/.env", SECRET + "\n")
    if reference == "extends":
        text = 'extends = "../secrets/.env"\n'
    else:
        text = edit(TEXT, "[risk.default]", '[pool]\nfile = "../secrets/.env"\n\n[risk.default]')
        text = text[:text.index("[[pool.licences]]")] + text[text.index("[pool]\nfile"):]
    path = write(tmp_path, "deals/gz.toml", text)
    exc = load_error(path)
    msg = str(exc)
    assert exc.key_path == reference and str(path) in msg and str(outside.resolve()) in msg
    assert "hunter2" not in msg and "--allow-path" in msg
    r = subprocess.run([sys.executable, "-m", "simengine", "validate", str(path)], capture_output=True, text=True)
    assert r.returncode == 2 and "hunter2" not in r.stdout + r.stderr and reference in r.stderr


def test_allow_path_and_the_environment_variable_admit_a_folder(tmp_path, monkeypatch):
    base = write(tmp_path, "shared/base.toml", TEXT)
    variant = write(tmp_path, "deals/variant.toml",
                    'extends = "../shared/base.toml"\n[risk.correlation]\nglobal = 0.3\n')
    with pytest.raises(ScenarioError):
        se.load_scenario(variant)
    assert se.load_scenario(variant, allow_paths=[base.parent]).model.risk.correlation.global_ == 0.3
    monkeypatch.setenv("SIMENGINE_ALLOW_PATHS", str(base.parent))
    assert se.load_scenario(variant).model.risk.correlation.global_ == 0.3


def test_a_symlink_out_of_the_folder_is_followed_and_refused(tmp_path):
    write(tmp_path, "elsewhere/base.toml", TEXT)
    (tmp_path / "deals").mkdir()
    (tmp_path / "deals" / "base.toml").symlink_to(tmp_path / "elsewhere" / "base.toml")
    variant = write(tmp_path, "deals/variant.toml", 'extends = "base.toml"\n')
    assert load_error(variant).key_path == "extends"


def test_a_file_that_is_not_a_scenario_or_pool_file_is_never_echoed(tmp_path):
    """Inside the folder, but not a scenario (a token file) or not a pool (a credentials table):
    the message says what it is not, without its keys, values or header."""
    write(tmp_path, "deals/token.toml", 'api_token = "sk-live-123456"\n')
    variant = write(tmp_path, "deals/variant.toml", 'extends = "token.toml"\n')
    msg = str(load_error(variant))
    assert "sk-live" not in msg and "api_token" not in msg and "a scenario file" in msg
    write(tmp_path, "deals/credentials.csv", "user,password\nroot,hunter2\n")
    text = edit(TEXT, "[risk.default]", '[pool]\nfile = "credentials.csv"\n\n[risk.default]')
    text = text[:text.index("[[pool.licences]]")] + text[text.index("[pool]\nfile"):]
    msg = str(load_error(write(tmp_path, "deals/gz.toml", text)))
    assert "hunter2" not in msg and "password" not in msg and "a pool file" in msg
    write(tmp_path, "deals/binary.toml", "x = 1\n")
    (tmp_path / "deals" / "binary.toml").write_bytes(b"name = \"\xff\xfepassword\"\n")
    msg = str(load_error(tmp_path / "deals" / "binary.toml"))
    assert "password" not in msg and "UTF-8" in msg
