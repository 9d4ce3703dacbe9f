"""The pool and its risk drivers as typed arrays (a :class:`PoolPlan`), read by
:mod:`simengine._kernels.pool`. Nothing here draws random numbers."""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from ..scenario import Scenario, factor_names
from ..stats import normal_ppf, t_ppf
from .providers import migration_arrays

PoolPlan = namedtuple("PoolPlan", [
    "periods", "dt_years", "copula_t", "dof", "default_on", "obsolescence_on", "demand_on", "legal_on",
    # a defaulting licensee's exposure tabulated over its latent, for the plan's copula (exposure_table)
    "exposure", "exposure_l0", "exposure_inv_step", "exposure_last", "exposure_tol",
    # factors: F = factor_root @ g, g[0] = the global factor
    "factor_root", "factor_identity",
    # licensees, shape (licensees,)
    "licensee_hazard_annual", "licensee_industry", "licensee_technology",
    "licensee_load_global", "licensee_load_industry", "licensee_load_region",
    "licensee_industry_factor", "licensee_region_factor", "licensee_idio",
    # deterministic stresses: a licensee defaults by this period at the latest (-1: no stress);
    # licensee_forced_any is False when no licensee is forced (the kernel then skips the check)
    "licensee_forced_period", "licensee_forced_any",
    "licensee_forced_default",  # forced default period (0-based), -1 = none
    # survivor screen: latent above survival_threshold[class, m] cannot default by legal final
    # when the cumulative hazard is at most threshold_h0 * exp(m * threshold_log_ratio)
    "licensee_hazard_class", "survival_threshold", "threshold_h0", "threshold_log_ratio",
    # technologies, shape (technologies,)
    "obsolescence_hazard_annual", "obsolescence_severity", "obsolescence_multiplier",
    "obsolescence_forced_period", "obsolescence_loading",
    # industries, shape (industries,)
    "demand_drift_annual", "demand_vol_annual", "demand_reversion_annual", "demand_loading",
    "demand_elasticity", "demand_hazard_adjust", "demand_shock_drift_annual", "demand_shock_periods",
    # licences, shape (licences,)
    "licence_licensee", "licence_royalty", "licence_group", "licence_technology",
    "licence_start", "licence_last", "licence_recovery", "licence_invalidation_hazard_annual",
    "licence_scheduled_amount", "licence_invalidation_u_max", "recovery_beta", "recovery_stdev", "relicense_lag",
    "recovery_loading",  # beta recoveries: loading of their Gaussian copula on the global factor
    # royalty groups, shape (groups,): group 0 holds fixed royalties (multiplier 1)
    "group_running", "industry_running", "group_industry", "group_technology", "group_floor_ratio",
    "scheduled_total",
    # collateral value of the OC test (plan.pool.oc_arrays): bases of the discount recursion, shape
    # (bases,); base 0 discounts at the deal's rate, base 1 + k at that rate times technology k's
    # per-period survival (expected obsolescence), dropped once k is obsolete on the path
    "oc_on", "oc_base", "oc_base_technology", "licence_oc_weight", "technology_oc_base", "technology_oc_weight",
    # providers, one row each (see plan.providers), shape (providers,)
    "provider_stream", "provider_hazard_annual", "provider_loading",
    # provider credit migration (plan.providers.migration_arrays)
    "provider_migrates", "provider_initial_grade", "migration_states", "migration_threshold", "migration_default_pd",
    "periods_per_year",
])


_LICENSEE_ARRAYS = ("licensee_hazard_annual", "licensee_industry", "licensee_technology", "licensee_industry_factor",
                    "licensee_region_factor", "licensee_idio", "licensee_forced_period", "licensee_forced_default",
                    "licensee_hazard_class")
_TECHNOLOGY_ARRAYS = ("obsolescence_hazard_annual", "obsolescence_severity", "obsolescence_multiplier",
                      "obsolescence_forced_period", "technology_oc_base", "technology_oc_weight")
