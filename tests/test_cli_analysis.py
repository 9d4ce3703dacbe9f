"""The analysis subcommands (issue 14): tables with provenance in the run folder, figures, and
bad input as one line and exit code 2 with nothing written."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

import simengine as se
from simengine.cli import main

GUANGZHOU = "scenarios/guangzhou_patent_2019.toml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    sc = se.load_scenario(GUANGZHOU).with_overrides({"simulation.cashflow_sample_paths": 200})
    se.simulate(sc, paths=2_000, seed=3, progress=False).to_parquet(out)
    return out


@pytest.mark.parametrize("argv,table", [
    (["breakeven", "--driver", "royalty_decline", "--tranche", "senior", "--basis", "standalone",
      "--criterion", "rating", "--paths", "1000"], "breakevens"),
    (["sensitivity", "--driver", "pd_multiplier,correlation", "--shock", "pd_multiplier=-0.5,1", "--paths", "1000"],
     "sensitivity"),
    (["stresses", "--largest", "3", "--timing", "front", "--bdr-timing", "even"], "deterministic_stresses"),
    (["contributions", "--top", "3", "--paths", "1000"], "contributions"),
    (["provider-cost", "--paths", "1000"], "provider_cost"),
])
def test_analysis_writes_table_and_figure(run_dir, argv, table, capsys):
    assert main([argv[0], str(run_dir), *argv[1:]]) == 0
    path = run_dir / f"{table}.parquet"
    meta = json.loads(pq.read_schema(path).metadata[b"simengine"])
    assert meta["analysis"] == table and meta["seed"] == 3 and meta["base_run"] == str(run_dir)
    frame = pq.read_table(path).to_pandas()
    assert len(frame) > 0 and (frame["scenario_name"] == "Guangzhou GDD patent-licence ABS 2019").all()
    assert (run_dir / f"{table}.png").stat().st_size > 0
    assert f"wrote {path}" in capsys.readouterr().out


def test_breakeven_from_a_file_writes_to_out(tmp_path, capsys):
    out = tmp_path / "be"
    assert main(["breakeven", GUANGZHOU, "--paths", "500", "--driver", "royalty_decline", "--tranche", "senior",
                 "--basis", "standalone", "--criterion", "rating", "--out", str(out), "--no-plot"]) == 0
    assert (out / "breakevens.parquet").exists() and not (out / "breakevens.png").exists()
    assert "royalty_decline" in capsys.readouterr().out


@pytest.mark.parametrize("argv,words", [
    (["breakeven", "{run}", "--driver", "nope"], "driver 'nope': expected one of pd_multiplier"),
    (["breakeven", "{run}", "--tranche", "mezz"], "tranche 'mezz': expected one of senior, subordinated"),
    (["breakeven", "{run}", "--target-rating", "AAA"], "expected a moodys grade"),
    (["breakeven", "{run}", "--range", "pd_multiplier=2"], "expected DRIVER=A,B"),
    (["breakeven", "{run}", "--seed", "4"], "a run folder keeps its own seed"),
    (["sensitivity", "{run}", "--shock", "pd_multiplier=,1"], "expected both moves"),
    (["stresses", "{run}", "--timing", "even"], "timing 'even': expected front, back or a period"),
    (["stresses", "{run}", "--largest", "12"], "max_k 12: expected 1..11"),
    (["provider-cost", "{run}", "--equity-tranche", "equity"], "expected one of senior, subordinated"),
    (["breakeven", "{tmp}/nowhere"], "nowhere"),
])
def test_bad_input_is_one_line_and_exit_2(run_dir, tmp_path, argv, words, capsys):
    before = sorted(p.name for p in run_dir.iterdir())
    argv = [a.format(run=run_dir, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if " INFO " not in line]
    assert len(err) == 1 and err[0].startswith("INVALID") and words in err[0], err
    assert sorted(p.name for p in run_dir.iterdir()) == before



FILES = ["scenarios/stress/guangzhou/base.toml", "scenarios/stress/guangzhou/licensee_pd_x2.toml"]


def test_batch_runs_analyses_and_duckdb_compares_them(tmp_path, capsys):
    """A stress set in one batch with analyses: one query compares a table across scenarios."""
    duckdb = pytest.importorskip("duckdb")
    out = tmp_path / "batch"
    assert main(["batch", *FILES, "--out", str(out), "--paths", "600", "--analyses",
                 "sensitivity,deterministic_stresses", "--analysis-paths", "400"]) == 0
    for sid in ("base", "licensee_pd_x2"):
        assert (out / "runs" / sid / "sensitivity.parquet").exists()
        assert (out / "analysis" / "sensitivity" / f"batch={out.name}" / f"scenario={sid}" / "part-0.parquet").exists()
    rows = duckdb.sql(f"""
        SELECT scenario, el_base, el_change FROM read_parquet('{out}/analysis/sensitivity/**/*.parquet',
            hive_partitioning = true)
        WHERE tranche = 'senior' AND basis = 'standalone' AND driver = 'pd_multiplier' AND side = 'up'
        ORDER BY scenario""").fetchall()
    assert [r[0] for r in rows] == ["base", "licensee_pd_x2"]
    assert rows[1][1] > rows[0][1]  # PD x2 raises the base EL of the stressed scenario (same paths)
    stresses = duckdb.sql(f"""SELECT count(DISTINCT scenario) FROM read_parquet(
        '{out}/analysis/deterministic_stresses/**/*.parquet', hive_partitioning = true)""").fetchall()[0][0]
    assert stresses == 2
    assert main(["batch", *FILES, "--out", str(tmp_path / "b2"), "--analyses", "tornado"]) == 2
    assert "expected one of breakevens" in capsys.readouterr().err


@pytest.mark.slow
def test_batch_breakevens_across_a_stress_set(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    out = tmp_path / "batch"
    assert main(["batch", *FILES, "--out", str(out), "--paths", "600", "--analyses", "breakevens",
                 "--analysis-paths", "400"]) == 0
    rows = duckdb.sql(f"""
        SELECT scenario, breakeven FROM read_parquet('{out}/analysis/breakevens/**/*.parquet', hive_partitioning = true)
        WHERE tranche = 'senior' AND basis = 'standalone' AND criterion = 'rating' AND driver = 'royalty_decline'
        ORDER BY scenario""").fetchall()
    assert [r[0] for r in rows] == ["base", "licensee_pd_x2"]
