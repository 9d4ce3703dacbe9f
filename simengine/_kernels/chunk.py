"""Block driver (CPU): a block of paths on one thread, each path addressed by (seed, path) only.

The caller allocates every output (:func:`simengine._layout.allocate_chunk`,
:func:`simengine._layout.allocate_ledgers`) and the working arrays
(:func:`simengine._layout.allocate_scratch`, one set per thread, a "slot"), and runs blocks on
threads (:func:`simengine._jit.run_blocks`; the kernel releases the GIL), so nothing here or below
allocates and one compiled function serves chunks and ledgers alike.
"""

from __future__ import annotations

from .._jit import jit
from .._layout import (
    BASIS_ENHANCED,
    BASIS_STANDALONE,
    N_FLAGS,
    N_PATH_OUT,
    N_TRANCHE_OUT,
    P_CHI2,
    P_COLLECTIONS,
    P_DEFAULTS,
    P_INVALIDATED,
    P_OBSOLETE,
    P_Z_GLOBAL,
)
from .pool import pool_path
from .waterfall import waterfall_path


@jit
def simulate_block(pp, wp, seed, paths, row0, global_shift, chi2_scale, antithetic, provider_shift,
                   tranche_out, trig_out, flag_out, pool_out, cum_default, weights, provider_out, ledgers,
                   collections_out, scratch, slot):
    """Paths ``paths`` (int64, shape (m,)) into rows ``row0 .. row0 + m - 1`` of the outputs, on one
    thread, with the working arrays of ``scratch`` slot ``slot``; where ``ledgers`` has rows, also
    each path's enhanced ledger and collections (rows ``0 .. m - 1``).

    ``global_shift``, ``chi2_scale``, ``antithetic`` and ``provider_shift`` (ndarray(float64),
    shape (providers,)) are the sampling measure (see :func:`simengine._kernels.pool.pool_path`);
    the waterfall never sees it, only ``weights`` do.

    tranche_out, trig_out, flag_out, pool_out, cum_default, weights, provider_out : the fields of
        :class:`simengine._layout.ChunkOutputs`, in that order (outputs, rows for the whole chunk).
    scratch : :class:`simengine._layout.Scratch`

    ledgers : ndarray(float64), shape (m, periods, ledger width), or (0, 0, 0) for none
    collections_out : ndarray(float64), shape (m, periods), or (0, 0)
    Both from :func:`simengine._layout.allocate_ledgers`; ``row0`` and ``slot`` must be int64 (a
    literal would type-specialise a second compiled copy).

    One call per block; pool_path and waterfall_path are calls, compiled once each (inlining them
    here, at numba's IR level, made the cold compile a third longer for no measurable speed now
    that kernels carry no reference counts). Chunks and ledgers share this one compiled function.
    """
    T = pp.periods
    n_tr = wp.tranche_balance.shape[0]
    n_trig = trig_out.shape[1]
    record = ledgers.shape[0] > 0
    pool_scratch = (scratch.g_global[slot], scratch.factors[slot], scratch.demand_x[slot], scratch.clock[slot],
                    scratch.clock_start[slot], scratch.clock_scale[slot],
                    scratch.screen[slot], scratch.obs_period[slot], scratch.licensee_period[slot],
                    scratch.group_diff[slot], scratch.cdr_diff[slot], scratch.count_diff[slot],
                    scratch.oc_sched[slot], scratch.oc_lost[slot], scratch.oc_value[slot])
    count_diff = scratch.count_diff[slot]
    oc_value = scratch.oc_value[slot]
    collections = scratch.collections[slot]
    cdr = scratch.cdr[slot]
    provider_period = scratch.provider_period[slot]
    balance = scratch.balance[slot]
    carry = scratch.carry[slot]
    state = scratch.state[slot]
    res = scratch.res[slot]
    trig = scratch.trig[slot]
    flags = scratch.flags[slot]
    no_ledger = collections_out[:0]  # a view: kernels do not allocate (see simengine._jit)
    for q in range(paths.shape[0]):
        i = row0 + q
        w, z, chi2, n_def, n_obs, n_inv = pool_path(
            pp, seed, paths[q], global_shift, chi2_scale, antithetic, provider_shift, pool_scratch, collections, cdr,
            provider_period, provider_out[i])
        weights[i] = w
        pool_out[i, P_DEFAULTS] = n_def
        pool_out[i, P_OBSOLETE] = n_obs
        pool_out[i, P_INVALIDATED] = n_inv
        total = 0.0
        for t in range(T):
            total += collections[t]
            cum_default[i, t] = count_diff[t]
        pool_out[i, P_COLLECTIONS] = total
        pool_out[i, P_Z_GLOBAL] = z
        pool_out[i, P_CHI2] = chi2
        if record:
            for t in range(T):
                collections_out[q, t] = collections[t]
        # enhanced basis first; the standalone one differs only in provider draws, so it is run
        # only where a provider was asked
        asked = False
        for basis in (BASIS_ENHANCED, BASIS_STANDALONE):
            if basis == BASIS_STANDALONE and not asked:
                break
            rec = record and basis == BASIS_ENHANCED
            waterfall_path(wp, collections, cdr, oc_value, provider_period, basis == BASIS_ENHANCED, balance,
                           carry, state, res[basis], trig[basis], flags[basis], ledgers[q] if rec else no_ledger, rec)
            for c in range(N_FLAGS):
                if flags[BASIS_ENHANCED, c] != 0.0:
                    asked = True
        for c in range(N_PATH_OUT):
            flag_out[i, c] = flags[BASIS_ENHANCED, c]
        for c in range(n_trig):
            trig_out[i, c] = trig[BASIS_ENHANCED, c]
        for k in range(n_tr):
            for c in range(N_TRANCHE_OUT):
                tranche_out[i, BASIS_ENHANCED, k, c] = res[BASIS_ENHANCED, k, c]
                tranche_out[i, BASIS_STANDALONE, k, c] = (res[BASIS_STANDALONE, k, c] if asked
                                                          else res[BASIS_ENHANCED, k, c])
