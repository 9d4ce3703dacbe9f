"""The only caller of the kernels: a chunk of paths into caller-allocated arrays, ledgers of
chosen paths, and the arrays of a chunk as the per-path Parquet tables of SPEC §5."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa

from .._jit import cached, compile_for, num_threads, run_blocks
from .._kernels import chunk as kernels
from .._layout import (
    BASIS_ENHANCED,
    BASIS_STANDALONE,
    CLAIMS,
    FLAGS,
    P_CHI2,
    P_COLLECTIONS,
    P_DEFAULTS,
    P_INVALIDATED,
    P_OBSOLETE,
    P_Z_GLOBAL,
    PR_WORST_GRADE,
    PROVIDER_KINDS,
    T_FIRST_SHORTFALL,
    TRANCHE_DRAWS,
    TRANCHE_OUT,
    W_CALL_PERIOD,
    W_UNREIMBURSED,
    ChunkOutputs,
    Scratch,
    allocate_chunk,
    allocate_ledgers,
    allocate_scratch,
)
from ..plan import Plan, check_plan
from .sampling import PLAIN, Sampling

# numba compiles on a kernel's first call (or loads it from its cache): see warm_up
_COMPILED = {"done": False, "seconds": 0.0}
log = logging.getLogger("simengine")
# loading the kernels from numba's cache takes a fraction of a second: past this, they are compiling
COMPILE_NOTICE_AFTER = 1.0
COMPILE_NOTICE = ("compiling the simulation kernels (once per install or upgrade of simengine, about 15 s on a "
                  "2-core machine; later runs load them from numba's cache in under a second)")
# paths per kernel call from a thread: enough work (milliseconds) that a call's argument
# unboxing (the plans' arrays) is noise, few enough that threads share the end of a chunk evenly
BLOCK_PATHS = 256
NO_LEDGERS = np.empty((0, 0, 0))
NO_COLLECTIONS = np.empty((0, 0))


def scratch_for(plan: Plan, slots: int) -> Scratch:
    """The path functions' working arrays for ``plan``, ``slots`` sets."""
    pp = plan.pool
    return allocate_scratch(slots, plan.periods, pp.factor_root.shape[0], len(pp.demand_drift_annual),
                            len(pp.obsolescence_hazard_annual), len(pp.licensee_hazard_annual),
                            len(pp.group_running), len(pp.provider_hazard_annual), len(plan.tranche_names),
                            len(plan.trigger_names), pp.oc_base.shape[0], BLOCK_PATHS)


def provider_shifts(plan: Plan, sampling: Sampling) -> np.ndarray:
    """The measure's provider shifts as the kernels' array, ndarray(float64), shape (providers,)."""
    n = plan.pool.provider_loading.shape[0]
    if not sampling.provider_shift:
        return np.zeros(n)
    if len(sampling.provider_shift) != n:
        raise ValueError(f"a provider shift for each of the plan's {n} providers, not {len(sampling.provider_shift)}")
    return np.asarray(sampling.provider_shift, dtype=float)


def _allocate(plan: Plan, n: int) -> ChunkOutputs:
    return allocate_chunk(n, len(plan.tranche_names), len(plan.trigger_names), plan.periods,
                          plan.pool.provider_loading.shape[0])


def run_chunk(plan: Plan, seed: int, first_path: int, n: int, sampling: Sampling = PLAIN) -> ChunkOutputs:
    """Simulate paths ``first_path .. first_path + n - 1``; returns the kernel's output arrays.

    Blocks of :data:`BLOCK_PATHS` paths run on :func:`simengine._jit.num_threads` threads, one
    set of working arrays (slot) each; a path's outputs depend on its address only, so the bits
    do not depend on the thread count or on which thread ran which block.
    """
    check_plan(plan)
    out = _allocate(plan, n)
    scratch = scratch_for(plan, num_threads())
    paths = np.arange(first_path, first_path + n, dtype=np.int64)
    measure = (float(sampling.global_shift), float(sampling.chi2_scale), bool(sampling.antithetic),
               provider_shifts(plan, sampling))

    def block(lo: int, hi: int, slot: int) -> None:
        kernels.simulate_block(plan.pool, plan.waterfall, np.int64(seed), paths[lo:hi], np.int64(lo), *measure,
                               *out, NO_LEDGERS, NO_COLLECTIONS, scratch, np.int64(slot))

    run_blocks(n, BLOCK_PATHS, block)
    return out


