"""Never lose a run, refuse the absurd early (issue 18): reruns into a finished run folder, kills
at random points, unwritable and full output folders, bad inputs that used to pass.

Each case runs the real command line in a subprocess, as a user would.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

GZ = "scenarios/guangzhou_patent_2019.toml"
GZ_DEAL = "scenarios/deals/guangzhou_patent_2019.toml"  # the text itself (GZ only extends it)
REPO = Path(__file__).resolve().parents[1]


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "simengine", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=600, **kw)


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder`` (hidden ones included)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(parent: Path, name: str) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gz"
    r = cli("run", GZ, "--paths", 3000, "--seed", 1, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    return out


def test_a_rerun_into_a_finished_run_is_refused_without_overwrite(finished_run):
    before = tree_digest(finished_run)
    r = cli("run", GZ, "--paths", 3000, "--seed", 2, "--out", finished_run, "--quiet")
    assert r.returncode == 2
    assert f"{finished_run}: --out holds a finished run (seed 1, 3000 paths)" in r.stderr and "--overwrite" in r.stderr
    assert tree_digest(finished_run) == before and not leftovers(finished_run.parent, "gz")


def test_overwrite_replaces_a_finished_run_whole(tmp_path, finished_run):
    out = tmp_path / "gz"
    r = cli("run", GZ, "--paths", 3000, "--seed", 1, "--out", out, "--quiet")
    assert r.returncode == 0
    r = cli("run", GZ, "--paths", 2000, "--seed", 7, "--out", out, "--quiet", "--overwrite")
    assert r.returncode == 0, r.stderr
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["seed"] == 7 and manifest["paths"] == 2000
    assert not leftovers(tmp_path, "gz") and not (out / ".spool").exists()


def test_kills_at_random_points_keep_the_old_run_or_the_whole_new_one(tmp_path):
    """Ten reruns with --overwrite, each killed (5 x SIGKILL, 5 x SIGINT) at a random moment from
    start-up to the end of writing: afterwards the folder holds the old run bit for bit, or the
    new run complete; the next run removes whatever a SIGKILL left beside it."""
    out = tmp_path / "gz"
    assert cli("run", GZ, "--paths", 3000, "--seed", 1, "--out", out, "--quiet").returncode == 0
    old = tree_digest(out)
    t0 = time.perf_counter()
    r = cli("run", GZ, "--paths", 20_000, "--chunk-paths", 2000, "--seed", 2, "--out", tmp_path / "timing", "--quiet")
    assert r.returncode == 0
    whole = time.perf_counter() - t0
    rng = random.Random(18)
    outcomes = []
    for trial in range(10):
        sig = signal.SIGKILL if trial % 2 == 0 else signal.SIGINT
        proc = subprocess.Popen([sys.executable, "-m", "simengine", "run", GZ, "--paths", "20000", "--chunk-paths",
                                 "2000", "--seed", "2", "--out", str(out), "--quiet", "--overwrite"], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.2, 1.1) * whole)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=600)
        now = tree_digest(out)
        import json

        manifest = json.loads((out / "manifest.json").read_text())
        if now == old:
            outcomes.append("old")
        else:  # the new run, whole
            assert manifest["status"] == "ok" and manifest["seed"] == 2, (trial, sig, err)
            for table in ("summary", "pool_summary", "channel_attribution", "cashflows", "worst_paths",
                          "loss_exceedance", "tranche_losses", "pool_paths"):
                assert (out / f"{table}.parquet").is_file(), (trial, table)
            outcomes.append("new")
            old = now  # the next trial replaces this one
        if sig == signal.SIGINT and outcomes[-1] == "old" and proc.returncode != 0 and "Traceback" not in err:
            # (a SIGINT while Python itself starts up ends in the interpreter's own traceback; one after
            # the new run was swapped in, during the interpreter's exit, has nothing left to say)
            assert ("interrupted (SIGINT): nothing of this run was kept" in err and "untouched" in err
                    or "interrupted (SIGINT) before anything was written" in err), (proc.returncode, err, now == old)
        if sig == signal.SIGINT:  # its own staging folder is gone (a SIGKILLed trial's waits for a later run)
            mine = [name for name in leftovers(tmp_path, "gz") if f".staging-{proc.pid}-" in name]
            assert not mine, (trial, mine)
    # a later run cleans up what killed ones left, and the tree holds nothing else
    r = cli("run", GZ, "--paths", 2000, "--seed", 3, "--out", out, "--quiet", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert not leftovers(tmp_path, "gz") and not any(p.name.startswith("simengine-spool") for p in tmp_path.iterdir())
    assert "old" in outcomes or "new" in outcomes


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_say_what_they_left(tmp_path, sig):
    out = tmp_path / "gz"
    # W1, not Guangzhou: 400,000 Guangzhou paths now finish in under the 4 s the signal waits
    proc = subprocess.Popen([sys.executable, "-m", "simengine", "run", "scenarios/w1_workload.toml", "--paths",
                             "400000", "--chunk-paths", "20000", "--out", str(out), "--quiet"], cwd=REPO,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(4.0)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 128 + sig
    assert f"interrupted ({signal.Signals(sig).name}): nothing of this run was kept; {out} was not created" in err
    assert not out.exists() and not leftovers(tmp_path, "gz")


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.fixture
def mounts(tmp_path):
    made = []

    def mount(name: str, options: str) -> Path:
        path = tmp_path / name
        if not _mount_tmpfs(path, options):
            if os.environ.get("CI"):
                pytest.fail("CI runs as root and must be able to mount a tmpfs for this test")
            pytest.skip("cannot mount a tmpfs here (not root)")
        made.append(path)
        return path

    yield mount
    for path in made:
        subprocess.run(["umount", str(path)], capture_output=True)


def test_a_read_only_output_folder_fails_before_simulating_with_one_line(mounts):
    ro = mounts("ro", "size=1m,ro")
    t0 = time.perf_counter()
    r = cli("run", GZ, "--paths", 2_000_000, "--out", ro / "run", "--quiet")
    assert r.returncode == 2 and time.perf_counter() - t0 < 60
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"INVALID {ro / 'run'}: --out cannot be written (Read-only file")
    r = cli("run", GZ, "--paths", 2000, "--out", ro, "--quiet")  # the mount root itself
    assert r.returncode == 2
    assert r.stderr.strip() == f"INVALID {ro}: --out is a mount point; expected a folder inside it"


def test_a_full_output_folder_fails_before_simulating_with_one_line(mounts):
    small = mounts("small", "size=1m")
    r = cli("run", GZ, "--paths", 20_000, "--out", small / "run", "--quiet")
    assert r.returncode == 2
    assert r.stderr.strip() == (f"INVALID {small}: about 15.5 MB needed for 20,000 paths, 1.0 MB free; expected "
                                "fewer paths or another --out")
    assert list(small.iterdir()) == []


def test_an_absurd_path_count_needs_an_explicit_flag(tmp_path):
    r = cli("run", "scenarios/w1_workload.toml", "--paths", 1_000_000_000, "--out", tmp_path / "w1", "--quiet")
    assert r.returncode == 2 and "hours of simulation" in r.stderr and "--allow-long" in r.stderr
    assert not (tmp_path / "w1").exists() and list(tmp_path.iterdir()) == []
    r = cli("validate", "--help")
    assert r.returncode == 0


def test_too_many_threads_is_an_error_not_a_silent_clamp(tmp_path):
    r = cli("run", GZ, "--paths", 1000, "--threads", 999, "--out", tmp_path / "gz", "--quiet")
    assert r.returncode == 2 and "INVALID --threads 999: expected 1.." in r.stderr
    assert list(tmp_path.iterdir()) == []


def _variant(tmp_path, name: str, old: str, new: str) -> Path:
    text = (REPO / GZ_DEAL).read_text()
    assert old in text, old
    path = tmp_path / f"{name}.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("name, old, new, key, expected", [
    ("expiry_before_start", 'id = "GZ01"', 'id = "GZ01"\nstart_period = 5\nexpiry_period = 3',
     "pool.licences[0].expiry_period = 3", "a period at or after start_period (5"),
    ("reserve_covers_nothing", 'target_amount = 3_000_000.0     # [E] about one quarter of senior interest and fees\n'
     'covers = ["senior"]', "target_amount = 3_000_000.0\ncovers = []", "structure.reserve.covers = []",
     "at least one tranche name"),
    ("guarantee_covers_nothing", 'loading = 0.4                   # [E]\ncovers = ["senior"]',
     "loading = 0.4\ncovers = []", "structure.guarantee.covers = []", "at least one tranche name"),
    ("paths_1e12", "paths = 100_000", "paths = 1_000_000_000_000", "simulation.paths = 1000000000000",
     "10000000000"),
])
def test_inputs_that_used_to_pass_are_clear_errors(tmp_path, name, old, new, key, expected):
    path = _variant(tmp_path, name, old, new)
    for command in ("validate", "run"):
        r = cli(command, path, "--out", tmp_path / "out") if command == "run" else cli(command, path)
        assert r.returncode == 2, (command, r.stderr)
        assert key in r.stderr and expected in r.stderr and str(path) in r.stderr, r.stderr
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path, "out")


def test_every_royalty_zero_is_an_error(tmp_path):
    text = (REPO / GZ_DEAL).read_text()
    import re

    path = tmp_path / "zero.toml"
    path.write_text(re.sub(r"royalty = [0-9_.]+", "royalty = 0.0", text))
    r = cli("validate", path)
    assert r.returncode == 2
    assert "pool.licences = 'every royalty 0': expected at least one licence with a royalty" in r.stderr


def test_notes_far_above_the_royalties_are_a_recorded_warning(tmp_path):
    """Legitimate for a deal that relies on its enhancement: a warning, printed and in the manifest."""
    import json
    import tomllib

    raw = tomllib.loads((REPO / GZ_DEAL).read_text())
    scheduled = sum(l["royalty"] * 12 for l in raw["pool"]["licences"])  # every licence pays all 12 quarters
    balance = raw["structure"]["tranches"][1]["balance"]  # the subordinated tranche stays as it is
    path = _variant(tmp_path, "big_notes", "balance = 286_000_000.0", f"balance = {10 * scheduled - balance}")
    r = cli("validate", path)
    assert r.returncode == 0 and "WARNING" in r.stderr and "exceed the" in r.stderr
    r = cli("run", path, "--paths", 500, "--out", tmp_path / "run", "--quiet")
    assert r.returncode == 0 and "only the credit enhancement can repay them" in r.stderr
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert any("only the credit enhancement can repay them" in w for w in manifest["scenario_warnings"])


def test_a_measure_shifted_too_far_is_flagged_and_its_ratings_withheld(tmp_path):
    """global_shift = -6 fixed by hand on Guangzhou (the pilot chooses about -2.7): the likelihood
    ratios no longer average 1 and the tranches' losses rest on a handful of effective paths. The
    run says so, marks every tranche statistic unreliable and withholds the ratings."""
    import pandas as pd

    path = _variant(tmp_path, "shifted", "[simulation]",
                    '[simulation.importance]\nglobal_shift = -6.0\n\n[simulation]\nvariance_reduction = "importance"')
    r = cli("run", path, "--paths", 20_000, "--out", tmp_path / "run", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "WARNING sampling: the likelihood ratios average" in r.stderr
    assert "WARNING sampling: tranche subordinated (enhanced): PD, EL and loss quantiles unreliable" in r.stderr
    s = pd.read_parquet(tmp_path / "run" / "summary.parquet")
    assert not s["sampling_ok"].any() and not s["standalone_sampling_ok"].any()
    ratings = [c for c in s.columns if "rating_" in c]
    assert ratings and (s[ratings] == "unreliable").all().all()


def test_a_measure_the_pilot_chose_keeps_its_targets_rating(tmp_path):
    import pandas as pd

    r = cli("run", GZ, "--paths", 20_000, "--variance-reduction", "importance", "--out", tmp_path / "run", "--quiet")
    assert r.returncode == 0, r.stderr
    s = pd.read_parquet(tmp_path / "run" / "summary.parquet").set_index("tranche")
    assert s.loc["senior", "sampling_ok"] and s.loc["senior", "rating_sp"] != "unreliable"
    assert s.loc["senior", "effective_hits"] >= 10


def test_temporary_spools_of_killed_processes_are_removed_by_the_next_run(tmp_path):
    """The Python API spools to the temporary directory; one a killed process left (its pid no
    longer runs) is removed when the next temporary spool is made, a live process's is kept."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    code = ("import simengine as se, os, signal; r = se.simulate('scenarios/guangzhou_patent_2019.toml', "
            "paths=2000, progress=False); os.kill(os.getpid(), signal.SIGKILL)")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, timeout=600)
    left = [p for p in tmp_path.iterdir() if p.name.startswith("simengine-spool-")]
    assert len(left) == 1  # SIGKILL: nothing could clean up
    mine = tmp_path / f"simengine-spool-{os.getpid()}-live"
    mine.mkdir()
    code = "import simengine as se; r = se.simulate('scenarios/guangzhou_patent_2019.toml', paths=2000, progress=False)"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, timeout=600, check=True)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("simengine-spool-")] == [mine.name]