_INDUSTRY_ARRAYS = ("demand_drift_annual", "demand_vol_annual", "demand_reversion_annual", "demand_loading",
                    "demand_elasticity", "demand_hazard_adjust", "industry_running")
_LICENCE_ARRAYS = ("licence_licensee", "licence_royalty", "licence_group", "licence_technology", "licence_start",
                   "licence_last", "licence_recovery", "licence_invalidation_hazard_annual",
                   "licence_scheduled_amount", "licence_invalidation_u_max", "licence_oc_weight")
_GROUP_ARRAYS = ("group_running", "group_industry", "group_technology", "group_floor_ratio")
_PROVIDER_ARRAYS = ("provider_stream", "provider_hazard_annual", "provider_loading")
# index arrays and the axis they index: (field, what it counts, bound)
_INDICES = (("licence_licensee", "licensees"), ("licence_group", "groups"), ("licence_technology", "technologies"),
            ("licensee_industry", "industries"), ("licensee_technology", "technologies"),
            ("group_industry", "industries"), ("group_technology", "technologies"))


def check_pool_plan(pool: PoolPlan) -> None:
    """Raise ValueError if the plan's arrays disagree in length or index outside their tables.

    The kernels run without bounds checks, so a plan assembled or edited by hand (analyses build
    variants with ``_replace``) that is inconsistent would read other memory silently; this is the
    check they get instead, once per chunk (microseconds).
    """
    counts = {"licensees": len(pool.licensee_hazard_annual), "technologies": len(pool.obsolescence_hazard_annual),
              "industries": len(pool.demand_drift_annual), "licences": len(pool.licence_royalty),
              "groups": len(pool.group_running), "providers": len(pool.provider_stream)}
    for names, what in ((_LICENSEE_ARRAYS, "licensees"), (_TECHNOLOGY_ARRAYS, "technologies"),
                        (_INDUSTRY_ARRAYS, "industries"), (_LICENCE_ARRAYS, "licences"), (_GROUP_ARRAYS, "groups"),
                        (_PROVIDER_ARRAYS, "providers")):
        for name in names:
            n = np.shape(getattr(pool, name))[0]
            if n != counts[what]:
                raise ValueError(f"plan.pool.{name} has {n} rows; expected one per {what[:-1]} ({counts[what]})")
    for name, what in _INDICES:
        index = np.asarray(getattr(pool, name))
        if index.size and (index.min() < 0 or index.max() >= counts[what]):
            raise ValueError(f"plan.pool.{name} indexes {what} {index.min()}..{index.max()}; expected 0.."
                             f"{counts[what] - 1}")
    classes = np.asarray(pool.licensee_hazard_class)
    if classes.size and (classes.min() < 0 or classes.max() >= pool.survival_threshold.shape[0]):
        raise ValueError("plan.pool.licensee_hazard_class indexes past plan.pool.survival_threshold")
    if len(pool.exposure) != pool.exposure_last + 1:
        raise ValueError("plan.pool.exposure has the wrong length for its grid (see exposure_table)")
    if len(pool.provider_migrates) > counts["providers"]:
        raise ValueError("plan.pool.provider_migrates has more rows than the provider table")


def hazard(pd_annual: float) -> float:
    """Annual hazard rate of an annual default probability."""
    return -math.log1p(-pd_annual)


SCREEN_LOG_RATIO = math.log(1.02)  # grid step of the survivor screen: 2% of cumulative hazard