def ledgers(plan: Plan, seed: int, paths: np.ndarray, sampling: Sampling = PLAIN,
            threads: int | None = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-period ledgers (enhanced basis) of the given paths, in blocks of :data:`BLOCK_PATHS`
    on ``threads`` threads (None: :func:`simengine._jit.num_threads`), written in place; the bits
    do not depend on the threads, since every path's numbers are its own.

    paths : ndarray(int64), shape (n,)
    Returns (ledgers, collections): shapes (n, periods, ledger width) and (n, periods); ledger
    columns are named by :func:`simengine._layout.ledger_columns`.
    """
    check_plan(plan)
    paths = np.ascontiguousarray(paths, np.int64)
    n = len(paths)
    threads = num_threads() if threads is None else int(threads)
    led, col = allocate_ledgers(n, plan.periods, len(plan.tranche_names))
    out = _allocate(plan, n)
    scratch = scratch_for(plan, max(1, min(threads, -(-n // BLOCK_PATHS))))
    measure = (float(sampling.global_shift), float(sampling.chi2_scale), bool(sampling.antithetic),
               provider_shifts(plan, sampling))

    def block(lo: int, hi: int, slot: int) -> None:
        kernels.simulate_block(plan.pool, plan.waterfall, np.int64(seed), paths[lo:hi], np.int64(lo), *measure,
                               *out, led[lo:hi], col[lo:hi], scratch, np.int64(slot))

    run_blocks(n, BLOCK_PATHS, block, threads)
    return led, col


def warm_up(plan: Plan) -> float:
    """Compile (or load from cache) the kernels once per process; a compile that outlasts
    :data:`COMPILE_NOTICE_AFTER` seconds says so once, on the ``simengine`` logger, with the
    duration to expect.

    Returns the seconds this call spent (0 once the process has warmed up); the first call's
    figure stays available from :func:`compile_seconds` for manifests.
    """
    if _COMPILED["done"]:
        return 0.0
    start = time.perf_counter()
    notice = threading.Timer(COMPILE_NOTICE_AFTER, log.info, args=(COMPILE_NOTICE,))
    notice.daemon = True
    notice.start()
    helper = _start_waterfall_compile(plan)
    try:
        run_chunk(plan, 0, 0, 1)
        ledgers(plan, 0, np.zeros(1, np.int64))
    finally:
        notice.cancel()
        if helper is not None:  # done by now, or no longer needed: this process has compiled everything
            helper.kill()
            helper.wait()
    _COMPILED["seconds"] = time.perf_counter() - start
    _COMPILED["done"] = True
    return _COMPILED["seconds"]


def _start_waterfall_compile(plan: Plan) -> subprocess.Popen | None:
    """On a cold cache with a second kernel thread: a helper process that compiles the waterfall
    kernel into numba's cache while this one compiles the pool kernel (numba compiles one
    function at a time per process); this process then loads it from the cache instead of
    compiling it (about 3 s of the 14 s on W1). None when the cache is warm or off, or on one
    thread (a Dask worker set to one thread, say: its neighbours use the other CPUs)."""
    if cached("chunk.simulate_block") or num_threads() < 2:
        return None
    try:
        payload = pickle.dumps(plan)
    except (pickle.PicklingError, TypeError, AttributeError):  # a plan edited by hand: compile here
        return None
    code = "from simengine.engine.chunks import compile_waterfall_helper; compile_waterfall_helper()"
    try:
        helper = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
    except OSError:  # no helper: this process compiles everything, as it would anyway
        return None
    try:
        helper.stdin.write(payload)
        helper.stdin.close()
    except OSError:  # it died at once: the same
        helper.kill()
        helper.wait()
        return None
    return helper


def compile_waterfall_helper() -> None:
    """The helper process of :func:`warm_up`: the plan from stdin, the waterfall kernel compiled
    for the argument types ``simulate_block`` passes it (C-contiguous slices of a scratch slot)."""
    compile_for(kernels.waterfall_path, waterfall_compile_args(pickle.load(sys.stdin.buffer)))


def waterfall_compile_args(plan: Plan) -> tuple:
    """Arguments of the types ``simulate_block`` passes ``waterfall_path`` (test_wholerun checks
    that they name the signature the kernel is compiled for)."""
    s = scratch_for(plan, 1)
    return (plan.waterfall, s.collections[0][0], s.cdr[0][0], s.oc_value[0][0], s.provider_period[0][0], True,
            s.balance[0],
            s.carry[0], s.state[0], s.res[0][0], s.trig[0][0], s.flags[0][0], np.zeros((0, 0)), False)


def compile_seconds() -> float:
    """Seconds this process spent compiling or loading the kernels (0 before :func:`warm_up`)."""
    return _COMPILED["seconds"]


def chunk_tables(plan: Plan, first_path: int, out: ChunkOutputs) -> tuple[pa.Table, pa.Table]:
    """One chunk's arrays as its (tranche_losses, pool_paths) tables (SPEC §5 columns)."""
    n = out.weights.shape[0]
    n_tr = len(plan.tranche_names)
    paths = np.arange(first_path, first_path + n, dtype=np.int64)

    # one transposed copy makes every column contiguous: gathering each one from the (path, basis,
    # tranche, output) layout read the whole array once per column
    by_column = np.ascontiguousarray(out.tranche.transpose(1, 3, 0, 2))

    def column(basis: int, name: str) -> pa.Array | np.ndarray:
        v = by_column[basis, TRANCHE_OUT.index(name)].reshape(-1)
        if TRANCHE_OUT.index(name) == T_FIRST_SHORTFALL:
            return pa.array(v.astype(np.int32), mask=v < 0)
        return v > 0 if name == "defaulted" else v

    tranche_col = pa.DictionaryArray.from_arrays(
        pa.array(np.tile(np.arange(n_tr, dtype=np.int32), n)), pa.array(list(plan.tranche_names)))
    cols = {"path": np.repeat(paths, n_tr), "tranche": tranche_col, "weight": np.repeat(out.weights, n_tr)}
    cols.update({name: column(BASIS_ENHANCED, name) for name in TRANCHE_OUT})
    cols.update({"standalone_" + name: column(BASIS_STANDALONE, name) for name in TRANCHE_OUT
                 if name not in TRANCHE_DRAWS})  # the standalone basis asks no provider
    tl = pa.table(cols)

    pool = out.pool
    T = plan.periods
    collected = pool[:, P_COLLECTIONS]
    scheduled = plan.pool.scheduled_total
    cols = {
        "path": paths,
        "weight": out.weights,
        "licensee_defaults": pool[:, P_DEFAULTS].astype(np.int32),
        "obsolete_technologies": pool[:, P_OBSOLETE].astype(np.int32),
        "invalidations": pool[:, P_INVALIDATED].astype(np.int32),
        "collections_amount": collected,
        "pool_loss_fraction": 1.0 - collected / scheduled if scheduled > 0 else np.zeros(n),
        "default_fraction": out.cum_default[:, T - 1].astype(np.float64),
        "global_factor": pool[:, P_Z_GLOBAL],
        "chi2_mixing": pool[:, P_CHI2],
    }
    for j, name in enumerate(plan.trigger_names):
        cols[f"trigger_{name}"] = out.triggers[:, j] > 0
    for c, name in enumerate(FLAGS):
        cols[name] = out.flags[:, c] > 0
    for j, labels in enumerate(plan.provider_grades):  # only migrating providers have grades
        if labels is not None:
            kind = PROVIDER_KINDS[plan.waterfall.provider_kind[j]]
            cols[f"{kind}_worst_grade"] = pa.DictionaryArray.from_arrays(
                pa.array(out.provider[:, j, PR_WORST_GRADE].astype(np.int32)), pa.array(list(labels)))
    for c, name in enumerate(CLAIMS):
        cols[name] = out.flags[:, W_UNREIMBURSED + c]
    call = out.flags[:, W_CALL_PERIOD]
    cols["call_period"] = pa.array(call.astype(np.int32), mask=call < 0)
    pp = pa.table(cols)
    flat = pa.array(out.cum_default.reshape(-1), type=pa.float32())
    offsets = pa.array(np.arange(0, (n + 1) * T, T, dtype=np.int32))
    pp = pp.append_column("cumulative_default_fraction", pa.ListArray.from_arrays(offsets, flat))
    return tl, pp
