"""The deal library (issue 16): every file of ``scenarios/deals/`` validates, runs 2,000 paths and
tags its numbers; ``scenarios/deal_history.csv`` has a row for each of their tranches and no other;
``scenarios/deal_table.py`` builds its table from a real batch.

The deal files are collected when this module is imported: an empty or missing folder makes the
parametrised tests fail (one ``no-deal-files`` case), never pass with nothing checked. Every deal
runs once, in one batch shared by the module (2,000 paths, chunks of 500, one seed).
"""

from __future__ import annotations

import csv
import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest

import simengine as se
from simengine.batch import Batch, file_jobs
from simengine.results import BatchFolder
from simengine.scenario.notes import scenario_notes, untagged_numbers

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"
DEALS = SCENARIOS / "deals"
HISTORY = SCENARIOS / "deal_history.csv"
DEAL_FILES = sorted(DEALS.glob("*.toml"))
PATHS, CHUNK, SEED = 2_000, 500, 20260101
NO_DEALS = f"{DEALS} holds no deal file (*.toml): the library is empty"


def _load_table_module():
    spec = importlib.util.spec_from_file_location("deal_table", SCENARIOS / "deal_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["deal_table"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


deal_table = _load_table_module()


def deal_params():
    """One case per deal file, or one case that fails where there is none."""
    return [pytest.param(f, id=f.stem) for f in DEAL_FILES] or [pytest.param(None, id="no-deal-files")]


def deal_file(file: Path | None) -> Path:
    if file is None:
        pytest.fail(NO_DEALS)
    return file


def tranche_names(file: Path) -> list[str]:
    return [t.name for t in se.load_scenario(file).model.structure.tranches]


@pytest.fixture(scope="module")
def history() -> dict:
    return deal_table.read_history(HISTORY)


@pytest.fixture(scope="module")
def library_batch(tmp_path_factory) -> BatchFolder:
    """Every deal of the library, 2,000 paths each, one seed: one batch for the whole module
    (None without deal files: the tests that use it fail on their own)."""
    if not DEAL_FILES:
        return None
    out = tmp_path_factory.mktemp("library") / "batch"
    Batch(file_jobs([str(DEALS)]), out, paths=PATHS, seed=SEED, chunk_paths=CHUNK).run()
    return BatchFolder(out)


# ------------------------------------------------------------------------------- each deal file
@pytest.mark.parametrize("file", deal_params())
def test_deal_file_validates(file):
    scenario = se.load_scenario(deal_file(file))
    assert scenario.model.structure.tranches


@pytest.mark.parametrize("file", deal_params())
def test_deal_file_runs_2000_paths(file, library_batch):
    file = deal_file(file)
    row = next(r for r in library_batch.rows if Path(r["file"]).resolve() == file.resolve())
    assert row["status"] == "ok", row.get("error")
    run = library_batch.run(row["scenario_id"])
    assert (run.paths, run.seed, run.chunk_paths) == (PATHS, SEED, CHUNK)
    summary = run.summary
    assert list(summary["tranche"]) == tranche_names(file)
    assert summary["pd"].between(0.0, 1.0).all() and summary["el"].between(0.0, 1.0).all()


@pytest.mark.parametrize("file", deal_params())
def test_deal_file_tags_every_number_and_names_its_sources(file):
    file = deal_file(file)
    untagged = [f"{Path(v.file).name}: {v.key} = {v.value}" for v in untagged_numbers(file)]
    assert not untagged, "numbers with no [V]/[D]/[R]/[E]/[S] tag:\n" + "\n".join(untagged)
    header = next((n.header for n in scenario_notes(file) if n.header), "")
    assert "§" in header and re.search(r"\[[VDRE]", header), "the header names no DEALS.md section or tag"


@pytest.mark.parametrize("file", deal_params())
def test_deal_history_has_a_row_for_each_tranche_and_no_other(file, history):
    file = deal_file(file)
    in_file = set(tranche_names(file))
    in_csv = {tranche for stem, tranche in history if stem == file.stem}
    assert in_csv == in_file, f"tranches without a row: {in_file - in_csv}; rows without a tranche: {in_csv - in_file}"
    for tranche in in_file:
        row = history[(file.stem, tranche)]
        assert row["agency_rating"] and row["outcome"] and row["source"], row


def test_every_deal_history_row_names_a_deal_file(history):
    stems = {f.stem for f in DEAL_FILES}
    assert DEAL_FILES, NO_DEALS
    assert not {stem for stem, _ in history} - stems


def test_the_table_of_the_library_batch_has_one_row_per_tranche(library_batch, history):
    assert DEAL_FILES, NO_DEALS
    rows = deal_table.deal_rows(library_batch, history)
    expected = [(f.stem, t) for f in sorted(DEAL_FILES, key=lambda f: f.stem) for t in tranche_names(f)]
    assert sorted((r.deal, r.tranche) for r in rows) == sorted(expected)
    assert not [r for r in rows if "no row in deal_history.csv" in r.agency]
    deal_table.check_history(rows, history)  # no row names a deal or tranche the batch lacks


# ---------------------------------------------------------------------------- the tag reader
def test_tags_cover_numbers_by_trailing_comment_block_or_later_line(tmp_path):
    """Which numbers a tag covers, on a hand-written file: own comment, a multi-line value's last
    line, a block above a table or first inside it, a block above array elements (carried on)."""
    f = tmp_path / "deal.toml"
    f.write_text(
        "# header [V] http://example.com\n\n"
        "[deal]\nname = \"x\"\nterm_years = 3.0  # [V]\nperiods_per_year = 4\n"
        "[risk.correlation]\n# [E] one region\nglobal = 0.1\nregion = 0.05\n"
        "# [E] every licence\n[[pool.licences]]\nid = \"A\"\nroyalty = 1.0\n"
        "[[pool.licences]]\nid = \"B\"\nroyalty = 2.0\n"
        "[[structure.tranches]]\nname = \"s\"\nbalance = 1.0  # [V]\n"
        "amortisation = [0.5,\n                0.5]  # [E] straight line\n"
        "[[structure.tranches]]\nname = \"j\"\nbalance = 1.0\ninterest_deferrable = true\n"
        "[simulation]\npaths = 10\n", encoding="utf-8")
    missing = {v.key for v in untagged_numbers(f)}
    assert missing == {"deal.periods_per_year", "structure.tranches[j].balance"}
    values = {v.key: v for v in scenario_notes(f)[0].values}
    assert values["structure.tranches[s].amortisation"].tags == ("E",)
    assert values["pool.licences[B].royalty"].block_tags == ("E",)
    assert values["risk.correlation.region"].block_tags == ("E",)
    assert not values["structure.tranches[j].interest_deferrable"].numeric


# ------------------------------------------------------------------------------ the table script
@pytest.fixture(scope="module")
def small_batch(tmp_path_factory) -> BatchFolder:
    """The two deals shipped before the library, 2,000 paths each, in a temporary ``deals/``.
    Guangzhou runs under an importance-sampling shift fixed by hand far past what its losses
    need: the run's own checks then withhold its ratings, as they would for any such run."""
    root = tmp_path_factory.mktemp("small")
    deals = root / "scenarios" / "deals"
    deals.mkdir(parents=True)
    shutil.copy(SCENARIOS / "deals" / "biopharma_royalty_trust_2000.toml", deals)
    gz = (SCENARIOS / "deals" / "guangzhou_patent_2019.toml").read_text(encoding="utf-8")
    gz = gz.replace("[simulation]\n", "[simulation]\nvariance_reduction = \"importance\"\n")
    (deals / "guangzhou_patent_2019.toml").write_text(
        gz + "\n[simulation.importance]\nglobal_shift = 5.0\nshift_providers = false\n", encoding="utf-8")
    Batch(file_jobs([str(deals)]), root / "batch", paths=PATHS, seed=SEED, chunk_paths=CHUNK).run()
    return BatchFolder(root / "batch")


def small_history(tmp_path: Path, blank: tuple[str, str] | None = None) -> Path:
    """deal_history.csv as shipped (its Guangzhou and BioPharma rows), ``blank``'s explanation emptied."""
    with open(HISTORY, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh)
                if r["file"] in ("guangzhou_patent_2019", "biopharma_royalty_trust_2000")]
    for r in rows:
        if (r["file"], r["tranche"]) == blank:
            r["explanation"] = ""
    out = tmp_path / "deal_history.csv"
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=deal_table.HISTORY_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return out


