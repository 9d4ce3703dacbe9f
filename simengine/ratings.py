"""Rating tables shipped with the package (sources and confidence per cell in ``data/SOURCES.md``).

- ``sp_cumulative_default_2024.csv``: S&P's 2024 study, Table 24 (letter grades AAA..CCC/C,
  years 1..15): the default map from a tranche's PD to an S&P-style rating (``"sp"``);
- ``moodys_idealized.csv``: Moody's-style idealized cumulative PD and a *derived* EL
  (PD × 0.55), only its 10-year PD column verified: the opt-in map ``"moodys"``;
- ``one_year_pd.csv``: rating → one-year PD for a licensee's or provider's ``rating``;
- ``sp_transition_1y_1981_2016.csv``: S&P one-year transition rates, for provider migration.

Implied ratings (:func:`implied`): the best grade whose threshold at the horizon is at least
the estimate, where

- thresholds are first made monotone across grades: a grade's threshold is the minimum of its
  table value and those of every worse grade (in S&P's 2024 table AA's cumulative rate is below
  AAA's from year 3; without this an estimate that fails AA would get AAA);
- between table years a threshold is interpolated linearly in the cumulative hazard
  ``-log(1 - p)``; below the first year the hazard grows in proportion to time from 0 at 0;
  beyond the table's last year no rating is given (``"n/a"``): a longer horizon would be
  judged against a shorter one's (stricter or laxer) threshold;
- an estimate equal to a threshold (to a relative 1e-12) gets that grade;
- an estimate above every threshold is ``"below <worst grade>"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
import pandas as pd

SP_LETTERS = ("AAA", "AA", "A", "BBB", "BB", "B", "CCC/C")  # S&P letter grades, best first
INVESTMENT_GRADE = SP_LETTERS[:4]  # AAA..BBB
NOT_RATED = "n/a"
THRESHOLD_RTOL = 1e-12


@dataclass(frozen=True)
class RatingTable:
    """A map from a tranche's estimate to a rating: which table, which estimate, which horizon."""

    key: str  # the summary's column suffix: rating_<key>, rating_<key>_range
    file: str
    column: str
    estimate: str  # "pd" or "el": the summary statistic it maps
    horizon: str  # "legal_final" or "wal"
    description: str
    source: str
    verified: bool


TABLES = {
    "sp": RatingTable(
        key="sp", file="sp_cumulative_default_2024.csv", column="cumulative_pd", estimate="pd",
        horizon="legal_final",
        description=(
            "S&P-style implied rating, letter grades only (AAA, AA, A, BBB, BB, B, CCC/C; no +/- notches): the best "
            "grade whose cumulative default rate at the deal's legal final is at least pd. Thresholds made monotone "
            "across grades (each the minimum over itself and every worse grade); between table years linear in the "
            "cumulative hazard -log(1-p), below 1 year proportional to time; beyond 15 years 'n/a'; a pd equal to a "
            "threshold gets that grade. The range spans the 95% interval of pd (Wilson; with no default observed, "
            "0 to the one-sided 95% Clopper-Pearson upper bound on the effective sample size)."),
        source=(
            "S&P Global Ratings, Default, Transition, and Recovery: 2024 Annual Global Corporate Default And Rating "
            "Transition Study (27 March 2025), Table 24, global corporate average cumulative default rates 1981-2024, "
            "years 1-15. Every cell verified: years 1 and 5 high confidence (two independent transcriptions), the "
            "others medium (one transcription). See simengine/data/SOURCES.md."),
        verified=True),
    "moodys": RatingTable(
        key="moodys", file="moodys_idealized.csv", column="idealized_el", estimate="el", horizon="wal",
        description=(
            "Moody's-style implied rating from a DERIVED expected-loss table: the best grade (Aaa..Caa3) whose "
            "idealized EL at the tranche's WAL is at least el; same monotone, interpolation and threshold rules as "
            "rating_sp; beyond 10 years 'n/a'. The range spans the 95% interval of el (el +/- 1.96 se; with no loss "
            "observed, 0 to the upper bound of pd, since a loss fraction is at most 1)."),
        source=(
            "NOT A PUBLISHED TABLE: idealized EL = idealized PD x 0.55; no cell of Moody's idealized EL table was "
            "found in a public source. Idealized PD verified only in its 10-year column (Moody's rating factors / "
            "10,000, medium-high confidence) and Baa2/Baa3 year 1 (low, one secondary source); every other cell "
            "(years 1-9) is recalled and unverified. See simengine/data/SOURCES.md."),
        verified=False),
}
DEFAULT_TABLES = ("sp",)  # the verified set, reported unless a scenario or --rating-tables asks otherwise

TABLE_VERSIONS = {key: f"{t.source}" for key, t in TABLES.items()}


def _read(name: str) -> pd.DataFrame:
    with resources.files("simengine.data").joinpath(name).open("r") as fh:
        return pd.read_csv(fh, comment="#")


