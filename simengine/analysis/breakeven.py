"""Breakevens: how far a driver can move before a tranche first loses or leaves its grade.

Every evaluation re-runs the same paths under the run's frozen sampling measure (common random
numbers, no new pilot), so a tranche's statistic is a monotone step function of the driver for
the drivers that act monotonically on every path (PD, obsolescence, royalty decline, haircut,
provider PD). The search brackets the value on a grid from the base (geometric for multipliers,
steps for levels), then bisects to a stated tolerance; evaluations are shared by every tranche,
basis and criterion. The Monte Carlo uncertainty of a breakeven is the statistic's standard error
at the bracket over the statistic's slope there (delta method), the slope taken between the
nearest evaluated values on either side whose statistic differs from the threshold by at least two
standard errors.
"""

from __future__ import annotations

import functools
import logging
import math
from typing import NamedTuple

import numpy as np
import pandas as pd

from .. import ratings
from .._layout import BASIS_ENHANCED, BASIS_STANDALONE
from ..engine import RunSpec
from .crn import CommonRandomNumbers
from .drivers import DRIVER_NAMES, AnalysisInputError, Driver, available_drivers, check_driver_names, variant_plan

log = logging.getLogger("simengine")

CRITERIA = ("first_loss", "rating", "el")
BASIS_INDEX = {"enhanced": BASIS_ENHANCED, "standalone": BASIS_STANDALONE}
SCALES = ("moodys", "sp")
MAX_BISECTIONS = 14
EVALUATED = ("defaulted", "loss_fraction", "wal_years")  # what evaluate keeps of a variant (_layout.TRANCHE_OUT)
SLOPE_SES = 2.0  # the slope is taken between values whose statistic is this many SEs from the threshold


class Stats(NamedTuple):
    """Per-tranche statistics of one evaluation, each ndarray(float64), shape (2, tranches); the
    first axis is the basis (``_layout.BASIS_*``)."""

    pd: np.ndarray
    pd_se: np.ndarray
    el: np.ndarray
    el_se: np.ndarray
    wal: np.ndarray


def evaluate(crn: CommonRandomNumbers, plan=None) -> Stats:
    """PD, EL (with standard errors) and mean WAL of every tranche and basis for one variant.

    Only the three columns are kept from each chunk (joining every kernel output cost a fifth of the
    time and 0.77 of 1.31 GB peak at 1,000,000 paths: ``benchmarks/results/2026-11-27-vm-session8-side.md``);
    each slice is made contiguous, so its sums add in the order they always did.
    """
    (defaulted, loss, wal), w = crn.weighted_columns(EVALUATED, plan=plan)
    shape = loss.shape[1:]
    stats = {name: np.empty(shape) for name in Stats._fields}
    for b in range(shape[0]):
        for k in range(shape[1]):
            stats["pd"][b, k], stats["pd_se"][b, k] = crn.mean_se(np.ascontiguousarray(defaulted[:, b, k]))
            stats["el"][b, k], stats["el_se"][b, k] = crn.mean_se(np.ascontiguousarray(loss[:, b, k]))
            stats["wal"][b, k] = float(np.ascontiguousarray(wal[:, b, k]).sum() / w.sum())
    return Stats(**stats)


# ----------------------------------------------------------------------------------- grades
@functools.cache
def grades(scale: str) -> tuple[str, ...]:
    """The grades of a rating scale, best first, as the shipped table's implied rating names them.

    Probed through the public implied-rating functions at several horizons (a table whose values
    cross may skip a grade at one horizon) and merged in the order every probe agrees on.
    """
    implied = ratings.implied_moodys if scale == "moodys" else ratings.implied_sp
    after: dict[str, set] = {}
    first_seen: list[str] = []
    for horizon in (1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 20.0, 30.0):
        seq: list[str] = []
        for v in np.concatenate([[0.0], np.logspace(-15, 0, 1501)]):
            g = implied(float(v), horizon)
            if g not in seq:
                seq.append(g)
        for i, g in enumerate(seq):
            after.setdefault(g, set()).update(seq[:i])
            if g not in first_seen:
                first_seen.append(g)
    order: list[str] = []
    while len(order) < len(first_seen):  # each next grade: the first seen whose betters are all placed
        order.append(next(g for g in first_seen if g not in order and after[g] <= set(order)))
    return tuple(order)


def check_grade(scale: str, grade: str) -> str:
    """``grade`` if it is a grade of ``scale``; raises ValueError listing them otherwise."""
    if scale not in SCALES:
        raise AnalysisInputError(f"rating scale {scale!r}: expected one of {', '.join(SCALES)}")
    if grade not in grades(scale):
        raise AnalysisInputError(f"target rating {grade!r}: expected a {scale} grade, "
                                 f"one of {', '.join(grades(scale))}")
    return grade


