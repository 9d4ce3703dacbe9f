"""Benchmark-only numba kernels that time parts of the engine: the random-number floor, the
scalar-math floor, the pool without the waterfall, and the primitives the pool calls per licensee
or period.

They call the engine's own path functions (:mod:`simengine._kernels.pool`, ``.hazard``,
``.distributions``) and generator (:mod:`simengine.rng`), compiled with :mod:`simengine._jit`
like the engine, so they measure the same code. Built on first use by :func:`build`.
"""

from __future__ import annotations

import math
import time

import numpy as np
from harness import SEED, timing


def build() -> dict:
    """The floor, pool-only and primitive kernels, by name (numba compiles each on its first call).

    Returns
    -------
    dict
        ``rng_floor``, ``pool_only`` and ``primitives`` (:func:`primitives`).
    """
    from simengine import rng
    from simengine._jit import jit, num_threads, run_blocks
    from simengine._kernels.distributions import upper_tail_normal
    from simengine._kernels.pool import pool_block
    from simengine._layout import allocate_chunk
    from simengine.engine.chunks import BLOCK_PATHS, scratch_for
    from simengine.rng import gamma_at, normal_at, path_key, stream_key, uniform_at

    @jit(inline="always")
    def draws(key, normals, uniforms):
        """The sum of ``normals[s]`` normals and ``uniforms[s]`` uniforms of each stream s of a path."""
        acc = 0.0
        for s in range(normals.shape[0]):
            sk = stream_key(key, s)
            for j in range(normals[s]):
                acc += normal_at(sk, j)
            for j in range(uniforms[s]):
                acc += uniform_at(sk, normals[s] + j)
        return acc

    @jit
    def rng_floor_block(seed, lo, hi, normals, uniforms, out):
        """Draw ``normals[s]`` normals and ``uniforms[s]`` uniforms of stream s for paths lo..hi-1.

        normals, uniforms : ndarray(int64), shape (streams,); out : ndarray(float64), shape (n_paths,)
        """
        for i in range(lo, hi):
            out[i] = draws(path_key(seed, i), normals, uniforms)

    def rng_floor(seed, n_paths, normals, uniforms, out):
        """The floor over paths 0..n_paths-1, in blocks on threads as the engine runs its kernel."""
        run_blocks(n_paths, BLOCK_PATHS, lambda lo, hi, slot: rng_floor_block(seed, np.int64(lo), np.int64(hi),
                                                                              normals, uniforms, out))

    @jit
    def libm_floor_block(seed, lo, hi, normals, uniforms, n_exp, n_obsolescence, n_providers, invalidation_u_max,
                         gamma_shapes, n_gamma, out):
        """The draws of :func:`rng_floor_block` plus the C-library calls that the model's definition
        asks of every path, and nothing else: ``n_exp`` exponentials (demand and its hazard
        multiplier), erfc and log per drawn technology (``n_obsolescence``), erfc and log1p per
        provider, log1p per invalidation that falls in the deal, and ``n_gamma`` gamma variates of
        the beta recoveries (their shapes cycled from ``gamma_shapes``). ``normals`` and
        ``uniforms`` must leave out the draws these loops make (see :func:`libm_counts`).
        """
        for i in range(lo, hi):
            key = path_key(seed, i)
            acc = draws(key, normals, uniforms)
            shift = 1e-7 * (i & 1023)  # arguments in [-0.48, 0.48] like log-demand's, not foldable
            for e in range(n_exp):
                acc += math.exp((e & 63) * 0.015 - 0.48 + shift)
            sk = stream_key(key, rng.S_OBSOLESCENCE)
            for k in range(n_obsolescence):
                acc += math.log(upper_tail_normal(normal_at(sk, k)))
            sk = stream_key(key, rng.S_PROVIDER)
            for k in range(n_providers):
                acc += math.log1p(-upper_tail_normal(-normal_at(sk, k)))
            sk = stream_key(key, rng.S_INVALIDATION)
            for k in range(invalidation_u_max.shape[0]):
                u = uniform_at(sk, k)
                if u <= invalidation_u_max[k]:
                    acc += math.log1p(-u)
            sk = stream_key(key, rng.S_RECOVERY)
            for k in range(n_gamma):
                acc += gamma_at(sk, k, gamma_shapes[k % gamma_shapes.shape[0]])
            out[i] = acc

    def libm_floor(seed, n_paths, counts, out):
        """The scalar-math floor over paths 0..n_paths-1 (``counts`` from :func:`libm_counts`), in
        blocks on threads as the engine runs its kernel."""
        c = counts
        run_blocks(n_paths, BLOCK_PATHS, lambda lo, hi, slot: libm_floor_block(
            seed, np.int64(lo), np.int64(hi), c["normals"], c["uniforms"], c["exp"], c["obsolescence"],
            c["providers"], c["invalidation_u_max"], c["gamma_shapes"], c["gamma"], out))

    def pool_tuple(scratch, slot):
        """The pool part of a scratch slot, as ``simengine._kernels.chunk.simulate_block`` hands it to
        pool_block (the duplicates report lists the pair: change both together)."""
        return (scratch.g_global[slot], scratch.factors[slot], scratch.demand_x[slot], scratch.clock[slot],
                scratch.clock_start[slot], scratch.clock_scale[slot],
                scratch.screen[slot], scratch.obs_period[slot], scratch.licensee_period[slot],
                scratch.group_diff[slot], scratch.cdr_diff[slot], scratch.count_diff[slot],
                scratch.oc_sched[slot], scratch.oc_lost[slot])

    @jit
    def pool_only_block(pp, seed, paths, row0, tup, collections, cdr, oc_value, provider_period, provider_shift,
                        provider_out, weights, pool_out, cum_default, collections_total):
        """pool_block for one block of paths (no waterfall), as the engine's block kernel calls it;
        each path's total collections into ``collections_total[row0 + q]``."""
        pool_block(pp, seed, paths, row0, 0.0, 1.0, False, provider_shift, tup, collections, cdr, oc_value,
                   provider_period, provider_out, weights, pool_out, cum_default)
        for q in range(paths.shape[0]):
            total = 0.0
            for t in range(collections.shape[1]):
                total += collections[q, t]
            collections_total[row0 + q] = total

    @jit
    def draws_block(pp, seed, paths, row0, tup, collections, cdr, oc_value, provider_period, provider_shift,
                    provider_out, weights, pool_out, cum_default, recovery_draws):
        """Beta-recovery draws per path (an upper bound: invalidation is not replayed, about 4% of
        W1's licences), one path per pool_block call so that its licensees' default periods can be
        read: for the floor's draw counts, not timed."""
        licensee_period = tup[8]
        obs_period = tup[7]
        n_lic = pp.licence_royalty.shape[0]
        for q in range(paths.shape[0]):
            pool_block(pp, seed, paths[q:q + 1], row0 + q, 0.0, 1.0, False, provider_shift, tup, collections, cdr,
                       oc_value, provider_period, provider_out, weights, pool_out, cum_default)
            draws = 0.0
            if pp.recovery_beta:
                for k in range(n_lic):
                    rec = pp.licence_recovery[k]
                    tau = licensee_period[pp.licence_licensee[k]]
                    r_start = max(tau + pp.relicense_lag, pp.licence_start[k])
                    r_stop = min(pp.licence_last[k] + 1, obs_period[pp.licence_technology[k]])
                    if tau <= pp.licence_last[k] and 0.0 < rec < 1.0 and r_start < r_stop:
                        draws += 1.0
            recovery_draws[row0 + q] = draws

    def pool_only(plan, seed, n, collections_total, recovery_draws=None):
        """The pool-only probe over ``plan`` (paths 0..n-1): working arrays allocated here, blocks on
        threads, as the engine; with ``recovery_draws``, also each path's beta-recovery draws
        (a second, per-path pass: time the call without them)."""
        slots = num_threads()
        scratch = scratch_for(plan, slots)
        out = allocate_chunk(n, len(plan.tranche_names), len(plan.trigger_names), plan.periods,
                             plan.pool.provider_loading.shape[0])
        shift = np.zeros(plan.pool.provider_loading.shape[0])
        paths = np.arange(n, dtype=np.int64)

        def block(lo, hi, slot, kernel, sink):
            kernel(plan.pool, np.int64(seed), paths[lo:hi], np.int64(lo), pool_tuple(scratch, slot),
                   scratch.collections[slot], scratch.cdr[slot], scratch.oc_value[slot], scratch.provider_period[slot],
                   shift, out.provider, out.weights, out.pool, out.cum_default, sink)

        run_blocks(n, BLOCK_PATHS, lambda lo, hi, slot: block(lo, hi, slot, pool_only_block, collections_total))
        if recovery_draws is not None:
            run_blocks(n, BLOCK_PATHS, lambda lo, hi, slot: block(lo, hi, slot, draws_block, recovery_draws))

    return {"rng_floor": rng_floor, "libm_floor": libm_floor, "pool_only": pool_only, "primitives": primitives()}