def survival_screen(hazard_annual: np.ndarray, horizon_years: float, copula_t: bool, dof: float) -> dict:
    """Latent thresholds above which a licensee survives to legal final, on a grid of hazards.

    A licensee with annual hazard λ defaults by the time its cumulative hazard clock reaches H
    iff F(latent) <= 1 - exp(-λ H), F the copula's marginal CDF. The kernel looks up the grid
    point just above the path's H and skips the CDF, log and search for every latent above its
    threshold: the same decision, made without them. Grid: H from 1e-4 to 1e4 horizons.
    """
    classes, index = np.unique(hazard_annual, return_inverse=True)
    h0 = 1e-4 * horizon_years
    grid = h0 * np.exp(SCREEN_LOG_RATIO * np.arange(int(math.log(1e8) / SCREEN_LOG_RATIO) + 1))
    q = -np.expm1(-classes[:, None] * grid[None, :])
    with np.errstate(divide="ignore"):
        # -inf where λ = 0 (never defaults), +inf where q rounds to 1 (never skip)
        thresholds = t_ppf(q, dof) if copula_t else normal_ppf(q)
    return {"licensee_hazard_class": index.astype(np.int64), "survival_threshold": thresholds,
            "threshold_h0": float(h0), "threshold_log_ratio": SCREEN_LOG_RATIO}


# The Gaussian copula's table: step 2^-8 over latents [-8, 4]. Linear interpolation errs by at most
# step^2 / 8 * max g'' for g(L) = -log(1 - Phi(L)); g' is the normal hazard lambda(L) = phi(L) / (1 -
# Phi(L)) and g'' = lambda (lambda - L) lies in (0, 1), so the error is below 2^-16 / 8 = 1.9e-6. The
# values use the kernels' own formula, whose rounding (about 1e-11 at L = 4, where 1 - Phi(L)
# cancels) is far inside the factor 2 the tolerance keeps. test_properties checks the bound.
EXPOSURE_L0, EXPOSURE_INV_STEP, EXPOSURE_LAST, EXPOSURE_TOL = -8.0, 256.0, 12 * 256, 4e-6
T_EXPOSURE_L0, T_EXPOSURE_INV_STEP, T_EXPOSURE_LAST = -16.0, 128.0, 24 * 128  # latents -16 .. 8, step 2^-7
SQRT1_2 = 0.7071067811865476  # as _kernels.distributions.upper_tail_normal


def exposure_table(copula_t: bool, dof: float) -> dict:
    """A defaulting licensee's exposure g(L) = -log(1 - F(L)) at latents L on a grid, F the
    copula's marginal CDF, for :func:`simengine._kernels.hazard.tabulated_default_period`, with the
    tolerance its linear interpolation keeps.

    Gaussian: the grid and derived tolerance above (:data:`EXPOSURE_TOL`). Student-t with ``dof``:
    step 2^-7 over [-16, 8]; the tolerance is 4 x the largest error at the midpoints of the grid
    (where a linear interpolant of a function with slowly varying g'' errs most; 2^-7 is small
    beside the scale on which g'' varies), plus 1e-9 for the difference between SciPy's t tail and
    the kernel's own (2e-12 relative, see test_properties) and the kernel's log1p cancellation.
    """
    if not copula_t:
        grid = EXPOSURE_L0 + np.arange(EXPOSURE_LAST + 1) / EXPOSURE_INV_STEP  # exact grid points
        table = np.array([-math.log1p(-(0.5 * math.erfc(-x * SQRT1_2))) for x in grid.tolist()])
        return {"exposure": table, "exposure_l0": EXPOSURE_L0, "exposure_inv_step": EXPOSURE_INV_STEP,
                "exposure_last": EXPOSURE_LAST, "exposure_tol": EXPOSURE_TOL}
    from scipy import special

    def exposure(x):
        return -np.log(special.stdtr(dof, -x))  # = -log1p(-F_t(x)), without the cancellation

    grid = T_EXPOSURE_L0 + np.arange(T_EXPOSURE_LAST + 1) / T_EXPOSURE_INV_STEP
    table = exposure(grid)
    midpoint_error = np.abs(0.5 * (table[:-1] + table[1:]) - exposure(grid[:-1] + 0.5 / T_EXPOSURE_INV_STEP)).max()
    return {"exposure": table, "exposure_l0": T_EXPOSURE_L0, "exposure_inv_step": T_EXPOSURE_INV_STEP,
            "exposure_last": T_EXPOSURE_LAST, "exposure_tol": float(4.0 * midpoint_error + 1e-9)}


