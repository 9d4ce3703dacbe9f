"""The comparison page of a batch or stress set (``simengine report BATCH_DIR``): one row per
scenario and tranche, differences to a base scenario with paired standard errors, and a chart.

Scenarios of one batch run with one seed and the same paths share their random numbers (common
random numbers), so the difference of a statistic between a scenario and the base is estimated
path by path: its standard error is that of the per-path differences, far smaller than the two
errors combined. Where the paths differ the errors are combined in quadrature, and the page says so.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from .format import Shown, shown
from .plots import batch_figure
from .report_blocks import Cell, Note, Section, Table, Text, figure_block, render
from .run_folder import BatchFolder, RunFolder, RunFolderError

COMPARED = (("pd", "defaulted", "PD"), ("el", "loss_fraction", "EL"), ("standalone_el", "standalone_loss_fraction",
                                                                         "standalone EL"))


def default_base(ids: list[str]) -> str | None:
    """The base scenario of a batch: the one named ``base`` (or ending in ``base``), else the first."""
    for sid in ids:
        if sid == "base":
            return sid
    for sid in ids:
        if sid.endswith("base"):
            return sid
    return ids[0] if ids else None


def paired_se(run: RunFolder, base: RunFolder, tranche: str, column: str) -> tuple[float, str]:
    """Standard error of (scenario − base) for a per-path column of ``tranche_losses``, and how it was
    estimated: ``paired`` (path by path, same seed and paths), ``independent`` (different seeds,
    same paths: still path by path) or ``unpaired`` (paths differ: errors in quadrature; NaN here)."""
    if run.paths != base.paths or not (run.has("tranche_losses") and base.has("tranche_losses")):
        return math.nan, "unpaired"
    cols = ["path", "tranche", "weight", column]
    a = run.table("tranche_losses", cols)
    b = base.table("tranche_losses", cols)
    a = a[a["tranche"] == tranche].sort_values("path")
    b = b[b["tranche"] == tranche].sort_values("path")
    if len(a) != len(b) or not len(a) or not (a["path"].to_numpy() == b["path"].to_numpy()).all():
        return math.nan, "unpaired"
    d = (a["weight"].to_numpy() * a[column].to_numpy(dtype=float)
         - b["weight"].to_numpy() * b[column].to_numpy(dtype=float))
    antithetic = all((r.manifest.get("sampling") or {}).get("antithetic") for r in (run, base))
    if antithetic and len(d) % 2 == 0:
        d = 0.5 * (d[0::2] + d[1::2])
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
    return se, "paired" if run.manifest.get("seed") == base.manifest.get("seed") else "independent"


class BatchReport:
    """The comparison page of a batch folder.

    Parameters
    ----------
    batch : BatchFolder
    base : str, optional
        The scenario id the others are compared with (default :func:`default_base` of the finished ones).
    figure_format : str
        ``svg`` or ``png``.
    """

    def __init__(self, batch: BatchFolder, base: str | None = None, figure_format: str = "svg"):
        self.batch = batch
        self.fmt = figure_format
        self.runs: dict[str, RunFolder] = {}
        self.unreadable: dict[str, str] = {}
        for row in batch.rows:
            sid = row["scenario_id"]
            if row.get("status") != "ok":
                continue
            try:
                self.runs[sid] = batch.run(sid)
            except RunFolderError as exc:
                self.unreadable[sid] = str(exc)
        ids = list(self.runs)
        if base is not None and base not in self.runs:
            raise RunFolderError(f"{batch.path}: --base {base!r} is not a finished scenario of this batch; "
                                 f"expected one of {', '.join(ids) or '(none finished)'}")
        self.base = base or default_base(ids)

    def comparison(self) -> pd.DataFrame:
        """One row per (scenario, tranche): the compared statistics, their differences to the base and
        the differences' standard errors."""
        rows = []
        base = self.runs.get(self.base)
        base_summary = base.summary.set_index("tranche") if base is not None and base.has("summary") else None
        for sid, run in self.runs.items():
            if not run.has("summary"):
                continue
            for _, r in run.summary.iterrows():
                t = r["tranche"]
                row = {"scenario_id": sid, "tranche": t}
                for stat, column, _ in COMPARED:
                    row[stat] = r.get(stat, math.nan)
                    row[f"{stat}_se"] = r.get(f"{stat}_se", math.nan)
                    if base_summary is None or t not in base_summary.index or stat not in base_summary.columns:
                        row[f"delta_{stat}"], row[f"delta_{stat}_se"], row["pairing"] = math.nan, math.nan, "no base"
                        continue
                    b = base_summary.loc[t]
                    row[f"delta_{stat}"] = float(row[stat]) - float(b[stat])
                    se, how = (0.0, "base") if sid == self.base else paired_se(run, base, t, column)
                    if how == "unpaired":
                        se = math.hypot(float(row[f"{stat}_se"]), float(b.get(f"{stat}_se", math.nan)))
                    row[f"delta_{stat}_se"], row["pairing"] = se, how
                rows.append(row)
        return pd.DataFrame(rows)

    def sections(self) -> list[Section]:
        """Overview, scenario status, comparison tables and the chart."""
        b = self.batch
        mf = b.manifest
        counts = mf.get("counts") or {}
        facts: list[list[Cell]] = [[["batch"], [b.batch_id]], [["folder"], [str(b.path.resolve())]],
                                   [["status"], [str(mf.get("status"))]],
                                   [["scenarios"], [", ".join(f"{k} {v}" for k, v in counts.items())]],
                                   [["options"], [json.dumps(mf.get("options") or {})]],
                                   [["base scenario for differences"], [str(self.base)]]]
        for s in mf.get("sessions") or []:
            facts.append([[f"session {s.get('session')}"],
                          [f"{s.get('started_at')} → {s.get('finished_at')}, {s.get('scheduler')}: "
                           f"simengine {' '.join(s.get('argv') or [])}"]])
        overview = [Table([], facts, caption="Batch (batch_manifest.json)", origin="batch_manifest.json")]
        status_rows = []
        for i, r in enumerate(b.rows):
            error = (r.get("error") or "").splitlines()[0] if r.get("error") else ""
            def text(name: str, i: int = i, r: dict = r) -> Shown:
                return shown(r.get(name), "text", source="batch_manifest.json", column=f"scenarios.{i}.{name}")

            status_rows.append([[r["scenario_id"]], [text("status")], [text("scenario_name")], [text("overrides")],
                                [shown(r.get("paths"), "count", source="batch_manifest.json",
                                       column=f"scenarios.{i}.paths")],
                                [shown(r.get("seed"), "id", source="batch_manifest.json",
                                       column=f"scenarios.{i}.seed")],
                                [shown(r.get("total_seconds"), "plain", decimals=1, source="batch_manifest.json",
                                       column=f"scenarios.{i}.total_seconds")],
                                [shown(error, "text", derived="first line of the error") if error else ""]])
        overview.append(Table([[("scenario", 1), ("status", 1), ("deal", 1), ("overrides", 1), ("paths", 1),
                                ("seed", 1), ("seconds", 1), ("error", 1)]], status_rows, wide=True,
                              caption="Scenarios"))
        not_ok = [r for r in b.rows if r.get("status") != "ok"]
        if not_ok:
            overview.append(Note("Not compared (no finished run folder): " + ", ".join(
                f"{r['scenario_id']} ({r.get('status')})" for r in not_ok), "warning"))
        for sid, why in self.unreadable.items():
            overview.append(Note(f"{sid}: {why}", "warning"))
        out = [Section("batch", "Batch and scenarios", overview)]
        table = self.comparison()
        if table.empty:
            out.append(Section("comparison", "Comparison", [Note("No finished scenario with a summary.parquet: "
                                                                 "nothing to compare.", "missing")]))
            return out
        blocks: list = [Text(f"Differences (Δ) are each scenario minus {self.base!r}, per tranche, with one standard "
                             "error. 'paired': same seed and paths as the base, so the difference is estimated path "
                             "by path under common random numbers; 'unpaired': paths differ, errors combined in "
                             "quadrature. Fractions of the original tranche balance.")]
        for tranche, g in table.groupby("tranche", sort=False):
            rows = []
            for _, r in g.iterrows():
                run = self.runs[r["scenario_id"]]
                src = f"runs/{r['scenario_id']}/summary.parquet"
                key = {"tranche": tranche}
                s = run.summary.set_index("tranche").loc[tranche]
                row: list[Cell] = [[r["scenario_id"]]]
                for stat, _, _ in COMPARED:
                    if stat not in s.index:
                        row += [["missing"], ["—"]]
                        continue
                    row.append(_value_se(s, stat, src, key))
                    derived = json.dumps({"of": src, "base": f"runs/{self.base}/summary.parquet", "column": stat,
                                          "key": key})
                    se = r[f"delta_{stat}_se"]
                    delta: Cell = [shown(r[f"delta_{stat}"], "percent", se, derived=f"delta {derived}")]
                    if np.isfinite(se) and se > 0:
                        delta += [" ± ", shown(se, "percent", se, derived=f"delta-se {r['pairing']}")]
                    row.append(delta if r["scenario_id"] != self.base else ["base"])
                for col in ("rating_moodys", "rating_sp"):
                    row.append([shown(s.get(col), "text", source=src, key=key, column=col)] if col in s.index
                               else ["missing"])
                row.append([r["pairing"]])
                rows.append(row)
            head = [[("scenario", 1)] + [(h, 1) for _, _, label in COMPARED for h in (label, f"Δ {label}")]
                    + [("Moody's-style", 1), ("S&P-style", 1), ("difference", 1)]]
            blocks.append(Table(head, rows, caption=f"{tranche}", wide=True))
        fig = batch_figure(table, str(self.base), f"batch {b.batch_id}: expected loss by scenario and its "
                                                  f"difference to {self.base}")
        blocks.append(figure_block("batch-comparison", fig, "Expected loss per scenario, enhanced (filled) and "
                                   "standalone (open), with 95% intervals, and its difference to "
                                   f"{self.base} (95% intervals, paired where the scenarios share paths).", self.fmt))
        blocks.append(Text("Each scenario's own committee pack: simengine report "
                           f"{b.path}/runs/<scenario>. The combined dataset (combined/) holds every summary "
                           "column of every scenario for queries."))
        out.append(Section("comparison", "Comparison with the base scenario", blocks))
        return out

    def html(self) -> str:
        """The page."""
        names = {r.get("scenario_name") for r in self.batch.rows if r.get("scenario_name")}
        title = f"Batch {self.batch.batch_id}"
        sub = f"{len(self.batch.rows)} scenarios" + (f" · {sorted(names)[0]}" if len(names) == 1 else "")
        return render(title, sub, self.sections(), heading="Batch comparison", page_kind="batch",
                      folder=str(self.batch.path.resolve()),
                      footer="Fractions of the original tranche balance; ± one Monte Carlo standard error.")


def _value_se(s: pd.Series, stat: str, src: str, key: dict) -> Cell:
    se = s.get(f"{stat}_se")
    cell: Cell = [shown(s[stat], "percent", se, source=src, key=key, column=stat)]
    if se is not None and np.isfinite(se) and se > 0:
        cell += [" ± ", shown(se, "percent", se, source=src, key=key, column=f"{stat}_se")]
    return cell


def batch_report(batch: BatchFolder | str, base: str | None = None, figure_format: str = "svg") -> str:
    """The comparison page of a batch folder as one self-contained HTML page."""
    batch = batch if isinstance(batch, BatchFolder) else BatchFolder(batch)
    return BatchReport(batch, base, figure_format).html()


__all__ = ["BatchReport", "batch_report", "default_base", "paired_se"]
