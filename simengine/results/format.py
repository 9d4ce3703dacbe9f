"""Numbers for people: units, and as many digits as the Monte Carlo standard error supports.

A value with a standard error is rounded to the decimal place of the error's second significant
digit (``15.50% ± 0.54%``, never ``0.155010004``); a value without one (an input, a ledger amount)
to a fixed number of significant digits. Every number of the committee pack is a :class:`Shown`:
its text together with where it came from (file, row key, column) and the raw value, which the
HTML carries as ``data-*`` attributes so a test can read the page back against the Parquet files.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

# unit -> (scale applied to the value, suffix after the number)
UNITS = {
    "percent": (100.0, "%"),  # a fraction shown in percent
    "amount": (1e-6, " m"),  # deal currency, in millions
    "millions": (1e-6, ""),  # the same in a column whose header says "m"
    "years": (1.0, " y"),
    "multiple": (1.0, "×"),
    "plain": (1.0, ""),
    "count": (1.0, ""),
    "id": (1.0, ""),  # a whole number that is a name (a seed): no thousands separators
}
SE_DIGITS = 2  # significant digits of a standard error
EXACT_DIGITS = 6  # significant digits of an input (trailing zeros dropped)
ESTIMATE_DIGITS = 4  # significant digits of an estimate whose error is zero or unknown


@dataclass(frozen=True)
class Shown:
    """One value as the page shows it, and where it comes from.

    text : what the reader sees (number and unit suffix, or a label such as a rating)
    unit : a key of :data:`UNITS`, or ``"text"`` for strings
    source : the file it comes from, relative to the folder the page describes (``summary.parquet``,
        ``runs/base/summary.parquet``, ``manifest.json``); empty for derived numbers
    key : JSON object of the row's key columns (``{"tranche": "senior"}``); ``{"__row__": i}`` for
        a table without key columns; for ``manifest.json`` the dotted path is in ``column``
    column : the column (or manifest path)
    value : the raw value as JSON (what the Parquet file holds)
    derived : how a derived number was computed (``"delta"``, ``"share"``, ...), else empty
    """

    text: str
    unit: str = "text"
    source: str = ""
    key: str = ""
    column: str = ""
    value: str = ""
    derived: str = ""

    def __str__(self) -> str:
        return self.text


def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def decimals_for(se: float | None, unit: str) -> int | None:
    """Decimal places (in display units) of a value whose standard error is ``se``: the error's
    last significant digit, with two significant digits where its leading three are 100-354 and one
    where they are 355-999 (the Particle Data Group's rule). None where the error is zero, missing
    or not finite."""
    if not _finite(se) or float(se) <= 0:
        return None
    shown = abs(float(se)) * UNITS[unit][0]
    exponent = math.floor(math.log10(shown))
    leading = int(shown / 10.0 ** (exponent - 2))
    digits = SE_DIGITS if leading <= 354 else 1
    return int(min(12, max(0, digits - 1 - exponent)))


def _sig_decimals(x: float, digits: int) -> int:
    if x == 0:
        return 0
    return int(min(12, max(0, digits - 1 - math.floor(math.log10(abs(x))))))


def number_text(x, unit: str, decimals: int | None = None, digits: int = ESTIMATE_DIGITS,
                exact: bool = False) -> str:
    """``x`` in ``unit`` with ``decimals`` places (or ``digits`` significant digits); ``exact`` drops
    trailing zeros (inputs such as 286,000,000 -> ``286 m``). NaN is ``n/a``, None ``—``."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    x = float(x)
    if math.isnan(x):
        return "n/a"
    scale, suffix = UNITS[unit]
    if math.isinf(x):
        return ("∞" if x > 0 else "−∞") + suffix
    v = x * scale
    if unit in ("count", "id") and decimals is None:
        decimals = 0 if v == round(v) else _sig_decimals(v, digits)
    by_digits = decimals is None
    if by_digits:
        decimals = _sig_decimals(v, EXACT_DIGITS if exact else digits)
    text = f"{v:.{decimals}f}" if unit == "id" else f"{v:,.{decimals}f}"
    if (exact or (by_digits and float(text.replace(",", "")) == 0)) and "." in text:
        text = text.rstrip("0").rstrip(".")  # an input as written; a value below 1e-12 is 0
    if float(text.replace(",", "")) == 0:
        text = text.lstrip("-")  # no "-0.00%"
    return text.replace("-", "−") + suffix


def shown(x, unit: str, se: float | None = None, *, source: str = "", key: dict | None = None,
          column: str = "", exact: bool = False, decimals: int | None = None, digits: int = ESTIMATE_DIGITS,
          derived: str = "") -> Shown:
    """A value formatted to its standard error (see :func:`decimals_for`), else to ``decimals`` places or
    ``digits`` significant digits, with its provenance."""
    if unit == "text":
        text = "—" if x is None else ("yes" if x else "no") if isinstance(x, bool) else str(x)
    else:
        if decimals is None:
            decimals = decimals_for(se, unit)
        text = number_text(x, unit, decimals, digits=digits, exact=exact)
    return Shown(text=text, unit=unit, source=source, key=json.dumps(key or {}, sort_keys=True, default=str),
                 column=column, value=json.dumps(_plain(x), default=str), derived=derived)


def _plain(x):
    if x is None or isinstance(x, (str, bool)):
        return x
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    return int(x) if isinstance(x, int) or (hasattr(x, "dtype") and x.dtype.kind in "iu") else f


def parse_shown(text: str, unit: str) -> tuple[float, float]:
    """(value, half a unit of its last digit) of a shown number, back in the stored units; for tests
    and for anyone reading a page back. ``n/a`` is (NaN, 0)."""
    scale, suffix = UNITS[unit]
    body = text.strip()
    if body in ("n/a", "—"):
        return math.nan, 0.0
    body = body.removesuffix(suffix).replace(",", "").replace("−", "-").strip()
    if body.lstrip("-") == "∞":
        return (math.inf if not body.startswith("-") else -math.inf), 0.0
    places = len(body.split(".")[1]) if "." in body else 0
    return float(body) / scale, 0.5 * 10.0 ** (-places) / scale


__all__ = ["UNITS", "Shown", "decimals_for", "number_text", "parse_shown", "shown"]
