"""Batches (SPEC §9): Dask gives the local bits, SIGKILL + --resume recomputes nothing finished,
sweep grids, the batch manifest and the combined dataset (pandas, pyarrow.dataset, DuckDB).

Scenarios here extend the shipped Guangzhou deal with a few thousand paths in chunks of a few
hundred, so every batch has several chunks per scenario and stays quick.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import simengine as se
from simengine.batch import (
    Batch,
    BatchInputError,
    Job,
    default_out,
    file_jobs,
    parse_set,
    run_batch,
    safe_id,
    sweep_jobs,
)

REPO = Path(__file__).resolve().parents[1]
GZ = REPO / "scenarios" / "guangzhou_patent_2019.toml"
STRESS = REPO / "scenarios" / "stress" / "guangzhou"
# a chunk of 10^13 paths asks numpy for petabytes: a scenario that validates and then fails when it
# runs, on any worker, with no test hook in the engine
BOOM = "[simulation]\npaths = 10_000_000_000\nchunk_paths = 10_000_000_000\n"  # valid, but no memory holds a chunk


def scenario(folder: Path, name: str, body: str = "", paths: int = 3_000, chunk_paths: int = 500,
             seed: int = 11) -> Path:
    path = folder / f"{name}.toml"
    simulation = "" if "[simulation]" in body else (
        f"[simulation]\npaths = {paths}\nchunk_paths = {chunk_paths}\nseed = {seed}\n")
    path.write_text(f'extends = "{GZ.as_posix()}"\n{body}\n{simulation}', encoding="utf-8")
    return path


def cli(args, timeout: float = 180, cores: set[int] | None = None) -> subprocess.CompletedProcess:
    """``simengine ARGS`` in a fresh interpreter; ``cores`` pins it (and its workers) to those CPUs."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    return subprocess.run([sys.executable, "-m", "simengine", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, preexec_fn=pin)


def two_cores() -> set[int]:
    """Two CPUs of this process: `--scheduler local` then starts 2 workers x 1 numba thread."""
    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs and sched_setaffinity")
    return set(sorted(os.sched_getaffinity(0))[:2])


def same_bits(x, y, where) -> None:
    """Two Arrow columns hold the same values bit for bit (NaN payloads included)."""
    x = x.combine_chunks() if isinstance(x, pa.ChunkedArray) else x
    y = y.combine_chunks() if isinstance(y, pa.ChunkedArray) else y
    assert x.type == y.type and len(x) == len(y), where
    assert x.is_null().equals(y.is_null()), where
    if pa.types.is_list(x.type):
        assert x.offsets.equals(y.offsets), where
        same_bits(x.flatten(), y.flatten(), where)
    elif pa.types.is_floating(x.type):
        bits = {32: np.uint32, 64: np.uint64}[x.type.bit_width]
        assert np.array_equal(x.to_numpy(zero_copy_only=False).view(bits),
                              y.to_numpy(zero_copy_only=False).view(bits)), where
    else:
        assert x.equals(y), where


MANIFEST_DATA = ["scenario_id", "status", "error", "scenario_name", "overrides", "paths", "seed", "chunk_paths",
                 "chunks"]  # the rest are timings, times, sessions and this folder's paths


def assert_same_outputs(a: Path, b: Path) -> int:
    """Every Parquet table under batch folders ``a`` and ``b`` holds the same data (file bytes
    differ: their metadata carries timings). Returns the number of tables compared."""
    files_a = sorted(p.relative_to(a) for p in a.rglob("*.parquet"))
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*.parquet"))
    for rel in files_a:
        ta, tb = pq.read_table(a / rel), pq.read_table(b / rel)
        if rel.name == "batch_manifest.parquet":
            ta, tb = ta.select(MANIFEST_DATA), tb.select(MANIFEST_DATA)
        assert ta.column_names == tb.column_names, rel
        for name in ta.column_names:
            same_bits(ta[name], tb[name], (str(rel), name))
    return len(files_a)


