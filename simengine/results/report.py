"""The committee pack (SPEC §10): ``simengine report RUN_DIR`` as one self-contained HTML page.

Sections: the deal (with the sources and estimates its scenario file states), the pool's
stratification, the tranche table (standalone and enhanced side by side), the figures, channel
attribution and worst-path ledgers, the re-run analyses when the folder holds them, and an
appendix with every summary column and every other table. Every number carries the file, row and
column it comes from (see :mod:`.format`); data a folder does not hold is named, not skipped.
A batch folder gets a comparison page instead (:mod:`.report_batch`).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .._io import atomic_bytes
from ..errors import ScenarioError
from ..scenario import load_scenario
from ..scenario.notes import TAGS, scenario_notes
from .format import Shown, shown
from .plots import RUN_FIGURES, MissingData, pool_table
from .report_blocks import Cell, Grid, Note, Pre, Section, Table, Text, figure_block, missing, render
from .report_tables import (
    ANALYSIS_TABLES,
    CORE_TABLES,
    estimate,
    generic_table,
    manifest_value,
    pool_statistics_table,
    summary_appendix,
    tranche_table,
    worst_path_blocks,
)
from .run_folder import RunFolder

FIGURES_SECTION = ("loss-curves", "loss-histograms", "default-counts", "loss-timing", "cashflows",
                   "triggers-providers")


class RunReport:
    """The committee pack of one run folder.

    Parameters
    ----------
    run : RunFolder
        The finished run folder.
    figure_format : str
        ``svg`` (sharp at any zoom and in print) or ``png``.
    """

    def __init__(self, run: RunFolder, figure_format: str = "svg"):
        self.run = run
        self.fmt = figure_format
        self.manifest = run.manifest
        self.scenario = run.manifest.get("resolved_scenario") or {}
        self.deal = self.scenario.get("deal", {})
        self.currency = self.deal.get("currency", "")
        self.present = set(run.tables())

    # ----------------------------------------------------------------------------- helpers
    def m(self, path: str, unit: str, exact: bool = True):
        """A manifest value (dotted path, list indices as numbers) as a :class:`Shown` ("—" where there is none)."""
        value = manifest_value(self.manifest, path)
        if value is None:
            return shown(None, "text")
        return shown(value, unit, source="manifest.json", column=path, exact=exact)

    def figure(self, kind: str):
        """The report's figure ``kind``, or a note naming the data it lacks."""
        spec = RUN_FIGURES[kind]
        try:
            return figure_block(kind, spec.make(self.run), spec.caption, self.fmt)
        except MissingData as exc:
            return missing(f"{exc}", f"The figure '{kind}' ({spec.caption.split(':')[0].rstrip('.')}) needs it.")

    # ------------------------------------------------------------------------------ sections
    def sections(self) -> list[Section]:
        """Every section of the page, in order."""
        parts = [("deal", "Deal summary", lambda: [self.deal_section()]),
                 ("sources", "Sources and estimates", self.sources_sections),
                 ("provenance", "Run provenance", lambda: [self.provenance_section()]),
                 ("pool", "Pool stratification", self.pool_sections),
                 ("tranches", "Tranche results", self.tranche_sections),
                 ("figures", "Figures", lambda: [self.figures_section()]),
                 ("attribution", "Channel attribution and worst paths", self.attribution_sections),
                 ("analysis", "Committee questions", self.analysis_sections),
                 ("appendix", "Appendix", self.appendix_sections)]
        out: list[Section] = []
        for sid, title, build in parts:
            try:
                out += build()
            except (KeyError, MissingData) as exc:  # a column this page expects is not in the folder
                what = f"the column {exc.args[0]!r} this section reads" if isinstance(exc, KeyError) else str(exc)
                out.append(Section(sid, title, [missing(what, "This section cannot be shown without it.")]))
        return out

    def deal_section(self) -> Section:
        """Deal summary: facts, tranches, enhancement."""
        if not self.scenario:
            return Section("deal", "Deal summary", [missing("manifest.json's resolved_scenario",
                                                            "The deal's terms come from it.")])
        blocks: list = []
        tranches = self.scenario.get("structure", {}).get("tranches") or []
        notes_total = sum(float(t.get("balance", 0.0)) for t in tranches)
        facts: list[list[Cell]] = [[["deal"], [self.m("resolved_scenario.deal.name", "text")]],
                                   [["currency"], [self.m("resolved_scenario.deal.currency", "text")]]]
        if self.deal.get("closing_date"):
            facts.append([["closing date"], [self.m("resolved_scenario.deal.closing_date", "text")]])
        facts += [[["legal final (years after closing)"], [self.m("resolved_scenario.deal.term_years", "years")]],
                  [["payment dates a year"], [self.m("resolved_scenario.deal.periods_per_year", "count")]],
                  [["discount rate for PV metrics"], [self.m("resolved_scenario.deal.discount_rate", "percent")]],
                  [[f"notes issued ({self.currency})"], [shown(notes_total, "amount", exact=True, derived="sum")]]]
        if "pool_summary" in self.present:
            sched = self.run.pool_summary.get("scheduled_collections_amount")
            if sched is not None:
                facts.append([[f"scheduled royalties to the legal final ({self.currency})"],
                              [shown(sched, "amount", source="pool_summary.parquet", key={},
                                     column="scheduled_collections_amount", exact=True)]])
                if notes_total > 0:
                    facts.append([["cash over-coverage (scheduled royalties / notes)"],
                                  [shown(sched / notes_total, "multiple", decimals=3, derived="ratio")]])
        blocks.append(Table([], facts, caption="The deal"))
        rows = []
        for i, t in enumerate(tranches):
            p = f"resolved_scenario.structure.tranches.{i}"
            amort = t.get("amortisation")
            rows.append([[self.m(f"{p}.name", "text")], [self.m(f"{p}.balance", "amount")],
                         [shown(float(t.get("balance", 0)) / notes_total if notes_total else math.nan, "percent",
                                decimals=1, derived="share")],
                         [self.m(f"{p}.coupon", "percent")], [self.m(f"{p}.interest_deferrable", "text")],
                         [amort if isinstance(amort, str) else "schedule"],
                         [self.m(f"{p}.maturity_period", "count") if t.get("maturity_period") else "legal final"]])
        blocks.append(Table([[("tranche", 1), (f"balance ({self.currency})", 1), ("share of notes", 1),
                              ("coupon", 1), ("interest deferrable", 1), ("amortisation", 1), ("maturity", 1)]],
                            rows, caption="Tranches, most senior first"))
        blocks += self.enhancement_blocks()
        return Section("deal", "Deal summary", blocks)

    def enhancement_blocks(self) -> list:
        """Reserve, fees, triggers and providers from the resolved scenario."""
        st = self.scenario.get("structure", {})
        blocks: list = []
        rows: list[list[Cell]] = []
        reserve = st.get("reserve") or {}
        base = "resolved_scenario.structure"
        if reserve:
            rows.append([["reserve: initial"], [self.m(f"{base}.reserve.initial_amount", "amount")]])
            if reserve.get("target_amount") is not None:
                rows.append([["reserve: target"], [self.m(f"{base}.reserve.target_amount", "amount")]])
            if reserve.get("target_fraction") is not None:
                rows.append([["reserve: target (fraction of notes)"],
                             [self.m(f"{base}.reserve.target_fraction", "percent")]])
            rows.append([["reserve covers"], [", ".join(reserve.get("covers") or ["all tranches"])]])
        fees = st.get("fees") or {}
        if fees:
            rows.append([["fees: fixed per period"], [self.m(f"{base}.fees.fixed_per_period", "amount")]])
            rows.append([["fees: bp a year of outstanding notes"], [self.m(f"{base}.fees.bps_annual", "plain")]])
        if rows:
            blocks.append(Table([[("", 1), (f"{self.currency}", 1)]], rows, caption="Reserve and fees"))
        triggers = st.get("triggers") or []
        if triggers:
            trows = []
            for i, t in enumerate(triggers):
                p = f"{base}.triggers.{i}"
                unit = "percent" if t.get("metric") == "cumulative_default_rate" else "multiple"
                trows.append([[self.m(f"{p}.name", "text")], [self.m(f"{p}.metric", "text")],
                              [self.m(f"{p}.threshold", unit)], [self.m(f"{p}.effect", "text")],
                              [self.m(f"{p}.curable", "text")], [self.m(f"{p}.consecutive_periods", "count")]])
            blocks.append(Table([[("trigger", 1), ("metric", 1), ("threshold", 1), ("effect", 1), ("curable", 1),
                                  ("periods in breach", 1)]], trows, caption="Triggers"))
        prow = []
        for section, value in st.items():
            if isinstance(value, dict) and "provider" in value:
                p = f"{base}.{section}"
                credit = (self.m(f"{p}.pd_annual", "percent") if value.get("pd_annual") is not None
                          else self.m(f"{p}.rating", "text"))
                cap = self.m(f"{p}.cap_amount", "amount") if value.get("cap_amount") is not None else "none"
                prow.append([[section.replace("_", " ")], [self.m(f"{p}.provider", "text")], [credit],
                             [self.m(f"{p}.loading", "plain")], [cap], [", ".join(value.get("covers") or [])]])
        if prow:
            blocks.append(Table([[("enhancement", 1), ("provider", 1), ("annual PD or rating", 1),
                                  ("global-factor loading", 1), (f"cap ({self.currency})", 1), ("covers", 1)]],
                                prow, caption="Credit-enhancement providers (their defaults are simulated)"))
        if st.get("waterfall"):
            blocks.append(Text("Priority of payments: the scenario's own waterfall steps: "
                               + "; ".join(str(s) for s in st["waterfall"])))
        return blocks

    def sources_sections(self) -> list[Section]:
        """What the scenario file's comments say about sources and estimates."""
        blocks: list = []
        file = self.manifest.get("scenario_file")
        if not file or not Path(file).is_file():
            blocks.append(missing(f"the scenario file ({file or 'not named in manifest.json'})",
                                  "Its comments state the deal's sources and which numbers are estimates."))
            return [Section("sources", "Sources and estimates (scenario file comments)", blocks, sub=True)]
        try:
            current = load_scenario(file).file_hash
        except (ScenarioError, OSError) as exc:
            current = None
            blocks.append(Note(f"The scenario file no longer loads ({str(exc).splitlines()[0]}); its comments "
                               f"are shown as they are.", "warning"))
        if current is not None and current != self.manifest.get("scenario_hash"):
            blocks.append(Note(f"{file} has changed since this run (its hash differs from manifest.json's "
                               f"scenario_hash): the comments below may not describe the numbers of this run.",
                               "warning"))
        blocks.append(Text("Tags: " + "; ".join(f"[{k}] {v}" for k, v in TAGS.items())
                           + ". A stress file extends a base file; both are shown, the stress first."))
        for notes in scenario_notes(file):
            name = Path(notes.file).name
            if notes.header:
                blocks.append(Pre(f"{name}: header", notes.header))
            for context, text in notes.blocks:
                blocks.append(Pre(f"{name}: before {context}", text))
            rows = [[[k.key], [k.value], [", ".join(TAGS[t] for t in k.tags) or "—"], [k.comment]]
                    for k in notes.keys]
            if rows:
                counts = pd.Series([t for k in notes.keys for t in k.tags]).value_counts()
                blocks.append(Table([[("key", 1), ("value as written", 1), ("tag", 1), ("comment", 1)]], rows,
                                    caption=f"{name}: values with a comment", origin=notes.file,
                                    notes=["Tagged values: " + ", ".join(f"{TAGS[t]} [{t}] {n}"
                                                                         for t, n in counts.items())]
                                    if len(counts) else []))
        return [Section("sources", "Sources and estimates (scenario file comments)", blocks, sub=True)]

    def provenance_section(self) -> Section:
        """Seed, paths, sampling, versions, hashes, rating-table sources."""
        mf = self.manifest
        rows: list[list[Cell]] = [[["run folder"], [shown(str(self.run.path.resolve()), "text", derived="path")]],
                                  [["status"], [self.m("status", "text")]]]
        for path, label, unit in (("scenario_file", "scenario file", "text"),
                                  ("scenario_hash", "scenario hash (sha256)", "text"),
                                  ("resolved_scenario_hash", "resolved scenario hash", "text"),
                                  ("seed", "seed", "id"), ("paths", "paths", "count"),
                                  ("chunk_paths", "paths per chunk", "count"),
                                  ("cashflow_sample_paths", "paths behind cash-flow statistics", "count"),
                                  ("variance_reduction", "sampling", "text"),
                                  ("sampling.global_shift", "importance sampling: global factor mean", "plain"),
                                  ("sampling.chi2_scale", "importance sampling: chi-square scale", "plain"),
                                  ("sampling.antithetic", "antithetic pairs", "text"),
                                  ("numba_threading_layer", "numba threading layer", "text"),
                                  ("threads", "threads", "count"), ("numba_disabled", "numba disabled", "text")):
            if manifest_value(mf, path) is not None:
                rows.append([[label], [self.m(path, unit)]])
        target = mf.get("target")
        if target:
            rows.append([["target relative standard error"], [str(target)]])
        for name in (mf.get("engine") or {}):
            rows.append([[f"version: {name}"], [self.m(f"engine.{name}", "text")]])
        for name in (mf.get("timings") or {}):
            if name.endswith("_seconds"):
                rows.append([[f"time: {name.removesuffix('_seconds').replace('_', ' ')} (s)"],
                             [shown(mf["timings"][name], "plain", decimals=2, source="manifest.json",
                                    column=f"timings.{name}")]])
        for name in (mf.get("rating_tables") or {}):
            rows.append([[f"rating table: {name}"], [self.m(f"rating_tables.{name}", "text")]])
        blocks = [Table([], rows, caption="Run provenance (manifest.json)"),
                  Note("The rating tables are not all verified against their published sources: "
                       "simengine/data/SOURCES.md says which cells are; read it before relying on a rating.",
                       "warning")]
        return Section("provenance", "Run provenance", blocks, sub=True)

    def pool_sections(self) -> list[Section]:
        """Stratification, concentration and the royalty schedule."""
        blocks: list = []
        try:
            pool = pool_table(self.run)
        except MissingData as exc:
            blocks.append(missing(str(exc), "Stratification needs the pool."))
            return [Section("pool", "Pool stratification", blocks)]
        lic = pool.licences
        total = float(lic["scheduled_amount"].sum())
        pd_known = lic["pd_annual"].notna()
        strata = []
        for by in ("industry", "technology", "region", "ip_type"):
            g = lic.groupby(by, sort=False)
            rows = []
            for name, part in sorted(g, key=lambda kv: -kv[1]["scheduled_amount"].sum()):
                amount = float(part["scheduled_amount"].sum())
                known = part[pd_known.loc[part.index]]
                wpd = (float((known["pd_annual"] * known["scheduled_amount"]).sum() / known["scheduled_amount"].sum())
                       if len(known) and known["scheduled_amount"].sum() > 0 else math.nan)
                rows.append([[str(name)], [shown(len(part), "count", derived="count")],
                             [shown(amount, "amount", decimals=2, derived="sum")],
                             [shown(amount / total, "percent", decimals=1, derived="share")],
                             [shown(wpd, "percent", decimals=2, derived="weighted-mean")]])
            strata.append(Table([[(by.replace("_", " "), 1), ("licences", 1), ("scheduled", 1),
                                  ("share", 1), ("mean PD", 1)]], rows,
                                caption=f"By {by.replace('_', ' ')} (mean PD weighted by scheduled royalties)"))
        share = lic.groupby("licensee")["scheduled_amount"].sum().sort_values(ascending=False) / total
        hhi = float((share ** 2).sum())
        conc = [[["licensees"], [shown(len(share), "count", derived="count")]],
                [["HHI of scheduled royalties by licensee"], [shown(hhi, "plain", decimals=4, derived="hhi")]],
                [["effective number of licensees (1 / HHI)"], [shown(1 / hhi, "plain", decimals=1, derived="hhi")]],
                [[f"largest licensee: {share.index[0]}"], [shown(share.iloc[0], "percent", decimals=1,
                                                                 derived="share")]],
                [["largest five licensees"], [shown(share.iloc[:5].sum(), "percent", decimals=1, derived="share")]]]
        strata.append(Table([[("concentration", 1), ("", 1)]], conc, caption="Concentration by licensee"))
        blocks.append(Grid(strata))
        blocks.append(self.figure("stratification"))
        blocks.append(self.figure("royalty-schedule"))
        top = lic.sort_values("scheduled_amount", ascending=False).head(25)
        def label(x) -> Shown:
            return shown(str(x), "text", derived="input")

        rows = [[[label(r["id"])], [label(r["licensee"])], [label(r["industry"])], [label(r["technology"])],
                 [label(r["region"])], [label(r["ip_type"])], [label(r["royalty_type"])],
                 [shown(r["royalty"], "amount", exact=True, derived="input")],
                 [shown(r["scheduled_amount"] / total, "percent", decimals=1, derived="share")],
                 [shown(r["pd_annual"], "percent", exact=True, derived="input") if pd.notna(r["pd_annual"])
                  else label(r["rating"])]] for _, r in top.iterrows()]
        blocks.append(Table([[("id", 1), ("licensee", 1), ("industry", 1), ("technology", 1), ("region", 1),
                              ("IP type", 1), ("royalty", 1), (f"royalty per period ({self.currency})", 1),
                              ("share", 1), ("PD or rating", 1)]], rows, wide=True,
                            caption=f"Licences by scheduled royalties ({len(top)} of {len(lic)} shown)"))
        return [Section("pool", "Pool stratification", blocks)]

    def tranche_sections(self) -> list[Section]:
        """The tranche table, pool statistics and implied ratings."""
        blocks: list = []
        if "summary" not in self.present:
            blocks.append(missing("summary.parquet", "The tranche table cannot be shown."))
        else:
            blocks += tranche_table(self.run)
        if "pool_summary" in self.present:
            blocks.append(pool_statistics_table(self.run))
        else:
            blocks.append(missing("pool_summary.parquet", "Pool-level statistics cannot be shown."))
        blocks.append(self.figure("ratings"))
        meta = self.run.field_metadata("summary") if "summary" in self.present else {}
        for col, fields in meta.items():
            if col.startswith(("rating", "standalone_rating")):
                blocks.append(Note(f"{col}: " + "; ".join(f"{k}: {v}" for k, v in fields.items())))
        return [Section("tranches", "Tranche results: standalone and enhanced", blocks)]

    def figures_section(self) -> Section:
        """The distribution, timing and cash-flow figures."""
        return Section("figures", "Figures", [self.figure(kind) for kind in FIGURES_SECTION])

    def attribution_sections(self) -> list[Section]:
        """Channel attribution and the worst paths' ledgers."""
        out = []
        if "channel_attribution" not in self.present:
            out.append(Section("attribution", "Channel attribution", [missing("channel_attribution.parquet")]))
        else:
            ca = self.run.table("channel_attribution")
            rows = []
            cols = [("el", "EL"), ("el_credit_only", "credit only"), ("via_obsolescence", "via obsolescence"),
                    ("via_demand", "via demand"), ("interaction", "interaction")]
            for _, r in ca.iterrows():
                key = {"tranche": r["tranche"], "basis": r["basis"]}
                cells: list[Cell] = [[f"{r['tranche']} ({r['basis']})"]]
                for col, _ in cols:
                    if col not in ca.columns:
                        cells.append(["missing"])
                        continue
                    if f"{col}_se" in ca.columns:
                        cells.append(estimate(r[col], r[f"{col}_se"], "percent", "channel_attribution.parquet", key,
                                              col, f"{col}_se"))
                    else:  # the interaction has no error of its own: it is shown to the EL's digits
                        cells.append([shown(r[col], "percent", r.get("el_se"), source="channel_attribution.parquet",
                                            key=key, column=col)])
                cells.append([shown(r.get("attribution_paths"), "count", source="channel_attribution.parquet",
                                    key=key, column="attribution_paths")])
                rows.append(cells)
            out.append(Section("attribution", "Channel attribution", [
                Text("How much of each tranche's expected loss (fraction of original balance) comes through "
                     "technology obsolescence and demand: the run repeated with that channel switched off on the "
                     "same paths (common random numbers); 'interaction' is what the two channels add together "
                     "beyond their separate effects. Standard errors are paired."),
                Table([[("tranche (basis)", 1), *((label, 1) for _, label in cols), ("paths", 1)]], rows)]))
        if "worst_paths" not in self.present:
            out.append(Section("worst-paths", "Worst paths: why a tranche lost", [missing("worst_paths.parquet")]))
        else:
            out.append(Section("worst-paths", "Worst paths: why a tranche lost", worst_path_blocks(self.run)))
        return out

    def analysis_sections(self) -> list[Section]:
        """Breakevens, tornado, largest-obligor test, contributions, provider cost: shown when present."""
        out = [Section("analysis", "Committee questions (re-run analyses)", [
            Text("Breakevens, sensitivities, deterministic stresses, contributions and provider cost come from "
                 "re-runs of the deal under common random numbers; a run folder holds them once they have been "
                 "computed for it.")])]
        for name, title, what in ANALYSIS_TABLES:
            blocks = ([Text(what), generic_table(self.run, name)] if name in self.present
                      else [missing(f"{name}.parquet", f"({what})")])
            out.append(Section(f"analysis-{name}", title, blocks, sub=True))
        return out

    def appendix_sections(self) -> list[Section]:
        """Every summary column; every other table; what is missing."""
        out = []
        if "summary" in self.present:
            out.append(Section("appendix-summary", "Appendix: every summary column", [summary_appendix(self.run)]))
        known = set(CORE_TABLES) | {name for name, _, _ in ANALYSIS_TABLES}
        others = [t for t in sorted(self.present) if t not in known]
        blocks: list = []
        for name in others:
            blocks.append(generic_table(self.run, name))
        if not others:
            blocks.append(Text("None: the folder holds only the tables shown above."))
        out.append(Section("appendix-other", "Appendix: other tables in this run folder", blocks))
        rows = []
        for name in sorted(set(CORE_TABLES) | set(self.present) | {n for n, _, _ in ANALYSIS_TABLES}):
            if name in self.present:
                rows.append([[f"{name}.parquet"], ["present"],
                             [shown(self.run.num_rows(name), "count", derived="parquet footer")],
                             [shown(len(self.run.columns(name)), "count", derived="parquet schema")]])
            else:
                rows.append([[f"{name}.parquet"], ["missing"], ["—"], ["—"]])
        out.append(Section("appendix-files", "Appendix: tables of this run folder",
                           [Table([[("table", 1), ("status", 1), ("rows", 1), ("columns", 1)]], rows)]))
        return out

    def html(self) -> str:
        """The page."""
        name = self.deal.get("name") or self.run.scenario_name
        sub = (f"{self.run.paths:,} paths, seed {self.manifest.get('seed')}, sampling {self.run.variance_reduction}"
               f" · scenario {Path(str(self.manifest.get('scenario_file', ''))).name}")
        return render(name, sub, self.sections(), heading="Committee pack", page_kind="run",
                      folder=str(self.run.path.resolve()),
                      footer="Fractions of the original tranche balance unless a column says otherwise; amounts in "
                             f"{self.currency} millions (m). Monte Carlo estimates are shown to the digit their "
                             "standard error supports (± one standard error).")


def run_report(run: RunFolder | str | Path, figure_format: str = "svg") -> str:
    """The committee pack of a run folder as one self-contained HTML page."""
    run = run if isinstance(run, RunFolder) else RunFolder(run)
    return RunReport(run, figure_format).html()


def write_report(html: str, out: Path) -> Path:
    """Write the page to ``out`` whole or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_bytes(out, html.encode("utf-8"))
    return out


__all__ = ["RunReport", "run_report", "write_report"]
