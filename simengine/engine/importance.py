"""Choosing the sampling measure: importance sampling on the systematic factors and the
providers' latent variables, antithetics.

The kernels draw the global factor as N(mu, 1) instead of N(0, 1), for the Student-t copula the
chi-square mixing variable with its scale times s (s < 1 makes joint defaults likelier), and the
idiosyncratic normal of each provider that covers the target tranche as N(nu_j, 1) (an enhanced
tranche loses only where its providers fail too); every path carries the likelihood ratio back
to the scenario's own measure (Glasserman & Li 2005, "Importance Sampling for Portfolio Credit
Risk", Management Science 51).

The measure is chosen for one tranche's default event by a short cross-entropy pilot
(Rubinstein & Kroese 2004, ch. 3): under the current measure, take the paths where the tranche
defaults (once there are ``MIN_HITS`` of them) or, while those are too few, the ``ELITE``
fraction with the largest pool loss; the next measure is the one that maximises the weighted
likelihood of those paths, i.e. mu = the weighted mean of their global factor and s = the
weighted mean of their chi-square over its nominal mean, nu_j = the weighted mean of provider j's
normal. The limit approximates the zero-variance measure's mean, E[Z | default].
"""

from __future__ import annotations

import math

import numpy as np

from .._layout import (
    BASIS_ENHANCED,
    BASIS_STANDALONE,
    P_CHI2,
    P_COLLECTIONS,
    P_Z_GLOBAL,
    PR_LATENT,
    T_DEFAULTED,
    T_LOSS,
)
from ..plan import Plan
from .chunks import run_chunk
from .sampling import Sampling

ELITE = 0.1  # fraction of pilot paths kept while the target event is still rarer than this
MIN_HITS = 50  # this many pilot defaults are enough to take the mean of their factor directly
MAX_ROUNDS = 8
MIN_CHI2_SCALE = 0.05
# pilot paths sit far above any main-run path index, so the pilot never reuses a main path
PILOT_FIRST_PATH = 1 << 62


def provider_targets(plan: Plan, tranche: int, basis: int) -> list[int]:
    """Provider rows whose latent normals the measure shifts for ``tranche``'s default on ``basis``:
    those covering it, on the enhanced basis (the standalone basis asks no provider)."""
    if basis != BASIS_ENHANCED:
        return []
    covers = plan.waterfall.provider_covers
    return [j for j in range(covers.shape[0]) if covers[j, tranche]]


def provider_default_mean(plan: Plan, j: int, mu: float) -> float:
    """E[e | provider row j defaults by the legal final, global factor = mu] for the Gaussian latent
    a·mu + sqrt(1 - a²)·e: the mean of a normal truncated at c = (Φ⁻¹(p) - a·mu) / sqrt(1 - a²),
    p its cumulative PD by the legal final. The cross-entropy optimum for that event alone, used to
    start the pilot while the tranche's defaults are too few to average over. A migrating
    provider's yearly draws each get the shift spread over its years (1/√years of it)."""
    from scipy import stats  # only an importance-sampling pilot needs it: not at every start (about 0.5 s)

    pool = plan.pool
    a = float(pool.provider_loading[j])
    b = math.sqrt(max(0.0, 1.0 - a * a))
    if b == 0.0:
        return 0.0
    years = plan.periods * pool.dt_years
    spread = 1.0
    if pool.provider_migrates[j]:
        # the chain's default probability by the legal final, from the one-year law of its thresholds
        n = int(pool.migration_states[j])
        at_least = stats.norm.cdf(pool.migration_threshold[j, :n - 1, :n])
        m = np.zeros((n, n))
        m[:n - 1] = at_least - np.concatenate([at_least[:, 1:], np.zeros((n - 1, 1))], axis=1)
        m[n - 1, n - 1] = 1.0
        steps = int(math.ceil(years - 1e-9))
        p = float(np.linalg.matrix_power(m, steps)[int(pool.provider_initial_grade[j]), n - 1])
        spread = 1.0 / math.sqrt(steps)
    else:
        p = -math.expm1(-pool.provider_hazard_annual[j] * years)
    if p <= 0.0:
        return 0.0
    c = (stats.norm.ppf(p) - a * mu) / b
    return -math.exp(stats.norm.logpdf(c) - stats.norm.logcdf(c)) * spread