def rows(out: Path) -> dict[str, dict]:
    return {r["scenario_id"]: r for r in json.loads((out / "batch_manifest.json").read_text())["scenarios"]}


def no_partials(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if p.name.endswith(".partial")]


# ------------------------------------------------------------------------------ Dask vs local
def test_dask_local_cluster_gives_the_local_bits_and_records_failures(tmp_path):
    src = tmp_path / "scenarios"
    src.mkdir()
    scenario(src, "a")
    scenario(src, "b", "[risk.default]\npd_multiplier = 2.0\n[risk.correlation]\nglobal = 0.3\n", seed=12)
    # antithetic pairs: 2,999 paths in chunks of 499 round up to 3,000 in chunks of 500
    scenario(src, "c", '[risk.default]\ncopula = "student_t"\ndof = 5.0\n', paths=2_999, chunk_paths=499)
    (src / "c.toml").write_text((src / "c.toml").read_text() + 'variance_reduction = "antithetic"\n')
    scenario(src, "invalid", "[risk.correlation]\nglobal = 1.5\n")
    scenario(src, "boom", BOOM)
    inputs = [src]

    here = tmp_path / "here" / "batch"
    assert run_batch(file_jobs([str(p) for p in inputs]), here) == 1  # a failure outranks bad input
    start = time.perf_counter()
    r = cli(["batch", *inputs, "--out", tmp_path / "dask" / "batch", "--scheduler", "local"], timeout=240,
            cores=two_cores())
    dask_seconds = time.perf_counter() - start
    assert r.returncode == 1, r.stderr
    assert "LocalCluster: 2 workers x 1 numba threads" in r.stderr and "kernels ready on 2 workers" in r.stderr
    dask = tmp_path / "dask" / "batch"

    for out in (here, dask):
        got = rows(out)
        assert {k: v["status"] for k, v in got.items()} == {
            "a": "ok", "b": "ok", "c": "ok", "boom": "failed", "invalid": "bad_input"}
        assert "Unable to allocate" in got["boom"]["error"] and "MemoryError" in got["boom"]["error"]
        assert "risk.correlation.global = 1.5" in got["invalid"]["error"] and "invalid.toml" in got["invalid"]["error"]
        assert got["c"]["paths"] == 3_000 and got["c"]["chunk_paths"] == 500 and got["c"]["chunks"] == 6
        for sid in "abc":
            assert got[sid]["chunks_computed"] == 6 and got[sid]["chunks_resumed"] == 0
            assert json.loads((out / "runs" / sid / "manifest.json").read_text())["status"] == "ok"
        assert not (out / "spool" / "a").exists()  # finished scenarios drop their spool
        no_partials(out)
    assert "INVALID invalid" in r.stderr and "FAILED boom" in r.stderr
    assert "failed    boom" in r.stdout
    threads = {json.loads((dask / "runs" / s / "manifest.json").read_text())["threads"] for s in "abc"}
    assert threads == {1}  # NUMBA_NUM_THREADS set per worker
    tables = len(list((here / "runs" / "a").glob("*.parquet")))  # summary, tranche_losses, ... (SPEC §5)
    assert tables >= 7 and assert_same_outputs(here, dask) == 3 * tables + 3 + 1
    print(f"dask batch (cluster start included): {dask_seconds:.1f}s")


