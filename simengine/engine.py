"""Driver: plan → chunks of paths through the kernels → spooled per-path Parquet parts.

Memory is set by ``chunk_paths``: each chunk's per-path results are written to a Parquet part
in a spool folder and dropped; statistics are computed afterwards from those parts, in path
order, so the numbers do not depend on how the paths were split.
"""

from __future__ import annotations

import logging
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import _jit
from .plan import Plan, compile_plan
from .schema import Scenario

log = logging.getLogger("simengine")

_COMPILED = {"done": False, "seconds": 0.0}


def _kernels():
    from . import kernels  # imported lazily: `simengine --help` and `validate` never compile

    return kernels


def _chunk_tables(plan: Plan, first_path: int, out: dict) -> tuple[pa.Table, pa.Table]:
    """Per-path arrays of one chunk → (tranche_losses part, pool_paths part)."""
    k = _kernels()
    n = out["weights"].shape[0]
    n_tr = len(plan.tranche_names)
    paths = np.arange(first_path, first_path + n, dtype=np.int64)
    t = out["tranche"]  # (n, 2, tranches, fields)

    def col(basis, field):
        return t[:, basis, :, field].reshape(-1)

    def first_shortfall(basis):
        v = col(basis, k.T_FIRST_SHORTFALL)
        return pa.array(v.astype(np.int32), mask=v < 0)

    tranche_col = pa.DictionaryArray.from_arrays(
        pa.array(np.tile(np.arange(n_tr, dtype=np.int32), n)), pa.array(list(plan.tranche_names)))
    tl = pa.table({
        "path": np.repeat(paths, n_tr),
        "tranche": tranche_col,
        "weight": np.repeat(out["weights"], n_tr),
        "loss_fraction": col(1, k.T_LOSS),
        "pv_loss_fraction": col(1, k.T_PV_LOSS),
        "interest_shortfall_amount": col(1, k.T_INTEREST_SHORTFALL),
        "first_shortfall_period": first_shortfall(1),
        "wal_years": col(1, k.T_WAL),
        "defaulted": col(1, k.T_DEFAULTED) > 0,
        "commitment_draw_amount": col(1, k.T_COMMITMENT),
        "guarantee_draw_amount": col(1, k.T_GUARANTEE),
        "standalone_loss_fraction": col(0, k.T_LOSS),
        "standalone_pv_loss_fraction": col(0, k.T_PV_LOSS),
        "standalone_interest_shortfall_amount": col(0, k.T_INTEREST_SHORTFALL),
        "standalone_first_shortfall_period": first_shortfall(0),
        "standalone_wal_years": col(0, k.T_WAL),
        "standalone_defaulted": col(0, k.T_DEFAULTED) > 0,
    })
    pool = out["pool"]
    T = plan.periods
    cum = out["cum_default"]
    cols = {
        "path": paths,
        "weight": out["weights"],
        "licensee_defaults": pool[:, 0].astype(np.int32),
        "obsolete_technologies": pool[:, 1].astype(np.int32),
        "invalidations": pool[:, 2].astype(np.int32),
        "collections_amount": pool[:, 3],
        "pool_loss_fraction": 1.0 - pool[:, 3] / plan.pool.scheduled_total if plan.pool.scheduled_total > 0 else np.zeros(n),
        "default_fraction": cum[:, T - 1].astype(np.float64),
    }
    for j, name in enumerate(plan.trigger_names):
        cols[f"trigger_{name}"] = out["triggers"][:, j] > 0
    flags = out["flags"]
    cols["commitment_needed"] = flags[:, k.FLAG_COMMITMENT_NEEDED] > 0
    cols["commitment_provider_failed"] = flags[:, k.FLAG_COMMITMENT_FAILED] > 0
    cols["guarantee_needed"] = flags[:, k.FLAG_GUARANTEE_NEEDED] > 0
    cols["guarantee_provider_failed"] = flags[:, k.FLAG_GUARANTEE_FAILED] > 0
    pp = pa.table(cols)
    flat = pa.array(cum.reshape(-1), type=pa.float32())
    offsets = pa.array(np.arange(0, (n + 1) * T, T, dtype=np.int32))
    pp = pp.append_column("cumulative_default_fraction", pa.ListArray.from_arrays(offsets, flat))
    return tl, pp


def run_chunk(plan: Plan, seed: int, first_path: int, n: int, weight_shift: float = 0.0) -> dict:
    """Simulate one chunk of paths; returns the kernel's output arrays."""
    k = _kernels()
    T = plan.periods
    n_tr = len(plan.tranche_names)
    out = {
        "tranche": np.zeros((n, 2, n_tr, k.N_TRANCHE_OUT)),
        "triggers": np.zeros((n, len(plan.trigger_names)), np.uint8),
        "flags": np.zeros((n, k.N_FLAGS)),
        "pool": np.zeros((n, 4)),
        "cum_default": np.zeros((n, T), np.float32),
        "weights": np.zeros(n),
    }
    k.simulate_chunk(plan.pool, plan.waterfall, np.int64(seed), np.int64(first_path), float(weight_shift),
                     plan.pool.factor_root.shape[0], out["tranche"], out["triggers"], out["flags"],
                     out["pool"], out["cum_default"], out["weights"])
    return out