def implied_grade(scale: str, stats: Stats, b: int, k: int, horizon_years: float) -> str:
    """The implied grade of tranche k, basis b: Moody's from EL at the WAL, S&P from PD at the legal final."""
    if scale == "moodys":
        return ratings.implied_moodys(float(stats.el[b, k]), float(stats.wal[b, k]))
    return ratings.implied_sp(float(stats.pd[b, k]), horizon_years)


@functools.lru_cache(maxsize=4096)
def grade_limit(scale: str, grade: str, horizon_years: float) -> float:
    """The largest statistic (EL for Moody's, PD for S&P) still rated ``grade`` or better at the horizon
    (to 1e-12 relative, by bisection on its logarithm)."""
    implied = ratings.implied_moodys if scale == "moodys" else ratings.implied_sp
    order = grades(scale)
    rank = order.index(grade)

    def ok(v: float) -> bool:
        return order.index(implied(v, horizon_years)) <= rank

    if ok(1.0):
        return 1.0
    if not ok(1e-15):
        return 0.0
    lo, hi = -15.0, 0.0  # log10 of the statistic
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if ok(10.0 ** mid):
            lo = mid
        else:
            hi = mid
    return 10.0 ** lo


# ----------------------------------------------------------------------------------- criteria
class Criterion(NamedTuple):
    """A tranche breaks when ``statistic > threshold``: ``statistic`` is ``"pd"`` or ``"el"``."""

    name: str
    statistic: str
    threshold: object  # float, or (scale, grade) for a rating criterion
    label: str

    def limit(self, stats: Stats, b: int, k: int, horizon_years: float) -> float:
        """The threshold of tranche k, basis b (a rating's limit moves with the tranche's WAL)."""
        if self.name != "rating":
            return float(self.threshold)
        scale, grade = self.threshold
        h = float(stats.wal[b, k]) if scale == "moodys" else horizon_years
        return grade_limit(scale, grade, h)

    def broken(self, stats: Stats, b: int, k: int, horizon_years: float) -> bool:
        """Whether tranche k, basis b has broken under this criterion."""
        if self.name == "rating":
            scale, grade = self.threshold
            order = grades(scale)
            return order.index(implied_grade(scale, stats, b, k, horizon_years)) > order.index(grade)
        return bool(getattr(stats, self.statistic)[b, k] > self.threshold)


# ----------------------------------------------------------------------------------- search
class _Search:
    """Evaluations of one driver, cached by value; the base is evaluated once for every driver."""

    def __init__(self, crn: CommonRandomNumbers, driver: Driver, base_stats: Stats):
        self.crn = crn
        self.driver = driver
        self.cache: dict[float, Stats] = {driver.base: base_stats}

    def __call__(self, x: float) -> Stats:
        x = float(x)
        if x not in self.cache:
            self.cache[x] = evaluate(self.crn, variant_plan(self.crn, self.driver, x))
        return self.cache[x]

    def grid(self, upward: bool):
        """Values from the base towards the range end, the end included: a multiplier doubles (or
        halves, down to base/64, then the end); a level moves by step, 2 step, 4 step, ..."""
        d = self.driver
        end = d.hi if upward else d.lo
        x, move = d.base, d.step
        while (x < end) if upward else (x > end):
            if d.kind == "multiplier" and x > 0:
                x = x * 2.0 if upward else (x / 2.0 if x / 2.0 > d.base / 64 else end)
            else:
                x = x + move if upward else x - move
                move *= 2.0
            x = min(x, end) if upward else max(x, end)
            yield x

    def midpoint(self, lo: float, hi: float) -> float:
        if self.driver.kind == "multiplier" and lo > 0:
            return math.sqrt(lo * hi)
        return 0.5 * (lo + hi)

    def narrow_enough(self, lo: float, hi: float, rtol: float, atol: float) -> bool:
        return hi - lo <= max(rtol * abs(hi), atol)


def _slope_se(search: _Search, crit: Criterion, b: int, k: int, x_star: float, lo: float, hi: float,
              horizon: float) -> float:
    """Monte Carlo standard error of a breakeven at ``x_star`` (bracket [lo, hi]), by the delta method."""
    at_hi = search.cache[hi]
    stat = crit.statistic
    sigma = max(float(getattr(at_hi, stat + "_se")[b, k]), float(getattr(search.cache[lo], stat + "_se")[b, k]))
    thr = crit.limit(at_hi, b, k, horizon)
    below = sorted((x, float(getattr(s, stat)[b, k])) for x, s in search.cache.items() if x <= lo)
    above = sorted((x, float(getattr(s, stat)[b, k])) for x, s in search.cache.items() if x >= hi)
    far_below = [p for p in below if p[1] <= thr - SLOPE_SES * sigma]
    far_above = [p for p in above if p[1] >= thr + SLOPE_SES * sigma]
    a = far_below[-1] if far_below else below[0]
    c = far_above[0] if far_above else above[-1]
    slope = (c[1] - a[1]) / (c[0] - a[0]) if c[0] > a[0] else 0.0
    if not slope > 0:
        return math.nan
    return sigma / slope