def pick(override, default):
    """A per-class override where given, else the section default."""
    return default if override is None else override


def compile_pool(sc: Scenario, providers: list) -> tuple[PoolPlan, dict]:
    """The pool and its risk drivers as a :class:`PoolPlan`, and the names behind its indices
    (``industries``, ``technologies``, ``licensees``).

    ``providers``: the rows of :func:`simengine.plan.providers.provider_rows`.
    """
    m = sc.model
    T = m.deal.periods
    ppy = m.deal.periods_per_year
    dt = 1.0 / ppy
    risk = m.risk
    lics = sc.licences

    industries = tuple(sorted({l.industry for l in lics}))
    regions = tuple(sorted({l.region for l in lics}))
    technologies = tuple(sorted({l.technology for l in lics} | set(risk.obsolescence.technologies)))
    ind_ix = {n: i for i, n in enumerate(industries)}
    reg_ix = {n: i for i, n in enumerate(regions)}
    tech_ix = {n: i for i, n in enumerate(technologies)}

    # ---- factors
    n_factors = 1 + len(industries) + len(regions)
    corr = risk.correlation
    if corr.matrix is not None:
        order = {name: i for i, name in enumerate(corr.factors)}
        want = factor_names(industries, regions)
        perm = [order[name] for name in want]
        C = np.asarray(corr.matrix, dtype=float)[np.ix_(perm, perm)]
        # lower Cholesky keeps row 0 = e_0, so F[0] stays the global factor that drives demand
        root = np.linalg.cholesky(C + 1e-12 * np.eye(n_factors))
        identity = False
    else:
        C = np.eye(n_factors)
        root = np.eye(n_factors)
        identity = True

    # ---- licensees
    names = list(dict.fromkeys((l.licensee or l.id) for l in lics))
    ls_ix = {n: i for i, n in enumerate(names)}
    first = {}
    for l in lics:
        first.setdefault(l.licensee or l.id, l)
    a_g, a_i, a_r = math.sqrt(corr.global_), math.sqrt(corr.industry), math.sqrt(corr.region)
    n_ls = len(names)
    ls_hazard = np.empty(n_ls)
    ls_ind = np.empty(n_ls, np.int64)
    ls_tech = np.empty(n_ls, np.int64)
    ls_ind_f = np.empty(n_ls, np.int64)
    ls_reg_f = np.empty(n_ls, np.int64)
    ls_idio = np.empty(n_ls)
    ls_forced = np.full(n_ls, -1, np.int64)
    for k, n in enumerate(names):
        l = first[n]
        ls_hazard[k] = hazard(l.credit_pd_annual * sc.model.risk.default.pd_multiplier)
        ls_ind[k] = ind_ix[l.industry]
        ls_tech[k] = tech_ix[l.technology]
        ls_ind_f[k] = 1 + ind_ix[l.industry]
        ls_reg_f[k] = 1 + len(industries) + reg_ix[l.region]
        if l.default_period is not None:
            ls_forced[k] = l.default_period - 1
        w = np.zeros(n_factors)
        w[0] += a_g
        w[ls_ind_f[k]] += a_i
        w[ls_reg_f[k]] += a_r
        ls_idio[k] = math.sqrt(max(0.0, 1.0 - float(w @ C @ w)))

    # ---- technologies
    ob = risk.obsolescence
    n_tech = len(technologies)
    ob_h = np.empty(n_tech)
    ob_sev = np.empty(n_tech)
    ob_mult = np.empty(n_tech)
    ob_forced = np.full(n_tech, -1, np.int64)
    for k, name in enumerate(technologies):
        o = ob.technologies.get(name)
        ob_h[k] = pick(o and o.hazard_annual, ob.hazard_annual)
        ob_sev[k] = pick(o and o.severity, ob.severity)
        ob_mult[k] = pick(o and o.hazard_multiplier_after_obsolescence, ob.hazard_multiplier_after_obsolescence)
        if o is not None and o.period is not None:
            ob_forced[k] = o.period - 1

    # ---- industries
    de = risk.demand
    n_ind = len(industries)
    dm = {k: np.empty(n_ind) for k in ("drift", "vol", "rev", "load", "elas")}
    for k, name in enumerate(industries):
        o = de.industries.get(name)
        dm["drift"][k] = pick(o and o.drift_annual, de.drift_annual)
        dm["vol"][k] = pick(o and o.volatility_annual, de.volatility_annual)
        rev = pick(o and o.mean_reversion_annual, de.mean_reversion_annual)
        dm["rev"][k] = rev if de.model == "ou" else 0.0
        dm["load"][k] = pick(o and o.global_loading, de.global_loading)
        dm["elas"][k] = pick(o and o.demand_hazard_elasticity, de.demand_hazard_elasticity)

    # ---- licences and royalty groups
    legal = risk.legal
    groups: dict[tuple, int] = {("fixed",): 0}
    n_lic = len(lics)
    lic = {k: np.empty(n_lic, np.int64) for k in ("ls", "grp", "tech", "start", "last")}
    roy = np.empty(n_lic)
    rec = np.empty(n_lic)
    inval = np.empty(n_lic)
    sched = np.empty(n_lic)
    for i, l in enumerate(lics):
        lic["ls"][i] = ls_ix[l.licensee or l.id]
        lic["tech"][i] = tech_ix[l.technology]
        lic["start"][i] = l.start_period - 1
        last = (l.end_period or T) - 1
        if l.expiry_period is not None:  # a contract fact: risk.legal switches invalidation only
            last = min(last, l.expiry_period - 1)
        lic["last"][i] = last
        roy[i] = l.royalty
        rec[i] = l.recovery if l.recovery is not None else 1.0 - risk.default.relicense_haircut
        h = legal.invalidation_hazard_annual
        h = legal.ip_types.get(l.ip_type, h)
        h = legal.technologies.get(l.technology, h)
        inval[i] = h if legal.enabled else 0.0
        sched[i] = l.royalty * max(0, last - lic["start"][i] + 1)
        if l.royalty_type == "running":
            floor = l.minimum_royalty / l.royalty if l.royalty > 0 else 0.0
            key = ("running", ind_ix[l.industry], tech_ix[l.technology], floor)
            lic["grp"][i] = groups.setdefault(key, len(groups))
        else:
            lic["grp"][i] = 0
    n_grp = len(groups)
    g_running = np.zeros(n_grp, np.bool_)
    g_ind = np.zeros(n_grp, np.int64)
    g_tech = np.zeros(n_grp, np.int64)
    g_floor = np.zeros(n_grp)
    for key, g in groups.items():
        if key[0] == "running":
            g_running[g], g_ind[g], g_tech[g], g_floor[g] = True, key[1], key[2], key[3]

    sched_by_licensee = np.bincount(lic["ls"], weights=sched, minlength=n_ls)
    forced = forced_periods(sc.model.stress.defaults, names, sched_by_licensee)

    dflt = risk.default
    pool = PoolPlan(
        periods=T, dt_years=dt, copula_t=dflt.copula == "student_t", dof=float(dflt.dof),
        **survival_screen(ls_hazard, T * dt, dflt.copula == "student_t", float(dflt.dof)),
        **exposure_table(dflt.copula == "student_t", float(dflt.dof)),
        default_on=dflt.enabled, obsolescence_on=ob.enabled, demand_on=de.enabled, legal_on=legal.enabled,
        factor_root=np.ascontiguousarray(root), factor_identity=identity,
        licensee_hazard_annual=ls_hazard, licensee_industry=ls_ind, licensee_technology=ls_tech,
        licensee_load_global=a_g, licensee_load_industry=a_i, licensee_load_region=a_r,
        licensee_industry_factor=ls_ind_f, licensee_region_factor=ls_reg_f, licensee_idio=ls_idio,
        licensee_forced_period=forced, licensee_forced_any=bool((forced >= 0).any()),
        licensee_forced_default=ls_forced,
        obsolescence_hazard_annual=ob_h, obsolescence_severity=ob_sev, obsolescence_multiplier=ob_mult,
        obsolescence_forced_period=ob_forced, obsolescence_loading=float(ob.global_loading),
        demand_drift_annual=dm["drift"], demand_vol_annual=dm["vol"], demand_reversion_annual=dm["rev"],
        demand_loading=dm["load"], demand_elasticity=dm["elas"],
        demand_hazard_adjust=demand_hazard_adjust(dm, T, dt) if de.enabled else np.zeros((n_ind, T)),
        demand_shock_drift_annual=float(de.shock_drift_annual),
        demand_shock_periods=int(round(de.shock_years * ppy)),
        licence_licensee=lic["ls"], licence_royalty=roy, licence_group=lic["grp"],
        licence_technology=lic["tech"], licence_start=lic["start"], licence_last=lic["last"],
        licence_recovery=rec, licence_invalidation_hazard_annual=inval, licence_scheduled_amount=sched,
        # a uniform above this puts the invalidation after legal final: the kernel skips its log1p
        licence_invalidation_u_max=np.minimum(1.0, -np.expm1(-inval * dt * T) * (1 + 1e-9) + 1e-15),
        recovery_beta=dflt.recovery_model == "beta" and dflt.recovery_stdev > 0,
        recovery_stdev=float(dflt.recovery_stdev), relicense_lag=int(dflt.relicense_lag_periods),
        recovery_loading=float(dflt.recovery_global_loading),
        group_running=g_running, industry_running=np.isin(np.arange(n_ind), g_ind[g_running]),
        group_industry=g_ind, group_technology=g_tech, group_floor_ratio=g_floor,
        scheduled_total=float(sched.sum()),
        **oc_arrays(sc, lic["tech"], ob_h, ob_sev, technologies),
        provider_stream=np.array([row.stream for row in providers], np.int64),
        provider_hazard_annual=np.array([hazard(row.pd_annual) for row in providers], float),
        provider_loading=np.array([row.loading for row in providers], float),
        **migration_arrays(providers, ppy),
    )
    if sc.model.stress.expected_path:
        pool = expected_path(pool)
    return pool, {"industries": industries, "technologies": technologies, "licensees": tuple(names)}


