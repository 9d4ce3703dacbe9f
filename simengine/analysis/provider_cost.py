"""What the credit enhancement costs its providers, and what is left for the originator.

Per path (enhanced basis, the run's own paths and weights): each provider kind's total draw
amount (from the kernels' per-tranche draw columns, the ``*_draw_amount`` of ``tranche_losses``)
and its present value at ``deal.discount_rate``; the residual paid to the originator and its
present value; and the equity IRR of the originator's position: it holds the most junior tranche
(or ``equity_tranche``), paying its balance at closing and receiving its interest and principal and
the residual each period. Timing comes from per-period ledgers re-simulated from the paths'
addresses, in blocks (memory stays bounded).

Statistics are weighted: mean (± standard error), quantiles 50/90/95/99/99.9% (batch-means
standard errors), P(> 0), and for draws P(drawn) in each year of the deal.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pandas as pd

from .._layout import (
    L_DRAW,
    L_RESIDUAL,
    LT_INTEREST_PAID,
    LT_PRINCIPAL_PAID,
    N_LEDGER_DEAL,
    N_LEDGER_TRANCHE,
    PROVIDER_KINDS,
    T_DRAW,
)
from ..engine import RunSpec, ledgers
from ..stats import batch_se, quantiles_at, weighted_mean_se, weighted_quantiles
from .crn import CommonRandomNumbers
from .drivers import AnalysisInputError

QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999)
LEDGER_BLOCK_VALUES = 4_000_000  # ledger values held at once (32 MB)


def irr_per_period(flows: np.ndarray) -> np.ndarray:
    """Per-period internal rate of return of each row of cash flows (flow t at the end of period t,
    flow 0 at closing), by bisection on the net present value.

    flows : ndarray(float64), shape (n, periods + 1)
    Returns ndarray(float64), shape (n,): NaN where the flows do not change sign (no IRR), -1 where
    nothing comes back. Rates are searched in (-0.99, 10) a period; NPV falls in the rate when the
    investment comes first, so the root is unique.
    """
    n, m = flows.shape
    t = np.arange(m, dtype=float)
    lo = np.full(n, -0.99)
    hi = np.full(n, 10.0)

    def npv(r):
        return (flows * (1.0 + r)[:, None] ** -t[None, :]).sum(axis=1)

    f_lo, f_hi = npv(lo), npv(hi)
    ok = (f_lo > 0) & (f_hi < 0)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        f = npv(mid)
        up = f > 0
        lo = np.where(up, mid, lo)
        hi = np.where(up, hi, mid)
    out = np.where(ok, 0.5 * (lo + hi), np.nan)
    nothing_back = (flows[:, 1:] <= 0).all(axis=1) & (flows[:, 0] < 0)
    return np.where(nothing_back, -1.0, out)


def _stats(item: str, x: np.ndarray, w: np.ndarray, pairs: bool, finite_only: bool = False) -> list[dict]:
    rows = []
    if finite_only:
        keep = np.isfinite(x)
        x, w = x[keep], w[keep]
        pairs = False
        rows.append({"item": item, "statistic": "share_defined", "year": None, "value": float(keep.mean()),
                     "se": math.nan})
        if len(x) == 0:
            return rows
    mean, se = weighted_mean_se(x, w, pairs)
    rows.append({"item": item, "statistic": "mean", "year": None, "value": mean, "se": se})
    qs = weighted_quantiles(x, w, QUANTILES)
    q_se = batch_se(partial(quantiles_at, levels=QUANTILES), (x, w), pairs=pairs)
    for level, q, s in zip(QUANTILES, qs, q_se):
        rows.append({"item": item, "statistic": f"q{str(level)[2:]:0<2}", "year": None, "value": q, "se": float(s)})
    p, p_se = weighted_mean_se((x > 0).astype(float), w, pairs)
    rows.append({"item": item, "statistic": "p_positive", "year": None, "value": p, "se": p_se})
    return rows


def provider_cost(spec: RunSpec, paths: int | None = None, equity_tranche: str | None = None) -> pd.DataFrame:
    """Draw amounts of each provider kind, the residual and the equity IRR (see the module docstring).

    Parameters
    ----------
    spec : RunSpec
        The prepared base run.
    paths : int, optional
        Paths (the first ones of the run; default the run's).
    equity_tranche : str, optional
        The originator's tranche (default: the most junior).

    Returns
    -------
    pandas.DataFrame
        Long: ``item`` (``<kind>_draw_amount``, ``<kind>_draw_pv_amount``, ``residual_amount``,
        ``residual_pv_amount``, ``equity_cash_amount``, ``equity_irr_annual``, and
        ``<kind>_drawn`` by year), ``statistic`` (mean, q50, q90, q95, q99, q999, p_positive,
        share_defined for the IRR, p_drawn for a year), ``year`` (1-based, for p_drawn), ``value``,
        ``se``, ``paths``, ``equity_tranche``.
    """
    plan = spec.plan
    names = list(plan.tranche_names)
    equity = equity_tranche or names[-1]
    if equity not in names:
        raise AnalysisInputError(f"equity tranche {equity!r}: expected one of {', '.join(names)}")
    e = names.index(equity)
    crn = CommonRandomNumbers(spec, paths if paths is not None else spec.paths)
    n = crn.paths
    w, *drawn = crn.keep(lambda out: (out.weights, *(out.tranche[:, 1, :, T_DRAW + j].sum(axis=1)
                                                      for j in range(len(PROVIDER_KINDS)))))
    draws = dict(zip(PROVIDER_KINDS, drawn))

    T = plan.periods
    ppy = plan.waterfall.periods_per_year
    df = plan.waterfall.discount_factor  # end of period t (t = 1..T)
    years = -(-np.arange(1, T + 1) // ppy)  # the 1-based year of each period
    n_years = int(years[-1])
    width = plan.ledger_width
    block = max(1, LEDGER_BLOCK_VALUES // (T * width))
    pv_draw = {kind: np.empty(n) for kind in PROVIDER_KINDS}
    drawn_year = {kind: np.zeros((n, n_years), bool) for kind in PROVIDER_KINDS}
    residual = np.empty(n)
    residual_pv = np.empty(n)
    flows = np.zeros((n, T + 1))
    flows[:, 0] = -plan.waterfall.tranche_balance[e]
    base_e = N_LEDGER_DEAL + e * N_LEDGER_TRANCHE
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        led, _ = ledgers(plan, spec.seed, np.arange(lo, hi, dtype=np.int64), spec.sampling)
        for j, kind in enumerate(PROVIDER_KINDS):
            d = led[:, :, L_DRAW + j]
            pv_draw[kind][lo:hi] = d @ df
            for y in range(n_years):
                drawn_year[kind][lo:hi, y] = (d[:, years == y + 1] > 0).any(axis=1)
        r = led[:, :, L_RESIDUAL]
        residual[lo:hi] = r.sum(axis=1)
        residual_pv[lo:hi] = r @ df
        flows[lo:hi, 1:] = r + led[:, :, base_e + LT_INTEREST_PAID] + led[:, :, base_e + LT_PRINCIPAL_PAID]
    irr = (1.0 + irr_per_period(flows)) ** ppy - 1.0

    pairs = crn.pairs
    rows = []
    for kind in PROVIDER_KINDS:
        rows += _stats(f"{kind}_draw_amount", draws[kind], w, pairs)
        rows += _stats(f"{kind}_draw_pv_amount", pv_draw[kind], w, pairs)
        for y in range(n_years):
            p, p_se = weighted_mean_se(drawn_year[kind][:, y].astype(float), w, pairs)
            rows.append({"item": f"{kind}_drawn", "statistic": "p_drawn", "year": y + 1, "value": p, "se": p_se})
    rows += _stats("residual_amount", residual, w, pairs)
    rows += _stats("residual_pv_amount", residual_pv, w, pairs)
    rows += _stats("equity_cash_amount", flows[:, 1:].sum(axis=1), w, pairs)
    rows += _stats("equity_irr_annual", irr, w, pairs, finite_only=True)
    table = pd.DataFrame(rows)
    table["year"] = table["year"].astype("Int64")
    table["paths"] = n
    table["equity_tranche"] = equity
    return table