def primitives() -> dict:
    """The primitives the pool calls per licensee or period, each as a one-thread loop kernel.

    Returns
    -------
    dict
        Label -> (``loop(n, arg)``, ``arg``): ``loop`` sums ``n`` calls of the primitive on the draws
        0..n-1 of one stream, so every input depends on a draw and nothing is constant-folded.
    """
    from simengine._jit import jit
    from simengine._kernels.distributions import upper_tail_normal
    from simengine._kernels.hazard import first_period_exceeding
    from simengine.rng import gamma_at, normal_at, path_key, uniform_at

    def loop_of(body):
        # one loop per body (numba inlines the call); not cached: the cache would key every
        # loop_of closure by its one code object
        @jit(cache=False)
        def loop(n, arg):
            k = path_key(1, 2)
            s = 0.0
            for i in range(n):
                s += body(k, i, arg)
            return s

        return loop

    @jit
    def uniform(k, i, arg):
        return uniform_at(k, i)

    @jit
    def normal(k, i, arg):
        return normal_at(k, i)

    @jit
    def licensee_transform(k, i, arg):
        # as the kernel: latent -> copula uniform (erfc) -> exposure (log1p)
        return -math.log1p(-upper_tail_normal(-normal_at(k, i)))

    @jit
    def invalidation(k, i, arg):
        return first_period_exceeding(-math.log1p(-uniform_at(k, i)), 0.005, 0.25, 40)

    @jit
    def exp(k, i, arg):
        return math.exp(uniform_at(k, i) - 0.5)

    @jit
    def gamma(k, i, shape):
        return gamma_at(k, i, shape)

    return {"uniform_at": (loop_of(uniform), 0.0), "normal_at": (loop_of(normal), 0.0),
            "normal_at + erfc + log1p (licensee latent -> exposure)": (loop_of(licensee_transform), 0.0),
            "uniform_at + log1p + ceil (invalidation period)": (loop_of(invalidation), 0.0),
            "uniform_at + exp": (loop_of(exp), 0.0),
            "gamma_at(shape 3)": (loop_of(gamma), 3.0), "gamma_at(shape 12)": (loop_of(gamma), 12.0)}