def breakevens(spec: RunSpec, drivers=None, tranches=None, bases=("enhanced", "standalone"),
               criteria=("first_loss", "rating"), pd_tolerance: float = 1e-4, el_target: float | None = None,
               rating_scale: str = "moodys", target_rating: str | None = None, paths: int | None = None,
               ranges: dict | None = None, rtol: float = 0.01, atol: float | None = None) -> pd.DataFrame:
    """The driver values at which each tranche breaks, under common random numbers.

    Parameters
    ----------
    spec : RunSpec
        The prepared base run (its sampling measure is frozen: no new pilot).
    drivers : iterable of str, optional
        Names of :data:`simengine.analysis.drivers.DRIVER_NAMES` (default: all of them).
    tranches : iterable of str, optional
        Default: every tranche.
    bases : iterable of str
        ``"enhanced"`` and/or ``"standalone"``.
    criteria : iterable of str
        ``"first_loss"``: PD above ``pd_tolerance``; ``"rating"``: the implied grade on
        ``rating_scale`` below ``target_rating`` (default: each tranche's grade in the base run);
        ``"el"``: EL above ``el_target`` (required for it).
    paths : int, optional
        Paths re-run per evaluation (the first ones of the run; default the run's).
    ranges : dict, optional
        ``{driver: (lo, hi)}`` narrowing a driver's search range (None for an end keeps it).
    rtol, atol : float
        Bisection stops when the bracket is at most ``max(rtol * |hi|, atol)`` wide (``atol``
        default: 0.01 for multipliers, 0.0025 for levels).

    Returns
    -------
    pandas.DataFrame
        One row per (driver, tranche, basis, criterion): ``status`` (``found``,
        ``not_broken_in_range``, ``broken_in_whole_range``, ``not_applicable``), ``breakeven``
        (midpoint of the final bracket ``bracket_lo``..``bracket_hi``), ``breakeven_se`` (Monte
        Carlo), ``headroom`` = breakeven - base (negative: already broken at the base), the
        statistic and its standard error at the base and the bracket ends, the threshold, the
        grades at the base and the target, ``evaluations`` and ``paths``.
    """
    names = check_driver_names(drivers if drivers is not None else DRIVER_NAMES)
    all_tranches = list(spec.plan.tranche_names)
    tranches = list(tranches) if tranches is not None else all_tranches
    for t in tranches:
        if t not in all_tranches:
            raise AnalysisInputError(f"tranche {t!r}: expected one of {', '.join(all_tranches)}")
    for b in bases:
        if b not in BASIS_INDEX:
            raise AnalysisInputError(f"basis {b!r}: expected enhanced or standalone")
    for c in criteria:
        if c not in CRITERIA:
            raise AnalysisInputError(f"criterion {c!r}: expected one of {', '.join(CRITERIA)}")
    if "el" in criteria and el_target is None:
        raise AnalysisInputError("criterion 'el' needs el_target (the EL at which a tranche breaks)")
    if rating_scale not in SCALES:
        raise AnalysisInputError(f"rating scale {rating_scale!r}: expected one of {', '.join(SCALES)}")
    if target_rating is not None:
        check_grade(rating_scale, target_rating)
    available, why = available_drivers(spec.scenario)
    ranges = dict(ranges or {})
    for name in ranges:
        check_driver_names([name])

    crn = CommonRandomNumbers(spec, paths if paths is not None else spec.paths)
    horizon = spec.plan.periods / spec.plan.waterfall.periods_per_year
    base_stats = evaluate(crn)
    combos = []  # (tranche, k, basis, b, Criterion, base grade)
    for t in tranches:
        k = all_tranches.index(t)
        for basis in bases:
            b = BASIS_INDEX[basis]
            base_grade = implied_grade(rating_scale, base_stats, b, k, horizon)
            for c in criteria:
                if c == "first_loss":
                    crit = Criterion(c, "pd", float(pd_tolerance), f"PD > {pd_tolerance:g}")
                elif c == "el":
                    crit = Criterion(c, "el", float(el_target), f"EL > {el_target:g}")
                else:
                    target = target_rating or base_grade
                    crit = Criterion(c, "el" if rating_scale == "moodys" else "pd", (rating_scale, target),
                                     f"{rating_scale} grade below {target}")
                combos.append((t, k, basis, b, crit, base_grade))

    rows = []
    for name in names:
        if name not in available:
            for t, _, basis, _, crit, base_grade in combos:
                rows.append(_row(name, None, t, basis, crit, base_grade, crn.paths, status="not_applicable",
                                 note=why.get(name, "")))
            continue
        driver = available[name]
        if name in ranges:
            driver = driver.with_range(*ranges[name])
        tol = atol if atol is not None else (0.01 if driver.kind == "multiplier" else 0.0025)
        search = _Search(crn, driver, base_stats)
        log.info("breakeven: %s over [%g, %g]", name, driver.lo, driver.hi)
        brackets = _brackets(search, combos, horizon)
        for i, (t, k, basis, b, crit, base_grade) in enumerate(combos):
            state, lo, hi = brackets[i]
            if state != "found":
                rows.append(_row(name, driver, t, basis, crit, base_grade, crn.paths, status=state,
                                 base=search.cache[driver.base], b=b, k=k, horizon=horizon,
                                 evaluations=len(search.cache)))
                continue
            for _ in range(MAX_BISECTIONS):
                if search.narrow_enough(lo, hi, rtol, tol):
                    break
                mid = search.midpoint(lo, hi)
                if crit.broken(search(mid), b, k, horizon):
                    hi = mid
                else:
                    lo = mid
            x_star = search.midpoint(lo, hi)
            rows.append(_row(name, driver, t, basis, crit, base_grade, crn.paths, status="found",
                             base=search.cache[driver.base], b=b, k=k, horizon=horizon, lo=lo, hi=hi,
                             at_lo=search.cache[lo], at_hi=search.cache[hi], x_star=x_star,
                             se=_slope_se(search, crit, b, k, x_star, lo, hi, horizon),
                             evaluations=len(search.cache)))
    return pd.DataFrame(rows)


