"""Batches: many scenarios (files, stress variants, sweep points) in one resumable run (SPEC §9).

A batch folder (``--out``) holds::

    batch_manifest.json / .parquet    one row per scenario: status, error, timings, paths
    runs/<scenario id>/               the scenario's run folder (SPEC §5), as `simengine run` writes it
    spool/<scenario id>/              its per-chunk Parquet parts while it runs (deleted once finished)
    combined/batch=<batch id>/scenario=<scenario id>/part-0.parquet
                                      its summary (one row per tranche) with pool statistics, for
                                      cross-scenario queries (pandas, pyarrow.dataset, DuckDB)

Every file is written under a temporary name and renamed, so a batch killed at any moment
(SIGKILL included) leaves nothing that looks finished. A scenario is finished when its run
folder's manifest says ``ok`` and its combined part exists; a resumed batch skips it without
touching its files, and resumes an unfinished one chunk by chunk (a chunk is a pure function of
the run's inputs and its index, so the resumed outputs equal an uninterrupted run's bits).

Work runs in this process, or on a Dask cluster (``scheduler="local"`` starts a LocalCluster;
an address connects to a running scheduler whose workers see the batch folder at the same
path). On Dask every step is a task: preparing a scenario (plan, sampling pilot), each chunk
(chunks of one big scenario spread over the workers) and finishing it (statistics, run folder,
combined part); the client only validates, schedules and keeps the manifest.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import itertools
import json
import logging
import math
import os
import platform
import re
import shutil
import sys
import time
import tomllib
import traceback
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import ScenarioError

log = logging.getLogger("simengine")

OK, BAD_INPUT, FAILED, PENDING = "ok", "bad_input", "failed", "pending"
EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
MANIFEST = "batch_manifest.json"
BATCH_KEY = b"simengine_batch"  # schema metadata of a combined part: the inputs it was computed from
# pool statistics named after a deal's own triggers differ between deals; the combined dataset
# keeps one schema for all scenarios, so those stay in each run folder's pool_summary.parquet
_POOL_SKIP = ("paths", "ess_kish")
_POOL_SKIP_PREFIX = "p_trigger_"


class BatchInputError(ValueError):
    """A batch that cannot start: the message names the option or path, the value and what was expected."""


# ------------------------------------------------------------------------------------------ jobs
@dataclass(frozen=True)
class Job:
    """One scenario of a batch: a file, with the overrides of a sweep point (empty otherwise)."""

    scenario_id: str
    file: str
    overrides: dict = field(default_factory=dict)

    def load(self):
        """The validated :class:`~simengine.schema.Scenario`; raises ScenarioError on bad input."""
        from .scenario import load_scenario

        scenario = load_scenario(self.file)
        return scenario.with_overrides(self.overrides) if self.overrides else scenario


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_ID = 120


def safe_id(text: str) -> str:
    """A file-system- and Hive-partition-safe name: letters, digits, ``.``, ``_`` and ``-``.

    Long names keep their start and end in a hash, so they stay distinct and deterministic.
    """
    name = _UNSAFE.sub("_", text).strip("._") or "scenario"
    if len(name) > _MAX_ID:
        name = name[:_MAX_ID - 9] + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return name


def _unique_ids(names: list[str]) -> list[str]:
    """Disambiguate equal ids in input order: ``x``, ``x-2``, ``x-3`` (case-insensitively)."""
    taken, out = set(), []
    for name in names:
        candidate, n = name, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{name}-{n}"
        taken.add(candidate.lower())
        out.append(candidate)
    return out


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Scenario files from FILES, folders (their ``*.toml``, sorted) and globs (sorted matches).

    A path that does not exist is kept: loading it later makes a ``bad_input`` row, so one
    mistyped name does not stop the batch. A folder or glob that matches nothing is an error.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.toml") if p.is_file())
            if not found:
                raise BatchInputError(f"{item}: a folder without *.toml files; expected a folder of scenario files")
        elif glob.has_magic(item):
            found = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not found:
                raise BatchInputError(f"{item}: the pattern matches no file; expected a glob of scenario files")
        else:
            found = [path]
        files.extend(found)
    seen, out = set(), []
    for f in files:  # one file named twice (a folder and a glob) runs once
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def file_jobs(inputs: list[str]) -> list[Job]:
    """One job per scenario file of ``inputs`` (see :func:`expand_inputs`); ids are file stems."""
    files = expand_inputs(inputs)
    ids = _unique_ids([safe_id(f.stem) for f in files])
    return [Job(i, str(f.resolve())) for i, f in zip(ids, files)]


def parse_set(text: str) -> tuple[str, list]:
    """``key=v1,v2,...`` → (key, values), the values read as TOML (``0.3``, ``2``, ``true``, ``"BB"``).

    A value that is not TOML (``BB``) is taken as text.
    """
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key or not values.strip():
        raise BatchInputError(f"--set {text!r}: expected KEY=V1,V2,... (e.g. risk.correlation.global=0.2,0.35)")
    try:
        parsed = tomllib.loads(f"v = [{values}]")["v"]
    except tomllib.TOMLDecodeError:
        parsed = []
        for item in values.split(","):
            item = item.strip()
            try:
                parsed.append(tomllib.loads(f"v = {item}")["v"])
            except tomllib.TOMLDecodeError:
                parsed.append(item)
    if not parsed or any(v == "" for v in parsed):
        raise BatchInputError(f"--set {text!r}: an empty value; expected KEY=V1,V2,...")
    return key, parsed


def _show_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, sort_keys=True)


def sweep_jobs(file: str, sets: list[str]) -> list[Job]:
    """The grid of ``--set`` options over one scenario file: the Cartesian product in the order given.

    Each point is a job with its overrides; its id is ``<stem>__<key>-<value>__...`` made safe.
    """
    grid = [parse_set(s) for s in sets]
    keys = [k for k, _ in grid]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise BatchInputError(f"--set {repeated[0]}: given more than once; expected each key once, "
                              "with all its values after one =")
    path = Path(file)
    stem = path.stem
    names, points = [], []
    for values in itertools.product(*(v for _, v in grid)):
        point = dict(zip(keys, values))
        points.append(point)
        names.append(safe_id("__".join([stem, *(f"{k}-{_show_value(v)}" for k, v in point.items())])))
    return [Job(i, str(path.resolve()), p) for i, p in zip(_unique_ids(names), points)]


def default_out(inputs: list[str], kind: str = "batch") -> Path:
    """``results/<kind>-<name>``: the name of the first input (a folder's name, a file's stem,
    the folder a glob starts in)."""
    first = inputs[0]
    path = Path(first)
    if glob.has_magic(first):
        fixed = [p for p in itertools.takewhile(lambda part: not glob.has_magic(part), path.parts)]
        name = Path(*fixed).name if fixed else "batch"
    else:
        name = path.name if path.is_dir() else path.stem
    return Path("results") / f"{kind}-{safe_id(name)}"


# ------------------------------------------------------------------------------- rows, manifest
ROW_FIELDS = {  # name -> pyarrow type name, for a batch manifest table that keeps its types
    "scenario_id": "string", "status": "string", "error": "string", "scenario_name": "string",
    "file": "string", "overrides": "string", "paths": "int64", "seed": "int64", "chunk_paths": "int64",
    "chunks": "int64", "chunks_computed": "int64", "chunks_resumed": "int64", "chunk_workers": "int64",
    "session": "int64",
    "run_dir": "string", "combined_part": "string", "started_at": "string", "finished_at": "string",
    "prepare_seconds": "float64", "simulate_seconds": "float64", "kernel_seconds": "float64",
    "finish_seconds": "float64", "total_seconds": "float64",
}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, ScenarioError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _job_key(scenario, paths: int | None, seed: int | None, chunk_paths: int | None) -> dict:
    """The inputs a finished scenario was computed from: a resumed batch checks them."""
    sim = scenario.model.simulation
    return {"scenario_hash": scenario.file_hash,
            "seed": int(seed if seed is not None else sim.seed),
            "paths": int(paths if paths is not None else sim.paths),
            "chunk_paths": int(chunk_paths if chunk_paths is not None else sim.chunk_paths)}


def _same_run(manifest: dict, key: dict) -> bool:
    """Whether a run folder's manifest was written for ``key`` (antithetic runs round up to even)."""
    p, c = key["paths"], key["chunk_paths"]
    return (manifest.get("scenario_hash") == key["scenario_hash"] and manifest.get("seed") == key["seed"]
            and manifest.get("paths") in (p, p + p % 2) and manifest.get("chunk_paths") in (c, c + c % 2))


