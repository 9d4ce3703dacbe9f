"""The committee pack (issue 15): `simengine report` of a run folder and of a batch, `plot --kind`.

The page is read back: it parses, every section and figure is there, and every number it shows
equals the Parquet (or manifest) value it names, to the digits shown. Then a real headless
Chromium (Debian's package) loads it: no console errors, a screenshot that is not blank, every
image with a size, and `--pdf` gives a PDF whose pages render with poppler's pdftoppm. Where the
browser is missing these tests skip, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from report_pages import check_numbers, parse_page, significant_digits

import simengine as se
from simengine import cli
from simengine.batch import file_jobs, run_batch
from simengine.results import RunFolder
from simengine.results.browser import Browser, find_browser
from simengine.results.format import decimals_for, number_text, parse_shown, shown
from simengine.results.plots import RUN_FIGURES
from simengine.scenario.notes import scenario_notes

GZ = "scenarios/guangzhou_patent_2019.toml"
STRESS = "scenarios/stress/guangzhou"
RUN_SECTIONS = ("deal", "sources", "provenance", "pool", "tranches", "figures", "attribution", "worst-paths",
                "analysis", "analysis-breakevens", "analysis-sensitivity", "analysis-deterministic_stresses",
                "analysis-contributions", "analysis-provider_cost", "appendix-summary", "appendix-other",
                "appendix-files")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    res = se.simulate(se.load_scenario(GZ), paths=3_000, seed=11, chunk_paths=1_500, progress=False)
    return res.to_parquet(tmp_path_factory.mktemp("gz") / "run")


@pytest.fixture(scope="module")
def report(run_dir) -> tuple[Path, str]:
    out = run_dir.parent / "pack" / "report.html"
    assert cli.main(["report", str(run_dir), "--out", str(out)]) == 0
    return out, out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("batch") / "stress"
    files = [f"{STRESS}/base.toml", f"{STRESS}/licensee_pd_x2.toml"]
    assert run_batch(file_jobs(files), out, paths=2_000) == 0
    return out


@pytest.fixture(scope="module")
def batch_report(batch_dir) -> tuple[Path, str]:
    assert cli.main(["report", str(batch_dir)]) == 0
    out = batch_dir / "report.html"
    return out, out.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------ the run page
def test_run_page_parses_with_every_section_and_figure(report):
    _, html = report
    root = parse_page(html)
    sections = {e.attrs["data-section"] for e in root.find_all("section", data_section=True)}
    assert set(RUN_SECTIONS) <= sections, set(RUN_SECTIONS) - sections
    figures = {e.attrs["data-figure"]: e for e in root.find_all("figure", data_figure=True)}
    assert set(figures) == set(RUN_FIGURES), set(RUN_FIGURES) ^ set(figures)
    for name, fig in figures.items():
        img = next(fig.find_all("img"))
        prefix = "data:image/svg+xml;base64,"
        assert img.attrs["src"].startswith(prefix), name
        svg = base64.b64decode(img.attrs["src"][len(prefix):])
        assert b"<svg" in svg[:2000] and len(svg) > 5_000, name
    # self-contained: no script, no external stylesheet, nothing loaded from anywhere but data: URIs
    assert not list(root.find_all("script"))
    for e in root.iter():
        for attr in ("src", "href"):
            if attr in e.attrs:
                assert e.attrs[attr].startswith(("data:", "#")), (e.tag, e.attrs[attr][:60])
    assert "Content-Security-Policy" in html
    # the analysis issue's tables are not in a run folder yet: each says so
    notes = [n.all_text() for n in root.find_all("p", data_note="missing")]
    for name in ("breakevens", "sensitivity", "deterministic_stresses", "contributions", "provider_cost"):
        assert any(f"{name}.parquet" in n for n in notes), name


def test_every_number_shown_equals_the_value_in_its_file(report, run_dir):
    _, html = report
    root = parse_page(html)
    checked = check_numbers(root, run_dir)
    assert checked > 400
    # what the page shows of each table: the tranche table's figures come from summary.parquet
    sources = {s.attrs["data-source"] for s in root.find_all("span", data_source=True)}
    assert {"summary.parquet", "pool_summary.parquet", "channel_attribution.parquet", "worst_paths.parquet",
            "manifest.json"} <= sources
    # every table cell holding a digit shows an annotated number (a source, or how it was derived),
    # except tables that quote a file's text (the scenario's comments)
    for td in root.find_all("td"):
        table = td.ancestor("table")
        if table.attrs.get("data-origin"):
            continue
        if re.search(r"\d", td.all_text()):
            spans = [s for s in td.find_all("span") if "data-source" in s.attrs or "data-derived" in s.attrs]
            assert spans, f"unannotated number in a table cell: {td.all_text()!r}"


def test_derived_numbers_recompute_from_the_manifest(report, run_dir):
    _, html = report
    root = parse_page(html)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    tranches = manifest["resolved_scenario"]["structure"]["tranches"]
    notes_total = sum(t["balance"] for t in tranches)
    derived = [(s.attrs["data-derived"], json.loads(s.attrs["data-value"]), s.all_text())
               for s in root.find_all("span", data_derived=True)]
    assert ("sum", notes_total, "301 m") in derived
    licences = manifest["resolved_scenario"]["pool"]["licences"]
    periods = int(manifest["resolved_scenario"]["deal"]["term_years"] * manifest["resolved_scenario"]["deal"]
                  ["periods_per_year"])
    scheduled = np.array([lic["royalty"] * periods for lic in licences])
    share = scheduled / scheduled.sum()
    hhi = [v for kind, v, _ in derived if kind == "hhi"]
    assert hhi[0] == pytest.approx((share ** 2).sum(), rel=1e-12)
    cover = [v for kind, v, _ in derived if kind == "ratio"]
    assert cover[0] == pytest.approx(scheduled.sum() / notes_total, rel=1e-12)


def test_numbers_carry_the_digits_their_standard_errors_support(report):
    _, html = report
    root = parse_page(html)
    pairs = 0
    for td in root.find_all("td"):
        spans = [s for s in td.find_all("span") if s.attrs.get("data-column", "").endswith("_se")]
        values = [s for s in td.find_all("span") if "data-column" in s.attrs and s not in spans]
        if len(spans) == 1 and values:
            value, se = values[0].all_text(), spans[0].all_text()
            places = [len(t.rstrip("%ym× ").split(".")[1]) if "." in t else 0 for t in (value, se)]
            assert places[0] == places[1], (value, se)  # the value stops at the error's last digit
            assert 1 <= significant_digits(se) <= 2, se
            pairs += 1
    assert pairs > 40
    for span in root.find_all("span", data_unit=True):
        if span.attrs["data-unit"] not in ("text", "id"):
            assert significant_digits(span.all_text()) <= 9, span.all_text()  # no 0.000048700012


def test_format_rounds_to_the_standard_error():
    assert shown(0.15501, "percent", 0.005415).text == "15.5%"  # leading digits 541: one digit of error
    assert shown(0.005415, "percent", 0.005415).text == "0.5%"
    assert shown(0.15501, "percent", 0.00315).text == "15.50%"  # 315: two digits
    assert shown(0.00015012, "percent", 0.0000041).text == "0.0150%"
    assert shown(0.00015012, "percent", 0.0000031).text == "0.01501%"
    assert shown(29_793_350.0, "amount", 16_818.7).text == "29.793 m"
    assert shown(286_000_000.0, "amount", exact=True).text == "286 m"
    assert shown(float("nan"), "percent", 0.1).text == "n/a"
    assert shown(1e-19, "percent").text == "0%"
    assert shown(-0.000001, "percent", 0.001).text == "0.00%"  # no "-0.00%"
    assert shown(20190911, "id").text == "20190911"
    assert number_text(1234567, "count") == "1,234,567"
    assert decimals_for(0, "percent") is None and decimals_for(float("nan"), "percent") is None
    assert parse_shown("15.50%", "percent") == pytest.approx((0.155, 0.00005))


def test_scenario_comments_give_sources_and_estimate_tags():
    notes = scenario_notes(f"{STRESS}/licensee_pd_x2.toml")
    assert [Path(n.file).name for n in notes] == ["licensee_pd_x2.toml", "guangzhou_patent_2019.toml"]
    stress, base = notes
    assert "[S]" in stress.header and "Sources" in base.header
    tags = {k.key: k.tags for k in base.keys}
    assert tags["deal.periods_per_year"] == ("E",)
    assert tags["deal.closing_date"] == ("V",)
    assert tags["pool.licences[GZ11].royalty"] == ("V",)
    assert tags["structure.tranches[senior].coupon"] == ("V",)
    assert {k.key: k.tags for k in stress.keys}["risk.default.pd_multiplier"] == ("S",)


# ------------------------------------------------------------------------------ what is missing
def _copy(run_dir: Path, dest: Path) -> Path:
    shutil.copytree(run_dir, dest)
    return dest


def test_a_run_folder_without_its_analysis_tables_still_renders_and_says_what_is_missing(run_dir, tmp_path):
    folder = _copy(run_dir, tmp_path / "thin")
    gone = ("channel_attribution", "cashflows", "worst_paths", "loss_exceedance", "tranche_losses", "pool_paths")
    for name in gone:
        (folder / f"{name}.parquet").unlink()
    # another engineer's new column and new table, and a column an older run did not have
    summary = pq.read_table(folder / "summary.parquet")
    summary = summary.drop(["rating_sp_range"]).append_column("el_zero_loss_upper", pa.array([0.001, 0.002]))
    pq.write_table(summary, folder / "summary.parquet")
    pq.write_table(pa.table({"grade": ["AAA", "AA"], "sdr": [0.4, 0.3], "sdr_se": [0.01, 0.01]}),
                   folder / "rating_levels.parquet")
    out = tmp_path / "thin.html"
    assert cli.main(["report", str(folder), "--out", str(out)]) == 0
    root = parse_page(out.read_text(encoding="utf-8"))
    notes = " ".join(n.all_text() for n in root.find_all("p", data_note="missing"))
    for name in gone:
        assert f"{name}.parquet" in notes, name
    assert "rating_sp_range" in notes
    text = root.all_text()
    assert "rating_levels.parquet" in text and "el_zero_loss_upper" in text
    check_numbers(root, folder)
    figures = {e.attrs["data-figure"] for e in root.find_all("figure", data_figure=True)}
    assert {"ratings", "stratification"} <= figures and "loss-curves" not in figures


def test_missing_columns_and_an_older_manifest_still_render(run_dir, tmp_path):
    folder = _copy(run_dir, tmp_path / "old")
    for name, drop in (("pool_paths", ["cumulative_default_fraction"]), ("worst_paths", ["worst_for"]),
                       ("tranche_losses", ["standalone_loss_fraction"])):
        pq.write_table(pq.read_table(folder / f"{name}.parquet").drop(drop), folder / f"{name}.parquet")
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["resolved_scenario"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "old.html"
    assert cli.main(["report", str(folder), "--out", str(out)]) == 0
    root = parse_page(out.read_text(encoding="utf-8"))
    notes = " ".join(n.all_text() for n in root.find_all("p", data_note="missing"))
    for what in ("pool_paths.cumulative_default_fraction", "'worst_for'", "tranche_losses.standalone_loss_fraction",
                 "resolved_scenario"):
        assert what in notes, what
    check_numbers(root, folder)
    assert cli.main(["plot", str(folder), "--kind", "loss-timing", "--out", str(tmp_path / "x.png")]) == 2
    assert cli.main(["plot", str(folder), "--kind", "stratification", "--out", str(tmp_path / "y.png")]) == 2


# ------------------------------------------------------------------------------------ batch page
def test_batch_page_compares_every_scenario_and_tranche_with_paired_errors(batch_report, batch_dir):
    _, html = batch_report
    root = parse_page(html)
    assert {"batch", "comparison"} <= {e.attrs["data-section"] for e in root.find_all("section", data_section=True)}
    assert {e.attrs["data-figure"] for e in root.find_all("figure", data_figure=True)} == {"batch-comparison"}
    assert check_numbers(root, batch_dir) > 20
    base, x2 = RunFolder(batch_dir / "runs/base"), RunFolder(batch_dir / "runs/licensee_pd_x2")
    deltas = [s for s in root.find_all("span", data_derived=True) if s.attrs["data-derived"].startswith("delta {")]
    assert len(deltas) == 2 * 3  # one scenario besides the base, two tranches, three statistics
    for span in deltas:
        ref = json.loads(span.attrs["data-derived"][len("delta "):])
        a = RunFolder(batch_dir / Path(ref["of"]).parent).summary.set_index("tranche").loc[ref["key"]["tranche"]]
        b = RunFolder(batch_dir / Path(ref["base"]).parent).summary.set_index("tranche").loc[ref["key"]["tranche"]]
        assert json.loads(span.attrs["data-value"]) == a[ref["column"]] - b[ref["column"]]
    # the paired error of the subordinated EL difference, recomputed path by path, is below the two errors combined
    tl = [r.table("tranche_losses").query("tranche == 'subordinated'").sort_values("path") for r in (x2, base)]
    d = tl[0]["loss_fraction"].to_numpy() - tl[1]["loss_fraction"].to_numpy()
    paired = d.std(ddof=1) / np.sqrt(len(d))
    ses = [s for s in root.find_all("span", data_derived=True) if s.attrs["data-derived"] == "delta-se paired"]
    assert any(json.loads(s.attrs["data-value"]) == pytest.approx(paired, rel=1e-12) for s in ses)
    combined = np.hypot(*(r.summary.set_index("tranche").loc["subordinated", "el_se"] for r in (x2, base)))
    assert paired < 0.8 * combined


# --------------------------------------------------------------------------------- command line
def test_plot_default_is_still_the_loss_curves_png(run_dir, tmp_path):
    target = tmp_path / "curves.png"
    assert cli.main(["plot", str(run_dir), "--out", str(target)]) == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("kind", sorted(RUN_FIGURES))
def test_plot_draws_every_figure_of_the_report(run_dir, tmp_path, kind):
    png, svg = tmp_path / f"{kind}.png", tmp_path / f"{kind}.svg"
    assert cli.main(["plot", str(run_dir), "--kind", kind, "--out", str(png)]) == 0
    assert cli.main(["plot", str(run_dir), "--kind", kind, "--out", str(svg)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG" and b"<svg" in svg.read_bytes()[:2000]


def test_plot_kinds_named_by_the_cli_are_the_report_figures():
    assert set(cli.PLOT_KINDS) == set(RUN_FIGURES)


def test_plot_of_a_batch_draws_the_comparison(batch_dir, tmp_path):
    target = tmp_path / "batch.svg"
    assert cli.main(["plot", str(batch_dir), "--out", str(target)]) == 0
    assert b"<svg" in target.read_bytes()[:2000]


@pytest.mark.parametrize("args, named", [
    (["report", "{tmp}/nowhere"], "nowhere"),
    (["report", "{run}", "--out", "{tmp}/report.pdf"], "report.pdf"),
    (["report", "{run}", "--base", "x"], "--base"),
    (["report", "{batch}", "--base", "nope", "--out", "{tmp}/b.html"], "nope"),
    (["plot", "{run}", "--kind", "nonsense"], "nonsense"),
    (["plot", "{run}", "--kind", "batch-comparison"], "batch"),
    (["plot", "{batch}", "--kind", "loss-curves"], "loss-curves"),
    (["plot", "{run}", "--out", "{tmp}"], "--out"),
])
def test_bad_input_is_one_line_naming_it_and_exit_2(run_dir, batch_dir, tmp_path, capsys, args, named):
    argv = [a.format(tmp=tmp_path, run=run_dir, batch=batch_dir) for a in args]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0] and err[0].startswith("INVALID"), err


def test_report_of_a_failed_run_folder_is_bad_input(run_dir, tmp_path, capsys):
    folder = _copy(run_dir, tmp_path / "failed")
    (folder / "manifest.json").write_text(json.dumps({"status": "failed", "error": "boom"}))
    assert cli.main(["report", str(folder)]) == 2
    assert "failed" in capsys.readouterr().err
    assert not (folder / "report.html").exists()


# -------------------------------------------------------------------------------- real browser
@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_browser()
    if path is None:
        message = ("no Chromium on this machine: install Debian's package (apt-get install chromium) or set "
                   "SIMENGINE_CHROMIUM")
        if IN_CI:
            pytest.fail(message + " (CI=true: the browser tests must run)")
        pytest.skip(message)
    return path


def _pdftoppm() -> str:
    path = shutil.which("pdftoppm")
    if path is None:
        message = "no pdftoppm: install Debian's poppler-utils"
        if IN_CI:
            pytest.fail(message + " (CI=true)")
        pytest.skip(message)
    return path


def _not_blank(png: bytes, min_ink: float = 0.01) -> None:
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    assert image.shape[0] > 200 and image.shape[1] > 200
    ink = (image < 200).mean()
    assert ink > min_ink, f"only {ink:.2%} of the picture is not white"
    assert len(np.unique(image)) > 5


def _load_and_check(chromium: str, html: Path, shots: Path, name: str) -> None:
    with Browser(chromium) as browser:
        browser.open(html.resolve().as_uri())
        assert browser.console_errors() == []
        images = browser.evaluate("[...document.images].map(i => [i.naturalWidth, i.naturalHeight, "
                                  "i.getBoundingClientRect().width, i.getBoundingClientRect().height, i.complete])")
        assert images and all(w > 0 and h > 0 and rw > 0 and rh > 0 and done for w, h, rw, rh, done in images), images
        loaded = browser.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
        assert all(u.startswith("data:") for u in loaded), loaded  # nothing from the network
        png = browser.screenshot()
        (shots / f"{name}.png").write_bytes(png)
        _not_blank(png)
        assert browser.console_errors() == []


def test_run_page_in_a_real_browser(chromium, report, tmp_path):
    _load_and_check(chromium, report[0], tmp_path, "run")


def test_batch_page_in_a_real_browser(chromium, batch_report, tmp_path):
    _load_and_check(chromium, batch_report[0], tmp_path, "batch")


def test_pdf_pages_render(chromium, run_dir, tmp_path):
    pdftoppm = _pdftoppm()
    out = tmp_path / "pack.html"
    assert cli.main(["report", str(run_dir), "--out", str(out), "--pdf"]) == 0
    pdf = out.with_suffix(".pdf")
    data = pdf.read_bytes()
    assert data[:5] == b"%PDF-" and b"%%EOF" in data[-1024:]
    subprocess.run([pdftoppm, "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True, timeout=120)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 8, len(pages)
    for i, page in enumerate(pages):  # every page has something on it; the first ones plenty
        _not_blank(page.read_bytes(), min_ink=0.01 if i < 3 else 0.001)


def test_pdf_without_a_browser_fails_after_writing_the_html(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SIMENGINE_CHROMIUM", str(tmp_path / "no-such-browser"))
    out = tmp_path / "pack.html"
    assert cli.main(["report", str(run_dir), "--out", str(out), "--pdf"]) == 1
    assert out.exists() and not out.with_suffix(".pdf").exists()
    assert "Chromium" in capsys.readouterr().err
