"""Deterministic stresses through the same waterfall: the largest-obligor test and the breakeven
default rate (BDR), as the CBR and S&P methods run them beside a Monte Carlo.

Both run one path with every random driver at its expected path (:func:`simengine.plan.pool.expected_path`:
no drawn default, obsolescence or invalidation, demand at its drift, recoveries at their mean,
providers that never default) and force defaults through the pool plan's
``licensee_forced_period``; the kernels, the waterfall and the providers are the run's own.

- **Largest-obligor test**: the k licensees with the largest scheduled royalties default at one
  period (``front``: period 1; ``back``: period ``periods // 2 + 1``; or a given period), k = 1..K;
  a tranche survives k when it is paid in full (no principal loss, nothing unpaid at the legal
  final, no missed non-deferrable interest) for every k' <= k.
- **BDR**: the fraction r of every licence's royalty that defaults (pro rata: each licence is
  split into a performing part and a part held by a twin licensee forced to default) at the
  stated timing (``front``, ``back``, or ``even``: r/periods at each period), re-licensed after the
  scenario's lag at its mean recovery (or ``recovery``); the largest r at which a tranche is paid
  in full, by bisection. The default rate is a share of the pool's scheduled royalties.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from .._layout import BASIS_ENHANCED, BASIS_STANDALONE, T_DEFAULTED, T_INTEREST_SHORTFALL, T_LOSS, T_PV_LOSS
from ..engine import RunSpec, run_chunk
from ..plan import Plan, compile_plan
from ..plan.pool import expected_path, largest_licensees
from ..scenario import Scenario
from .drivers import AnalysisInputError

TIMINGS = ("front", "back", "even")
BASES = ((BASIS_ENHANCED, "enhanced"), (BASIS_STANDALONE, "standalone"))


def timing_periods(timing, periods: int) -> list[tuple[int, float]]:
    """(1-based period, share of the defaults) of a timing: ``front``, ``back``, ``even`` or a period."""
    if timing == "front":
        return [(1, 1.0)]
    if timing == "back":
        return [(periods // 2 + 1, 1.0)]
    if timing == "even":
        return [(p, 1.0 / periods) for p in range(1, periods + 1)]
    try:
        p = int(timing)
    except (TypeError, ValueError):
        raise AnalysisInputError(f"timing {timing!r}: expected front, back, even or a period in 1..{periods}") from None
    if not 1 <= p <= periods:
        raise AnalysisInputError(f"timing {timing!r}: expected front, back, even or a period in 1..{periods}")
    return [(p, 1.0)]


def _scenario(source) -> Scenario:
    return source.scenario if isinstance(source, RunSpec) else source


def base_plan(source, recovery: float | None = None) -> Plan:
    """The scenario's plan at its expected path (``[[stress.defaults]]`` of the file dropped), with
    every licence's recovery set to ``recovery`` where given."""
    sc = _scenario(source)
    if sc.model.stress.defaults:
        sc = sc.with_overrides({"stress.defaults": []})
    plan = compile_plan(sc)
    pool = expected_path(plan.pool)
    if recovery is not None:
        if not 0.0 <= recovery <= 1.0:
            raise AnalysisInputError(f"recovery {recovery!r}: expected a fraction in [0, 1]")
        pool = pool._replace(licence_recovery=np.full_like(pool.licence_recovery, recovery))
    return dataclasses.replace(plan, pool=pool)


def forced(plan: Plan, licensees: np.ndarray, period: int) -> Plan:
    """``plan`` with the given licensees (indices) forced to default at ``period`` (1-based)."""
    periods = np.full(len(plan.pool.licensee_hazard_annual), -1, np.int64)
    periods[np.asarray(licensees, np.int64)] = period - 1
    return dataclasses.replace(plan, pool=plan.pool._replace(licensee_forced_period=periods,
                                                            licensee_forced_any=bool((periods >= 0).any())))