def _clear_partials(folder: Path) -> None:
    """Remove the temporary files a killed writer left (``.<name>.<hex>.partial``)."""
    if folder.is_dir():
        for stale in folder.glob(".*.partial"):
            stale.unlink(missing_ok=True)


def _combined_key(part: Path) -> dict | None:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(part).metadata or {}
    except (FileNotFoundError, OSError):
        return None
    raw = meta.get(BATCH_KEY)
    return json.loads(raw)["key"] if raw else None


def write_combined(run_dir: Path, part: Path, meta: dict) -> None:
    """The combined part of a finished run folder: summary rows with scenario and pool columns.

    ``meta``: scenario_name, file, overrides (dict), key (see :func:`_job_key`). The partition
    columns (batch, scenario) are not in the file: readers take them from the folder names.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .results import _atomic_parquet

    summary = pq.read_table(run_dir / "summary.parquet")
    pool = pq.read_table(run_dir / "pool_summary.parquet").to_pylist()[0]
    manifest = _read_json(run_dir / "manifest.json") or {}
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
        if name in _POOL_SKIP or name.startswith(_POOL_SKIP_PREFIX):
            continue
        columns[f"pool_{name}"] = pa.array([value] * n, pa.float64())
    table = pa.table(columns)
    provenance = (pq.read_schema(run_dir / "summary.parquet").metadata or {}).get(b"simengine", b"{}")
    part.parent.mkdir(parents=True, exist_ok=True)
    _clear_partials(part.parent)
    _atomic_parquet(part, [table], {b"simengine": provenance,
                                    BATCH_KEY: json.dumps({"key": meta["key"], "run_dir": str(run_dir)}).encode()})


# ------------------------------------------------------------------------ steps (any process)
def prepare_step(scenario, paths, seed, chunk_paths, spool_dir: str):
    """Plan the scenario and open (or resume) its spool; returns the RunSpec.

    The spec's ``setup_timings`` gains ``prepare_seconds`` (plan, kernel load, pilot, spool).
    """
    from .engine import open_spool, prepare

    t0 = time.perf_counter()
    spec = prepare(scenario, paths, seed, chunk_paths)
    open_spool(spec, spool_dir)
    return spec._replace(setup_timings={**spec.setup_timings, "prepare_seconds": time.perf_counter() - t0})


def chunk_step(spec, spool_dir: str, index: int) -> tuple[float | None, float, str]:
    """Chunk ``index`` into the spool: (kernel seconds or None if it was already there, wall
    seconds, the process that ran it as host:pid)."""
    from .engine import spool_chunk

    t0 = time.perf_counter()
    seconds = spool_chunk(spec, Path(spool_dir), index)
    return seconds, time.perf_counter() - t0, f"{platform.node()}:{os.getpid()}"


def finish_step(spec, spool_dir: str, run_dir: str, part: str, meta: dict, chunk_results: list) -> dict:
    """Statistics and run folder from the spooled chunks, then the combined part; drops the spool.

    Returns the manifest row's chunk counts and timings.
    """
    from .engine import _COMPILED, collect

    t0 = time.perf_counter()
    computed = [r for r in chunk_results if r[0] is not None]
    kernel = float(sum(r[0] for r in computed))
    simulate = float(sum(r[1] for r in chunk_results))  # chunk wall time, summed over workers
    prep = spec.setup_timings
    timings = {**prep, "process_compile_seconds": _COMPILED["seconds"],
               "setup_seconds": prep["prepare_seconds"] - prep["compile_seconds"],
               "simulate_seconds": simulate, "kernel_seconds": kernel,
               "chunks_computed": len(computed), "chunks_resumed": len(chunk_results) - len(computed)}
    run, spool = Path(run_dir), Path(spool_dir)
    run.mkdir(parents=True, exist_ok=True)
    _clear_partials(run)
    result = collect(spec, spool, spec.n_chunks, timings, owns_spool=False)
    result.to_parquet(run)
    del result
    write_combined(run, Path(part), meta)
    shutil.rmtree(spool, ignore_errors=True)
    return {"chunks": spec.n_chunks, "chunks_computed": len(computed), "chunks_resumed": len(chunk_results) - len(computed),
            "paths": spec.paths, "seed": spec.seed, "chunk_paths": spec.chunk_paths,
            "chunk_workers": len({r[2] for r in chunk_results}),
            "prepare_seconds": prep["prepare_seconds"], "simulate_seconds": simulate,
            "kernel_seconds": kernel, "finish_seconds": time.perf_counter() - t0}


def warm_step(scenario) -> float:
    """Compile or load the kernels in this process (seconds spent)."""
    from .engine import warm_up
    from .plan import compile_plan

    return warm_up(compile_plan(scenario))


# ------------------------------------------------------------------------------------- progress
def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class _BatchProgress:
    """Bars on a terminal (the batch's paths, and one per running scenario); otherwise a log
    line per finished chunk with the scenario's and the batch's ETA.

    ETAs come from the paths computed in this session: chunks found finished (resumed) count as
    done but not as speed.
    """

    def __init__(self, n_scenarios: int, total_paths: int):
        self.n_scenarios, self.total = n_scenarios, max(1, total_paths)
        self.tty = sys.stderr.isatty()
        self.start = time.perf_counter()
        self.done = self.computed = self.finished = 0
        self.scenarios: dict[str, dict] = {}
        self.bar = None
        if self.tty:
            from .engine import _Progress

            self.bar = _Progress(self.total, "batch", True)

    def begin(self, scenario_id: str, paths: int, n_chunks: int, planned: int) -> None:
        """A scenario starts its chunks: ``paths`` of them (``planned`` was counted in the total)."""
        self._retotal(paths - planned)
        state = {"paths": paths, "chunks": n_chunks, "done": 0, "computed": 0, "chunks_done": 0,
                 "start": time.perf_counter(), "bar": None}
        if self.tty:
            from .engine import _Progress

            state["bar"] = _Progress(paths, scenario_id, True)
        self.scenarios[scenario_id] = state

    def chunk(self, scenario_id: str, paths: int, computed: bool) -> None:
        s = self.scenarios[scenario_id]
        s["done"] += paths
        s["chunks_done"] += 1
        self.done += paths
        if computed:
            s["computed"] += paths
            self.computed += paths
        if self.tty:
            s["bar"].update(paths)
            self.bar.update(paths)
            return
        now = time.perf_counter()
        s_eta = (now - s["start"]) / s["computed"] * (s["paths"] - s["done"]) if s["computed"] else math.nan
        b_eta = (now - self.start) / self.computed * (self.total - self.done) if self.computed else math.nan
        log.info("%s: chunk %d/%d, %s/%s paths, ETA %s | batch: %d/%d scenarios finished, %.0f%% of paths, "
                 "%s elapsed, ETA %s", scenario_id, s["chunks_done"], s["chunks"], f"{s['done']:,}",
                 f"{s['paths']:,}", _duration(s_eta), self.finished, self.n_scenarios,
                 100.0 * self.done / self.total, _duration(now - self.start), _duration(b_eta))

    def end(self, scenario_id: str, planned: int) -> None:
        """A scenario is over, whatever its status: paths it did not run leave the batch's total."""
        self.finished += 1
        s = self.scenarios.pop(scenario_id, None)
        if s is None:  # it never began
            self._retotal(-planned)
            return
        self._retotal(s["done"] - s["paths"])
        if s["bar"] is not None:
            s["bar"].close()

    def _retotal(self, change: int) -> None:
        self.total = max(1, self.total + change)
        if self.bar is not None and change:
            self.bar.total = self.bar.bar.total = self.total
            self.bar.bar.refresh()

    def close(self) -> None:
        for s in self.scenarios.values():
            if s["bar"] is not None:
                s["bar"].close()
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------------- batch
@dataclass
class _Item:
    """A job to run: its validated scenario, its key (:func:`_job_key`) and its manifest row."""

    job: Job
    row: dict
    scenario: Any
    key: dict
    t0: float = 0.0


class Batch:
    """A batch folder and its manifest; :meth:`run` does the work.

    Parameters
    ----------
    jobs : the scenarios, in order (ids unique)
    out : the batch folder
    resume : continue the batch in ``out``; without it ``out`` must be new or empty
    scheduler : None (this process), ``"local"`` (a Dask LocalCluster) or a Dask scheduler address
    paths, seed, chunk_paths : override every scenario's ``[simulation]`` values
    argv : the command line, for the manifest
    """

    def __init__(self, jobs: list[Job], out: str | Path, resume: bool = False, scheduler: str | None = None,
                 paths: int | None = None, seed: int | None = None, chunk_paths: int | None = None,
                 argv: list[str] | None = None):
        self.jobs, self.resume, self.scheduler = jobs, resume, scheduler
        self.out = Path(out).resolve()
        self.options = {"paths": paths, "seed": seed, "chunk_paths": chunk_paths}
        self.argv = argv
        self.manifest_path = self.out / MANIFEST
        if self.out.exists() and not self.out.is_dir():
            raise BatchInputError(f"{out}: --out is a file; expected a folder")
        old = _read_json(self.manifest_path) if self.out.exists() else None
        if self.out.exists() and any(self.out.iterdir()) and not resume:
            raise BatchInputError(f"{out}: --out already holds a batch; expected --resume to continue it, "
                                  "or a new folder")
        if old is not None:
            for name, value in self.options.items():
                if old.get("options", {}).get(name) != value:
                    flag = "--" + name.replace("_", "-")
                    raise BatchInputError(f"{flag} {value}: {out} was started with {flag} "
                                          f"{old['options'].get(name)}; expected the same options to resume it")
        self.batch_id = old["batch"] if old else safe_id(self.out.name)
        self.sessions = (old or {}).get("sessions", [])
        self.session = len(self.sessions) + 1
        self.old_rows = {r["scenario_id"]: r for r in (old or {}).get("scenarios", [])}
        self.rows: dict[str, dict] = {}

    # -- paths ------------------------------------------------------------------------------------
    def run_dir(self, sid: str) -> Path:
        return self.out / "runs" / sid

    def spool_dir(self, sid: str) -> Path:
        return self.out / "spool" / sid

    def part(self, sid: str) -> Path:
        return self.out / "combined" / f"batch={self.batch_id}" / f"scenario={sid}" / "part-0.parquet"

    # -- manifest ---------------------------------------------------------------------------------
    def counts(self) -> dict:
        out = {OK: 0, BAD_INPUT: 0, FAILED: 0, PENDING: 0}
        for row in self.rows.values():
            out[row["status"]] += 1
        return out

    def exit_code(self) -> int:
        """0 all ok, 1 any failed, 2 any bad input (and none failed)."""
        c = self.counts()
        return EXIT_FAILURE if c[FAILED] else EXIT_BAD_INPUT if c[BAD_INPUT] else EXIT_OK

    def write_manifest(self, finished: bool = False) -> None:
        """batch_manifest.json and .parquet, each replaced atomically."""
        import pyarrow as pa

        from .results import _atomic_json, _atomic_parquet

        # scenarios of an earlier session that this one was not given stay listed (their
        # folders and combined parts are still in the batch)
        rows = list(self.rows.values()) + [r for sid, r in self.old_rows.items() if sid not in self.rows]
        session = self.sessions[-1]
        if finished:
            session["finished_at"] = _now()
        data = {"batch": self.batch_id, "out": str(self.out), "status": "finished" if finished else "running",
                "options": self.options, "counts": self.counts(), "exit_code": self.exit_code() if finished else None,
                "sessions": self.sessions,
                "layout": {"runs": "runs/<scenario_id>/", "spool": "spool/<scenario_id>/ (while running)",
                           "combined": f"combined/batch={self.batch_id}/scenario=<scenario_id>/part-0.parquet"},
                "scenarios": rows}
        _atomic_json(self.manifest_path, data)
        table = pa.table({name: pa.array([r.get(name) for r in rows], type=getattr(pa, kind)())
                          for name, kind in ROW_FIELDS.items()})
        _atomic_parquet(self.out / "batch_manifest.parquet", [table], {b"simengine_batch": json.dumps(
            {"batch": self.batch_id, "options": self.options}).encode()})

    def _row(self, job: Job, **values) -> dict:
        row = {name: None for name in ROW_FIELDS}
        row.update(scenario_id=job.scenario_id, file=job.file, overrides=json.dumps(job.overrides, sort_keys=True),
                   status=PENDING, run_dir=str(self.run_dir(job.scenario_id)))
        row.update(values)
        return row

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> int:
        """Run every unfinished scenario; returns the exit code (see :meth:`exit_code`)."""
        self.sessions.append({"session": self.session, "started_at": _now(), "scheduler": self.scheduler or "this process",
                              "argv": self.argv})
        todo = self._triage()
        # the cluster comes up (or is reached) before anything is written: a wrong address leaves no folder
        with _dask_client(self.scheduler if todo else None) as client:
            self.out.mkdir(parents=True, exist_ok=True)
            _clear_partials(self.out)
            self.write_manifest()
            if todo:
                progress = _BatchProgress(len(todo), sum(item.key["paths"] for item in todo))
                with contextlib.ExitStack() as stack:
                    stack.callback(progress.close)
                    if progress.tty:  # log lines above the bars, not through them
                        from tqdm.contrib.logging import logging_redirect_tqdm

                        stack.enter_context(logging_redirect_tqdm())
                    if client is None:
                        self._run_here(todo, progress)
                    else:
                        self._run_dask(todo, progress, client)
        spool = self.out / "spool"
        if spool.is_dir() and not any(spool.iterdir()):
            spool.rmdir()
        self.write_manifest(finished=True)
        return self.exit_code()

    def _triage(self) -> list[_Item]:
        """Validate every job; record bad input and finished scenarios; return the rest in order."""
        todo = []
        for job in self.jobs:
            sid = job.scenario_id
            try:
                scenario = job.load()
                key = _job_key(scenario, **self.options)
            except ScenarioError as exc:
                self._record_error(job, BAD_INPUT, exc)
                continue
            except Exception as exc:  # e.g. a pool file that went away after validation
                self._record_error(job, FAILED, exc, traceback.format_exc())
                continue
            manifest = _read_json(self.run_dir(sid) / "manifest.json")
            meta = {"scenario_name": scenario.name, "file": job.file, "overrides": job.overrides, "key": key}
            if manifest is not None and manifest.get("status") == OK:
                if not _same_run(manifest, key):
                    self._record_error(job, FAILED, RuntimeError(
                        f"{self.run_dir(sid)} holds a finished run of other inputs (scenario hash, seed or paths "
                        "differ: was the scenario file edited?); it is left as it is: expected a new --out"))
                    continue
                old = self.old_rows.get(sid)
                if _combined_key(self.part(sid)) != key:  # killed between the run folder and its part
                    write_combined(self.run_dir(sid), self.part(sid), meta)
                    old = None
                shutil.rmtree(self.spool_dir(sid), ignore_errors=True)
                if old is not None and old.get("status") == OK:
                    self.rows[sid] = old
                else:
                    self.rows[sid] = self._row(job, status=OK, scenario_name=scenario.name, paths=manifest["paths"],
                                               seed=manifest["seed"], chunk_paths=manifest["chunk_paths"],
                                               combined_part=str(self.part(sid)), session=self.session,
                                               finished_at=_now())
                log.info("%s: finished in an earlier session; skipped", sid)
                continue
            row = self._row(job, scenario_name=scenario.name, paths=key["paths"], seed=key["seed"],
                            chunk_paths=key["chunk_paths"])
            self.rows[sid] = row
            todo.append(_Item(job, row, scenario, key))
        return todo

    def _record_error(self, job: Job, status: str, exc: BaseException, tb: str | None = None,
                      item: _Item | None = None) -> None:
        text = _error_text(exc)
        row = item.row if item is not None else self._row(job)
        row.update(status=status, error=text, finished_at=_now(), session=self.session)
        if item is not None and item.t0:
            row["total_seconds"] = time.perf_counter() - item.t0
        self.rows[job.scenario_id] = row
        if status == BAD_INPUT:
            for line in text.splitlines():
                log.error("INVALID %s: %s", job.scenario_id, line)
        else:
            log.error("FAILED %s: %s%s", job.scenario_id, text, f"\n{tb}" if tb else "")

    def _record_ok(self, item: _Item, values: dict) -> None:
        sid = item.job.scenario_id
        item.row.update(values, status=OK, error=None, combined_part=str(self.part(sid)), finished_at=_now(),
                        session=self.session, total_seconds=time.perf_counter() - item.t0)
        log.info("ok %s: %d chunks (%d computed, %d resumed) in %s", sid, values["chunks"],
                 values["chunks_computed"], values["chunks_resumed"], _duration(item.row["total_seconds"]))

    def _start(self, item: _Item) -> None:
        item.t0 = time.perf_counter()
        item.row["started_at"] = _now()

    def _finish_args(self, item: _Item) -> tuple[str, str, dict]:
        """(run folder, combined part, combined metadata) of an item, for :func:`finish_step`."""
        sid = item.job.scenario_id
        meta = {"scenario_name": item.scenario.name, "file": item.job.file, "overrides": item.job.overrides,
                "key": item.key}
        return str(self.run_dir(sid)), str(self.part(sid)), meta

    def _run_here(self, todo: list[_Item], progress: _BatchProgress) -> None:
        """One scenario after another in this process, chunks in order."""
        o = self.options
        for item in todo:
            sid = item.job.scenario_id
            self._start(item)
            spool = str(self.spool_dir(sid))
            try:
                spec = prepare_step(item.scenario, o["paths"], o["seed"], o["chunk_paths"], spool)
                progress.begin(sid, spec.paths, spec.n_chunks, item.key["paths"])
                results = []
                for index in range(spec.n_chunks):
                    results.append(chunk_step(spec, spool, index))
                    progress.chunk(sid, spec.chunk(index)[1], results[-1][0] is not None)
                self._record_ok(item, finish_step(spec, spool, *self._finish_args(item), results))
            except ScenarioError as exc:
                self._record_error(item.job, BAD_INPUT, exc, item=item)
            except Exception as exc:  # one failing scenario never stops the others
                self._record_error(item.job, FAILED, exc, traceback.format_exc(), item=item)
            progress.end(sid, item.key["paths"])
            self.write_manifest()

    def _run_dask(self, todo: list[_Item], progress: _BatchProgress, client) -> None:
        """Every step a Dask task; earlier scenarios first (priorities), a few scenarios in flight."""
        from distributed import as_completed

        workers = sorted(client.scheduler_info()["workers"])
        self.sessions[-1]["workers"] = len(workers)
        _warm_workers(client, workers, todo[0].scenario)
        o = self.options
        queue = deque(enumerate(todo))
        window = max(2, 2 * len(workers))  # enough to keep every worker busy while one finishes
        tasks: dict[str, tuple[str, _Item, int]] = {}  # future key -> (step, item, rank or chunk index)
        live: dict[str, list] = {}  # scenario id -> its futures (dropped when it is over)
        specs: dict[str, Any] = {}
        done = as_completed()
        n = len(todo)

        def launch() -> None:
            while queue and len(live) < window:
                rank, item = queue.popleft()
                sid = item.job.scenario_id
                self._start(item)
                fut = client.submit(prepare_step, item.scenario, o["paths"], o["seed"], o["chunk_paths"],
                                    str(self.spool_dir(sid)), key=f"prepare-{sid}", priority=2 * (n - rank) + 1,
                                    pure=False)
                tasks[fut.key] = ("prepare", item, rank)
                live[sid] = [fut]
                done.add(fut)

        launch()
        for fut in done:
            if fut.key not in tasks:  # a task of a scenario that is already over
                continue
            kind, item, rank = tasks.pop(fut.key)
            sid = item.job.scenario_id
            if kind == "chunk":
                if fut.status == "finished":  # a failed chunk is reported by its scenario's finish task
                    progress.chunk(sid, specs[sid].chunk(rank)[1], fut.result()[0] is not None)
                continue
            if fut.status != "finished":
                exc = fut.exception()
                status = BAD_INPUT if isinstance(exc, ScenarioError) else FAILED
                tb = "".join(traceback.format_tb(fut.traceback())) if status == FAILED else None
                self._record_error(item.job, status, exc, tb, item=item)
            elif kind == "prepare":
                spec = specs[sid] = fut.result()
                progress.begin(sid, spec.paths, spec.n_chunks, item.key["paths"])
                spool = str(self.spool_dir(sid))
                chunks = [client.submit(chunk_step, fut, spool, i, key=f"chunk-{sid}-{i}",
                                        priority=2 * (n - rank), pure=False) for i in range(spec.n_chunks)]
                finish = client.submit(finish_step, fut, spool, *self._finish_args(item), chunks,
                                       key=f"finish-{sid}", priority=2 * (n - rank) + 1, pure=False)
                for i, c in enumerate(chunks):
                    tasks[c.key] = ("chunk", item, i)
                tasks[finish.key] = ("finish", item, rank)
                live[sid] += [*chunks, finish]
                done.update([*chunks, finish])
                continue
            else:
                self._record_ok(item, fut.result())
            progress.end(sid, item.key["paths"])
            specs.pop(sid, None)
            for other in live.pop(sid, []):  # the scenario is over: let the cluster forget it
                tasks.pop(other.key, None)
                if other.status == "pending":
                    other.cancel()
            self.write_manifest()
            launch()


# ------------------------------------------------------------------------------------------ dask
def local_cluster_shape(cores: int | None = None) -> tuple[int, int]:
    """(worker processes, numba threads per worker) for a LocalCluster on this machine.

    Each worker runs one task at a time (numba's parallel layers are not to be entered from
    several threads of one process) and gives it ``threads`` numba threads. Up to 8 workers, so
    that a big machine does not hold dozens of copies of the compiled kernels and chunk buffers;
    the cores are shared out among them.
    """
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, min(cores, 8))
    return workers, max(1, cores // workers)


class _dask_client:
    """A Dask client: on a new LocalCluster (``"local"``), on the scheduler at an address, or
    None (``None``: work in this process)."""

    def __init__(self, scheduler: str | None):
        self.scheduler = scheduler
        self.cluster = self.client = None

    def __enter__(self):
        if self.scheduler is None:
            return None
        from distributed import Client, LocalCluster

        logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO chatter is not the batch's log
        if self.scheduler == "local":
            workers, threads = local_cluster_shape()
            log.info("starting a Dask LocalCluster: %d workers x %d numba threads", workers, threads)
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None, silence_logs=logging.CRITICAL,
                                        env={"NUMBA_NUM_THREADS": str(threads)})
            self.client = Client(self.cluster)
        else:
            try:
                self.client = Client(self.scheduler, timeout="30s")
            except (OSError, ValueError, TypeError) as exc:
                raise BatchInputError(f"--scheduler {self.scheduler}: cannot connect ({exc}); expected 'local' "
                                      "or the address of a running Dask scheduler (tcp://host:8786)") from None
        return self.client

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _warm_workers(client, workers: list[str], scenario) -> None:
    """Kernels compiled (or loaded) on one worker first, then on the others: with a cold numba
    cache only that one compiles and writes it, and the rest load it instead of racing."""
    if not workers:
        return
    t0 = time.perf_counter()
    try:
        client.submit(warm_step, scenario, workers=workers[:1], allow_other_workers=False, pure=False).result()
        rest = [client.submit(warm_step, scenario, workers=[w], allow_other_workers=False, pure=False)
                for w in workers[1:]]
        client.gather(rest)
    except Exception as exc:  # not fatal: each scenario's prepare step warms its worker anyway
        log.warning("warming the kernels on the workers failed (%s); they will compile on first use", exc)
        return
    log.info("kernels ready on %d workers in %.1fs", len(workers), time.perf_counter() - t0)


def run_batch(jobs: list[Job], out: str | Path, **options) -> int:
    """Run a batch (see :class:`Batch`); returns the exit code."""
    return Batch(jobs, out, **options).run()


__all__ = ["Batch", "BatchInputError", "Job", "expand_inputs", "file_jobs", "local_cluster_shape", "parse_set",
           "run_batch", "safe_id", "sweep_jobs", "write_combined"]
