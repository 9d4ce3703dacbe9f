"""Obligor concentration and each licensee's contribution to every tranche's EL and tail.

Concentration is by scheduled royalty (what each licensee owes over the deal): HHI, effective
number of obligors (1/HHI), Gini, top-k shares.

Contributions are an Euler-style allocation: on each path the pool's shortfall (scheduled minus
collected royalties) is split among licensees by their own shortfall, and a tranche's loss on
that path is allocated in the same proportions, so that

    EL_k = sum_j E[L_k · s_j] + unallocated,   s_j = shortfall_j / shortfall (paths where it is > 0),

with ``unallocated`` the loss on paths where the pool collected at least its schedule (running
royalties above plan). A licensee's collections on a path are measured by re-running the path with
every other licence's royalty set to zero (defaults, recoveries and invalidations are addressed
per licensee and licence, so they do not move): one run per licensee listed (the largest ``top``
by scheduled royalty), the rest together as ``others`` (the pool minus those listed). With fixed
royalties every shortfall is >= 0, so every contribution is. The tail (ES) contribution at level
α allocates ES_α = E[L_k | the worst 1 - α of paths] the same way (the atom at VaR split, as in
:func:`simengine.stats.weighted_quantile_es`), with batch-means standard errors.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .._layout import P_COLLECTIONS, T_LOSS
from ..engine import RunSpec
from ..plan import Plan
from ..plan.pool import largest_licensees
from ..stats import batch_se, stable_order
from .crn import BASES, CommonRandomNumbers
from .drivers import AnalysisInputError

OTHERS, UNALLOCATED = "others", "unallocated"


def licensee_scheduled(plan: Plan) -> np.ndarray:
    """Scheduled royalties over the deal per licensee, ndarray(float64), shape (licensees,)."""
    pp = plan.pool
    return np.bincount(pp.licence_licensee, weights=pp.licence_scheduled_amount, minlength=len(plan.licensee_names))


def concentration(plan: Plan) -> pd.DataFrame:
    """One row: licensees, HHI, effective number (1/HHI), Gini and top-1/3/5/10 shares of the pool
    by scheduled royalty, and the largest licensee with its share."""
    amounts = licensee_scheduled(plan)
    share = amounts / amounts.sum()
    ordered = np.sort(share)[::-1]
    n = len(share)
    asc = np.sort(amounts)
    # Gini of the amounts: 1 - 2 * (area under the Lorenz curve), 0 for equal licensees
    gini = float((2.0 * np.arange(1, n + 1) - n - 1) @ asc / (n * asc.sum())) if n > 1 else 0.0
    hhi = float((share * share).sum())
    top = largest_licensees(amounts)[0]
    row = {"licensees": n, "hhi": hhi, "effective_number": 1.0 / hhi, "gini": gini,
           "largest_licensee": plan.licensee_names[top], "largest_share": float(share[top])}
    for k in (1, 3, 5, 10):
        row[f"top{k}_share"] = float(ordered[:k].sum())
    return pd.DataFrame([row])


def only_licensee(plan: Plan, licensee: int) -> Plan:
    """``plan`` with every royalty of other licensees set to zero."""
    pp = plan.pool
    mine = pp.licence_licensee == licensee
    return dataclasses.replace(plan, pool=pp._replace(licence_royalty=np.where(mine, pp.licence_royalty, 0.0)))


def _es_contributions(loss: np.ndarray, w: np.ndarray, shares: np.ndarray, level: float) -> np.ndarray:
    """ES at ``level`` of ``loss`` and its allocation by ``shares`` (paths, m); returns (m + 1,): ES first."""
    order = stable_order(loss)
    x = loss[order]
    wn = w[order] / w.sum()
    cdf = np.cumsum(wn)
    i = min(int(np.searchsorted(cdf, level - 1e-12, side="left")), len(x) - 1)
    var = x[i]
    tail = 1.0 - level
    above = x > var
    at = x == var
    mass_above = wn[above].sum()
    mass_at = wn[at].sum()
    frac = max(tail - mass_above, 0.0) / mass_at if mass_at > 0 else 0.0
    tw = wn * (above + frac * at)  # tail weight of each path
    s = shares[order]
    es = float((tw * x).sum() / tail)
    return np.concatenate([[es], (tw * x) @ s / tail])


def contributions(spec: RunSpec, paths: int | None = None, top: int = 20, level: float = 0.99) -> pd.DataFrame:
    """Each licensee's contribution to each tranche's EL and ES (see the module docstring).

    Parameters
    ----------
    spec : RunSpec
        The prepared base run.
    paths : int, optional
        Paths re-run (the first ones; default the run's).
    top : int
        Licensees listed one by one (largest by scheduled royalty); the rest are ``others``.
    level : float
        ES level of the tail contributions.

    Returns
    -------
    pandas.DataFrame
        One row per (tranche, basis, licensee), ``others`` and ``unallocated`` included:
        ``royalty_share``, ``royalty_rank``, the tranche's ``el`` (± ``el_se``) and ``es``,
        ``el_contribution`` (± se), ``el_contribution_share`` (of the EL), ``es_contribution`` (± se),
        ``contribution_rank`` (1 = the largest EL contribution of the tranche and basis), ``paths``.
        Contributions of a tranche and basis sum to its EL (and ES) up to rounding.
    """
    if not 0.0 < level < 1.0:
        raise AnalysisInputError(f"level {level!r}: expected a probability in (0, 1)")
    crn = CommonRandomNumbers(spec, paths if paths is not None else spec.paths)
    plan = spec.plan
    amounts = licensee_scheduled(plan)
    order = largest_licensees(amounts)
    listed = [int(i) for i in order[:max(0, int(top))]]
    w, collected, losses = crn.keep(lambda out: (out.weights, out.pool[:, P_COLLECTIONS], out.tranche[:, :, :, T_LOSS]))
    total = plan.pool.scheduled_total
    tiny = 1e-12 * max(total, 1.0)
    pool_short = total - collected
    short = np.empty((crn.paths, len(listed)))
    for c, j in enumerate(listed):
        alone, = crn.keep(lambda out: (out.pool[:, P_COLLECTIONS],), plan=only_licensee(plan, j))
        short[:, c] = amounts[j] - alone
    short[np.abs(short) <= tiny] = 0.0  # a licensee that paid in full: rounding of its sum over periods
    rest = pool_short - short.sum(axis=1)
    rest[np.abs(rest) <= tiny] = 0.0
    has = pool_short > tiny
    m = len(listed)
    shares = np.zeros((crn.paths, m + 2))  # listed licensees, others, unallocated
    shares[has, :m] = short[has] / pool_short[has, None]
    shares[has, m] = rest[has] / pool_short[has]
    shares[~has, m + 1] = 1.0
    names = [plan.licensee_names[j] for j in listed] + [OTHERS, UNALLOCATED]
    royalty = [amounts[j] / amounts.sum() for j in listed] + [1.0 - amounts[listed].sum() / amounts.sum(), 0.0]
    ranks = list(range(1, len(listed) + 1)) + [None, None]
    rows = []
    for k, tranche in enumerate(plan.tranche_names):
        for b, basis in BASES:
            loss = losses[:, b, k]
            el, el_se = crn.mean_se(w * loss)
            es_all = _es_contributions(loss, w, shares, level)
            es_se = batch_se(lambda ll, ww, ss: _es_contributions(ll, ww, ss, level), (loss, w, shares),
                             pairs=crn.pairs)
            frame = []
            for c, name in enumerate(names):
                contrib, contrib_se = crn.mean_se(w * loss * shares[:, c])
                frame.append({"tranche": tranche, "basis": basis, "licensee": name, "royalty_rank": ranks[c],
                              "royalty_share": royalty[c], "el": el, "el_se": el_se,
                              "el_contribution": contrib, "el_contribution_se": contrib_se,
                              "el_contribution_share": contrib / el if el > 0 else np.nan,
                              "es_level": level, "es": es_all[0], "es_contribution": es_all[1 + c],
                              "es_contribution_se": es_se[1 + c], "paths": crn.paths})
            by_size = sorted(range(len(frame)), key=lambda i: -frame[i]["el_contribution"])
            for r, i in enumerate(by_size):
                frame[i]["contribution_rank"] = r + 1
            rows += frame
    out = pd.DataFrame(rows)
    out["royalty_rank"] = out["royalty_rank"].astype("Int64")
    return out


def top_contributors(table: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """The ``n`` largest EL contributors of each tranche and basis (``others`` and ``unallocated`` left out)."""
    named = table[~table["licensee"].isin([OTHERS, UNALLOCATED])]
    return (named.sort_values(["tranche", "basis", "el_contribution"], ascending=[True, True, False])
            .groupby(["tranche", "basis"], sort=False).head(n))
