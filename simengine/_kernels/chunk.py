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
)
from .pool import pool_block
from .waterfall import waterfall_path


@jit
def simulate_block(pp, wp, seed, paths, row0, global_shift, chi2_scale, antithetic, provider_shift,
                   tranche_out, trig_out, flag_out, pool_out, cum_default, weights, provider_out, ledgers,
                   collections_out, scratch, slot):
    """Paths ``paths`` (int64, shape (m,)) into rows ``row0 .. row0 + m - 1`` of the outputs, on one
    thread, with the working arrays of ``scratch`` slot ``slot``; where ``ledgers`` has rows, also
    each path's enhanced ledger and collections (rows ``0 .. m - 1``).

    ``global_shift``, ``chi2_scale``, ``antithetic`` and ``provider_shift`` (ndarray(float64),
    shape (providers,)) are the sampling measure (see :func:`simengine._kernels.pool.pool_block`);
    the waterfall never sees it, only ``weights`` do.

    tranche_out, trig_out, flag_out, pool_out, cum_default, weights, provider_out : the fields of
        :class:`simengine._layout.ChunkOutputs`, in that order (outputs, rows for the whole chunk).
    scratch : :class:`simengine._layout.Scratch`

    ledgers : ndarray(float64), shape (m, periods, ledger width), or (0, 0, 0) for none
    collections_out : ndarray(float64), shape (m, periods), or (0, 0)
    Both from :func:`simengine._layout.allocate_ledgers`; ``row0`` and ``slot`` must be int64 (a
    literal would type-specialise a second compiled copy).

    One call per block; pool_block (once per block: the plan's arrays cross a call field by field,
    which once a path cost Guangzhou a third of its kernel) and waterfall_path (once per path and
    basis) are calls, compiled once each (inlining them here, at numba's IR level, made the cold
    compile a third longer). Chunks and ledgers share this one compiled function.
    """
    T = pp.periods
    n_tr = wp.tranche_balance.shape[0]
    n_trig = trig_out.shape[1]
    record = ledgers.shape[0] > 0
    pool_scratch = (scratch.g_global[slot], scratch.factors[slot], scratch.demand_x[slot], scratch.clock[slot],
                    scratch.clock_start[slot], scratch.clock_scale[slot],
                    scratch.screen[slot], scratch.obs_period[slot], scratch.licensee_period[slot],
                    scratch.group_diff[slot], scratch.cdr_diff[slot], scratch.count_diff[slot],
                    scratch.oc_sched[slot], scratch.oc_lost[slot])
    collections = scratch.collections[slot]
    cdr = scratch.cdr[slot]
    oc_value = scratch.oc_value[slot]
    provider_period = scratch.provider_period[slot]
    balance = scratch.balance[slot]
    carry = scratch.carry[slot]
    state = scratch.state[slot]
    res = scratch.res[slot]
    trig = scratch.trig[slot]
    flags = scratch.flags[slot]
    no_ledger = collections_out[:0]  # a view: kernels do not allocate (see simengine._jit)
    pool_block(pp, seed, paths, row0, global_shift, chi2_scale, antithetic, provider_shift, pool_scratch, collections,
               cdr, oc_value, provider_period, provider_out, weights, pool_out, cum_default)
    for q in range(paths.shape[0]):
        i = row0 + q
        if record:
            for t in range(T):
                collections_out[q, t] = collections[q, t]
        # enhanced basis first; the standalone one differs only in provider draws, so it is run
        # only where a provider was asked
        asked = False
        for basis in (BASIS_ENHANCED, BASIS_STANDALONE):
            if basis == BASIS_STANDALONE and not asked:
                break
            rec = record and basis == BASIS_ENHANCED
            waterfall_path(wp, collections[q], cdr[q], oc_value[q], provider_period[q], basis == BASIS_ENHANCED,
                           balance, carry, state, res[basis], trig[basis], flags[basis],
                           ledgers[q] if rec else no_ledger, rec)
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