def by_key(rows) -> dict:
    return {(r.deal, r.tranche): r for r in rows}


def test_table_rows_flag_a_disagreement_and_show_its_explanation(small_batch, tmp_path):
    history = deal_table.read_history(small_history(tmp_path))
    rows = by_key(deal_table.deal_rows(small_batch, history))
    assert set(rows) == {("biopharma_royalty_trust_2000", t) for t in ("senior", "mezzanine", "equity")} | {
        ("guangzhou_patent_2019", t) for t in ("senior", "subordinated")}
    run = small_batch.run("biopharma_royalty_trust_2000")
    senior = run.summary.set_index("tranche").loc["senior"]
    # the agency's A against the engine's grade on S&P's letter scale (rank 2 = A)
    distance = deal_table.ratings.grade_rank("sp", senior["rating_enhanced_capped"]) - 2
    assert distance > deal_table.MAX_GRADES, "the test needs the engine's senior well below A"
    r = rows[("biopharma_royalty_trust_2000", "senior")]
    assert r.flagged and "**FLAG**" in r.comparison and f"{distance:.0f} letter grades below" in r.comparison
    assert r.explanation == history[("biopharma_royalty_trust_2000", "senior")]["explanation"]
    # the wrapped mezzanine: capped at the wrap's AA, the agency's AA- at issue: no flag
    mezz = rows[("biopharma_royalty_trust_2000", "mezzanine")]
    assert not mezz.flagged and mezz.comparison.startswith("agrees")
    assert rows[("biopharma_royalty_trust_2000", "equity")].comparison == "not compared: no agency rating"
    assert mezz.standalone.startswith("PD ") and "S&P " in mezz.standalone  # the deal has a wrap
    no_loss = run.summary.set_index("tranche").loc["mezzanine", "no_loss_observed"]
    assert mezz.pd.startswith("0 (no default; ≤ ") if no_loss else mezz.pd.count("±") == 1
    text = deal_table.render(small_batch, list(rows.values()))
    assert "**FLAG**" in text and history[("biopharma_royalty_trust_2000", "senior")]["explanation"] in text


