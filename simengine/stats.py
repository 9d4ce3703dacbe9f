"""Weighted Monte Carlo statistics (weights are likelihood ratios; all ones for plain MC)."""

from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

Z95 = 1.959963984540054  # two-sided 95%


def weighted_mean_se(values: np.ndarray, weights: np.ndarray, pairs: bool = False):
    """Mean of w·x over n paths (an unbiased estimator of E[x]) and its standard error.

    values : ndarray(float64), shape (n,), or (m, n) for m means at once (each row reduced along
        its own contiguous axis: the bits of the one-row call)
    weights : ndarray(float64), shape (n,)
    pairs : paths 2m and 2m+1 are antithetic (dependent): the error is that of the n/2 pair means.
    Returns (mean, se): floats, or ndarray(float64) of shape (m,) each.
    """
    values = np.asarray(values)
    unit = values.dtype == np.float64 and unit_weights(weights)  # then w·x is x, bit for bit
    wx = np.ascontiguousarray(values if unit else values * weights)
    mean = wx.mean(axis=-1, keepdims=True)  # the bits of wx.mean(axis=-1) and of std's own mean
    paired = pairs and wx.shape[-1] % 2 == 0
    if paired:
        wx = 0.5 * (wx[..., 0::2] + wx[..., 1::2])
    m = wx.shape[-1]
    if m > 1:  # std's own first pass is the mean already taken (unless the pair means replaced wx)
        se = wx.std(axis=-1, ddof=1, **({} if paired else {"mean": mean})) / math.sqrt(m)
    else:
        se = np.full(wx.shape[:-1], math.nan)
    mean = mean[..., 0]
    return (float(mean), float(se)) if wx.ndim == 1 else (mean, se)


def weighted_means(columns: list, weights: np.ndarray, pairs: bool = False, threads: int = 1) -> list[tuple]:
    """:func:`weighted_mean_se` of each column (converted to float64 first), the same bits, on up
    to ``threads`` threads: numpy's loops release the GIL, and a few dozen columns of millions of
    paths are memory-bound passes. Pass views (``matrix[:, k]``): each is copied in its own thread.

    columns : list of ndarray, each shape (n,);  returns [(mean, se), ...] in the columns' order
    """
    def one(x):
        return weighted_mean_se(np.asarray(x, dtype=np.float64), weights, pairs)

    if threads <= 1 or len(columns) < 2:
        return [one(x) for x in columns]
    with ThreadPoolExecutor(min(threads, len(columns))) as pool:
        return list(pool.map(one, columns))


def normal_ppf(q):
    """``scipy.stats.norm.ppf(q)``, the same bits, without importing ``scipy.stats`` (about 0.5 s of every
    start): ``ndtri`` inside (0, 1), the bounds and NaN as SciPy's wrapper sets them
    (:func:`_scipy_bounds`); its location 0 and scale 1 change no bits. q : float or ndarray(float64)."""
    from scipy import special

    return _scipy_bounds(q, special.ndtri(q))


def t_ppf(q, dof: float):
    """``scipy.stats.t(dof).ppf(q)``, the same bits, without importing ``scipy.stats``: Student-t
    quantiles with ``dof`` degrees of freedom from ``stdtrit``, as in :func:`normal_ppf`."""
    from scipy import special

    return _scipy_bounds(q, special.stdtrit(dof, q))


def _scipy_bounds(q, x):
    """``x`` as SciPy's wrapper finishes a quantile: -inf at q = 0 and inf at q = 1 (``stdtrit``
    gives inf at 0), and its positive NaN for q outside [0, 1] or NaN."""
    x = np.where(q == 0.0, -np.inf, np.where(q == 1.0, np.inf, x))
    return np.where((q >= 0.0) & (q <= 1.0), x, np.nan)[()]


def unit_weights(weights: np.ndarray) -> bool:
    """Whether every weight is exactly 1 (plain or antithetic sampling, not importance sampling).

    Then w·x is x bit for bit, and the weighted CDF of n sorted paths is (i + 1) / n exactly (a
    running sum of ones over their sum, both exact below 2^53), so the helpers here can skip the
    products, the gathers and the running sums and still return the same bits.
    """
    return weights.shape[0] > 0 and bool((weights == 1.0).all())


def variance_reduction(values: np.ndarray, weights: np.ndarray, se: float) -> float:
    """Plain Monte Carlo's variance over this run's, both for n paths.

    The plain variance Var[x] = E[x^2] - E[x]^2 under the scenario's own measure is estimated
    from the same weighted paths (with the n / (n - 1) correction, so a plain run gives exactly
    its own sample variance: a factor of 1), so no separate plain run is needed.
    """
    n = values.shape[0]
    if n < 2 or not se > 0:
        return math.nan
    mean = float((weights * values).mean())
    plain = (float((weights * values * values).mean()) - mean * mean) * n / (n - 1)
    return plain / n / (se * se)