# ------------------------------------------------------------------------- rating -> one-year PD
_MOODYS_LETTER = {"Aaa": "AAA", "Aa": "AA", "A": "A", "Baa": "BBB", "Ba": "BB", "B": "B", "Caa": "CCC/C",
                  "Ca": "CCC/C", "C": "CCC/C"}
_SP_NOTCHED = [f"{g}{n}" for g in ("AA", "A", "BBB", "BB", "B") for n in ("+", "-")] + ["CCC+", "CCC", "CCC-", "CC"]
_MOODYS = (["Aaa"] + [f"{g}{n}" for g in ("Aa", "A", "Baa", "Ba", "B", "Caa") for n in (1, 2, 3)] + ["Ca"])


def letter_grade(symbol: str) -> str:
    """The S&P letter grade of a rating symbol: an S&P letter grade itself, a notched S&P grade
    (``AA-`` → ``AA``; ``CCC+``, ``CCC``, ``CCC-``, ``CC``, ``C`` → ``CCC/C``), or a Moody's symbol by the usual
    correspondence (``Aa1``..``Aa3`` → ``AA``, ``Baa3`` → ``BBB``, ``Caa1``..``C`` → ``CCC/C``).

    Raises KeyError (its message says what was expected) for anything else.
    """
    s = str(symbol).strip()
    if s in SP_LETTERS:
        return s
    if s in _SP_NOTCHED or s == "C":
        base = s.rstrip("+-")
        return "CCC/C" if base in ("CCC", "CC", "C") else base
    if s in _MOODYS:
        return _MOODYS_LETTER[s.rstrip("123")]
    raise KeyError("a rating symbol: an S&P grade (AAA, AA+, AA, AA-, ..., B-, CCC/C) or a Moody's symbol "
                   "(Aaa, Aa1, ..., Baa2, ..., Caa3, Ca, C)")


@cache
def _one_year_pd() -> dict[str, float]:
    frame = _read("one_year_pd.csv")
    letters = frame[frame["scale"] == "sp_letter"]
    return {str(r): float(p) for r, p in zip(letters["rating"], letters["pd_annual"])}


def rating_symbols() -> list[str]:
    """Every rating symbol a licensee or provider may be given (S&P grades, notched or not; Moody's)."""
    return list(SP_LETTERS) + _SP_NOTCHED + ["C"] + _MOODYS


def rating_to_pd(rating: str) -> float:
    """One-year PD of a rating symbol: the S&P 2024 study's year-1 rate of its letter grade.

    Notches take their letter grade's rate (the average over the grade's notches; no notched
    table was verified), Moody's symbols their S&P letter equivalent (:func:`letter_grade`).
    AAA's verified one-year rate is 0.
    """
    return _one_year_pd()[letter_grade(rating)]


# ------------------------------------------------------------------------------ implied ratings
@cache
def _table(key: str) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(grades best first, years, monotone values of shape (grades, years)) of a rating table."""
    t = TABLES[key]
    frame = _read(t.file)
    grades = tuple(dict.fromkeys(frame["rating"]))
    wide = frame.pivot(index="rating", columns="year", values=t.column).loc[list(grades)]
    years = wide.columns.to_numpy(dtype=float)
    values = wide.to_numpy(dtype=float)
    # each grade's threshold: the minimum over itself and every worse grade
    monotone = np.minimum.accumulate(values[::-1], axis=0)[::-1]
    return grades, years, monotone


def table_grades(key: str) -> tuple[str, ...]:
    """The grades of a rating table, best first."""
    return _table(key)[0]


def max_horizon_years(key: str) -> float:
    """The longest horizon a rating table covers (years)."""
    return float(_table(key)[1][-1])


def thresholds(key: str, horizon_years: float) -> np.ndarray | None:
    """Each grade's (monotone) threshold at ``horizon_years``, best grade first; None where the
    horizon is not positive or lies beyond the table.

    At a table year the threshold is the table's value exactly; between years it is linear in
    the cumulative hazard ``-log(1 - p)``; below the first year, ``H(h) = H(first) · h / first``.
    """
    grades, years, values = _table(key)
    h = float(horizon_years)
    if not (h > 0.0 and h <= years[-1]):
        return None
    exact = np.nonzero(years == h)[0]
    if exact.size:
        return values[:, exact[0]].copy()
    hazard = -np.log1p(-values)
    if h < years[0]:
        at_h = hazard[:, 0] * (h / years[0])
    else:
        i = int(np.searchsorted(years, h)) - 1
        f = (h - years[i]) / (years[i + 1] - years[i])
        at_h = hazard[:, i] + f * (hazard[:, i + 1] - hazard[:, i])
    return -np.expm1(-at_h)


def implied(key: str, value: float, horizon_years: float) -> str:
    """The best grade of table ``key`` whose threshold at ``horizon_years`` is at least ``value``.

    ``"below <worst grade>"`` if none is; ``"n/a"`` for a non-finite value or a horizon the table
    does not cover.
    """
    limits = thresholds(key, horizon_years) if np.isfinite(horizon_years) else None
    if limits is None or not np.isfinite(value):
        return NOT_RATED
    for grade, limit in zip(table_grades(key), limits):
        if value <= limit * (1.0 + THRESHOLD_RTOL):
            return grade
    return "below " + table_grades(key)[-1]


def implied_moodys(el: float, wal_years: float) -> str:
    """Moody's-style rating from expected loss at the tranche's WAL (derived EL table: see TABLES)."""
    return implied("moodys", el, wal_years)


def implied_sp(pd_: float, horizon_years: float) -> str:
    """S&P-style letter grade from the probability of default by the legal final."""
    return implied("sp", pd_, horizon_years)


def notch_range(best: str, worst: str) -> str:
    """``"A1 .. A3"``, or the one grade where both ends agree."""
    return best if best == worst else f"{best} .. {worst}"


def grade_rank(key: str, rating: str) -> float:
    """Position of a rating on table ``key``'s scale (0 = best); ``"below ..."`` ranks past the
    worst grade; NaN for ``"n/a"``."""
    grades = table_grades(key)
    if rating in grades:
        return float(grades.index(rating))
    if rating.startswith("below "):
        return float(len(grades))
    return math.nan


def worse_of(key: str, a: str, b: str) -> str:
    """The worse of two ratings on table ``key``'s scale (``"n/a"`` if either is)."""
    ra, rb = grade_rank(key, a), grade_rank(key, b)
    if math.isnan(ra) or math.isnan(rb):
        return NOT_RATED
    return a if ra >= rb else b


