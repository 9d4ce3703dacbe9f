"""Rating tables shipped with the package (sources in ``data/SOURCES.md``).

- ``rating_pd.csv``: a licensee's or provider's rating → 1-year PD (Moody's and S&P symbols);
- ``moodys_idealized.csv``: Moody's idealized cumulative PD and EL by rating and horizon;
- ``sp_cumulative_default.csv``: S&P-style cumulative default rates by rating and horizon.

Implied ratings: the best rating whose table value at the tranche's horizon (interpolated
linearly between whole years, flat beyond the table) is at least the tranche's estimate.
"""

from __future__ import annotations

from functools import cache, lru_cache
from importlib import resources

import numpy as np
import pandas as pd

TABLE_VERSIONS = {
    "moodys_el": "Moody's idealized cumulative expected loss rates (see data/SOURCES.md)",
    "sp_pd": "S&P average cumulative default rates (see data/SOURCES.md)",
}


def _read(name: str) -> pd.DataFrame:
    with resources.files("simengine.data").joinpath(name).open("r") as fh:
        return pd.read_csv(fh, comment="#")


@lru_cache(maxsize=1)
def _rating_pd() -> dict[str, float]:
    frame = _read("rating_pd.csv")
    return {str(r).strip(): float(p) for r, p in zip(frame["rating"], frame["pd_annual"])}


def rating_symbols() -> list[str]:
    """The rating symbols of the shipped table, in its order (Moody's and S&P)."""
    return list(_rating_pd())


def rating_to_pd(rating: str) -> float:
    """1-year PD of a rating symbol (Moody's ``Baa2`` or S&P ``BBB``)."""
    table = _rating_pd()
    if rating not in table:
        raise KeyError(f"a rating symbol in the shipped table ({', '.join(table)})")
    return table[rating]


@cache
def _table(name: str, column: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(ratings best first, years 1..N, values of shape (ratings, years)) from a shipped table."""
    frame = _read(name)
    ratings = list(dict.fromkeys(frame["rating"]))
    years = np.arange(1, int(frame["year"].max()) + 1, dtype=float)
    values = frame.pivot(index="rating", columns="year", values=column).loc[ratings].to_numpy()
    return ratings, years, values


def _implied(ratings, years, table, horizon_years: float, value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    h = float(np.clip(horizon_years, years[0], years[-1]))
    at_h = np.array([np.interp(h, years, row) for row in table])
    for rating, limit in zip(ratings, at_h):
        if value <= limit + 1e-15:
            return rating
    return "below " + ratings[-1]


def implied_moodys(el: float, wal_years: float) -> str:
    """Moody's-style rating from expected loss at the tranche's WAL."""
    return _implied(*_table("moodys_idealized.csv", "idealized_el"), wal_years, el)


def implied_sp(pd_: float, horizon_years: float) -> str:
    """S&P-style rating from the probability of default by legal final."""
    return _implied(*_table("sp_cumulative_default.csv", "cumulative_pd"), horizon_years, pd_)


def notch_range(best: str, worst: str) -> str:
    """``"A1 .. A3"``, or the one grade where both ends agree."""
    return best if best == worst else f"{best} .. {worst}"
