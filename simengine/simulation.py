"""A run from start to finish: prepare (plan, kernels, sampling measure) → spool chunks →
:class:`~simengine.results.SimulationResult`; target-RSE stopping."""

from __future__ import annotations

import functools
import logging
import math
import time
from pathlib import Path

import numpy as np

from . import _jit
from ._progress import Progress
from .analysis.attribution import attribution_choice, channel_attribution, check_attribution_paths
from .engine import RunOptions, RunSpec, compile_seconds, open_spool, sampling_for, spool_chunk, target_units, warm_up
from .plan import compile_plan
from .results import SimulationResult
from .scenario import Scenario

log = logging.getLogger("simengine")


def prepare(scenario: Scenario, paths: int | None = None, seed: int | None = None,
            chunk_paths: int | None = None, variance_reduction: str | None = None,
            tranche: str | None = None, target_rse: float | None = None) -> RunSpec:
    """Plan a run: resolve its options, compile the plan, warm the kernels, choose the sampling
    measure (the importance pilot). Arguments override the scenario's ``[simulation]`` section
    (see :meth:`RunOptions.resolve`)."""
    scenario, options = RunOptions.resolve(scenario, paths, seed, chunk_paths, variance_reduction, tranche,
                                           target_rse)
    plan = compile_plan(scenario)
    seconds = warm_up(plan)
    p0 = time.perf_counter()
    sampling, info = sampling_for(plan, scenario, options.seed)
    timings = {"compile_seconds": seconds, "pilot_seconds": time.perf_counter() - p0}
    return RunSpec(scenario, plan, options.seed, options.paths, options.chunk_paths, sampling, info,
                   options.target_rse, options.target_tranche, timings)


def collect(spec: RunSpec, spool: Path, n_chunks: int, timings: dict, owns_spool: bool,
            stop: dict | None = None, attribution_paths: int | None = None) -> SimulationResult:
    """The :class:`SimulationResult` of the first ``n_chunks`` spooled chunks of ``spec``; its channel
    attribution re-runs ``attribution_paths`` paths (None: :data:`~simengine.analysis.attribution.ATTRIBUTION_RULE`)."""
    paths = spec.paths_in(n_chunks)
    choice = attribution_choice(paths, spec.sampling.antithetic, attribution_paths)
    return SimulationResult(spec=spec, paths=paths, spool=spool, n_chunks=n_chunks, timings=timings,
                            owns_spool=owns_spool, threads=_jit.num_threads(), stop=stop,
                            attribution=functools.partial(channel_attribution, spec, paths,
                                                          attribution_paths=choice["paths"]),
                            attribution_choice=choice)


def simulate(scenario: Scenario, paths: int | None = None, seed: int | None = None,
             chunk_paths: int | None = None, threads: int | None = None,
             progress: bool | None = None, spool_dir: str | Path | None = None,
             variance_reduction: str | None = None, tranche: str | None = None,
             target_rse: float | None = None, attribution_paths: int | None = None) -> SimulationResult:
    """Simulate a scenario; returns a :class:`~simengine.results.SimulationResult`.

    Parameters override the scenario's ``[simulation]`` section. ``threads`` sets numba's
    thread count (results do not depend on it). Per-path tables are spooled to per-chunk parts in
    ``spool_dir`` (a temporary folder owned by the result when not given); chunks already
    finished there by an earlier, interrupted call with the same inputs are not recomputed.
    With ``target_rse``, chunks are added until the PD of ``tranche`` (default: the first) has
    a relative standard error at most ``target_rse``, or ``paths`` (then a cap) is reached.
    The channel attribution re-runs ``attribution_paths`` of the paths under its variants (None:
    a tenth, at least 10,000, at most 50,000; :data:`~simengine.analysis.attribution.ATTRIBUTION_RULE`):
    a whole number from 1 to ``paths`` (ValueError otherwise, before anything is simulated); a
    target-RSE run that stops short of it re-runs all its paths.
    """
    if attribution_paths is not None:  # a bad count is refused before the pilot and the simulation
        check_attribution_paths(attribution_paths)
    _jit.set_threads(threads)
    t0 = time.perf_counter()
    spec = prepare(scenario, paths, seed, chunk_paths, variance_reduction, tranche, target_rse)
    if attribution_paths is not None:
        check_attribution_paths(attribution_paths, spec.paths)
    spool, owner = open_spool(spec, spool_dir)
    t1 = time.perf_counter()
    bar = Progress(spec.paths, scenario.name, progress)
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
                stop = _target_check(spec, spool, index, sums)
                if stop["reached"]:
                    break
    finally:
        bar.close()
    if stop is not None:
        stop["paths"] = spec.paths_in(done)
        stop["path_cap_hit"] = not stop["reached"]
        if not stop["reached"]:
            log.warning("%s: path cap %d reached with the %s PD's relative standard error at %.3g "
                        "(target %.3g)", scenario.name, spec.paths, spec.target_tranche, stop["rse"],
                        spec.target_rse)
    t2 = time.perf_counter()
    timings = {**spec.setup_timings, "process_compile_seconds": compile_seconds(),
               "setup_seconds": t1 - t0 - spec.setup_timings["compile_seconds"], "simulate_seconds": t2 - t1,
               "kernel_seconds": kernel_seconds, "chunks_computed": done - skipped, "chunks_resumed": skipped}
    return collect(spec, spool, done, timings, owner, stop, attribution_paths)


def _target_check(spec: RunSpec, spool: Path, index: int, sums: np.ndarray) -> dict:
    """Add chunk ``index`` to the running sums of the target's PD; the stopping record so far."""
    x = target_units(spec, spool, index)  # this chunk only: earlier ones are in the sums
    sums += (len(x), x.sum(), (x * x).sum())
    m, pd_ = sums[0], sums[1] / sums[0]
    se = math.sqrt(max(sums[2] - m * pd_ * pd_, 0.0) / (m - 1) / m) if m > 1 else math.inf
    rse = se / pd_ if pd_ > 0 else math.inf
    return {"target_rse": spec.target_rse, "tranche": spec.target_tranche, "pd": pd_, "pd_se": se, "rse": rse,
            "reached": bool(rse <= spec.target_rse)}