def largest_licensees(scheduled_amount: np.ndarray) -> np.ndarray:
    """Licensee indices by scheduled royalty, largest first (ties: pool order).

    scheduled_amount : ndarray(float64), shape (licensees,)   royalties owed over the deal
    """
    return np.argsort(-scheduled_amount, kind="stable")


def forced_periods(defaults, names, scheduled_amount: np.ndarray) -> np.ndarray:
    """Each licensee's forced default period (0-based; -1: none) from ``[[stress.defaults]]``.

    A licensee named twice (or by name and among the largest) defaults at the earlier period.
    Returns ndarray(int64), shape (licensees,).
    """
    forced = np.full(len(names), -1, np.int64)
    order = largest_licensees(scheduled_amount)
    index = {n: i for i, n in enumerate(names)}
    for d in defaults:
        targets = [index[d.licensee]] if d.licensee is not None else order[:d.largest]
        for i in targets:
            p = d.period - 1
            forced[i] = p if forced[i] < 0 else min(forced[i], p)
    return forced


def expected_path(pool: PoolPlan) -> PoolPlan:
    """The pool with every random driver at its expected path: no drawn licensee default or
    obsolescence (forced ones stand: a licensee's ``default_period``, a technology's ``period``), no
    invalidation, demand at its drift without volatility (``exp(drift t)``, the mean of a GBM),
    recoveries at their mean, providers that never default."""
    return pool._replace(
        # hazards to zero rather than the channels off: forced defaults and obsolescence stand
        licensee_hazard_annual=np.zeros_like(pool.licensee_hazard_annual),
        obsolescence_hazard_annual=np.zeros_like(pool.obsolescence_hazard_annual),
        demand_vol_annual=np.zeros_like(pool.demand_vol_annual),
        licence_invalidation_hazard_annual=np.zeros_like(pool.licence_invalidation_hazard_annual),
        licence_invalidation_u_max=np.zeros_like(pool.licence_invalidation_u_max), recovery_beta=False,
        provider_hazard_annual=np.zeros_like(pool.provider_hazard_annual))