def warm_up(plan: Plan) -> float:
    """Compile (or load from cache) the kernels once per process.

    Returns the seconds this call spent (0 once the process has warmed up); the first call's
    figure stays in ``_COMPILED["seconds"]`` for manifests.
    """
    if _COMPILED["done"]:
        return 0.0
    start = time.perf_counter()
    run_chunk(plan, 0, 0, 1)
    ledgers(plan, 0, np.zeros(1, np.int64))
    _COMPILED["seconds"] = time.perf_counter() - start
    _COMPILED["done"] = True
    return _COMPILED["seconds"]


def ledgers(plan: Plan, seed: int, paths: np.ndarray, weight_shift: float = 0.0):
    """Per-period ledgers (enhanced basis) of the given paths: (ledgers, collections)."""
    k = _kernels()
    T = plan.periods
    led = np.zeros((len(paths), T, plan.ledger_width))
    col = np.zeros((len(paths), T))
    k.ledger_paths(plan.pool, plan.waterfall, np.int64(seed), np.asarray(paths, np.int64), float(weight_shift),
                   plan.pool.factor_root.shape[0], led, col)
    return led, col


class _Progress:
    """A bar on a terminal, a log line per chunk otherwise."""

    def __init__(self, total: int, label: str, enabled: bool | None):
        self.total, self.label, self.done = total, label, 0
        self.start = time.perf_counter()
        tty = sys.stderr.isatty()
        self.bar = None
        self.enabled = enabled if enabled is not None else True
        if self.enabled and tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit="path", unit_scale=True, leave=False)

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
            return
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else math.nan
        log.info("%s: %d/%d paths (%.0f%%), %.1fs elapsed, ETA %.1fs", self.label, self.done, self.total,
                 100.0 * self.done / self.total, elapsed, eta)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def simulate(scenario: Scenario, paths: int | None = None, seed: int | None = None,
             chunk_paths: int | None = None, threads: int | None = None,
             progress: bool | None = None, spool_dir: str | Path | None = None):
    """Simulate a scenario; returns a :class:`~simengine.results.SimulationResult`.

    Parameters override the scenario's ``[simulation]`` section. ``threads`` sets numba's
    thread count (results do not depend on it). Per-path tables are spooled to Parquet parts in
    ``spool_dir`` (a temporary folder owned by the result when not given).
    """
    from .results import SimulationResult

    sim = scenario.model.simulation
    paths = int(paths if paths is not None else sim.paths)
    seed = int(seed if seed is not None else sim.seed)
    chunk = int(chunk_paths if chunk_paths is not None else sim.chunk_paths)
    if paths < 1 or chunk < 1 or not (0 <= seed < 2**63):
        raise ValueError(f"paths ({paths}) and chunk_paths ({chunk}) >= 1 and 0 <= seed < 2**63 ({seed})")
    plan = compile_plan(scenario)
    _jit.set_threads(threads)
    t0 = time.perf_counter()
    compile_seconds = warm_up(plan)
    owner = spool_dir is None
    if owner:
        spool = Path(tempfile.mkdtemp(prefix="simengine-spool-"))
    else:
        spool = Path(spool_dir)
        spool.mkdir(parents=True, exist_ok=True)
    t1 = time.perf_counter()
    bar = _Progress(paths, scenario.name, progress)
    kernel_seconds = 0.0
    parts = []
    try:
        for index, first in enumerate(range(0, paths, chunk)):
            n = min(chunk, paths - first)
            k0 = time.perf_counter()
            out = run_chunk(plan, seed, first, n)
            kernel_seconds += time.perf_counter() - k0
            tl, pp = _chunk_tables(plan, first, out)
            del out
            name = f"part-{index:06d}.parquet"
            for table, folder in ((tl, "tranche_losses"), (pp, "pool_paths")):
                (spool / folder).mkdir(exist_ok=True)
                tmp = spool / folder / (name + ".partial")
                pq.write_table(table, tmp)
                tmp.replace(spool / folder / name)
            parts.append(name)
            bar.update(n)
    finally:
        bar.close()
    t2 = time.perf_counter()
    timings = {"compile_seconds": compile_seconds, "process_compile_seconds": _COMPILED["seconds"],
               "setup_seconds": t1 - t0 - compile_seconds,
               "simulate_seconds": t2 - t1, "kernel_seconds": kernel_seconds}
    return SimulationResult(scenario=scenario, plan=plan, paths=paths, seed=seed, chunk_paths=chunk,
                            spool=spool, parts=parts, timings=timings, owns_spool=owner,
                            threads=_jit.num_threads())