def test_a_flag_without_explanation_reads_unexplained(small_batch, tmp_path):
    history = deal_table.read_history(small_history(tmp_path, blank=("biopharma_royalty_trust_2000", "senior")))
    rows = deal_table.deal_rows(small_batch, history)
    r = by_key(rows)[("biopharma_royalty_trust_2000", "senior")]
    assert r.flagged and r.explanation == deal_table.UNEXPLAINED
    text = deal_table.render(small_batch, rows)
    line = next(x for x in text.splitlines() if x.startswith("| `biopharma_royalty_trust_2000` | senior |"))
    assert line.rstrip(" |").endswith("**unexplained**")
    assert "of them unexplained: 1" in text
    # a tranche that is not compared (the unrated equity) is never marked unexplained
    equity = by_key(rows)[("biopharma_royalty_trust_2000", "equity")]
    assert not equity.flagged and equity.explanation != deal_table.UNEXPLAINED


def test_withheld_ratings_are_shown_as_withheld_with_their_reason(small_batch, tmp_path):
    run = small_batch.run("guangzhou_patent_2019")
    summary = run.summary.set_index("tranche")
    assert not summary["sampling_ok"].any(), "the fixed shift should fail the run's sampling checks"
    history = deal_table.read_history(small_history(tmp_path))
    rows = by_key(deal_table.deal_rows(small_batch, history))
    for tranche in ("senior", "subordinated"):
        r = rows[("guangzhou_patent_2019", tranche)]
        assert r.withheld and r.rating.startswith("S&P **withheld**: ")
        assert summary.loc[tranche, "sampling_note"] in r.rating
        assert r.comparison == "not compared: engine rating withheld" and not r.flagged
        grades = {"AAA", "AA", "A", "BBB", "BB", "B", "CCC/C"}
        assert not grades & set(re.split(r"[\s;:(),]+", r.rating.split("withheld")[0]))
    text = deal_table.render(small_batch, list(rows.values()))
    assert "ratings withheld: 2" in text


