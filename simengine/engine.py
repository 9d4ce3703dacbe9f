"""Driver: plan → chunks of paths through the kernels → spooled per-path Parquet parts.

Memory is set by ``chunk_paths``: each chunk's per-path results are written to a Parquet part
in a spool folder and dropped; statistics are computed afterwards from those parts, in path
order, so the numbers do not depend on how the paths were split.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import _jit
from .plan import Plan, compile_plan
from .scenario import Scenario

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
    collected = pool[:, k.P_COLLECTIONS]
    cols = {
        "path": paths,
        "weight": out["weights"],
        "licensee_defaults": pool[:, k.P_DEFAULTS].astype(np.int32),
        "obsolete_technologies": pool[:, k.P_OBSOLETE].astype(np.int32),
        "invalidations": pool[:, k.P_INVALIDATED].astype(np.int32),
        "collections_amount": collected,
        "pool_loss_fraction": 1.0 - collected / plan.pool.scheduled_total if plan.pool.scheduled_total > 0 else np.zeros(n),
        "default_fraction": cum[:, T - 1].astype(np.float64),
        "global_factor": pool[:, k.P_Z_GLOBAL],
        "chi2_mixing": pool[:, k.P_CHI2],
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


class Sampling(NamedTuple):
    """The measure paths are drawn under; weights turn it back into the scenario's own.

    global_shift : mean of the global factor (0 = plain Monte Carlo)
    chi2_scale : scale of the Student-t chi-square mixing variable, times its nominal (1 = plain)
    antithetic : paths 2m and 2m+1 are an antithetic pair
    """

    global_shift: float = 0.0
    chi2_scale: float = 1.0
    antithetic: bool = False


PLAIN = Sampling()


def run_chunk(plan: Plan, seed: int, first_path: int, n: int, sampling: Sampling = PLAIN) -> dict:
    """Simulate one chunk of paths; returns the kernel's output arrays."""
    k = _kernels()
    T = plan.periods
    n_tr = len(plan.tranche_names)
    out = {
        "tranche": np.zeros((n, 2, n_tr, k.N_TRANCHE_OUT)),
        "triggers": np.zeros((n, len(plan.trigger_names)), np.uint8),
        "flags": np.zeros((n, k.N_FLAGS)),
        "pool": np.zeros((n, k.N_POOL_OUT)),
        "cum_default": np.zeros((n, T), np.float32),
        "weights": np.zeros(n),
    }
    k.simulate_chunk(plan.pool, plan.waterfall, np.int64(seed), np.int64(first_path),
                     float(sampling.global_shift), float(sampling.chi2_scale), bool(sampling.antithetic),
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


def ledgers(plan: Plan, seed: int, paths: np.ndarray, sampling: Sampling = PLAIN):
    """Per-period ledgers (enhanced basis) of the given paths: (ledgers, collections)."""
    k = _kernels()
    T = plan.periods
    led = np.zeros((len(paths), T, plan.ledger_width))
    col = np.zeros((len(paths), T))
    k.ledger_paths(plan.pool, plan.waterfall, np.int64(seed), np.ascontiguousarray(paths, np.int64),
                   float(sampling.global_shift), float(sampling.chi2_scale), bool(sampling.antithetic),
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


class RunSpec(NamedTuple):
    """Everything a chunk needs; picklable, so a chunk can run in another process.

    ``paths`` is the number of paths asked for, or the cap when ``target_rse`` is set.
    """

    scenario: Scenario
    plan: Plan
    seed: int
    paths: int
    chunk_paths: int
    sampling: Sampling
    sampling_info: dict
    target_rse: float | None = None
    target_tranche: str | None = None
    setup_timings: dict = {}

    @property
    def n_chunks(self) -> int:
        return -(-self.paths // self.chunk_paths)

    def chunk(self, index: int) -> tuple[int, int]:
        """(first path, number of paths) of chunk ``index``."""
        first = index * self.chunk_paths
        return first, min(self.chunk_paths, self.paths - first)

    def fingerprint(self) -> dict:
        """What a spooled part depends on; a spool folder holds the parts of one fingerprint."""
        from . import __version__

        return {"scenario_hash": self.scenario.file_hash, "seed": self.seed, "paths": self.paths,
                "chunk_paths": self.chunk_paths, "sampling": list(self.sampling),
                "engine": __version__, "model_code": _model_code_hash()}


@functools.cache
def _model_code_hash() -> str:
    """sha256 of the modules that decide a chunk's numbers: a resumed spool never mixes code versions."""
    import hashlib

    h = hashlib.sha256()
    for name in ("plan.py", "kernels.py", "rng.py", "engine.py"):
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()


def prepare(scenario: Scenario, paths: int | None = None, seed: int | None = None,
            chunk_paths: int | None = None, variance_reduction: str | None = None,
            tranche: str | None = None, target_rse: float | None = None) -> RunSpec:
    """Plan a run: compile the plan, warm the kernels, choose the sampling measure (pilot).

    Arguments override the scenario's ``[simulation]`` section; ``variance_reduction`` and
    ``tranche`` go through :meth:`Scenario.with_overrides`, so a bad value is the same
    :class:`ScenarioError` a scenario file would give. With antithetics the path and chunk counts
    are rounded up to even numbers, so pairs never straddle a chunk.
    """
    from .sampling import sampling_for

    overrides = {}
    if variance_reduction is not None:
        overrides["simulation.variance_reduction"] = variance_reduction
    if tranche is not None:
        overrides["simulation.importance.tranche"] = tranche
    if overrides:
        scenario = scenario.with_overrides(overrides)
    sim = scenario.model.simulation
    paths = int(paths if paths is not None else sim.paths)
    seed = int(seed if seed is not None else sim.seed)
    chunk = int(chunk_paths if chunk_paths is not None else sim.chunk_paths)
    if paths < 1 or chunk < 1 or not (0 <= seed < 2**63):
        raise ValueError(f"paths ({paths}) and chunk_paths ({chunk}) >= 1 and 0 <= seed < 2**63 ({seed})")
    if target_rse is not None and not target_rse > 0:
        raise ValueError(f"target_rse ({target_rse}) must be > 0")
    plan = compile_plan(scenario)
    compile_seconds = warm_up(plan)
    p0 = time.perf_counter()
    sampling, info = sampling_for(plan, scenario, seed)
    timings = {"compile_seconds": compile_seconds, "pilot_seconds": time.perf_counter() - p0}
    if sampling.antithetic:
        paths += paths % 2
        chunk += chunk % 2
    if target_rse is not None:
        tranche = sim.importance.tranche or plan.tranche_names[0]
    return RunSpec(scenario, plan, seed, paths, chunk, sampling, info, target_rse, tranche, timings)


def open_spool(spec: RunSpec, spool_dir: str | Path | None) -> tuple[Path, bool]:
    """The spool folder for ``spec``: (folder, owned by the result).

    A given folder that already holds parts of a *different* run is an error, never mixed in;
    one that holds parts of this run is resumed (its finished chunks are skipped).
    """
    if spool_dir is None:
        return Path(tempfile.mkdtemp(prefix="simengine-spool-")), True
    spool = Path(spool_dir)
    spool.mkdir(parents=True, exist_ok=True)
    stamp = spool / "spool.json"
    want = spec.fingerprint()
    if stamp.exists():
        have = json.loads(stamp.read_text())
        if have != want:
            raise ValueError(f"{spool}: holds parts of another run ({have}); expected {want}. "
                             "Use a fresh folder or delete this one.")
    else:
        tmp = spool / "spool.json.partial"
        tmp.write_text(json.dumps(want, indent=2))
        tmp.replace(stamp)
    return spool, False


def part_name(index: int) -> str:
    return f"part-{index:06d}.parquet"


def spool_chunk(spec: RunSpec, spool: Path, index: int) -> float | None:
    """Simulate chunk ``index`` into ``spool``; returns kernel seconds, or None if it was already there.

    Each part is written to a temporary name and renamed, pool paths last: a chunk whose
    ``pool_paths`` part exists is finished, and a killed writer leaves only ``.partial`` files.
    """
    name = part_name(index)
    if (spool / "pool_paths" / name).exists():
        return None
    first, n = spec.chunk(index)
    k0 = time.perf_counter()
    out = run_chunk(spec.plan, spec.seed, first, n, spec.sampling)
    seconds = time.perf_counter() - k0
    tl, pp = _chunk_tables(spec.plan, first, out)
    del out
    for table, folder in ((tl, "tranche_losses"), (pp, "pool_paths")):
        (spool / folder).mkdir(exist_ok=True)
        tmp = spool / folder / f"{name}.{uuid.uuid4().hex}.partial"
        pq.write_table(table, tmp)
        os.replace(tmp, spool / folder / name)
    return seconds


def target_units(spec: RunSpec, spool: Path, index: int) -> np.ndarray:
    """Chunk ``index``'s contributions to the target tranche's PD: w·1{default} per path, or per
    antithetic pair (their mean), so that the pieces are independent."""
    basis = "" if spec.scenario.model.simulation.importance.basis == "enhanced" else "standalone_"
    k = spec.plan.tranche_names.index(spec.target_tranche)
    n_tr = len(spec.plan.tranche_names)
    t = pq.read_table(spool / "tranche_losses" / part_name(index), columns=["weight", basis + "defaulted"])
    w = t.column(0).to_numpy()[k::n_tr]
    x = w * t.column(1).to_numpy(zero_copy_only=False)[k::n_tr].astype(float)
    return 0.5 * (x[0::2] + x[1::2]) if spec.sampling.antithetic else x


def collect(spec: RunSpec, spool: Path, n_chunks: int, timings: dict, owns_spool: bool,
            stop: dict | None = None):
    """The :class:`~simengine.results.SimulationResult` of the first ``n_chunks`` spooled chunks."""
    from .results import SimulationResult

    first, n = spec.chunk(n_chunks - 1)
    return SimulationResult(spec=spec, paths=first + n, spool=spool,
                            parts=[part_name(i) for i in range(n_chunks)], timings=timings,
                            owns_spool=owns_spool, threads=_jit.num_threads(), stop=stop)


def simulate(scenario: Scenario, paths: int | None = None, seed: int | None = None,
             chunk_paths: int | None = None, threads: int | None = None,
             progress: bool | None = None, spool_dir: str | Path | None = None,
             variance_reduction: str | None = None, tranche: str | None = None,
             target_rse: float | None = None):
    """Simulate a scenario; returns a :class:`~simengine.results.SimulationResult`.

    Parameters override the scenario's ``[simulation]`` section. ``threads`` sets numba's
    thread count (results do not depend on it). Per-path tables are spooled to Parquet parts in
    ``spool_dir`` (a temporary folder owned by the result when not given); chunks already
    finished there by an earlier, interrupted call with the same inputs are not recomputed.
    With ``target_rse``, chunks are added until the PD of ``tranche`` (default: the first) has
    a relative standard error at most ``target_rse``, or ``paths`` (then a cap) is reached.
    """
    _jit.set_threads(threads)
    t0 = time.perf_counter()
    spec = prepare(scenario, paths, seed, chunk_paths, variance_reduction, tranche, target_rse)
    spool, owner = open_spool(spec, spool_dir)
    t1 = time.perf_counter()
    bar = _Progress(spec.paths, scenario.name, progress)
    kernel_seconds, skipped, done, stop = 0.0, 0, 0, None
    sums = np.zeros(3)  # units, sum, sum of squares of the target's PD contributions
    try:
        for index in range(spec.n_chunks):
            seconds = spool_chunk(spec, spool, index)
            if seconds is None:
                skipped += 1
            else:
                kernel_seconds += seconds
            done = index + 1
            bar.update(spec.chunk(index)[1])
            if spec.target_rse is not None:
                x = target_units(spec, spool, index)  # this chunk only: earlier ones are in the sums
                sums += (len(x), x.sum(), (x * x).sum())
                m, pd_ = sums[0], sums[1] / sums[0]
                se = math.sqrt(max(sums[2] - m * pd_ * pd_, 0.0) / (m - 1) / m) if m > 1 else math.inf
                rse = se / pd_ if pd_ > 0 else math.inf
                stop = {"target_rse": spec.target_rse, "tranche": spec.target_tranche, "pd": pd_,
                        "pd_se": se, "rse": rse, "reached": bool(rse <= spec.target_rse)}
                if stop["reached"]:
                    break
    finally:
        bar.close()
    if stop is not None:
        stop["paths"] = sum(spec.chunk(i)[1] for i in range(done))
        stop["path_cap_hit"] = not stop["reached"]
        if not stop["reached"]:
            log.warning("%s: path cap %d reached with the %s PD's relative standard error at %.3g "
                        "(target %.3g)", scenario.name, spec.paths, spec.target_tranche, stop["rse"],
                        spec.target_rse)
    t2 = time.perf_counter()
    timings = {**spec.setup_timings, "process_compile_seconds": _COMPILED["seconds"],
               "setup_seconds": t1 - t0 - spec.setup_timings["compile_seconds"], "simulate_seconds": t2 - t1, "kernel_seconds": kernel_seconds,
               "chunks_computed": done - skipped, "chunks_resumed": skipped}
    return collect(spec, spool, done, timings, owner, stop)