# ----------------------------------------------------------------------------- SIGKILL, resume
def test_sigkill_then_resume_recomputes_no_finished_chunk(tmp_path):
    src = tmp_path / "scenarios"
    src.mkdir()
    for k in range(4):
        scenario(src, f"s{k}", f"[risk.default]\npd_multiplier = {1 + 0.5 * k}\n", paths=6_000, chunk_paths=150,
                 seed=k)
    n_chunks = 40
    ref = tmp_path / "ref" / "batch"
    assert run_batch(file_jobs([str(src)]), ref) == 0

    out = tmp_path / "killed" / "batch"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "simengine", "batch", str(src), "--out", str(out)], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def state():
        finished = {p.parent.name for p in out.glob("runs/*/manifest.json")
                    if json.loads(p.read_text() or "{}").get("status") == "ok"}
        parts = {p.name: len(list((p / "pool_paths").glob("part-*.arrow"))) for p in out.glob("spool/*")}
        return finished, parts

    deadline = time.monotonic() + 120
    try:
        while True:  # kill once a scenario is finished and another is part way through its chunks
            try:
                finished, parts = state()
            except (json.JSONDecodeError, FileNotFoundError):
                continue  # a file replaced while we read it
            if finished and any(0 < n < n_chunks for sid, n in parts.items() if sid not in finished):
                break
            assert proc.poll() is None, "the batch finished before it could be killed: give it more chunks"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    finished, parts = state()
    assert finished and len(finished) < 4
    done_before = {sid: parts.get(sid, 0) for sid in ("s0", "s1", "s2", "s3") if sid not in finished}
    stamps = {p: (p.stat().st_ino, p.stat().st_mtime_ns)
              for sid in finished for p in [*(out / "runs" / sid).iterdir(), *out.glob(f"combined/*/scenario={sid}/*")]}
    for sid in done_before:  # what a killed writer leaves does not look finished
        manifest = out / "runs" / sid / "manifest.json"
        assert not manifest.exists() or json.loads(manifest.read_text())["status"] != "ok"
        assert not list(out.glob(f"combined/*/scenario={sid}/*.parquet"))

    r = cli(["batch", src, "--out", out, "--resume"])
    assert r.returncode == 0, r.stderr
    got = rows(out)
    assert all(row["status"] == "ok" for row in got.values())
    for sid in finished:  # skipped: rows and files as they were
        assert got[sid]["session"] == 1 and "finished in an earlier session; skipped" in r.stderr
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in stamps} == stamps
    for sid, before in done_before.items():
        assert got[sid]["session"] == 2
        assert (got[sid]["chunks_resumed"], got[sid]["chunks_computed"]) == (before, n_chunks - before), sid
    computed = sum(got[sid]["chunks_computed"] for sid in done_before)
    assert computed == n_chunks * len(done_before) - sum(done_before.values())
    assert not (out / "spool").exists()
    no_partials(out)
    tables = len(list((ref / "runs" / "s0").glob("*.parquet")))
    assert assert_same_outputs(ref, out) == 4 * tables + 4 + 1

    # resuming a finished batch does nothing and touches no scenario's files
    stamps = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "runs").rglob("*") if p.is_file()}
    assert run_batch(file_jobs([str(src)]), out, resume=True) == 0
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in stamps} == stamps


# ------------------------------------------------------------------ resume after a default changed
TINY = """[deal]
name = "Tiny pool"
currency = "USD"
periods_per_year = 4
term_years = 3.0

[pool.generate]
count = 6
royalty = 1.0
pd_annual = 0.15

[risk.correlation]
global = 0.2

[[structure.tranches]]
name = "senior"
balance = 10.0

[[structure.tranches]]
name = "junior"
balance = 2.0
interest_deferrable = true

[simulation]
paths = 400
chunk_paths = 100
seed = 7
"""  # relicense_haircut is left at its default: licensees that default recover 1 - haircut of the royalty

