"""Chunk driver (CPU): blocks of paths in parallel, each path addressed by (seed, path index) only.

The caller allocates every output (:func:`simengine._layout.allocate_chunk`,
:func:`simengine._layout.allocate_ledgers`); the per-path working arrays are allocated once per
block of ``BLOCK_PATHS`` paths and passed down, so the path functions never allocate.
"""

from __future__ import annotations

import numpy as np

from .._jit import jit, parallel_jit, prange
from .._layout import (
    BASIS_ENHANCED,
    BASIS_STANDALONE,
    N_FLAGS,
    N_PATH_OUT,
    N_PROVIDER_KINDS,
    N_TRANCHE_OUT,
    P_CHI2,
    P_COLLECTIONS,
    P_DEFAULTS,
    P_INVALIDATED,
    P_OBSOLETE,
    P_Z_GLOBAL,
    STATE_COLUMNS,
)
from .pool import pool_path, pool_scratch
from .waterfall import waterfall_path

BLOCK_PATHS = 64

# the same functions inlined into simulate_block's path loop (numba IR inlining; never compiled
# on their own, so nothing to cache)
pool_path_inline = jit(getattr(pool_path, "py_func", pool_path), inline="always", cache=False)
waterfall_path_inline = jit(getattr(waterfall_path, "py_func", waterfall_path), inline="always", cache=False)


@parallel_jit
def simulate_chunk(pp, wp, seed, first_path, global_shift, chi2_scale, antithetic, n_factors,
                   tranche_out, trig_out, flag_out, pool_out, cum_default, weights):
    """Simulate paths ``first_path .. first_path + n - 1`` (n = ``weights.shape[0]``).

    ``global_shift``, ``chi2_scale`` and ``antithetic`` are the sampling measure (see
    :func:`pool_path`); the waterfall never sees it, only ``weights`` do.

    Outputs (n = paths in the chunk, B = 2 bases: 0 standalone, 1 enhanced):
    tranche_out, trig_out, flag_out, pool_out, cum_default, weights : the fields of
        :class:`simengine._layout.ChunkOutputs` (allocated by the caller with
        :func:`simengine._layout.allocate_chunk`), in that order.
    """
    n = weights.shape[0]
    n_blocks = (n + BLOCK_PATHS - 1) // BLOCK_PATHS
    no_ledgers = np.empty((0, 0, 0))
    no_collections = np.empty((0, 0))
    for b in prange(n_blocks):
        lo = b * BLOCK_PATHS
        hi = min(n, lo + BLOCK_PATHS)
        simulate_block(pp, wp, seed, np.arange(first_path + lo, first_path + hi), lo, global_shift, chi2_scale,
                       antithetic, n_factors, tranche_out, trig_out, flag_out, pool_out, cum_default, weights,
                       no_ledgers, no_collections)


@jit
def simulate_block(pp, wp, seed, paths, row0, global_shift, chi2_scale, antithetic, n_factors,
                   tranche_out, trig_out, flag_out, pool_out, cum_default, weights, ledgers, collections_out):
    """Paths ``paths`` (int64, shape (m,)) into rows ``row0 .. row0 + m - 1`` of the outputs of
    :func:`simulate_chunk`, on one thread; where ``ledgers`` has rows, also each path's enhanced
    ledger and collections (rows ``0 .. m - 1``).

    ledgers : ndarray(float64), shape (m, periods, ledger width), or (0, 0, 0) for none
    collections_out : ndarray(float64), shape (m, periods), or (0, 0)
    Both from :func:`simengine._layout.allocate_ledgers`; ``row0`` must be an int64 (a literal
    would type-specialise a second compiled copy).

    One call per block, with pool_path and waterfall_path inlined: a call per path would
    reference-count each of the plans' ~75 arrays twice (atomics on cache lines every thread
    shares), and inlining into the parallel loop itself makes numba's parfor passes crawl. Chunks
    and ledgers share this one compiled function.
    """
    T = pp.periods
    n_tr = wp.tranche_balance.shape[0]
    n_trig = trig_out.shape[1]
    record = ledgers.shape[0] > 0
    scratch = pool_scratch(pp, n_factors)
    count_diff = scratch[9]
    oc_value = scratch[12]
    collections = np.empty(T)
    cdr = np.empty(T)
    n_prov = wp.provider_kind.shape[0]
    provider_period = np.empty(n_prov, np.int64)
    balance = np.empty(n_tr)
    carry = np.empty(n_tr)
    state = np.empty((max(max(n_tr, n_trig), max(n_prov, N_PROVIDER_KINDS)), STATE_COLUMNS))  # state_rows()
    res = np.empty((2, n_tr, N_TRANCHE_OUT))
    trig = np.empty((2, n_trig), np.uint8)
    flags = np.empty((2, N_PATH_OUT))
    no_ledger = np.empty((0, 0))
    for q in range(paths.shape[0]):
        i = row0 + q
        w, z, chi2, n_def, n_obs, n_inv = pool_path_inline(
            pp, seed, paths[q], global_shift, chi2_scale, antithetic, scratch, collections, cdr, provider_period)
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
            waterfall_path_inline(wp, collections, cdr, oc_value, provider_period, basis == BASIS_ENHANCED, balance,
                                  carry, state, res[basis], trig[basis], flags[basis],
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
