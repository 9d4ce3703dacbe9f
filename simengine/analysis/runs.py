"""The base run an analysis re-runs, and where its tables go.

An analysis starts from a prepared run (:class:`~simengine.engine.RunSpec`): from
:func:`simengine.simulation.prepare` for a scenario file, or rebuilt from a finished run folder
(:func:`spec_from_run`: its resolved scenario, seed, chunking and frozen sampling measure, so no
pilot is run again and the base paths are the run's own). Its tables are written into a folder
(the run folder, normally) with the analysis's provenance in their schema metadata.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from .._io import atomic_figure, versions
from ..engine import RunSpec, Sampling, model_code_hash, resolved_hash
from ..plan import compile_plan
from ..results import RunFolder, write_table


def spec_from_run(run: RunFolder | str | Path) -> RunSpec:
    """The prepared run behind a finished run folder: same scenario, seed, paths, chunking and measure.

    Raises :class:`~simengine.results.RunFolderError` where the folder is not a finished run.
    """
    run = run if isinstance(run, RunFolder) else RunFolder(run)
    scenario = run.scenario()
    manifest = run.manifest
    info = dict(manifest.get("sampling_choice") or {"variance_reduction": run.variance_reduction})
    info["base_run"] = str(run.path)
    return RunSpec(scenario, compile_plan(scenario), run.seed, run.paths, run.chunk_paths,
                   Sampling.from_record(run.sampling), info,
                   setup_timings={"compile_seconds": 0.0, "pilot_seconds": 0.0})


def provenance(spec: RunSpec, analysis: str, options: dict, paths: int) -> dict:
    """What an analysis table was computed from: the base run (scenario, seed, measure), the paths
    re-run, the analysis's options and the code."""
    return {
        "analysis": analysis, "options": options, "scenario": spec.scenario.name,
        "scenario_file": spec.scenario.source, "resolved_scenario_hash": resolved_hash(spec.scenario),
        "base_run": spec.sampling_info.get("base_run"), "model_code": model_code_hash(), "seed": spec.seed,
        "base_paths": spec.paths, "paths": paths, "chunk_paths": spec.chunk_paths,
        "variance_reduction": spec.sampling_info.get("variance_reduction"), "sampling": spec.sampling._asdict(),
        "engine": versions(), "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_analysis(out: str | Path, name: str, frame: pd.DataFrame, spec: RunSpec, options: dict, paths: int,
                   figure=None) -> Path:
    """``out/<name>.parquet`` (with provenance; ``scenario_name`` and ``scenario_file`` columns added
    first, so tables of many runs read as one) and, where given, ``out/<name>.png``."""
    frame = frame.copy()
    frame.insert(0, "scenario_file", spec.scenario.source)
    frame.insert(0, "scenario_name", spec.scenario.name)
    path = write_table(Path(out), name, frame, provenance(spec, name, options, paths))
    if figure is not None:
        atomic_figure(Path(out) / f"{name}.png", figure)
    return path