def oc_arrays(sc: Scenario, licence_technology: np.ndarray, obsolescence_hazard: np.ndarray,
              obsolescence_severity: np.ndarray, technologies: tuple) -> dict:
    """The plan's arrays for the over-collateralisation metric (computed only for a deal with an
    ``oc`` trigger).

    The collateral value at period p is the present value, at the OC test's discount rate, of the
    scheduled royalties from p on of the licences still paying their licensee. With
    ``structure.oc_test.obsolescence = "expected"`` a royalty of technology k due j periods ahead
    is weighted by ``1 - severity_k (1 - q_k^j)``, q_k = exp(-hazard_k dt) the chance of one more
    period without obsolescence, and by ``1 - severity_k`` once k is obsolete on the path: so the
    value splits into a base-d recursion with weight 1 - severity_k and a base d q_k one with
    weight severity_k (d the per-period discount factor).
    """
    m = sc.model
    ppy = m.deal.periods_per_year
    st = m.structure
    on = any(t.metric == "oc" for t in st.triggers)
    rate = st.oc_test.discount_rate if st.oc_test.discount_rate is not None else m.deal.discount_rate
    d = (1.0 + rate) ** (-1.0 / ppy)
    n_tech = len(technologies)
    tech_base = np.full(n_tech, -1, np.int64)
    tech_weight = np.zeros(n_tech)
    bases, base_tech = [d], [-1]
    lic_weight = np.ones(len(licence_technology))
    if on and st.oc_test.obsolescence == "expected" and m.risk.obsolescence.enabled:
        for k in range(n_tech):
            if obsolescence_severity[k] > 0.0:
                tech_base[k] = len(bases)
                tech_weight[k] = obsolescence_severity[k]
                bases.append(d * math.exp(-obsolescence_hazard[k] / ppy))
                base_tech.append(k)
        lic_weight = 1.0 - obsolescence_severity[licence_technology]
    if not on:
        bases, base_tech = [], []
    return {"oc_on": on, "oc_base": np.array(bases, float), "oc_base_technology": np.array(base_tech, np.int64),
            "licence_oc_weight": lic_weight, "technology_oc_base": tech_base, "technology_oc_weight": tech_weight}


def demand_hazard_adjust(dm: dict, T: int, dt: float) -> np.ndarray:
    """Log of the normaliser that makes volatility alone leave the expected hazard unchanged.

    Log-demand follows x' = (1 - k dt) x + (mu - s^2/2) dt + s sqrt(dt) e. Its mean is the
    volatility-free mean plus d_t (d' = (1 - k dt) d - s^2/2 dt) and its variance v_t
    (v' = (1 - k dt)^2 v + s^2 dt), so E[exp(-eps (x - d) - eps^2 v / 2)] = exp(-eps * mean
    without volatility): drift and shocks move hazards, noise does not bias them.
    Returns ndarray(float64), shape (industries, periods).
    """
    n = len(dm["elas"])
    adjust = np.zeros((n, T))
    for j in range(n):
        eps, s, k = dm["elas"][j], dm["vol"][j], dm["rev"][j]
        d = v = 0.0
        for t in range(T):
            d = (1 - k * dt) * d - 0.5 * s * s * dt
            v = (1 - k * dt) ** 2 * v + s * s * dt
            adjust[j, t] = eps * d - 0.5 * eps * eps * v
    return adjust
