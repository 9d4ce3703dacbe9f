"""The steps of a batch scenario, each runnable in any process (this one, or a Dask worker).

``prepare_step`` → ``chunk_step`` (once per chunk, in any order, anywhere) → ``finish_step``.
Each takes and returns picklable values only and reads or writes the batch folder by path, so a
worker that sees the folder at the same path can run it. Also here: the keys that say whether a
finished scenario was computed from the inputs asked for (:func:`job_key`), and the combined part
(:func:`write_combined`) that carries its key in its schema metadata (:data:`BATCH_KEY`).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from pathlib import Path

from .._io import PROVENANCE_KEY, atomic_parquet, clear_partials
from ..analysis.suite import run_analyses
from ..engine import RunOptions, RunSpec, compile_seconds, open_spool, spool_chunk, warm_up
from ..plan import compile_plan
from ..results import RunFolder
from ..scenario import Scenario
from ..simulation import collect, prepare

BATCH_KEY = b"simengine_batch"  # schema metadata of a combined part: the inputs it was computed from
# pool statistics named after a deal's own triggers differ between deals; the combined dataset
# keeps one schema for all scenarios, so those stay in each run folder's pool_summary.parquet
POOL_SKIP = ("paths", "ess_kish")
POOL_SKIP_PREFIX = "p_trigger_"

ChunkResult = tuple[float | None, float, str]  # what chunk_step returns


# ------------------------------------------------------------------------------------------ keys
def job_key(scenario: Scenario, paths: int | None, seed: int | None, chunk_paths: int | None) -> dict:
    """The inputs a finished scenario was computed from, as a run resolves them.

    Parameters
    ----------
    scenario : Scenario
        The validated scenario (a sweep point's overrides applied).
    paths, seed, chunk_paths : int or None
        The batch's overrides of the scenario's ``[simulation]`` values (None: the scenario's).

    Returns
    -------
    dict
        :meth:`RunOptions.key <simengine.engine.RunOptions.key>` of the resolved options:
        scenario_hash, resolved_scenario_hash, seed, paths, chunk_paths. A resumed batch compares
        it with the run folder's manifest (:func:`same_run`) and the combined part's
        (:func:`combined_key`).
    """
    scenario, options = RunOptions.resolve(scenario, paths, seed, chunk_paths)
    return options.key(scenario)


def same_run(manifest: dict, key: dict) -> bool:
    """Whether a run folder's ``manifest`` was written for ``key`` (see :func:`job_key`)."""
    return all(manifest.get(name) == value for name, value in key.items())


def combined_key(part: Path) -> dict | None:
    """The key (see :func:`job_key`) a combined part was written for; None where there is no part."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(part).metadata or {}
    except (FileNotFoundError, OSError):
        return None
    raw = meta.get(BATCH_KEY)
    return json.loads(raw)["key"] if raw else None


def write_combined(run_dir: Path, part: Path, meta: dict) -> None:
    """The combined part of a finished run folder: summary rows with scenario and pool columns.

    The partition columns (batch, scenario) are not in the file: readers take them from the
    folder names. Written atomically, with the run's provenance and ``meta["key"]`` under
    :data:`BATCH_KEY` in its schema metadata.

    Parameters
    ----------
    run_dir : Path
        A finished run folder (read through :class:`~simengine.results.RunFolder`).
    part : Path
        ``combined/batch=<batch id>/scenario=<scenario id>/part-0.parquet``.
    meta : dict
        scenario_name, file, overrides (dict), key (see :func:`job_key`).
    """
    import pyarrow as pa

    run = RunFolder(run_dir)
    summary = run.arrow("summary")
    pool = run.arrow("pool_summary").to_pylist()[0]
    manifest = run.manifest
    n = summary.num_rows
    columns = {
        "scenario_name": pa.array([meta["scenario_name"]] * n, pa.string()),
        "scenario_file": pa.array([meta["file"]] * n, pa.string()),
        "overrides": pa.array([json.dumps(meta["overrides"], sort_keys=True)] * n, pa.string()),
        "seed": pa.array([int(manifest.get("seed", meta["key"]["seed"]))] * n, pa.int64()),
    }
    for name in summary.column_names:
        columns[name] = summary.column(name)
    for name, value in pool.items():
        if name in POOL_SKIP or name.startswith(POOL_SKIP_PREFIX):
            continue
        columns[f"pool_{name}"] = pa.array([value] * n, pa.float64())
    table = pa.table(columns)
    provenance = (summary.schema.metadata or {}).get(PROVENANCE_KEY, b"{}")
    part.parent.mkdir(parents=True, exist_ok=True)
    clear_partials(part.parent)
    atomic_parquet(part, [table], {PROVENANCE_KEY: provenance,
                                    BATCH_KEY: json.dumps({"key": meta["key"], "run_dir": str(run_dir)}).encode()})


def write_analysis_parts(run_dir: Path, part: Path, names) -> None:
    """Each analysis table of a finished run folder, copied (provenance kept) to
    ``analysis/<table>/batch=<batch id>/scenario=<scenario id>/part-0.parquet`` beside ``combined/``
    (``part`` is the scenario's combined part), so one query reads a table across the batch."""
    run = RunFolder(run_dir)
    root = part.parents[3]
    rel = part.relative_to(root / "combined")
    for name in list(names) + (["concentration"] if "contributions" in names else []):
        target = root / "analysis" / name / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        clear_partials(target.parent)
        atomic_parquet(target, [run.arrow(name)], {})


# ------------------------------------------------------------------------------------------ steps
def prepare_step(scenario: Scenario, paths: int | None, seed: int | None, chunk_paths: int | None,
                 spool_dir: str) -> RunSpec:
    """Plan the scenario and open (or resume) its spool.

    The spool is the batch's own: parts computed under another fingerprint (other inputs,
    defaults or code) are dropped with a warning, parts of this one are kept and skipped.

    Parameters
    ----------
    scenario : Scenario
        The validated scenario.
    paths, seed, chunk_paths : int or None
        The batch's overrides (None: the scenario's ``[simulation]`` values).
    spool_dir : str
        ``spool/<scenario id>`` of the batch folder.

    Returns
    -------
    RunSpec
        Its ``setup_timings`` gain ``prepare_seconds`` (plan, kernel load, pilot, spool).
    """
    t0 = time.perf_counter()
    spec = prepare(scenario, paths, seed, chunk_paths)
    open_spool(spec, spool_dir, stale="replace")  # the batch's own spool: parts of other inputs are dropped
    return spec._replace(setup_timings={**spec.setup_timings, "prepare_seconds": time.perf_counter() - t0})


def chunk_step(spec: RunSpec, spool_dir: str, index: int) -> ChunkResult:
    """Chunk ``index`` into the spool (skipped where its part is already there).

    Returns
    -------
    (float or None, float, str)
        Kernel seconds (None: found finished, not computed), wall seconds, and the process
        that ran it as ``host:pid``.
    """
    t0 = time.perf_counter()
    seconds = spool_chunk(spec, Path(spool_dir), index)
    return seconds, time.perf_counter() - t0, f"{platform.node()}:{os.getpid()}"


def finish_step(spec: RunSpec, spool_dir: str, run_dir: str, part: str, meta: dict,
                chunk_results: list[ChunkResult]) -> dict:
    """Statistics and run folder from the spooled chunks, then the combined part; drops the spool.

    Parameters
    ----------
    spec : RunSpec
        From :func:`prepare_step`.
    spool_dir, run_dir, part : str
        The scenario's spool, run folder and combined part.
    meta : dict
        For :func:`write_combined`.
    chunk_results : list
        What :func:`chunk_step` returned for every chunk, in any order.

    Returns
    -------
    dict
        The manifest row's chunk counts, resolved options and timings (seconds).
    """
    t0 = time.perf_counter()
    computed = [r for r in chunk_results if r[0] is not None]
    kernel = float(sum(r[0] for r in computed))
    simulate = float(sum(r[1] for r in chunk_results))  # chunk wall time, summed over workers
    prep = spec.setup_timings
    timings = {**prep, "process_compile_seconds": compile_seconds(),
               "setup_seconds": prep["prepare_seconds"] - prep["compile_seconds"],
               "simulate_seconds": simulate, "kernel_seconds": kernel,
               "chunks_computed": len(computed), "chunks_resumed": len(chunk_results) - len(computed)}
    run, spool = Path(run_dir), Path(spool_dir)
    run.mkdir(parents=True, exist_ok=True)
    clear_partials(run)
    result = collect(spec, spool, spec.n_chunks, timings, owns_spool=False)
    result.to_parquet(run)
    del result
    if meta.get("analyses"):  # before the combined part: a scenario is finished once that exists
        run_analyses(spec, run, meta["analyses"], meta.get("analysis_paths"))
        write_analysis_parts(run, Path(part), meta["analyses"])
    write_combined(run, Path(part), meta)
    shutil.rmtree(spool, ignore_errors=True)
    return {"chunks": spec.n_chunks, "chunks_computed": len(computed),
            "chunks_resumed": len(chunk_results) - len(computed),
            "paths": spec.paths, "seed": spec.seed, "chunk_paths": spec.chunk_paths,
            "chunk_workers": len({r[2] for r in chunk_results}),
            "prepare_seconds": prep["prepare_seconds"], "simulate_seconds": simulate,
            "kernel_seconds": kernel, "finish_seconds": time.perf_counter() - t0}


def warm_step(scenario: Scenario) -> float:
    """Compile or load the kernels in this process; returns the seconds spent."""
    return warm_up(compile_plan(scenario))
