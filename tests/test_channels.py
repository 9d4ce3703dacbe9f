"""Licence risk channels (issue 6): obsolescence and demand move default hazards (fixed royalties)
or the royalty itself (running royalties).

Statistical checks use independent licensees (no factor), so the pool's cumulative default
fraction per period has mean 1 - exp(-H(p)) with H the analytic cumulative hazard, and the
standard error follows from the per-path spread; each test allows ``z_tol`` standard errors
at a family-wise false-alarm rate of 1e-3 over its periods.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

import simengine as se
from simengine._layout import L_COLLECTIONS, P_OBSOLETE
from simengine.engine import ledgers, run_chunk
from simengine.plan import compile_plan

T, PPY, PD, COUNT, PATHS = 12, 4, 0.10, 2_000, 400
LAMBDA = -math.log1p(-PD)
DT = 1.0 / PPY


def pool(**risk) -> dict:
    base_risk = {"default": {"relicense_haircut": 1.0}, "correlation": {"global": 0.0},
                 "obsolescence": {"enabled": False}, "demand": {"enabled": False}, "legal": {"enabled": False}}
    for key, value in risk.items():
        base_risk[key] = value
    return {
        "deal": {"name": "channels", "periods_per_year": PPY, "term_years": T / PPY},
        "pool": {"generate": {"count": COUNT, "royalty": 1.0, "pd_annual": PD, "technology": "tech",
                              "industry": "ind"}},
        "risk": base_risk,
        "structure": {"tranches": [{"name": "notes", "balance": 1_000.0}]},
    }


def z_tol(comparisons: int) -> float:
    return float(stats.norm.isf(1e-3 / (2 * comparisons)))


def check_cumulative_defaults(d: dict, hazard_per_period: np.ndarray) -> None:
    res = se.simulate(se.Scenario.from_dict(d), paths=PATHS, seed=7, progress=False)
    cum = np.stack(res.pool_paths["cumulative_default_fraction"].to_numpy())  # (paths, periods)
    want = 1.0 - np.exp(-np.cumsum(hazard_per_period))
    got = cum.mean(axis=0)
    se_ = cum.std(axis=0, ddof=1) / math.sqrt(PATHS)
    z = np.abs(got - want) / se_
    assert z.max() < z_tol(T), (z.round(2), got, want)


def test_multipliers_at_one_reproduce_the_static_copula_bit_for_bit():
    static = pool(correlation={"global": 0.2, "industry": 0.1})
    busy = pool(correlation={"global": 0.2, "industry": 0.1},
                obsolescence={"hazard_annual": 0.4, "severity": 0.7, "hazard_multiplier_after_obsolescence": 1.0},
                demand={"volatility_annual": 0.4, "global_loading": 0.6, "demand_hazard_elasticity": 0.0})
    a = run_chunk(compile_plan(se.Scenario.from_dict(static)), 3, 0, 300)
    b = run_chunk(compile_plan(se.Scenario.from_dict(busy)), 3, 0, 300)
    assert np.array_equal(a.cum_default, b.cum_default)
    assert np.array_equal(a.tranche, b.tranche)  # fixed royalties: same cash, same losses
    assert b.pool[:, P_OBSOLETE].sum() > 0  # obsolescence did happen on these paths


def test_certain_obsolescence_multiplies_the_hazard_from_its_period_on():
    k, mult = 5, 3.0
    d = pool(obsolescence={"hazard_multiplier_after_obsolescence": mult, "technologies": {"tech": {"period": k}}})
    h = np.full(T, LAMBDA * DT)
    h[k - 1:] *= mult  # period k (1-based) is the first with the multiplier
    check_cumulative_defaults(d, h)
    # and none before: up to period k-1 the pool matches the plain hazard exactly in distribution
    plain = run_chunk(compile_plan(se.Scenario.from_dict(pool())), 7, 0, 200).cum_default
    stressed = run_chunk(compile_plan(se.Scenario.from_dict(d)), 7, 0, 200).cum_default
    assert np.array_equal(plain[:, :k - 1], stressed[:, :k - 1])
    assert (stressed[:, k - 1:] >= plain[:, k - 1:]).all() and (stressed[:, -1] > plain[:, -1]).any()


def test_demand_elasticity_shifts_the_hazard_analytically():
    """No volatility: log-demand follows the shock exactly, x_p = -0.2 * dt * min(p + 1, 8), and the
    hazard in period p is lambda * dt * exp(-eps * x_p)."""
    eps = 2.0
    d = pool(demand={"volatility_annual": 0.0, "shock_drift_annual": -0.2, "shock_years": 2.0,
                     "demand_hazard_elasticity": eps})
    x = -0.2 * DT * np.minimum(np.arange(1, T + 1), 8)
    check_cumulative_defaults(d, LAMBDA * DT * np.exp(-eps * x))


def test_demand_volatility_alone_leaves_the_expected_hazard_unchanged():
    """With volatility the hazard is random; its multiplier is normalised to mean one, so
    E[H(p)] = lambda * dt * (p + 1). The default fraction is then 1 - E[exp(-H)] (not
    1 - exp(-E[H]): Jensen), computed here by an independent NumPy simulation of the same
    log-demand recursion with 200,000 draws (its error is negligible next to the engine's)."""
    eps, vol = 1.5, 0.5
    d = pool(demand={"volatility_annual": vol, "global_loading": 0.0, "demand_hazard_elasticity": eps})
    plan = compile_plan(se.Scenario.from_dict(d))
    rng = np.random.default_rng(123)
    n = 200_000
    x = np.zeros(n)
    clock = np.zeros((n, T))
    acc = np.zeros(n)
    multipliers = np.zeros((n, T))
    for t in range(T):
        x = x - 0.5 * vol * vol * DT + vol * math.sqrt(DT) * rng.standard_normal(n)
        multipliers[:, t] = np.exp(plan.pool.demand_hazard_adjust[0, t] - eps * x)
        acc = acc + DT * multipliers[:, t]
        clock[:, t] = acc
    # the normaliser: E[multiplier] = 1 in every period
    m_se = multipliers.std(axis=0) / math.sqrt(n)
    assert (np.abs(multipliers.mean(axis=0) - 1) < z_tol(T) * m_se).all()
    reference = 1.0 - np.exp(-LAMBDA * clock).mean(axis=0)
    h = np.diff(np.concatenate([[0.0], -np.log1p(-reference)]))
    check_cumulative_defaults(d, h)


def _collections(d: dict, paths: int = 16) -> np.ndarray:
    sc = se.Scenario.from_dict(d)
    led, _ = ledgers(compile_plan(sc), 1, np.arange(paths))
    return led[:, :, L_COLLECTIONS]


def test_fixed_royalties_ignore_demand_and_obsolescence_running_ones_follow():
    risk = dict(default={"enabled": False},
                obsolescence={"severity": 0.6, "technologies": {"tech": {"period": 4}}},
                demand={"volatility_annual": 0.0, "drift_annual": 0.3})
    fixed = pool(**risk)
    fixed["pool"]["generate"]["count"] = 3
    np.testing.assert_array_equal(_collections(fixed), 3.0)
    running = pool(**risk)
    running["pool"]["generate"].update(count=3, royalty_type="running", minimum_royalty=0.5)
    t = np.arange(1, T + 1)
    level = np.exp(0.3 * DT * t) * np.where(t >= 4, 0.4, 1.0)  # drift, then 60% severity from period 4
    want = 3.0 * np.maximum(level, 0.5)  # the minimum royalty is a floor
    np.testing.assert_allclose(_collections(running), np.broadcast_to(want, (16, T)), rtol=1e-12)
    # with volatility, running royalties move path by path; fixed ones still do not
    risk["demand"] = {"volatility_annual": 0.4}
    fixed = pool(**risk)
    fixed["pool"]["generate"]["count"] = 3
    np.testing.assert_array_equal(_collections(fixed), 3.0)
    running = pool(**risk)
    running["pool"]["generate"].update(count=3, royalty_type="running")
    assert np.unique(_collections(running)[:, 0]).size == 16


def test_relicensing_recovers_nothing_once_obsolete():
    """Default in period 1 for sure (pd ~ 1); re-licensing after 2 periods at 50%, but the technology
    becomes obsolete in period 6: recovered royalties in periods 3..5 only."""
    d = pool(default={"relicense_lag_periods": 2, "relicense_haircut": 0.5},
             obsolescence={"technologies": {"tech": {"period": 6}}})
    d["pool"]["generate"].update(count=2, pd_annual=0.999999999)
    got = _collections(d, 4)
    want = np.zeros(T)
    want[2:5] = 2 * 0.5
    np.testing.assert_allclose(got, np.broadcast_to(want, (4, T)), atol=1e-12)