def rng_counts(plan, mean_recovery_draws: float) -> tuple[np.ndarray, np.ndarray]:
    """Normals and uniforms per path, by stream, that ``simengine._kernels.pool.pool_block`` draws.

    Parameters
    ----------
    plan : simengine.plan.Plan
    mean_recovery_draws : float
        Mean number of beta recoveries per path (from the ``pool_only`` kernel).

    Returns
    -------
    normals, uniforms : ndarray(int64), shape (9,)
        Indexed by the stream constants of :mod:`simengine.rng` (``S_GLOBAL`` ...).
    """
    from simengine import rng as R

    pp = plan.pool
    T = pp.periods
    normals = np.zeros(9, np.int64)
    uniforms = np.zeros(9, np.int64)
    normals[R.S_GLOBAL] = T
    n_f = pp.factor_root.shape[0]
    normals[R.S_FACTOR] = (n_f - 1) if pp.factor_identity else n_f * (n_f - 1) // 2
    if pp.copula_t:
        normals[R.S_CHI2], uniforms[R.S_CHI2] = 1, 1
    if pp.demand_on:
        normals[R.S_DEMAND] = int((pp.demand_vol_annual > 0).sum()) * T
    if pp.obsolescence_on:
        drawn = (pp.obsolescence_hazard_annual > 0) & (pp.obsolescence_forced_period < 0)
        normals[R.S_OBSOLESCENCE] = int(drawn.sum())
    if pp.default_on:
        normals[R.S_LICENSEE] = len(pp.licensee_hazard_annual)
    uniforms[R.S_INVALIDATION] = int((pp.licence_invalidation_hazard_annual > 0).sum())
    # two gamma variates per beta recovery; Marsaglia-Tsang takes one normal and one uniform per
    # attempt and accepts > 95% of attempts for shapes >= 1: count one attempt each
    g = round(2 * mean_recovery_draws)
    normals[R.S_RECOVERY], uniforms[R.S_RECOVERY] = g, g
    normals[R.S_PROVIDER] = len(pp.provider_hazard_annual)  # one latent normal per provider row
    return normals, uniforms