def kish_ess(weights: np.ndarray) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2: n for equal weights."""
    return float(weights.sum() ** 2 / (weights * weights).sum())


BATCHES = 20


def batch_se(statistic, arrays: tuple, batches: int = BATCHES, pairs: bool = False,
             order: np.ndarray | None = None) -> np.ndarray:
    """Standard error by batch means of a statistic that is not a plain mean (quantiles, ratios).

    ``statistic(*arrays_of_one_batch)`` returns a 1-d array; the paths are cut into ``batches``
    contiguous batches (whole antithetic pairs), and the error of the full-sample statistic is
    taken as std(batch statistics) / sqrt(batches). Returns NaN where fewer than 2 batches fit.

    ``order``: the stable argsort of the full sample's sort key (ndarray(int64), shape (n,)), for a
    statistic that sorts; each batch's own stable order is then cut from it in O(n)
    (:func:`batch_orders`) instead of sorted again, and passed as ``statistic(..., order=...)``.
    """
    n = arrays[0].shape[0]
    step = 2 if pairs else 1
    size = (n // batches) // step * step
    if size < step or batches < 2:
        extra = {} if order is None else {"order": order}
        return np.full(len(np.atleast_1d(statistic(*arrays, **extra))), math.nan)
    orders = batch_orders(order, size, batches) if order is not None else None
    values = []
    for b in range(batches):
        extra = {} if order is None else {"order": orders[b]}
        values.append(statistic(*(a[b * size:(b + 1) * size] for a in arrays), **extra))
    return np.array(values).std(axis=0, ddof=1) / math.sqrt(batches)


def batch_orders(order: np.ndarray, size: int, batches: int) -> list[np.ndarray]:
    """The stable argsort of each batch ``x[b * size:(b + 1) * size]`` cut from ``order``, the
    stable argsort of ``x``: ndarray(int64) each, shape (size,).

    A stable sort orders by (value, index); keeping the indices of one batch keeps that order, so
    each equals ``np.argsort(x[lo:hi], kind="stable")`` exactly (NaN last in both). One stable sort
    by batch number (a radix sort of small integers) groups them all in a few passes over ``order``.
    """
    batch = order // size
    np.minimum(batch, batches, out=batch)  # paths past the last whole batch: one group, dropped
    batch = batch.astype(np.uint8 if batches < 255 else np.int64)
    grouped = order[np.argsort(batch, kind="stable")]
    ends = np.cumsum(np.bincount(batch, minlength=batches + 1))
    return [grouped[(ends[b - 1] if b else 0):ends[b]] - b * size for b in range(batches)]


def wilson(p: float, n_eff: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion estimated from ``n_eff`` (effective) trials."""
    if not n_eff > 0:
        return math.nan, math.nan
    denom = 1.0 + z * z / n_eff
    centre = (p + z * z / (2 * n_eff)) / denom
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n_eff + z * z / (4 * n_eff * n_eff)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def upper_bound_no_events(n_eff: float, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound on a probability when none of ``n_eff`` (effective) trials
    had the event: Clopper-Pearson's ``1 - (1 - confidence)^(1 / n_eff)``, about ``3 / n_eff`` at
    95% (the rule of three). NaN without a positive sample size.
    """
    if not n_eff > 0:
        return math.nan
    return -math.expm1(math.log1p(-confidence) / n_eff)


def stable_order(values: np.ndarray) -> np.ndarray:
    """``np.argsort(values, kind="stable")``, exactly: the one sort the quantile helpers share.

    values : ndarray, shape (n,);  returns ndarray(int64), shape (n,)
    A stable sort orders by (value, index), 0.0 and -0.0 being equal and NaN last. Where most
    values are zero (a tranche that rarely loses) only the others are sorted: the indices below
    zero sorted, then every zero in index order, then the indices above zero sorted, then NaN.
    """
    values = np.asarray(values)
    if values.ndim != 1 or values.dtype.kind != "f" or values.shape[0] < 1024:
        return np.argsort(values, kind="stable")
    zero = values == 0.0
    if np.count_nonzero(zero) * 4 < values.shape[0]:  # mostly non-zero: one sort is cheaper
        return np.argsort(values, kind="stable")
    below = np.flatnonzero(values < 0.0)
    above = np.flatnonzero(values > 0.0)
    return np.concatenate([below[np.argsort(values[below], kind="stable")], np.flatnonzero(zero),
                           above[np.argsort(values[above], kind="stable")], np.flatnonzero(np.isnan(values))])


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, levels, order: np.ndarray | None = None) -> list[float]:
    """Weighted quantiles inf{x : F(x) >= a} at each level a (a 1e-12 tolerance on F).

    values, weights : ndarray(float64), shape (n,)
    order : ndarray(int64), shape (n,), optional: :func:`stable_order` of ``values`` if already known
    """
    order = stable_order(values) if order is None else order
    n = values.shape[0]
    if unit_weights(weights):  # cdf[i] = (i + 1) / n: searched without building it or gathering values
        return [float(values[order[min(_unit_cdf_search(n, a - 1e-12), n - 1)]]) for a in levels]
    cdf = np.cumsum(weights[order]) / weights.sum()
    x = values[order]
    return [float(x[min(int(np.searchsorted(cdf, a - 1e-12)), len(x) - 1)]) for a in levels]


def _unit_cdf_search(n: int, target: float) -> int:
    """``np.searchsorted(cdf, target)`` for the unit-weight CDF ``cdf[i] = (i + 1) / n`` (float64,
    correctly rounded as numpy divides the exact running sum by the exact total): the first i
    with cdf[i] >= target, else n; a bisection on the same rounded quotients."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if float(mid + 1) / float(n) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


@functools.lru_cache(maxsize=4)
def _unit_share_cdf(n: int) -> np.ndarray:
    """``np.cumsum`` of n copies of 1 / n: the CDF :func:`weighted_quantile_es` accumulates from unit
    weights (a running sum of the rounded share, so not (i + 1) / n); one per sample size, read-only."""
    cdf = np.cumsum(np.full(n, 1.0 / float(n)))
    cdf.flags.writeable = False
    return cdf


def _first_true(predicate, lo: int, hi: int) -> int:
    """The first i in [lo, hi) where the monotone (False then True) ``predicate(i)`` holds, else hi."""
    while lo < hi:
        mid = (lo + hi) // 2
        if predicate(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def weighted_quantiles_columns(values: np.ndarray, weights: np.ndarray, levels) -> np.ndarray:
    """:func:`weighted_quantiles` of every column of ``values`` at once, the same bits.

    values : ndarray(float64), shape (n, m);  weights : ndarray(float64), shape (n,)
    Returns ndarray(float64), shape (len(levels), m).
    """
    return weighted_quantiles_rows(np.ascontiguousarray(values.T), weights, levels)


def weighted_quantiles_rows(rows: np.ndarray, weights: np.ndarray, levels) -> np.ndarray:
    """:func:`weighted_quantiles` of every row of ``rows`` at once, the same bits.

    With equal weights (plain or antithetic sampling) every row's weighted CDF is the same, so each
    quantile is one order statistic: a partition (O(n)) finds it instead of a sort; its value is
    unique, so the bits are the sort's (rows holding -0.0, which sorts equal to 0.0 but has other
    bits, are sorted as before).

    rows : ndarray(float64), shape (m, n), C-contiguous;  weights : ndarray(float64), shape (n,)
    Returns ndarray(float64), shape (len(levels), m).
    """
    m, n = rows.shape
    out = np.empty((len(levels), m))
    bits = rows.view(np.int64)
    constant = (bits == bits[:, :1]).all(axis=1)  # the same bits throughout (a ledger item often is)
    out[:, constant] = rows[constant, 0]  # every quantile of a constant is that constant, bit for bit
    varying = np.flatnonzero(~constant)
    targets = np.asarray(levels, dtype=float) - 1e-12  # the same subtraction as the one-column helper
    if varying.size and (weights.view(np.int64) == weights.view(np.int64)[0]).all():
        cdf = np.cumsum(np.full(n, weights[0])) / weights.sum()  # = cumsum(weights[order]), any order
        ks = np.minimum(np.searchsorted(cdf, targets), n - 1)
        sub = rows[varying]
        signed_zero = ((sub == 0.0) & np.signbit(sub)).any(axis=1)
        picked = np.partition(sub[~signed_zero], ks, axis=1)[:, ks]
        out[:, varying[~signed_zero]] = picked.T
        varying = varying[signed_zero]
    if varying.size:
        sub = rows[varying]
        order = np.argsort(sub, axis=1, kind="stable")
        cdf = np.cumsum(weights[order], axis=1) / weights.sum()  # an accumulation in path order, as in 1-d
        x = np.take_along_axis(sub, order, axis=1)
        for i, j in enumerate(varying):
            out[:, j] = x[i, np.minimum(np.searchsorted(cdf[i], targets), n - 1)]
    return out


def weighted_quantile_es(values: np.ndarray, weights: np.ndarray, levels,
                         order: np.ndarray | None = None) -> list[tuple[float, float]]:
    """(VaR, ES) at each level for the weighted empirical distribution.

    VaR_a = inf{x : F(x) >= a}; ES_a = E[L | tail of mass 1 - a], splitting the atom at VaR
    (Acerbi & Tasche 2002), so ES >= VaR always and ES = VaR when the tail is one point.
    ``order``: :func:`stable_order` of ``values`` if already known.
    """
    order = stable_order(values) if order is None else order
    if unit_weights(weights):
        return _unit_quantile_es(values, levels, order)
    x = values[order]
    w = weights[order] / weights.sum()
    cdf = np.cumsum(w)
    out = []
    for a in levels:
        i = int(np.searchsorted(cdf, a - 1e-12, side="left"))
        i = min(i, len(x) - 1)
        var = float(x[i])
        tail_mass = 1.0 - a
        above = x > var
        beyond = float((w[above] * x[above]).sum())
        mass_above = float(w[above].sum())
        es = (beyond + var * max(tail_mass - mass_above, 0.0)) / tail_mass if tail_mass > 0 else var
        out.append((var, es))
    return out


def _unit_quantile_es(values: np.ndarray, levels, order: np.ndarray) -> list[tuple[float, float]]:
    """:func:`weighted_quantile_es` with unit weights, the same bits, gathering only the tail.

    Every weight share is 1 / n; the sorted values above VaR are one run of positions (NaN sorts
    last and is above nothing), found by bisection, and they are summed in the same order as
    the general helper sums them.
    """
    n = values.shape[0]
    share = 1.0 / float(n)
    cdf = _unit_share_cdf(n)
    nan_from = _first_true(lambda p: bool(np.isnan(values[order[p]])), 0, n)
    out = []
    for a in levels:
        i = min(int(np.searchsorted(cdf, a - 1e-12, side="left")), n - 1)
        var = float(values[order[i]])
        lo = nan_from if i >= nan_from else _first_true(lambda p, v=var: bool(values[order[p]] > v), i + 1, nan_from)
        w = np.full(nan_from - lo, share)
        tail_mass = 1.0 - a
        beyond = float((w * values[order[lo:nan_from]]).sum())
        mass_above = float(w.sum())
        es = (beyond + var * max(tail_mass - mass_above, 0.0)) / tail_mass if tail_mass > 0 else var
        out.append((var, es))
    return out


def exceedance_at(values: np.ndarray, weights: np.ndarray, x: np.ndarray,
                  order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted P(L > x) at the given points with its standard error: (probability, se).

    values, weights : ndarray(float64), shape (n,);  x : ndarray(float64), shape (m,)
    order : :func:`stable_order` of ``values`` if already known
    """
    n = values.shape[0]
    order = stable_order(values) if order is None else order
    v = values[order]
    first_above = np.searchsorted(v, x, side="right")
    if unit_weights(weights):  # the running sums of ones from the top are exact: n - i
        tail = (n - first_above).astype(np.float64)
        prob = tail / n
        se = np.sqrt(np.maximum(tail / n - prob * prob, 0.0) / max(n - 1, 1))
        return prob, se
    w = weights[order]
    tail_w = np.concatenate([np.cumsum(w[::-1])[::-1], [0.0]])
    tail_w2 = np.concatenate([np.cumsum((w * w)[::-1])[::-1], [0.0]])
    prob = tail_w[first_above] / n
    second = tail_w2[first_above] / n
    se = np.sqrt(np.maximum(second - prob * prob, 0.0) / max(n - 1, 1))
    return prob, se


CURVE_POINTS = 1001


def _unique_sorted(v: np.ndarray) -> np.ndarray:
    """``np.unique(v)`` of an already sorted ``v``, without sorting it again.

    Where -0.0 and 0.0 both occur, which of the two ``np.unique`` keeps depends on its own sort:
    that rare case is left to ``np.unique`` itself, so the result is always the same bits.
    """
    zeros = v == 0
    if v.shape[0] == 0 or (zeros.any() and np.signbit(v[zeros]).any()):
        return np.unique(v)
    keep = np.empty(v.shape[0], dtype=bool)
    keep[0] = True
    np.not_equal(v[1:], v[:-1], out=keep[1:])
    if np.isnan(v[-1]):  # NaN != NaN and NaNs sort last: np.unique keeps the first of them only
        keep[int(np.argmax(np.isnan(v))) + 1:] = False
    return v[keep]


def exceedance(values: np.ndarray, weights: np.ndarray,
               order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted exceedance curve P(L > x) with its standard error, for tables and plots.

    At the distinct values x while there are at most ``CURVE_POINTS`` of them (the exact step
    corners), else on ``CURVE_POINTS`` equally spaced x over [0, max]: a million paths of
    continuous losses would otherwise make a million-row curve per tranche.
    ``order``: :func:`stable_order` of ``values`` if already known (then no sort is repeated).
    Returns (x, probability, standard error), each ndarray(float64) of the same length.
    """
    order = stable_order(values) if order is None else order
    x = _unique_sorted(values[order])
    if len(x) > CURVE_POINTS:
        x = np.linspace(min(0.0, float(x[0])), float(x[-1]), CURVE_POINTS)
    prob, se = exceedance_at(values, weights, x, order)
    return x, prob, se


# below ~10 effective observations a weighted mean's own standard error is off by more than
# 1/sqrt(2 x 10) = 22% even for normal data, and heavy-tailed likelihood ratios make it worse
MIN_EFFECTIVE_HITS = 10
WEIGHT_MEAN_Z = 4.0  # |mean weight - 1| beyond this many standard errors: the measure is off


def effective_hits(event: np.ndarray, weights: np.ndarray) -> tuple[int, float]:
    """(paths where ``event`` happened, Kish effective number of them, (sum w)^2 / sum w^2).

    event : ndarray(bool), shape (n,);  weights : ndarray(float64), shape (n,)
    With equal weights the two are equal; a handful of heavy weights makes the second small.
    """
    w = weights[event]
    hits = int(w.shape[0])
    return hits, (float(w.sum() ** 2 / (w * w).sum()) if hits and (w * w).sum() > 0 else 0.0)


def event_sampling_ok(hits: int, ess: float) -> tuple[bool, str]:
    """Whether an event's probability estimate rests on enough effectively distinct paths.

    Unreliable when fewer than ``MIN_EFFECTIVE_HITS`` effective hits carry it *and* the weights
    made them fewer than half the hits: plain Monte Carlo with few hits is honest (its interval
    says how wide), a few heavy likelihood ratios are not (their standard error is itself wrong).
    """
    if hits and ess < MIN_EFFECTIVE_HITS and ess < 0.5 * hits:
        return False, (f"{hits} paths lose, but their weights make them {ess:.3g} effective paths "
                       f"(fewer than {MIN_EFFECTIVE_HITS}): the sampling measure is too far from this tranche's loss")
    return True, ""


def _ratio(num: np.ndarray, den: np.ndarray) -> float:
    d = den.sum()
    return float(num.sum() / d) if d > 0 else math.nan


def tail_statistics(loss: np.ndarray, w: np.ndarray, defaulted: np.ndarray, wal: np.ndarray,
                    order: np.ndarray | None = None, *, levels) -> np.ndarray:
    """A tranche's statistics that are not plain means (their errors come from batch means,
    :func:`batch_se`): LGD, WAL, median loss, then VaR and ES at each of ``levels``.

    loss, w, defaulted, wal : ndarray(float64), shape (n,);  order : :func:`stable_order` of
    ``loss`` if known (one sort serves the median and the tail). Returns ndarray(float64), shape
    (3 + 2 len(levels),).
    """
    order = stable_order(loss) if order is None else order
    if unit_weights(w) and all(a.dtype == np.float64 for a in (loss, defaulted, wal)):  # w·x is x, bit for bit
        ratios = [_ratio(loss, defaulted), _ratio(wal, w)]
    else:
        ratios = [_ratio(w * loss, w * defaulted), _ratio(w * wal, w)]
    return np.array(ratios + [weighted_quantiles(loss, w, [0.5], order)[0]]
                    + [v for pair in weighted_quantile_es(loss, w, levels, order) for v in pair])


def quantiles_at(x: np.ndarray, w: np.ndarray, order: np.ndarray | None = None, *, levels) -> np.ndarray:
    """:func:`weighted_quantiles` at ``levels`` as an array: a statistic for :func:`batch_se`."""
    return np.array(weighted_quantiles(x, w, levels, order))


def worst_path(*keys: np.ndarray) -> int:
    """The first path of ``np.lexsort((paths, -keys[-1], ..., -keys[0]))`` in O(paths): the largest
    first key, ties broken by the next keys (largest first) and then by the lower path. NaN sorts
    last, as in the sort: a key that is NaN on every remaining path ties them all.

    keys : ndarray(float64), each shape (paths,)
    """
    rows = np.arange(keys[0].shape[0])
    for key in keys:
        v = key[rows]
        if not np.isnan(v).all():
            rows = rows[v == np.nanmax(v)]
    return int(rows[0])