def better_of(key: str, a: str, b: str) -> str:
    """The better of two ratings on table ``key``'s scale (``"n/a"`` if either is)."""
    ra, rb = grade_rank(key, a), grade_rank(key, b)
    if math.isnan(ra) or math.isnan(rb):
        return NOT_RATED
    return a if ra <= rb else b


def provider_grade(pd_annual: float, rating: str | None = None) -> str:
    """A provider's S&P letter grade at closing: its ``rating``'s letter grade, or else the grade
    its one-year PD implies on the 2024 table (the best grade whose year-1 rate is at least it)."""
    return letter_grade(rating) if rating is not None else implied("sp", pd_annual, 1.0)


def capped_rating(enhanced: str, standalone: str, guarantor_grades) -> str:
    """An enhanced tranche's S&P-style rating capped at its guarantors' grades, as agencies rate a
    wrapped note (credit substitution): the worse of the enhanced rating and every guarantor's
    grade, but never worse than the tranche's standalone rating (a wrap cannot hurt).
    Without a guarantor it is the enhanced rating."""
    capped = enhanced
    for grade in guarantor_grades:
        capped = worse_of("sp", capped, grade)
    return better_of("sp", capped, standalone) if guarantor_grades else capped


CAPPED_DESCRIPTION = (
    "rating_sp capped at the S&P letter grade at closing of every guarantor covering the tranche (its rating's "
    "letter grade, or the grade its one-year PD implies), but never below standalone_rating_sp: agencies rate a "
    "wrapped note at the weaker of the deal and the wrap provider, and never below the unwrapped note.")


def column_metadata(column: str) -> dict[bytes, bytes] | None:
    """Parquet field metadata (``description``, ``source``, ``verified``) of a summary rating
    column (``rating_sp``, ``standalone_rating_moodys_range``, ``rating_enhanced_capped``, ...);
    None for other columns."""
    if column == "rating_enhanced_capped":
        t = TABLES["sp"]
        return {b"description": CAPPED_DESCRIPTION.encode(), b"source": t.source.encode(), b"verified": b"true"}
    name = column.removeprefix("standalone_")
    for key, t in TABLES.items():
        if name in (f"rating_{key}", f"rating_{key}_range"):
            return {b"description": t.description.encode(), b"source": t.source.encode(),
                    b"verified": b"true" if t.verified else b"false (derived table)"}
    return None


# ----------------------------------------------------------------------------- migration matrices
TRANSITION_MATRICES = {
    "sp_1981_2016": "sp_transition_1y_1981_2016.csv",
}


@cache
def transition_matrix(name: str) -> tuple[tuple[str, ...], np.ndarray]:
    """A shipped one-year transition matrix: (grades best first, probabilities of shape
    (grades, grades + 1)), the last column default.

    The source's "not rated" (NR) column is removed by spreading it over the other outcomes in
    proportion (the usual NR adjustment), and each row is scaled to sum to 1 (the source's
    rows sum to 100% ± 0.01% by rounding).
    """
    frame = _read(TRANSITION_MATRICES[name]).set_index("from_rating")
    grades = tuple(frame.index)
    probs = frame[list(grades) + ["D"]].to_numpy(dtype=float)
    return grades, probs / probs.sum(axis=1, keepdims=True)


def migration_grade_rank(label: str) -> float:
    """A provider migration grade's rank on the S&P letter scale (0 = AAA, ..., 6 = CCC/C, 7 = the
    default state ``"D"``)."""
    return float(len(SP_LETTERS)) if label == "D" else grade_rank("sp", letter_grade(label))