def pro_rata_defaults(plan: Plan, rate: float, timing: list[tuple[int, float]]) -> Plan:
    """``plan`` where the fraction ``rate`` of every licence defaults: each licence keeps ``1 - rate``
    of its royalty and a twin licence per timing piece holds ``rate * share`` of it, owned by a twin
    of its licensee forced to default at that piece's period (recovered like any licence)."""
    pp = plan.pool
    n_ls = len(pp.licensee_hazard_annual)
    n_lic = len(pp.licence_royalty)
    m = len(timing)
    licensee_arrays = ("licensee_hazard_annual", "licensee_industry", "licensee_technology",
                       "licensee_industry_factor", "licensee_region_factor", "licensee_idio", "licensee_hazard_class")
    licence_arrays = ("licence_group", "licence_technology", "licence_start", "licence_last", "licence_recovery",
                      "licence_invalidation_hazard_annual", "licence_invalidation_u_max", "licence_oc_weight")
    new = {name: np.concatenate([getattr(pp, name)] * (1 + m)) for name in licensee_arrays + licence_arrays}
    forced_period = np.full(n_ls * (1 + m), -1, np.int64)
    licensee = [pp.licence_licensee]
    royalty = [pp.licence_royalty * (1.0 - rate)]
    scheduled = [pp.licence_scheduled_amount * (1.0 - rate)]
    for j, (period, share) in enumerate(timing):
        forced_period[n_ls * (1 + j):n_ls * (2 + j)] = period - 1
        licensee.append(pp.licence_licensee + n_ls * (1 + j))
        royalty.append(pp.licence_royalty * rate * share)
        scheduled.append(pp.licence_scheduled_amount * rate * share)
    forced_default = np.concatenate([pp.licensee_forced_default, np.full(n_ls * m, -1, np.int64)])  # twins: timing only
    pool = pp._replace(**new, licensee_forced_period=forced_period, licensee_forced_any=True,
                       licensee_forced_default=forced_default,
                       licence_licensee=np.concatenate(licensee), licence_royalty=np.concatenate(royalty),
                       licence_scheduled_amount=np.concatenate(scheduled))
    assert len(pool.licence_royalty) == n_lic * (1 + m)
    return dataclasses.replace(plan, pool=pool)


def run_one(plan: Plan):
    """The one expected path of ``plan``: ChunkOutputs with one row."""
    return run_chunk(plan, 0, 0, 1)


def _tranche_rows(plan: Plan, out, **fields) -> list[dict]:
    rows = []
    for k, tranche in enumerate(plan.tranche_names):
        for b, basis in BASES:
            r = out.tranche[0, b, k]
            rows.append({**fields, "tranche": tranche, "basis": basis, "loss_fraction": float(r[T_LOSS]),
                         "pv_loss_fraction": float(r[T_PV_LOSS]),
                         "interest_shortfall_amount": float(r[T_INTEREST_SHORTFALL]),
                         "paid_in_full": bool(r[T_DEFAULTED] == 0.0)})
    return rows


def largest_obligor_test(source, max_k: int | None = None, timings=("front", "back"),
                         recovery: float | None = None) -> pd.DataFrame:
    """The largest k licensees (by scheduled royalty) default at one period, k = 1..max_k.

    Parameters
    ----------
    source : Scenario or RunSpec
    max_k : int, optional
        Default: min(10, licensees).
    timings : iterable
        ``front``, ``back`` or 1-based periods (see :func:`timing_periods`; ``even`` is not a
        licensee-level timing).
    recovery : float, optional
        Every licence's re-licensing recovery (default: the scenario's mean).

    Returns
    -------
    pandas.DataFrame
        One row per (timing, k, tranche, basis): ``test`` = ``largest_obligor``, period,
        ``licensees`` defaulted (names, largest first), ``default_rate`` (their share of scheduled
        royalties), loss and PV loss fractions, interest shortfall, ``paid_in_full``, and
        ``largest_k_survived``: the largest k with every k' <= k paid in full (0: not even the largest).
    """
    plan = base_plan(source, recovery)
    pp = plan.pool
    sched = np.bincount(pp.licence_licensee, weights=pp.licence_scheduled_amount, minlength=len(plan.licensee_names))
    order = largest_licensees(sched)
    n = len(order)
    max_k = min(10, n) if max_k is None else int(max_k)
    if not 1 <= max_k <= n:
        raise AnalysisInputError(f"max_k {max_k}: expected 1..{n} (the licensees of the pool)")
    rows = []
    for timing in timings:
        if timing == "even":
            raise AnalysisInputError("timing 'even': expected front, back or a period (even spreads a default "
                                     "rate over periods: a BDR timing, not a licensee's)")
        (period, _), = timing_periods(timing, plan.periods)
        for k in range(1, max_k + 1):
            out = run_one(forced(plan, order[:k], period))
            rows += _tranche_rows(plan, out, test="largest_obligor", timing=str(timing), period=period, k=k,
                                  licensees=" | ".join(plan.licensee_names[i] for i in order[:k]),
                                  default_rate=float(sched[order[:k]].sum() / sched.sum()),
                                  recovery=recovery)
    frame = pd.DataFrame(rows)
    survived = {}
    for (timing, tranche, basis), g in frame.groupby(["timing", "tranche", "basis"], sort=False):
        ok = g.sort_values("k")["paid_in_full"].to_numpy()
        survived[(timing, tranche, basis)] = int(np.argmin(ok)) if not ok.all() else int(len(ok))
    frame["largest_k_survived"] = [survived[key] for key in zip(frame["timing"], frame["tranche"], frame["basis"])]
    return frame