def libm_counts(plan, mean_recovery_draws: float) -> dict:
    """What :func:`build`'s ``libm_floor`` does per path for ``plan``: the draws of
    :func:`rng_counts` less those its own loops make, and the C-library calls the pool kernel
    cannot skip.

    Returns
    -------
    dict
        ``normals``, ``uniforms`` (ndarray(int64), shape (9,), by stream), ``exp`` (per path: periods
        x (industries with running royalties + industries with a demand elasticity), one ``exp`` each
        in ``pool_block``'s demand loop, and the path's likelihood-ratio weight), ``obsolescence``
        (technologies drawn: erfc and log each),
        ``providers`` (rows: erfc and log1p each), ``invalidation_u_max`` (ndarray(float64): per
        licence with an invalidation hazard, the uniform below which it falls in the deal: log1p
        each time), ``gamma`` (gamma variates: two per beta recovery) and ``gamma_shapes``
        (ndarray(float64): each beta-recovering licence's two shapes).
    """
    from simengine import rng as R

    pp = plan.pool
    T = pp.periods
    normals, uniforms = rng_counts(plan, mean_recovery_draws)
    out = {"exp": int(pp.industry_running.sum() + (pp.demand_elasticity != 0).sum()) * T + 1,  # + the weight's
           "obsolescence": int(normals[R.S_OBSOLESCENCE]), "providers": int(normals[R.S_PROVIDER]),
           "gamma": int(normals[R.S_RECOVERY])}
    for s in (R.S_OBSOLESCENCE, R.S_PROVIDER, R.S_RECOVERY):
        normals[s] = 0
    uniforms[R.S_RECOVERY] = uniforms[R.S_INVALIDATION] = 0
    hazard = pp.licence_invalidation_hazard_annual
    out["invalidation_u_max"] = np.ascontiguousarray(pp.licence_invalidation_u_max[hazard > 0], np.float64)
    rec = pp.licence_recovery
    beta = rec[(rec > 0.0) & (rec < 1.0)] if pp.recovery_beta else rec[:0]
    conc = beta * (1.0 - beta) / pp.recovery_stdev ** 2 - 1.0 if len(beta) else beta
    shapes = np.ravel(np.column_stack([beta * conc, (1.0 - beta) * conc]))
    out["gamma_shapes"] = shapes if len(shapes) else np.ones(1)
    if not len(beta):
        out["gamma"] = 0
    out["normals"], out["uniforms"] = normals, uniforms
    return out


def time_floor(run, paths: int, reps: int) -> dict:
    """Wall time of a floor kernel, ``run(seed, n_paths, out=out)``, over ``paths`` paths (compiled
    before the clock)."""
    out = np.empty(paths)
    run(np.int64(1), 64, out=np.empty(64))  # compile / load
    runs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run(np.int64(SEED), paths, out=out)
        runs.append(time.perf_counter() - t0)
    return timing(runs)
