"""The batch run: triage, the manifest, progress, and the scheduling of steps here or on Dask.

:class:`Batch` validates every job first (bad input is a manifest row, never a stop), skips
scenarios finished under the same inputs (:func:`~simengine.batch.steps.job_key`), and runs the
rest as :mod:`~simengine.batch.steps`: one after another in this process, or as Dask tasks with
a few scenarios in flight. It alone writes ``batch_manifest.json`` / ``.parquet``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .._io import atomic_json, atomic_parquet, clear_partials
from .._progress import Progress, duration, eta
from ..engine import RunSpec
from ..errors import ScenarioError
from ..results import RunFolder
from ..scenario import Scenario
from .dask import dask_client, warm_workers
from .jobs import BatchInputError, Job, safe_id
from .steps import BATCH_KEY, chunk_step, combined_key, finish_step, job_key, prepare_step, same_run, write_combined

log = logging.getLogger("simengine")

OK, BAD_INPUT, FAILED, PENDING = "ok", "bad_input", "failed", "pending"
EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
MANIFEST = "batch_manifest.json"

# ------------------------------------------------------------------------------- rows, manifest
ROW_FIELDS = {  # name -> pyarrow type name, for a batch manifest table that keeps its types (seconds)
    "scenario_id": "string", "status": "string", "error": "string", "scenario_name": "string",
    "file": "string", "overrides": "string", "paths": "int64", "seed": "int64", "chunk_paths": "int64",
    "chunks": "int64", "chunks_computed": "int64", "chunks_resumed": "int64", "chunk_workers": "int64",
    "session": "int64",
    "run_dir": "string", "combined_part": "string", "started_at": "string", "finished_at": "string",
    "prepare_seconds": "float64", "simulate_seconds": "float64", "kernel_seconds": "float64",
    "finish_seconds": "float64", "total_seconds": "float64",
}


def _now() -> str:
    """The time now in UTC, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _error_text(exc: BaseException) -> str:
    """A manifest row's error: a ScenarioError's message as is, else prefixed by the exception's type."""
    text = str(exc)
    if isinstance(exc, ScenarioError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_json(path: Path) -> dict | None:
    """A batch manifest read back, or None where there is none (or it is unreadable)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


# ------------------------------------------------------------------------------------- progress
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
            self.bar = Progress(self.total, "batch", True)

    def begin(self, scenario_id: str, paths: int, n_chunks: int, planned: int) -> None:
        """A scenario starts its chunks: ``paths`` of them (``planned`` was counted in the total)."""
        self._retotal(paths - planned)
        state = {"paths": paths, "chunks": n_chunks, "done": 0, "computed": 0, "chunks_done": 0,
                 "start": time.perf_counter(), "bar": None}
        if self.tty:
            state["bar"] = Progress(paths, scenario_id, True)
        self.scenarios[scenario_id] = state

    def chunk(self, scenario_id: str, paths: int, computed: bool) -> None:
        """A chunk of ``paths`` paths is in the spool (``computed``: here, not found finished)."""
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
        now = time.perf_counter()  # speed from the paths computed; what is left from the paths done
        s_eta = eta(now - s["start"], s["computed"], s["computed"] + s["paths"] - s["done"])
        b_eta = eta(now - self.start, self.computed, self.computed + self.total - self.done)
        log.info("%s: chunk %d/%d, %s/%s paths, ETA %s | batch: %d/%d scenarios finished, %.0f%% of paths, "
                 "%s elapsed, ETA %s", scenario_id, s["chunks_done"], s["chunks"], f"{s['done']:,}",
                 f"{s['paths']:,}", duration(s_eta), self.finished, self.n_scenarios,
                 100.0 * self.done / self.total, duration(now - self.start), duration(b_eta))

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
            self.bar.retotal(self.total)

    def close(self) -> None:
        """Close every bar still open."""
        for s in self.scenarios.values():
            if s["bar"] is not None:
                s["bar"].close()
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------------- batch
@dataclass
class _Item:
    """A job to run: its validated scenario, its key (:func:`~simengine.batch.steps.job_key`), its
    manifest row, and when it started (``time.perf_counter``)."""

    job: Job
    row: dict
    scenario: Scenario
    key: dict
    t0: float = 0.0


def _given(value) -> str:
    """An option's value for a message: ``(not given)`` rather than Python's ``None``."""
    return "(not given)" if value is None else str(value)


class Batch:
    """A batch folder and its manifest; :meth:`run` does the work.

    Parameters
    ----------
    jobs : list of Job
        The scenarios, in order (ids unique).
    out : str or Path
        The batch folder.
    resume : bool
        Continue the batch in ``out``; without it ``out`` must be new or empty.
    scheduler : str or None
        None (this process), ``"local"`` (a Dask LocalCluster) or a Dask scheduler address.
    paths, seed, chunk_paths : int or None
        Override every scenario's ``[simulation]`` values; a resumed batch must give the same.
    argv : list of str or None
        The command line, for the manifest.
    analyses : list of str or None
        Analyses (:data:`simengine.analysis.suite.ANALYSES`) run on each scenario as it finishes,
        into its run folder and ``analysis/<table>/batch=.../scenario=.../`` (not on scenarios found
        finished by a resume).
    analysis_paths : int or None
        Paths each analysis re-runs (default: the scenario's).

    Raises
    ------
    BatchInputError
        ``out`` is a file, holds a batch and ``resume`` is not given, or was started with other options.
    """

    def __init__(self, jobs: list[Job], out: str | Path, resume: bool = False, scheduler: str | None = None,
                 paths: int | None = None, seed: int | None = None, chunk_paths: int | None = None,
                 argv: list[str] | None = None, analyses: list[str] | None = None,
                 analysis_paths: int | None = None):
        self.jobs, self.resume, self.scheduler = jobs, resume, scheduler
        self.analyses = {"analyses": list(analyses or []), "analysis_paths": analysis_paths}  # issue 14
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
                    raise BatchInputError(f"{flag} {_given(value)}: {out} was started with {flag} "
                                          f"{_given(old['options'].get(name))}; expected the same options to "
                                          "resume it")
            was = old.get("inputs")
            if was is not None and was != self.inputs():
                raise BatchInputError(f"{out}: was started with other scenarios or --set values "
                                      f"({len(was)} scenarios, now {len(jobs)}); expected the same inputs to resume "
                                      "it, or a new --out")
        self.batch_id = old["batch"] if old else safe_id(self.out.name)
        self.sessions = (old or {}).get("sessions", [])
        self.session = len(self.sessions) + 1
        self.old_rows = {r["scenario_id"]: r for r in (old or {}).get("scenarios", [])}
        self.rows: dict[str, dict] = {}

    # -- paths ------------------------------------------------------------------------------------
    def run_dir(self, sid: str) -> Path:
        """``runs/<sid>``: the scenario's run folder."""
        return self.out / "runs" / sid

    def spool_dir(self, sid: str) -> Path:
        """``spool/<sid>``: the scenario's chunk parts while it runs."""
        return self.out / "spool" / sid

    def part(self, sid: str) -> Path:
        """The scenario's combined part: ``combined/batch=<batch id>/scenario=<sid>/part-0.parquet``."""
        return self.out / "combined" / f"batch={self.batch_id}" / f"scenario={sid}" / "part-0.parquet"

    # -- manifest ---------------------------------------------------------------------------------
    def inputs(self) -> list[dict]:
        """The scenarios this batch was asked to run (a resume must be asked the same)."""
        return [{"scenario_id": j.scenario_id, "file": j.file, "overrides": j.overrides} for j in self.jobs]

    def all_rows(self) -> list[dict]:
        """Manifest rows: this session's, then an earlier session's scenarios it was not given."""
        return list(self.rows.values()) + [r for sid, r in self.old_rows.items() if sid not in self.rows]

    def counts(self) -> dict:
        """Scenarios of the manifest by status: {"ok", "bad_input", "failed", "pending"} -> count."""
        out = {OK: 0, BAD_INPUT: 0, FAILED: 0, PENDING: 0}
        for row in self.all_rows():
            out[row["status"]] += 1
        return out

    def exit_code(self) -> int:
        """0 all ok, 1 any failed, 2 any bad input (and none failed)."""
        c = self.counts()
        return EXIT_FAILURE if c[FAILED] else EXIT_BAD_INPUT if c[BAD_INPUT] else EXIT_OK

    def write_manifest(self, finished: bool = False) -> None:
        """batch_manifest.json and .parquet, each replaced atomically."""
        import pyarrow as pa

        # scenarios of an earlier session that this one was not given stay listed (their
        # folders and combined parts are still in the batch)
        rows = self.all_rows()
        session = self.sessions[-1]
        if finished:
            session["finished_at"] = _now()
        data = {"batch": self.batch_id, "out": str(self.out), "status": "finished" if finished else "running",
                "options": self.options, "inputs": self.inputs(), "counts": self.counts(),
                "exit_code": self.exit_code() if finished else None,
                "sessions": self.sessions,
                "layout": {"runs": "runs/<scenario_id>/", "spool": "spool/<scenario_id>/ (while running)",
                           "combined": f"combined/batch={self.batch_id}/scenario=<scenario_id>/part-0.parquet"},
                "scenarios": rows}
        atomic_json(self.manifest_path, data)
        table = pa.table({name: pa.array([r.get(name) for r in rows], type=getattr(pa, kind)())
                          for name, kind in ROW_FIELDS.items()})
        atomic_parquet(self.out / "batch_manifest.parquet", [table], {BATCH_KEY: json.dumps(
            {"batch": self.batch_id, "options": self.options}).encode()})

    def _row(self, job: Job, **values) -> dict:
        """A manifest row of ``job``: every field of :data:`ROW_FIELDS`, pending unless ``values`` say so."""
        row = {name: None for name in ROW_FIELDS}
        row.update(scenario_id=job.scenario_id, file=job.file, overrides=json.dumps(job.overrides, sort_keys=True),
                   status=PENDING, run_dir=str(self.run_dir(job.scenario_id)))
        row.update(values)
        return row

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> int:
        """Run every unfinished scenario; returns the exit code (see :meth:`exit_code`)."""
        self.sessions.append({"session": self.session, "started_at": _now(),
                              "scheduler": self.scheduler or "this process", "argv": self.argv})
        todo = self._triage()
        # the cluster comes up (or is reached) before anything is written: a wrong address leaves no folder
        with dask_client(self.scheduler if todo else None) as client:
            self.out.mkdir(parents=True, exist_ok=True)
            clear_partials(self.out)
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
                key = job_key(scenario, **self.options)
            except ScenarioError as exc:
                self._record_error(job, BAD_INPUT, exc)
                continue
            except Exception as exc:  # e.g. a pool file that went away after validation
                self._record_error(job, FAILED, exc, traceback.format_exc())
                continue
            manifest = RunFolder.read_manifest(self.run_dir(sid))
            meta = {"scenario_name": scenario.name, "file": job.file, "overrides": job.overrides, "key": key}
            if manifest is not None and manifest.get("status") == OK:
                if not same_run(manifest, key):
                    differ = ", ".join(name for name, value in key.items() if manifest.get(name) != value)
                    self._record_error(job, FAILED, RuntimeError(
                        f"{self.run_dir(sid)} holds a finished run of other inputs ({differ} differ: was the "
                        "scenario file, a default or simengine changed?); it is left as it is: expected a new --out"))
                    continue
                old = self.old_rows.get(sid)
                if combined_key(self.part(sid)) != key:  # killed between the run folder and its part
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
                 values["chunks_computed"], values["chunks_resumed"], duration(item.row["total_seconds"]))

    def _start(self, item: _Item) -> None:
        item.t0 = time.perf_counter()
        item.row["started_at"] = _now()

    def _finish_args(self, item: _Item) -> tuple[str, str, dict]:
        """(run folder, combined part, combined metadata) of an item, for :func:`finish_step`."""
        sid = item.job.scenario_id
        meta = {"scenario_name": item.scenario.name, "file": item.job.file, "overrides": item.job.overrides,
                "key": item.key, **self.analyses}
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
        warm_workers(client, workers, todo[0].scenario)
        o = self.options
        queue = deque(enumerate(todo))
        window = max(2, 2 * len(workers))  # enough to keep every worker busy while one finishes
        tasks: dict[str, tuple[str, _Item, int]] = {}  # future key -> (step, item, rank or chunk index)
        live: dict[str, list] = {}  # scenario id -> its futures (dropped when it is over)
        specs: dict[str, RunSpec] = {}  # scenario id -> its spec, once prepared
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


def run_batch(jobs: list[Job], out: str | Path, **options) -> int:
    """Run a batch: ``Batch(jobs, out, **options).run()``.

    Returns
    -------
    int
        0 all ok, 1 any scenario failed, 2 any bad input (and none failed).
    """
    return Batch(jobs, out, **options).run()