# the batch as `simengine batch`, SIGKILLed from inside once its progress log reports b_cut's first chunk
KILL_AFTER_FIRST_CHUNK = """
import logging, os, signal, sys
class Kill(logging.Handler):
    def emit(self, record):
        if record.getMessage().startswith("b_cut: chunk 1/"):
            os.kill(os.getpid(), signal.SIGKILL)
logging.getLogger("simengine").addHandler(Kill())
from simengine.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_resume_after_a_schema_default_changed_recomputes_and_keeps_finished_runs(tmp_path):
    """A batch killed mid-scenario, then a default of the scenario schema edited, then ``--resume``:
    the unfinished scenario's spooled chunks (old default) are dropped and every chunk recomputed,
    giving a fresh run's bits under the new default; a scenario finished under the old default is
    reported failed and its files are left as they are."""
    pkg = tmp_path / "pkg"  # a copy of the package, whose schema this test edits
    shutil.copytree(REPO / "simengine", pkg / "simengine", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(pkg), SIMENGINE_DISABLE_NUMBA="1")  # twins: no compile of the copy

    def batch(*args, script=None):  # run from tmp_path, so that the copy is the simengine imported
        head = ["-c", script] if script else ["-m", "simengine"]
        return subprocess.run([sys.executable, *head, "batch", *map(str, args)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=180)

    src = tmp_path / "scenarios"
    src.mkdir()
    for name in ("a_done", "b_cut"):  # the same deal twice: a_done's outputs are b_cut's under the old default
        (src / f"{name}.toml").write_text(TINY, encoding="utf-8")
    out = tmp_path / "killed" / "batch"
    r = batch(src, "--out", out, script=KILL_AFTER_FIRST_CHUNK)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert json.loads((out / "runs" / "a_done" / "manifest.json").read_text())["status"] == "ok"
    assert not (out / "runs" / "b_cut" / "manifest.json").exists()
    assert len(list((out / "spool" / "b_cut" / "pool_paths").glob("part-*.arrow"))) == 1  # of 4 chunks
    finished = [*(out / "runs" / "a_done").iterdir(), *out.glob("combined/*/scenario=a_done/*")]
    stamps = {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in finished}

    edited = 0
    for module in (pkg / "simengine" / "scenario").glob("*.py"):
        text, n = re.subn(r"(\brelicense_haircut\s*:[^=\n]*=\s*)1\.0\b", r"\g<1>0.5", module.read_text())
        if n:
            module.write_text(text)
            edited += n
    assert edited == 1, "the default of relicense_haircut (1.0) was not found in simengine/scenario/*.py"

    r = batch(src, "--out", out, "--resume")
    assert r.returncode == 1, r.stderr  # a_done failed: its folder holds a run of other inputs
    got = rows(out)
    assert got["a_done"]["status"] == "failed" and "holds a finished run of other inputs" in got["a_done"]["error"]
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in stamps} == stamps
    assert got["b_cut"]["status"] == "ok" and got["b_cut"]["session"] == 2
    assert (got["b_cut"]["chunks_resumed"], got["b_cut"]["chunks_computed"]) == (0, 4)
    warning = [line for line in r.stderr.splitlines() if "spool/b_cut: its parts were computed under other" in line]
    assert len(warning) == 1 and "resolved_scenario_hash" in warning[0], r.stderr
    assert not (out / "spool").exists()
    no_partials(out)

    fresh = tmp_path / "fresh" / "batch"  # the same batch id ("batch"), so the combined parts compare too
    r = batch(src / "b_cut.toml", "--out", fresh)
    assert r.returncode == 0, r.stderr
    tables = sorted(p.relative_to(fresh) for p in fresh.rglob("*.parquet") if p.name != "batch_manifest.parquet")
    assert len(tables) >= 8 and any(p.parts[0] == "combined" for p in tables)  # run folder tables + combined part
    for rel in tables:  # the resumed scenario has the new default's bits
        ta, tb = pq.read_table(out / rel), pq.read_table(fresh / rel)
        assert ta.column_names == tb.column_names, rel
        for name in ta.column_names:
            same_bits(ta[name], tb[name], (str(rel), name))
    old = pq.read_table(out / "runs" / "a_done" / "tranche_losses.parquet")
    new = pq.read_table(out / "runs" / "b_cut" / "tranche_losses.parquet")
    assert old.column_names == new.column_names and not old.equals(new)  # and not the old default's


# --------------------------------------------------------------------------------------- sweep
@pytest.mark.parametrize("text, key, values", [
    ("risk.correlation.global=0.2,0.35", "risk.correlation.global", [0.2, 0.35]),
    ("risk.default.pd_multiplier = 1, 2.5 ,3", "risk.default.pd_multiplier", [1, 2.5, 3]),
    ("risk.demand.enabled=true,false", "risk.demand.enabled", [True, False]),
    ('structure.guarantee.rating="BB","B, low"', "structure.guarantee.rating", ["BB", "B, low"]),
    ("structure.guarantee.rating=BB,B", "structure.guarantee.rating", ["BB", "B"]),
    ("structure.tranches[0].balance=1_000.5", "structure.tranches[0].balance", [1000.5]),
])
def test_parse_set_reads_toml_values(text, key, values):
    assert parse_set(text) == (key, values)


@pytest.mark.parametrize("text", ["risk.correlation.global", "=1,2", "risk.correlation.global=", "k=1,,2"])
def test_parse_set_rejects_malformed(text):
    with pytest.raises(BatchInputError, match="--set"):
        parse_set(text)


def test_sweep_grid_is_one_scenario_per_point_with_its_overrides():
    jobs = sweep_jobs(str(GZ), ["risk.default.pd_multiplier=1,2,3", "risk.correlation.global=0.15,0.35"])
    assert len(jobs) == 6 and len({j.scenario_id for j in jobs}) == 6
    grid = [(j.overrides["risk.default.pd_multiplier"], j.overrides["risk.correlation.global"]) for j in jobs]
    assert grid == [(1, 0.15), (1, 0.35), (2, 0.15), (2, 0.35), (3, 0.15), (3, 0.35)]  # product, in order
    assert jobs[3].scenario_id == "guangzhou_patent_2019__risk.default.pd_multiplier-2__risk.correlation.global-0.35"
    base = se.load_scenario(GZ).resolved()
    for job in jobs:
        model = job.load().model
        assert model.risk.default.pd_multiplier == job.overrides["risk.default.pd_multiplier"]
        assert model.risk.correlation.global_ == job.overrides["risk.correlation.global"]
        resolved = job.load().resolved()  # nothing else changed
        for section in ("deal", "pool", "structure", "simulation"):
            assert resolved[section] == base[section]
    with pytest.raises(BatchInputError, match="more than once"):
        sweep_jobs(str(GZ), ["risk.correlation.global=0.1", "risk.correlation.global=0.2"])


def test_sweep_cli_runs_every_point_and_bad_points_are_bad_input(tmp_path):
    base = scenario(tmp_path, "tiny", paths=1_000, chunk_paths=500)
    out = tmp_path / "sweep"
    r = cli(["sweep", base, "--set", "risk.correlation.global=0.2,1.5", "--set", "structure.guarantee.pd_annual=0.0072",
             "--out", out])
    assert r.returncode == 2, r.stderr  # one point is bad input, none failed
    got = rows(out)
    good = "tiny__risk.correlation.global-0.2__structure.guarantee.pd_annual-0.0072"
    bad = "tiny__risk.correlation.global-1.5__structure.guarantee.pd_annual-0.0072"
    assert {k: v["status"] for k, v in got.items()} == {good: "ok", bad: "bad_input"}
    assert "risk.correlation.global = 1.5" in got[bad]["error"] and "with_overrides" in got[bad]["error"]
    manifest = json.loads((out / "runs" / good / "manifest.json").read_text())
    assert manifest["resolved_scenario"]["risk"]["correlation"]["global"] == 0.2
    assert manifest["resolved_scenario"]["structure"]["guarantee"]["pd_annual"] == 0.0072
    combined = pd.read_parquet(out / "combined")
    assert set(combined["scenario"]) == {good}
    assert json.loads(combined["overrides"].iloc[0]) == {"risk.correlation.global": 0.2,
                                                         "structure.guarantee.pd_annual": 0.0072}


# ----------------------------------------------------------------------- manifest and dataset
def test_combined_dataset_reads_with_pandas_pyarrow_and_duckdb(tmp_path):
    src = tmp_path / "deals"
    src.mkdir()
    scenario(src, "gz", paths=1_000, chunk_paths=500)
    scenario(src, "gz_pd_x3", "[risk.default]\npd_multiplier = 3.0\n", paths=1_000, chunk_paths=500)
    # a deal with other tranches and triggers: the dataset keeps one schema for all deals
    (src / "w1.toml").write_text(f'extends = "{(REPO / "scenarios" / "w1_workload.toml").as_posix()}"\n'
                                 "[simulation]\npaths = 600\nchunk_paths = 300\ncashflow_sample_paths = 200\n")
    out = tmp_path / "night"
    assert run_batch(file_jobs([str(src)]), out) == 0
    combined = out / "combined"
    assert sorted(p.relative_to(combined).as_posix() for p in combined.rglob("*.parquet")) == [
        f"batch=night/scenario={s}/part-0.parquet" for s in ("gz", "gz_pd_x3", "w1")]

    frame = pd.read_parquet(combined)
    tranches = {"gz": 2, "gz_pd_x3": 2, "w1": 3}
    assert frame.groupby("scenario", observed=True).size().to_dict() == tranches
    assert set(frame["batch"]) == {"night"}
    table = ds.dataset(combined, partitioning="hive").to_table()
    assert table.num_rows == 7 and {"batch", "scenario", "pd", "el", "pool_licensee_default_rate_mean"} <= set(
        table.column_names)
    query = (f"SELECT scenario, tranche, pd, el, rating_sp FROM read_parquet('{combined.as_posix()}/**/*.parquet', "
             "hive_partitioning = true) ORDER BY scenario, tranche")
    got = duckdb.sql(query).fetchall()
    assert [(s, t) for s, t, *_ in got] == sorted((s, t) for s, t in zip(frame["scenario"], frame["tranche"]))
    el = {(s, t): e for s, t, _, e, _ in got}
    assert el[("gz_pd_x3", "subordinated")] >= el[("gz", "subordinated")]  # common random numbers
    # each row equals the scenario's own run folder
    for sid in tranches:
        summary = pd.read_parquet(out / "runs" / sid / "summary.parquet")
        mine = frame[frame["scenario"] == sid].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine[summary.columns], summary, check_dtype=False)

    manifest = pd.read_parquet(out / "batch_manifest.parquet")
    assert list(manifest["scenario_id"]) == ["gz", "gz_pd_x3", "w1"] and set(manifest["status"]) == {"ok"}
    assert (manifest["total_seconds"] > 0).all() and (manifest["kernel_seconds"] > 0).all()
    top = json.loads((out / "batch_manifest.json").read_text())
    assert top["status"] == "finished" and top["exit_code"] == 0 and top["counts"]["ok"] == 3


def test_existing_out_needs_resume_and_the_same_options(tmp_path):
    src = scenario(tmp_path, "tiny", paths=600, chunk_paths=300)
    out = tmp_path / "out"
    assert cli(["batch", src, "--out", out, "--seed", "5"]).returncode == 0
    r = cli(["batch", src, "--out", out, "--seed", "5"])
    assert r.returncode == 2 and "--resume" in r.stderr and "Traceback" not in r.stderr
    r = cli(["batch", src, "--out", out, "--seed", "6", "--resume"])
    assert r.returncode == 2 and "--seed 6" in r.stderr and "--seed 5" in r.stderr
    r = cli(["batch", str(tmp_path / "nothing" / "*.toml"), "--out", tmp_path / "o2"])
    assert r.returncode == 2 and "matches no file" in r.stderr and not (tmp_path / "o2").exists()
    r = cli(["sweep", src, "--set", "risk.correlation.global", "--out", tmp_path / "o3"])
    assert r.returncode == 2 and "--set" in r.stderr and not (tmp_path / "o3").exists()
    r = cli(["sweep", tmp_path / "nope.toml", "--set", "risk.correlation.global=0.1"])
    assert r.returncode == 2 and "nope.toml" in r.stderr


def test_ids_are_unique_safe_and_deterministic(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a, b = scenario(tmp_path / "x", "deal"), scenario(tmp_path / "y", "deal")
    jobs = file_jobs([str(tmp_path / "x"), str(b), str(a)])  # a file named twice runs once
    assert [j.scenario_id for j in jobs] == ["deal", "deal-2"]
    assert safe_id("gz__k=v/w x") == "gz__k_v_w_x"
    long = safe_id("s" * 300)
    assert len(long) <= 120 and long == safe_id("s" * 300) and long != safe_id("s" * 299)
    assert default_out(["scenarios/stress/guangzhou"]).as_posix() == "results/batch-guangzhou"
    assert default_out(["scenarios/stress/*/x*.toml"]).as_posix() == "results/batch-stress"
    assert default_out(["scenarios/guangzhou_patent_2019.toml"], "sweep").as_posix() == (
        "results/sweep-guangzhou_patent_2019")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BatchInputError, match="without \\*.toml"):
        file_jobs([str(tmp_path / "empty")])
    with pytest.raises(BatchInputError, match="is a file"):
        Batch([Job("deal", str(a))], a)


# ----------------------------------------------------------------------------------- stress set
STRESSES = {  # file -> the only resolved values that differ from the base deal (deal.name aside)
    "base": {},
    "licensee_pd_x2": {("risk", "default", "pd_multiplier"): 2.0},
    "licensee_pd_x3": {("risk", "default", "pd_multiplier"): 3.0},
    "correlation_global_035": {("risk", "correlation", "global"): 0.35},
    "obsolescence_x3": {("risk", "obsolescence", "hazard_annual"): 0.06,
                        ("risk", "obsolescence", "technologies", "display", "hazard_annual"): 0.09,
                        ("risk", "obsolescence", "technologies", "software", "hazard_annual"): 0.09,
                        ("risk", "obsolescence", "technologies", "biotech", "hazard_annual"): 0.045},
    "demand_shock": {("risk", "demand", "shock_drift_annual"): -0.2, ("risk", "demand", "shock_years"): 2.0},
    "guarantor_bb": {("structure", "guarantee", "rating"): "BB", ("structure", "guarantee", "pd_annual"): None},
    "commitment_wrong_way": {("structure", "payment_commitment", "loading"): 0.8},
}


def _flat(tree, prefix=()):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _flat(v, (*prefix, k))
    else:
        yield prefix, tree


def test_guangzhou_stress_set_changes_only_what_it_says():
    from simengine.ratings import rating_to_pd

    assert sorted(p.stem for p in STRESS.glob("*.toml")) == sorted(STRESSES)
    base = dict(_flat(se.load_scenario(GZ).resolved()))
    for name, want in STRESSES.items():
        sc = se.load_scenario(STRESS / f"{name}.toml")
        got = dict(_flat(sc.resolved()))
        diff = {k: v for k, v in got.items() if base.get(k) != v and k not in (("deal", "name"), ("extends",))}
        assert diff == want, name
        assert "[S]" in (STRESS / f"{name}.toml").read_text() or name == "base"
    for (k, v) in STRESSES["obsolescence_x3"].items():
        assert v == pytest.approx(3 * base[k])
    # the variant's rating replaced the base's pd_annual (the two say the same thing two ways)
    bb = se.load_scenario(STRESS / "guarantor_bb.toml").model.structure.guarantee
    assert bb.pd_annual is None and rating_to_pd(bb.rating) == pytest.approx(0.0056)


CLUSTER = """
import sys, time
from distributed import LocalCluster
cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
print(cluster.scheduler_address, flush=True)
time.sleep(600)
"""


def test_dask_address_uses_that_cluster_and_spreads_one_scenarios_chunks(tmp_path):
    """A running cluster (here a LocalCluster in another process) at an address: the batch uses
    its two workers for the chunks of one scenario, with the local bits."""
    src = scenario(tmp_path, "big", paths=8_000, chunk_paths=250, seed=3)
    here = tmp_path / "here" / "batch"
    assert run_batch([Job("big", str(src))], here) == 0
    env = dict(os.environ, PYTHONPATH=str(REPO))
    helper = subprocess.Popen([sys.executable, "-c", CLUSTER], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    with helper:  # closes its pipe
        try:
            address = helper.stdout.readline().strip()
            assert address.startswith("tcp://"), address
            r = cli(["batch", src, "--out", tmp_path / "there" / "batch", "--scheduler", address])
        finally:
            helper.terminate()
            helper.wait(timeout=60)
    assert r.returncode == 0, r.stderr
    assert "kernels ready on 2 workers" in r.stderr and "LocalCluster" not in r.stderr
    row = rows(tmp_path / "there" / "batch")["big"]
    assert row["chunks"] == 32 and row["chunks_computed"] == 32 and row["chunk_workers"] == 2
    assert rows(here)["big"]["chunk_workers"] == 1
    assert_same_outputs(here, tmp_path / "there" / "batch")


def test_bad_command_inputs_write_nothing_and_the_corrected_command_runs(tmp_path):
    """A missing file or an unknown --set key is a mistake in the command, not a scenario: exit 2,
    no batch folder, so the corrected command runs without --resume (issue 18)."""
    src = tmp_path / "scenarios"
    src.mkdir()
    scenario(src, "a", paths=500, chunk_paths=500)
    out = tmp_path / "batch"
    r = cli(["batch", src, tmp_path / "mising.toml", "--out", out])
    assert r.returncode == 2 and "mising.toml: no such scenario file" in r.stderr and not out.exists()
    r = cli(["sweep", src / "a.toml", "--set", "risk.corelation.global=0.2", "--out", out])
    assert r.returncode == 2 and "risk.corelation.global" in r.stderr and not out.exists()
    r = cli(["batch", src, "--out", out])
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "batch_manifest.json").read_text())
    assert m["counts"]["ok"] == len(m["scenarios"]) == 1


def test_resume_with_other_inputs_is_refused_and_counts_match_rows(tmp_path):
    src = tmp_path / "scenarios"
    src.mkdir()
    scenario(src, "a", paths=500, chunk_paths=500)
    out = tmp_path / "sweep"
    assert cli(["sweep", src / "a.toml", "--set", "risk.correlation.global=0.2,0.3", "--out", out]).returncode == 0
    r = cli(["sweep", src / "a.toml", "--set", "risk.correlation.global=0.2,0.4", "--out", out, "--resume"])
    assert r.returncode == 2 and "was started with other scenarios or --set values" in r.stderr
    r = cli(["sweep", src / "a.toml", "--set", "risk.correlation.global=0.2,0.3", "--out", out, "--resume",
             "--paths", "600"])
    assert r.returncode == 2 and "--paths 600" in r.stderr and "(not given)" in r.stderr and "None" not in r.stderr
    m = json.loads((out / "batch_manifest.json").read_text())
    assert sum(m["counts"].values()) == len(m["scenarios"]) == 2


def test_the_readme_batch_examples_write_separate_folders():
    """README's batch and sweep examples run one after another as shown: each has its own --out
    (given, or the default results/<kind>-<first input's name>)."""
    import shlex

    from simengine.batch import default_out

    text = (REPO / "README.md").read_text()
    block = text[text.index("## Batches, stress sets and sweeps"):]
    block = block[block.index("```") + 3:]
    block = block[:block.index("```")]
    outs = []
    for line in block.splitlines():
        words = shlex.split(line.split("#")[0])
        if len(words) < 3 or words[0] != "simengine" or "|" in line:
            continue
        kind, first = words[1], words[2]
        outs.append(words[words.index("--out") + 1] if "--out" in words else str(default_out([first], kind)))
    assert len(outs) >= 3 and len(set(outs)) == len(outs), outs