def test_the_table_states_the_batch_and_replaces_only_the_marked_part(small_batch, tmp_path):
    readme = tmp_path / "README.md"
    prose = "# Library\n\nprose before\n\n"
    readme.write_text(f"{prose}{deal_table.BEGIN}\nold table\n{deal_table.END}\n\nprose after\n", encoding="utf-8")
    code = deal_table.main([str(small_batch.path), "--history", str(small_history(tmp_path)),
                            "--readme", str(readme)])
    assert code == 0
    text = readme.read_text(encoding="utf-8")
    assert text.startswith(prose + deal_table.BEGIN) and text.endswith(deal_table.END + "\n\nprose after\n")
    assert "old table" not in text
    finished = small_batch.manifest["sessions"][-1]["finished_at"]
    assert (f"finished {finished}" in text and f"{PATHS:,} paths each" in text and f"seed {SEED}" in text
            and "sampling importance, plain Monte Carlo" in text)
    assert len([x for x in text.splitlines() if x.startswith("| `")]) == 5
    assert deal_table.main([str(small_batch.path), "--history", str(small_history(tmp_path)),
                            "--readme", str(readme)]) == 0
    assert readme.read_text(encoding="utf-8") == text  # regenerating is idempotent


def test_bad_inputs_are_refused(small_batch, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n", encoding="utf-8")
    assert deal_table.main([str(small_batch.path), "--history", str(small_history(tmp_path)),
                            "--readme", str(readme)]) == 2
    assert readme.read_text(encoding="utf-8") == "no markers\n"
    bad = tmp_path / "bad.csv"
    bad.write_text("file,tranche,rating\n", encoding="utf-8")
    assert deal_table.main([str(small_batch.path), "--history", str(bad), "--stdout"]) == 2
    assert deal_table.main([str(tmp_path), "--stdout"]) == 2
    assert "INVALID" in capsys.readouterr().err


@pytest.mark.parametrize(("old", "new", "message"), [
    ("biopharma_royalty_trust_2000,senior,", "biopharma_royalty_trust_2000,seniro,",
     "biopharma_royalty_trust_2000 has no tranche 'seniro'; expected one of senior, mezzanine, equity"),
    ("biopharma_royalty_trust_2000,senior,", "biopharma_royalty_2000,senior,",
     "file 'biopharma_royalty_2000' is not a deal of the batch; expected one of biopharma_royalty_trust_2000, "
     "guangzhou_patent_2019"),
    ("biopharma_royalty_trust_2000,senior,", "biopharma_royalty_trust_2000,senior,\udcff",
     "not UTF-8 text")])
def test_a_history_row_the_batch_cannot_hold_is_refused_and_the_readme_kept(small_batch, tmp_path, capsys,
                                                                             old, new, message):
    """A misspelt deal or tranche in deal_history.csv, or a file that is not UTF-8: one line naming
    the CSV (and its line), exit 2, the README left as it was."""
    history = small_history(tmp_path)
    text = history.read_text(encoding="utf-8")
    assert text.count(old) == 1
    history.write_bytes(text.replace(old, new).encode("utf-8", "surrogateescape"))
    readme = tmp_path / "README.md"
    before = f"# x\n{deal_table.BEGIN}\nold table\n{deal_table.END}\n"
    readme.write_text(before, encoding="utf-8")
    assert deal_table.main([str(small_batch.path), "--history", str(history), "--readme", str(readme)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"INVALID {history}") and message in err and err.count("\n") == 1, err
    assert readme.read_text(encoding="utf-8") == before
    assert [f.name for f in tmp_path.iterdir() if f.name.endswith(".partial")] == []


@pytest.mark.parametrize(("text", "grade"), [
    ("A3 (Moody's) -> Baa3 (2004)", "A"), ("AA-/AA (S&P; wrapped)", "AA"), ("BBB (S&P/KBRA)", "BBB"),
    ("Aaa (Moody's), AAA (S&P) through an MBIA wrap", "AAA"), ("not public", None), ("stylised", None),
    ("AAA (domestic scale)", None), ("not rated (held by the originator [E])", None)])
def test_agency_rating_at_issue(text, grade):
    assert deal_table.agency_grade(text)[0] == grade


def test_a_flag_says_when_the_agency_grade_is_inside_the_engine_range():
    hist = {"agency_rating": "BBB (S&P)", "outcome": "repaid", "explanation": "", "source": "DEALS.md §2"}
    inside, outside = deal_table.TableRow("d", "t"), deal_table.TableRow("d", "t")
    deal_table._compare(inside, hist, "B", 1, "BBB .. B")  # B is 2 grades below BBB, its range reaches BBB
    deal_table._compare(outside, hist, "B", 1, "B .. B")
    assert inside.flagged and inside.comparison.endswith("(inside the engine's 95% range)")
    assert outside.flagged and "inside" not in outside.comparison
    assert inside.explanation == outside.explanation == deal_table.UNEXPLAINED
