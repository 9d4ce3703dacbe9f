"""Choosing the sampling measure: importance sampling on the systematic factors, antithetics.

The kernels draw the global factor as N(mu, 1) instead of N(0, 1) and, for the Student-t
copula, the chi-square mixing variable with its scale times s (s < 1 makes joint defaults
likelier); every path carries the likelihood ratio back to the scenario's own measure
(Glasserman & Li 2005, "Importance Sampling for Portfolio Credit Risk", Management Science 51).

The measure is chosen for one tranche's default event by a short cross-entropy pilot
(Rubinstein & Kroese 2004, ch. 3): under the current measure, take the paths where the tranche
defaults (once there are ``MIN_HITS`` of them) or, while those are too few, the ``ELITE``
fraction with the largest pool loss; the next measure is the one that maximises the weighted
likelihood of those paths, i.e. mu = the weighted mean of their global factor and s = the
weighted mean of their chi-square over its nominal mean. The limit approximates the
zero-variance measure's mean, E[Z | default].
"""

from __future__ import annotations

import math

import numpy as np

from .._layout import BASIS_ENHANCED, BASIS_STANDALONE, P_CHI2, P_COLLECTIONS, P_Z_GLOBAL, T_DEFAULTED, T_LOSS
from ..plan import Plan
from .chunks import run_chunk
from .sampling import Sampling

ELITE = 0.1  # fraction of pilot paths kept while the target event is still rarer than this
MIN_HITS = 50  # this many pilot defaults are enough to take the mean of their factor directly
MAX_ROUNDS = 8
MIN_CHI2_SCALE = 0.05
# pilot paths sit far above any main-run path index, so the pilot never reuses a main path
PILOT_FIRST_PATH = 1 << 62


def pilot(plan: Plan, seed: int, tranche: int, basis: int, pilot_paths: int, copula_t: bool,
          global_shift: float | None = None, chi2_scale: float | None = None) -> tuple[Sampling, dict]:
    """Cross-entropy pilot for the default event of ``tranche`` on ``basis`` (0 standalone, 1 enhanced).

    A parameter given (not None) is held fixed. Returns the chosen measure and a record of the
    rounds (for the manifest). Deterministic in ``seed``: round r uses pilot paths
    ``PILOT_FIRST_PATH + r * pilot_paths ...``.
    """
    mu = 0.0 if global_shift is None else float(global_shift)
    s = 1.0 if (chi2_scale is None or not copula_t) else float(chi2_scale)
    rounds = []
    free_mu, free_s = global_shift is None, chi2_scale is None and copula_t
    if not (free_mu or free_s):
        return Sampling(mu, s, False), {"rounds": rounds, "fixed": True}
    n_elite = max(1, int(math.ceil(ELITE * pilot_paths)))
    scheduled = plan.pool.scheduled_total
    for r in range(MAX_ROUNDS):
        out = run_chunk(plan, seed, PILOT_FIRST_PATH + r * pilot_paths, pilot_paths, Sampling(mu, s, False))
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
            order = np.argsort(-score, kind="stable")
            elite = np.zeros(len(w), bool)
            elite[order[:n_elite]] = True
            last = False
        we = w[elite]
        record = {"round": r, "global_shift": mu, "chi2_scale": s, "hits": n_hit,
                  "pilot_paths": pilot_paths, "hit_fraction": n_hit / pilot_paths}
        if we.sum() <= 0 or not np.isfinite(we.sum()):
            rounds.append({**record, "stopped": "elite paths carry no weight"})
            break
        new_mu = float((we * z[elite]).sum() / we.sum()) if free_mu else mu
        new_s = s
        if free_s:
            nominal_mean = plan.pool.dof  # E[chi2] under the nominal measure
            new_s = float((we * out.pool[elite, P_CHI2]).sum() / we.sum() / nominal_mean)
            new_s = min(1.0, max(MIN_CHI2_SCALE, new_s))
        rounds.append(record)
        converged = abs(new_mu - mu) < 0.02 and abs(new_s - s) < 0.01
        mu, s = new_mu, new_s
        if last and converged:
            break
    return Sampling(mu, s, False), {"rounds": rounds, "fixed": False}


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
                           imp.global_shift, imp.chi2_scale)
    info = {"variance_reduction": vr, "target_tranche": name, "target_basis": imp.basis, **record}
    return chosen._replace(antithetic=antithetic), info
