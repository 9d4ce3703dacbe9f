"""The CLI on bad input: exit code 2, the key path on stderr, nothing written (SPEC §4, §5).

Every ``run`` here fails before simulating, so no kernel is ever compiled and the file stays fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GUANGZHOU = REPO / "scenarios" / "deals" / "guangzhou_patent_2019.toml"
TEXT = GUANGZHOU.read_text(encoding="utf-8")
BAD_BALANCE = ('balance = 286_000_000.0', 'balance = "lots"')


def cli(args, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "simengine", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*")}


@pytest.fixture
def good(tmp_path) -> Path:
    path = tmp_path / "good.toml"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture
def bad(tmp_path) -> Path:
    old, new = BAD_BALANCE
    assert TEXT.count(old) == 1
    path = tmp_path / "bad.toml"
    path.write_text(TEXT.replace(old, new), encoding="utf-8")
    return path


def test_validate_broken_file_exits_2_with_key_path(tmp_path, bad):
    out = cli(["validate", bad.name], tmp_path)
    assert out.returncode == 2, out
    assert "bad.toml" in out.stderr
    assert "structure.tranches[0].balance = 'lots'" in out.stderr
    assert "expected a number" in out.stderr
    assert "Traceback" not in out.stderr


def test_validate_good_and_bad_reports_both_and_exits_2(tmp_path, good, bad):
    out = cli(["validate", good.name, bad.name], tmp_path)
    assert out.returncode == 2, out
    assert "ok good.toml" in out.stdout
    assert "bad.toml" in out.stderr and "structure.tranches[0].balance" in out.stderr
    assert "Traceback" not in out.stderr


def test_validate_good_file_exits_0(tmp_path, good):
    out = cli(["validate", good.name], tmp_path)
    assert out.returncode == 0, out
    assert "ok good.toml" in out.stdout and "11 licences" in out.stdout


@pytest.mark.parametrize("name, text", [
    ("missing.toml", None),
    ("syntax.toml", "[deal\nname = 1\n"),
    ("pool.toml", TEXT[:TEXT.index("[[pool.licences]]")] + '[pool]\nfile = "nope.csv"\n'
     + TEXT[TEXT.index("[risk.default]"):]),
])
def test_validate_other_bad_files_exit_2(tmp_path, name, text):
    if text is not None:
        (tmp_path / name).write_text(text, encoding="utf-8")
    out = cli(["validate", name], tmp_path)
    assert out.returncode == 2, out
    assert name in out.stderr and "expected" in out.stderr and "Traceback" not in out.stderr


def test_run_broken_scenario_exits_2_and_writes_nothing(tmp_path, bad):
    before = files_under(tmp_path)
    out = cli(["run", bad.name, "--paths", "100", "--out", tmp_path / "out"], tmp_path)
    assert out.returncode == 2, out
    assert "structure.tranches[0].balance" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "out").exists()
    assert files_under(tmp_path) == before  # no results/ folder, no partial files


def test_run_broken_scenario_default_out_writes_nothing(tmp_path, bad):
    before = files_under(tmp_path)
    out = cli(["run", bad.name], tmp_path)
    assert out.returncode == 2, out
    assert files_under(tmp_path) == before


def test_run_missing_file_exits_2(tmp_path):
    out = cli(["run", "nope.toml", "--out", tmp_path / "out"], tmp_path)
    assert out.returncode == 2, out
    assert "nope.toml" in out.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, named", [
    (["--paths", "0"], "--paths"),
    (["--paths", "many"], "--paths"),
    (["--seed", "-1"], "--seed"),
    (["--threads", "0"], "--threads"),
])
def test_run_bad_option_exits_2(tmp_path, good, args, named):
    out = cli(["run", good.name, *args, "--out", tmp_path / "out"], tmp_path)
    assert out.returncode == 2, out
    assert named in out.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["validate", "--help"]])
def test_help_exits_0(tmp_path, args):
    out = cli(args, tmp_path)
    assert out.returncode == 0, out
    assert "usage:" in out.stdout


def test_unknown_command_exits_2(tmp_path):
    out = cli(["simulate", "x.toml"], tmp_path)
    assert out.returncode == 2, out


def test_validate_does_not_import_kernels(tmp_path, good, bad):
    """In a fresh interpreter: this test session may have imported the kernels already."""
    code = (
        "import json, sys\n"
        "from simengine.cli import main\n"
        f"codes = [main(['validate', {str(good)!r}]), main(['validate', {str(bad)!r}])]\n"
        "print(json.dumps({'codes': codes, 'modules': sorted(sys.modules)}))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0, 2]
    loaded = set(report["modules"])
    for heavy in ("simengine.kernels", "simengine.engine", "simengine.plan", "simengine._jit", "numba"):
        assert heavy not in loaded, f"validate imported {heavy}"


def test_a_damaged_table_in_a_run_folder_is_one_clear_line_for_plot_and_report(tmp_path):
    """A run folder whose summary.parquet was overwritten by hand: plot and report name the file and
    what was expected, exit 2, no traceback, and write nothing."""
    run = tmp_path / "run"
    r = cli(["run", GUANGZHOU, "--paths", 500, "--out", run, "--no-plot", "--quiet"], tmp_path)
    assert r.returncode == 0, r.stderr
    (run / "summary.parquet").write_text("not parquet")
    before = files_under(tmp_path)
    for args in (["plot", run, "--out", tmp_path / "p.png"], ["report", run, "--out", tmp_path / "r.html"]):
        r = cli(args, tmp_path)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert f"{run / 'summary.parquet'}: cannot be read as the run's summary table" in lines[0]
        assert lines[0].count("expected") == 1
    assert files_under(tmp_path) == before