def breakeven_default_rate(source, timings=("front", "back", "even"), recovery: float | None = None,
                           tol: float = 1e-6) -> pd.DataFrame:
    """The largest pro-rata pool default rate at which each tranche is paid in full.

    Parameters
    ----------
    source : Scenario or RunSpec
    timings : iterable
        ``front``, ``back``, ``even`` or 1-based periods (see :func:`timing_periods`).
    recovery : float, optional
        Every licence's re-licensing recovery (default: the scenario's mean).
    tol : float
        Width of the final bracket of the default rate.

    Returns
    -------
    pandas.DataFrame
        One row per (timing, tranche, basis): ``test`` = ``bdr``, ``breakeven_default_rate`` (the
        largest rate known to leave the tranche paid in full; 1 where even a fully defaulted pool
        does; NaN where it loses with no default), ``bdr_upper`` (the smallest rate known to break
        it), and the tranche's outputs at ``breakeven_default_rate``.
    """
    plan = base_plan(source, recovery)
    rows = []
    for timing in timings:
        pieces = timing_periods(timing, plan.periods)
        runs = _RateRuns(plan, pieces)
        for k in range(len(plan.tranche_names)):
            for b, _ in BASES:
                if not runs.paid(0.0, b, k):
                    lo, hi = math.nan, 0.0
                elif runs.paid(1.0, b, k):
                    lo, hi = 1.0, math.nan
                else:
                    lo, hi = 0.0, 1.0
                    while hi - lo > tol:
                        mid = 0.5 * (lo + hi)
                        lo, hi = (mid, hi) if runs.paid(mid, b, k) else (lo, mid)
                out = runs(lo if not math.isnan(lo) else 0.0)
                row = _tranche_rows(plan, out)[2 * k + (0 if b == BASIS_ENHANCED else 1)]
                row.update(test="bdr", timing=str(timing), period=pieces[0][0] if len(pieces) == 1 else None,
                           default_rate=lo, breakeven_default_rate=lo, bdr_upper=hi, recovery=recovery)
                rows.append(row)
    return pd.DataFrame(rows)


class _RateRuns:
    """The expected path at pro-rata default rates of one timing, each rate run once."""

    def __init__(self, plan: Plan, pieces: list[tuple[int, float]]):
        self.plan, self.pieces, self.cache = plan, pieces, {}

    def __call__(self, rate: float):
        if rate not in self.cache:
            self.cache[rate] = run_one(pro_rata_defaults(self.plan, rate, self.pieces))
        return self.cache[rate]

    def paid(self, rate: float, b: int, k: int) -> bool:
        """Whether tranche k is paid in full on basis b at ``rate``."""
        return bool(self(rate).tranche[0, b, k, T_DEFAULTED] == 0.0)


def deterministic_stresses(source, max_k: int | None = None, lo_timings=("front", "back"),
                           bdr_timings=("front", "back", "even"), recovery: float | None = None) -> pd.DataFrame:
    """The largest-obligor test and the BDR in one table (see :func:`largest_obligor_test`,
    :func:`breakeven_default_rate`); columns of the other test are NaN."""
    frames = [largest_obligor_test(source, max_k, lo_timings, recovery),
              breakeven_default_rate(source, bdr_timings, recovery)]
    cols = ["test", "timing", "period", "k", "licensees", "default_rate", "recovery", "tranche", "basis",
            "paid_in_full", "loss_fraction", "pv_loss_fraction", "interest_shortfall_amount", "largest_k_survived",
            "breakeven_default_rate", "bdr_upper"]
    frame = pd.concat(frames, ignore_index=True)
    for c in cols:
        if c not in frame:
            frame[c] = np.nan
    frame["recovery"] = frame["recovery"].astype(float)
    frame["period"] = frame["period"].astype("Int64")
    frame["k"] = frame["k"].astype("Int64")
    frame["largest_k_survived"] = frame["largest_k_survived"].astype("Int64")
    return frame[cols]