def pilot(plan: Plan, seed: int, tranche: int, basis: int, pilot_paths: int, copula_t: bool,
          global_shift: float | None = None, chi2_scale: float | None = None, shift_providers: bool = False,
          provider_shift: float | None = None) -> tuple[Sampling, dict]:
    """Cross-entropy pilot for the default event of ``tranche`` on ``basis`` (0 standalone, 1 enhanced).

    A parameter given (not None) is held fixed. With ``shift_providers`` (enhanced basis), the
    idiosyncratic normals of the providers covering the tranche get a mean shift too: while the
    tranche's defaults are too few, each starts from :func:`provider_default_mean` at the current
    global mean; once they are enough, it is the weighted mean of its normal over them (the
    cross-entropy update, as for the global factor). Returns the chosen measure and a record of the
    rounds (for the manifest). Deterministic in ``seed``: round r uses pilot paths
    ``PILOT_FIRST_PATH + r * pilot_paths ...``.
    """
    mu = 0.0 if global_shift is None else float(global_shift)
    s = 1.0 if (chi2_scale is None or not copula_t) else float(chi2_scale)
    n_prov = plan.pool.provider_loading.shape[0]
    targets = provider_targets(plan, tranche, basis) if shift_providers else []
    nu = np.zeros(n_prov)
    free_nu = bool(targets) and provider_shift is None
    if targets and provider_shift is not None:
        nu[targets] = float(provider_shift)

    def measure() -> Sampling:
        return Sampling(mu, s, False, tuple(float(x) for x in nu) if targets else ())

    rounds = []
    free_mu, free_s = global_shift is None, chi2_scale is None and copula_t
    if not (free_mu or free_s or free_nu):
        return measure(), {"rounds": rounds, "fixed": True}
    n_elite = max(1, int(math.ceil(ELITE * pilot_paths)))
    scheduled = plan.pool.scheduled_total
    for r in range(MAX_ROUNDS):
        if free_nu and r == 0:
            nu[targets] = [provider_default_mean(plan, j, mu) for j in targets]
        out = run_chunk(plan, seed, PILOT_FIRST_PATH + r * pilot_paths, pilot_paths, measure())
        w = out.weights
        z = out.pool[:, P_Z_GLOBAL]
        hit = out.tranche[:, basis, tranche, T_DEFAULTED] > 0
        # closeness to default: the tranche's own loss first, then pool losses
        pool_loss = 1.0 - out.pool[:, P_COLLECTIONS] / scheduled if scheduled > 0 else np.zeros(len(w))
        n_hit = int(hit.sum())
        if n_hit >= min(n_elite, MIN_HITS):
            elite, last = hit, True
        else:
            score = pool_loss + out.tranche[:, basis, tranche, T_LOSS] + hit
            if targets:  # the providers are pushed towards default: rank by the loss they would have to cover
                score = score + out.tranche[:, BASIS_STANDALONE, tranche, T_LOSS]
            order = np.argsort(-score, kind="stable")
            elite = np.zeros(len(w), bool)
            elite[order[:n_elite]] = True
            last = False
        we = w[elite]
        record = {"round": r, "global_shift": mu, "chi2_scale": s, "hits": n_hit,
                  "pilot_paths": pilot_paths, "hit_fraction": n_hit / pilot_paths}
        if targets:
            record["provider_shift"] = [float(x) for x in nu]
        if we.sum() <= 0 or not np.isfinite(we.sum()):
            rounds.append({**record, "stopped": "elite paths carry no weight"})
            break
        new_mu = float((we * z[elite]).sum() / we.sum()) if free_mu else mu
        new_s = s
        if free_s:
            nominal_mean = plan.pool.dof  # E[chi2] under the nominal measure
            new_s = float((we * out.pool[elite, P_CHI2]).sum() / we.sum() / nominal_mean)
            new_s = min(1.0, max(MIN_CHI2_SCALE, new_s))
        new_nu = nu.copy()
        if free_nu:
            for j in targets:
                new_nu[j] = (float((we * out.provider[elite, j, PR_LATENT]).sum() / we.sum()) if last
                             else provider_default_mean(plan, j, new_mu))
        rounds.append(record)
        converged = (abs(new_mu - mu) < 0.02 and abs(new_s - s) < 0.01
                     and bool(np.all(np.abs(new_nu - nu) < 0.02)))
        mu, s, nu = new_mu, new_s, new_nu
        if last and converged:
            break
    return measure(), {"rounds": rounds, "fixed": False}


def sampling_for(plan: Plan, scenario, seed: int) -> tuple[Sampling, dict]:
    """The run's sampling measure from the scenario's ``[simulation]`` section, and a record of
    how it was chosen (for the manifest)."""
    sim = scenario.model.simulation
    vr = sim.variance_reduction
    antithetic = "antithetic" in vr
    if "importance" not in vr:
        return Sampling(0.0, 1.0, antithetic), {"variance_reduction": vr}
    imp = sim.importance
    name = imp.tranche or plan.tranche_names[0]  # the schema checked the name
    k = plan.tranche_names.index(name)
    basis = BASIS_ENHANCED if imp.basis == "enhanced" else BASIS_STANDALONE
    chosen, record = pilot(plan, seed, k, basis, imp.pilot_paths, bool(plan.pool.copula_t),
                           imp.global_shift, imp.chi2_scale, imp.shift_providers, imp.provider_shift)
    info = {"variance_reduction": vr, "target_tranche": name, "target_basis": imp.basis, **record}
    return chosen._replace(antithetic=antithetic), info