def _brackets(search: _Search, combos, horizon: float) -> list[tuple[str, float, float]]:
    """Per combination: (state, lo, hi) with ``lo`` not broken and ``hi`` broken where state is ``found``.

    Scans the grid upward from the base for combinations not broken there and downward for those
    that are, evaluating each grid value once for all of them.
    """
    d = search.driver
    base = search.cache[d.base]
    result: list = [None] * len(combos)
    for upward in (True, False):
        todo = {i for i, (_, k, _, b, crit, _) in enumerate(combos) if crit.broken(base, b, k, horizon) != upward}
        prev = d.base
        for x in search.grid(upward):
            if not todo:
                break
            stats = search(x)
            for i in sorted(todo):
                _, k, _, b, crit, _ = combos[i]
                if crit.broken(stats, b, k, horizon) == upward:
                    result[i] = ("found", prev, x) if upward else ("found", x, prev)
                    todo.discard(i)
            prev = x
        for i in todo:
            result[i] = ("not_broken_in_range" if upward else "broken_in_whole_range", math.nan, math.nan)
    return result


def _row(name, driver, tranche, basis, crit, base_grade, paths, status, note="", base=None, b=0, k=0,
         horizon=0.0, lo=math.nan, hi=math.nan, at_lo=None, at_hi=None, x_star=math.nan, se=math.nan,
         evaluations=0) -> dict:
    stat = crit.statistic
    target = crit.threshold[1] if crit.name == "rating" else None
    row = {
        "driver": name, "driver_description": driver.description if driver else note,
        "base_value": driver.base if driver else math.nan,
        "range_lo": driver.lo if driver else math.nan, "range_hi": driver.hi if driver else math.nan,
        "tranche": tranche, "basis": basis, "criterion": crit.name, "criterion_label": crit.label,
        "statistic": stat, "threshold": crit.limit(at_hi if at_hi is not None else base, b, k, horizon)
        if base is not None else (math.nan if crit.name == "rating" else float(crit.threshold)),
        "grade_at_base": base_grade, "target_grade": target, "status": status,
        "breakeven": x_star, "breakeven_se": se, "bracket_lo": lo, "bracket_hi": hi,
        "headroom": x_star - driver.base if driver else math.nan,
        "statistic_at_base": math.nan, "statistic_at_base_se": math.nan,
        "statistic_at_bracket_lo": math.nan, "statistic_at_bracket_lo_se": math.nan,
        "statistic_at_bracket_hi": math.nan, "statistic_at_bracket_hi_se": math.nan,
        "evaluations": evaluations, "paths": paths,
    }
    for key, s in (("base", base), ("bracket_lo", at_lo), ("bracket_hi", at_hi)):
        if s is not None:
            row[f"statistic_at_{key}"] = float(getattr(s, stat)[b, k])
            row[f"statistic_at_{key}_se"] = float(getattr(s, stat + "_se")[b, k])
    return row
