"""The committee pack's tables built from a run folder's Parquet files (read through
:class:`~simengine.results.RunFolder`): the tranche table, pool statistics, worst-path ledgers,
and a generic table for anything else a folder holds (new columns and tables never break a page).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .format import shown
from .report_blocks import Cell, Grid, Note, Table, Text
from .run_folder import RunFolder

CORE_TABLES = ("summary", "pool_summary", "channel_attribution", "cashflows", "worst_paths", "loss_exceedance",
               "tranche_losses", "pool_paths")
# the analysis issue's tables (SPEC §10): name, section title, what it answers
ANALYSIS_TABLES = (
    ("breakevens", "Breakevens", "the driver values (PD multiplier, obsolescence hazard, royalty decline, "
     "correlation, haircut, provider PD) at which each tranche first loses or leaves its grade"),
    ("sensitivity", "Tornado sensitivities", "each driver moved down and up, the change in each tranche's EL and "
     "PD with paired standard errors"),
    ("deterministic_stresses", "Largest-obligor test and deterministic stresses", "named or largest licensees "
     "forced to default through the same waterfall; the largest k each tranche survives"),
    ("contributions", "Licensee contributions", "each licensee's share of each tranche's EL and ES"),
    ("provider_cost", "Provider cost and residual", "quantiles of commitment and guarantee draws and their present "
     "value; the originator's residual"),
)
GENERIC_ROWS = 60  # rows of an unknown table shown in full; more are summarised

# (label, column stem, unit); the standard error is "<stem>_se" where the summary has it
TRANCHE_ROWS = (
    ("PD: P(principal loss or missed non-deferrable interest)", "pd", "percent"),
    ("EL: expected loss", "el", "percent"),
    ("LGD = EL / PD", "lgd", "percent"),
    ("PV loss (at the deal's discount rate)", "pv_loss", "percent"),
    ("WAL", "wal_years", "years"),
    ("median loss", "loss_q50", "percent"),
    ("VaR 95%", "var_95", "percent"), ("ES 95%", "es_95", "percent"),
    ("VaR 99%", "var_99", "percent"), ("ES 99%", "es_99", "percent"),
    ("VaR 99.9%", "var_999", "percent"), ("ES 99.9%", "es_999", "percent"),
    ("mean interest shortfall", "interest_shortfall_mean_amount", "amount"),
    ("Moody's-style rating (EL at WAL)", "rating_moodys", "text"),
    ("  its 95% range", "rating_moodys_range", "text"),
    ("S&P-style rating (PD to legal final)", "rating_sp", "text"),
    ("  its 95% range", "rating_sp_range", "text"),
)
SAMPLING_ROWS = (("PD variance reduction vs plain MC", "pd_vr", "plain"),
                 ("EL variance reduction vs plain MC", "el_vr", "plain"),
                 ("PD: plain-MC paths for the same error", "pd_n_eff", "count"))
BASES = (("standalone_", "standalone"), ("", "enhanced"))


def manifest_value(manifest: dict, path: str):
    """The value at a dotted path of the manifest (numbers index lists); None where there is none."""
    node = manifest
    for part in path.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


def estimate(value, se, unit: str, source: str, key: dict, column: str, se_column: str | None) -> Cell:
    """A value ± its standard error (the error omitted where it is zero: every path agrees). An
    estimate whose error could not be estimated (NaN) gets two significant digits and says so."""
    unknown = se_column is not None and se is not None and pd.isna(se) and not pd.isna(value)
    cell: Cell = [shown(value, unit, se, source=source, key=key, column=column, digits=2 if unknown else 4)]
    if unknown:
        cell.append(" (SE n/a)")
    elif se_column is not None and se is not None and not pd.isna(se) and se != 0:
        cell += [" ± ", shown(se, unit, se, source=source, key=key, column=se_column)]
    return cell


def tranche_table(run: RunFolder) -> list:
    """Rows are metrics, columns tranche × (standalone, enhanced); missing columns are named."""
    s = run.summary
    src = "summary.parquet"
    tranches = list(s["tranche"])
    lost: set[str] = set()
    rows: list[list[Cell]] = []
    kinds = [m.group(1) for c in s.columns if (m := re.fullmatch(r"p_(\w+)_drawn", c))]
    specs = list(TRANCHE_ROWS)
    if run.variance_reduction != "none":
        specs += SAMPLING_ROWS
    for label, stem, unit in specs:
        row: list[Cell] = [[label]]
        for t in tranches:
            r = s[s["tranche"] == t].iloc[0]
            key = {"tranche": t}
            for prefix, _ in BASES:
                col = prefix + stem
                if col not in s.columns:
                    lost.add(col)
                    row.append(["missing"])
                    continue
                se_col = col + "_se" if col + "_se" in s.columns else None
                se = r[se_col] if se_col else None
                if unit == "text":
                    row.append([shown(r[col], "text", source=src, key=key, column=col)])
                    continue
                cell = estimate(r[col], se, unit, src, key, col, se_col)
                if stem == "pd" and prefix + "pd_lower" in s.columns and prefix + "pd_upper" in s.columns:
                    lo, hi = r[prefix + "pd_lower"], r[prefix + "pd_upper"]
                    cell += [" [", shown(lo, unit, se, source=src, key=key, column=prefix + "pd_lower", digits=2),
                             ", ", shown(hi, unit, se, source=src, key=key, column=prefix + "pd_upper", digits=2),
                             "]"]
                row.append(cell)
        rows.append(row)
    for kind in kinds:  # provider draws exist on the enhanced basis only
        for label, col, unit in ((f"mean {kind} draw", f"{kind}_draw_mean_amount", "amount"),
                                 (f"P({kind} drawn)", f"p_{kind}_drawn", "percent")):
            row = [[label]]
            for t in tranches:
                r = s[s["tranche"] == t].iloc[0]
                row.append(["n/a (standalone)"])
                if col in s.columns:
                    se_col = col + "_se" if col + "_se" in s.columns else None
                    row.append(estimate(r[col], r[se_col] if se_col else None, unit, src, {"tranche": t}, col,
                                         se_col))
                else:
                    lost.add(col)
                    row.append(["missing"])
            rows.append(row)
    head = [[("", 1)] + [(f"{t}", 2) for t in tranches], [("metric", 1)] + [(b, 1) for t in tranches for _, b in BASES]]
    notes = ["Fractions of the original tranche balance; ± one Monte Carlo standard error; PD's bracket is its 95% "
             "Wilson interval. Standalone: without the payment commitment and the guarantee. Ranges: the ratings "
             "spanned by the 95% interval (EL ± 1.96 SE; Wilson for PD)."]
    blocks: list = [Table(head, rows, caption="Tranche metrics (SPEC §6)", notes=notes, numeric=True)]
    if lost:
        blocks.append(Note("Columns not in summary.parquet (older or newer run): " + ", ".join(sorted(lost)),
                           "missing"))
    shared = [c for c in ("paths", "variance_reduction", "ess_kish", "weight_mean") if c in s.columns]
    if shared:
        r = s.iloc[0]
        key = {"tranche": r["tranche"]}
        cells: list[list[Cell]] = []
        for c in shared:
            unit = "text" if c == "variance_reduction" else "count" if c == "paths" else "plain"
            se_col = c + "_se" if c + "_se" in s.columns else None
            cells.append([[c.replace("_", " ")], estimate(r[c], r[se_col] if se_col else None, unit,
                                                           "summary.parquet", key, c, se_col)])
        blocks.append(Table([[("sampling", 1), ("", 1)]], cells, caption="Sampling (the same for every tranche)"))
    if run.variance_reduction == "none":
        blocks.append(Text("Plain Monte Carlo: every path has weight 1, so the effective sample size is the number "
                           "of paths and no variance-reduction factor applies."))
    elif "ess_kish" in s.columns and s["ess_kish"].iloc[0] < 0.1 * run.paths:
        blocks.append(Note(f"Weighted paths ({run.variance_reduction} sampling): Kish's effective sample size is "
                           f"{s['ess_kish'].iloc[0]:,.0f} of {run.paths:,} paths. The measure is aimed at one "
                           "tranche; where a variance-reduction factor is below 1, plain Monte Carlo would have "
                           "estimated that statistic more precisely.", "warning"))
    return blocks


POOL_LABELS = {
    "paths": ("paths", "count"), "ess_kish": ("Kish effective sample size", "plain"),
    "licensee_default_rate_mean": ("licensee default rate (share of licensees), mean", "percent"),
    "licensee_default_rate_q50": ("licensee default rate, median", "percent"),
    "licensee_default_rate_q95": ("licensee default rate, 95% quantile", "percent"),
    "licensee_default_rate_q99": ("licensee default rate, 99% quantile", "percent"),
    "licensee_default_rate_q999": ("licensee default rate, 99.9% quantile", "percent"),
    "scheduled_collections_amount": ("scheduled royalties to the legal final", "amount"),
    "expected_collections_amount": ("expected collections", "amount"),
}


def _pool_label(name: str) -> tuple[str, str]:
    if name in POOL_LABELS:
        return POOL_LABELS[name]
    if m := re.fullmatch(r"p_trigger_(\w+)", name):
        return f"P(trigger {m.group(1)} in force at some period)", "percent"
    if m := re.fullmatch(r"p_(\w+)_provider_failed_when_needed", name):
        return f"P({m.group(1)} needed and its provider in default)", "percent"
    if m := re.fullmatch(r"(\w+)_provider_failed_given_needed", name):
        return f"P({m.group(1)} provider in default | needed)", "percent"
    if m := re.fullmatch(r"p_(\w+)_(needed|drawn)", name):
        return f"P({m.group(1)} {m.group(2)})", "percent"
    unit = "amount" if name.endswith("_amount") else "percent" if name.startswith("p_") else "plain"
    return name.replace("_", " "), unit


def pool_statistics_table(run: RunFolder) -> Table:
    """``pool_summary.parquet``, every column, labelled where known."""
    ps = run.pool_summary
    rows: list[list[Cell]] = []
    for name, value in ps.items():
        if name.endswith("_se") and name[:-3] in ps:
            continue
        label, unit = _pool_label(name)
        se_col = name + "_se" if name + "_se" in ps else None
        rows.append([[label], estimate(value, ps.get(se_col) if se_col else None, unit, "pool_summary.parquet", {},
                                        name, se_col)])
    exp, sched = ps.get("expected_collections_amount"), ps.get("scheduled_collections_amount")
    if exp is not None and sched:
        rows.append([["expected / scheduled collections"], [shown(exp / sched, "percent", decimals=2,
                                                                  derived="ratio")]])
    return Table([[("pool and enhancement", 1), ("", 1)]], rows, caption="Pool statistics (pool_summary.parquet)",
                 notes=["Trigger probabilities: the trigger was in force at least once before the legal final."])


def summary_appendix(run: RunFolder) -> Table:
    """Every column of ``summary.parquet``, one row each (columns the page does not know included)."""
    s = run.summary
    rows: list[list[Cell]] = []
    for col in s.columns:
        if col == "tranche" or (col.endswith("_se") and col[:-3] in s.columns):
            continue
        row: list[Cell] = [[col]]
        se_col = col + "_se" if col + "_se" in s.columns else None
        for _, r in s.iterrows():
            value = r[col]
            if isinstance(value, (str, bool, np.bool_)) or value is None or isinstance(value, (list, np.ndarray)):
                row.append([shown(value if not isinstance(value, (list, np.ndarray)) else str(list(value)), "text",
                                  source="summary.parquet", key={"tranche": r["tranche"]}, column=col)])
            else:
                unit = "amount" if col.endswith("_amount") else "plain"
                row.append(estimate(value, r[se_col] if se_col else None, unit, "summary.parquet",
                                     {"tranche": r["tranche"]}, col, se_col))
        rows.append(row)
    return Table([[("column", 1)] + [(str(t), 1) for t in s["tranche"]]], rows, wide=True, numeric=True,
                 caption="summary.parquet as stored (fractions unless the name ends in _amount)")


def generic_table(run: RunFolder, name: str, limit: int = GENERIC_ROWS) -> Table:
    """Any table of the folder: its scalar columns, the first ``limit`` rows, numbers ± their ``_se``."""
    frame = run.table(name)
    scalar = [c for c in frame.columns if not frame[c].map(lambda v: isinstance(v, (list, np.ndarray))).any()]
    shown_cols = [c for c in scalar if not (c.endswith("_se") and c[:-3] in frame.columns)]
    rows: list[list[Cell]] = []
    for i, (_, r) in enumerate(frame.head(limit).iterrows()):
        row: list[Cell] = [[str(i + 1)]]
        for c in shown_cols:
            v = r[c]
            key = {"__row__": i}
            if isinstance(v, (str, bool, np.bool_)) or v is None:
                row.append([shown(v, "text", source=f"{name}.parquet", key=key, column=c)])
            else:
                se_col = c + "_se" if c + "_se" in frame.columns else None
                unit = "amount" if c.endswith("_amount") else "plain"
                row.append(estimate(v, r[se_col] if se_col else None, unit, f"{name}.parquet", key, c, se_col))
        rows.append(row)
    notes = []
    if len(frame) > limit:
        notes.append(f"First {limit} of {len(frame):,} rows shown.")
    lists = [c for c in frame.columns if c not in scalar]
    if lists:
        notes.append("List columns not shown: " + ", ".join(lists) + ".")
    return Table([[("row", 1)] + [(c, 1) for c in shown_cols]], rows, caption=f"{name}.parquet", notes=notes,
                 wide=True)


LEDGER_DEAL = (("collections_amount", "collections"), ("fees_paid_amount", "fees"),
               ("cumulative_default_rate", "cum. default rate"), ("dscr", "DSCR"),
               ("reserve_start_amount", "reserve start"),
               ("reserve_end_amount", "reserve end"), ("commitment_draw_amount", "commitment draw"),
               ("guarantee_draw_amount", "guarantee draw"), ("liquidity_draw_amount", "liquidity draw"),
               ("commitment_claim_amount", "commitment owed"), ("guarantee_claim_amount", "guarantee owed"),
               ("liquidity_claim_amount", "liquidity owed"), ("residual_amount", "residual"))
# shown only where the path has them (a deal without a liquidity facility, a path no provider paid)
LEDGER_IF_ANY = ("liquidity_draw_amount", "commitment_claim_amount", "guarantee_claim_amount",
                 "liquidity_claim_amount")
LEDGER_TRANCHE = (("interest_due_amount", "int. due"), ("interest_paid_amount", "int. paid"),
                  ("interest_carried_amount", "int. carried"), ("principal_paid_amount", "principal"),
                  ("balance_amount", "balance"))
EFFECTS = (("sequential", "seq"), ("trap", "trap"), ("accelerated", "accel"), ("early_amortisation", "early am."),
           ("called", "called"))


def worst_path_blocks(run: RunFolder) -> list:
    """For each tranche, its worst path's story (pool events, triggers, providers) and ledger."""
    wp = run.table("worst_paths")
    src = "worst_paths.parquet"
    pp = run.table("pool_paths") if run.has("pool_paths") else None
    tranche_names = list(dict.fromkeys(c.split(".")[0] for c in wp.columns if "." in c))
    blocks: list = [Text("For each tranche the path with its largest loss (then largest interest shortfall, then "
                         "PV loss), replayed period by period through the waterfall. Amounts in millions; "
                         "'effects' lists the trigger effects in force (seq: sequential principal, trap: cash "
                         "trapped in the reserve, accel: accelerated amortisation, early am.: early amortisation, "
                         "called: clean-up call exercised); 'owed': a reimbursed provider's claim outstanding.")]
    for worst_for, g in wp.groupby("worst_for", sort=False):
        g = g.sort_values("period")
        path = int(g["path"].iloc[0])
        key0 = {"worst_for": worst_for, "period": int(g["period"].iloc[0])}
        loss = shown(g["path_loss_fraction"].iloc[0], "percent", decimals=2, source=src, key=key0,
                     column="path_loss_fraction")
        facts: list[list[Cell]] = [[["path"], [shown(path, "id", source=src, key=key0, column="path")]],
                                   [[f"loss of {worst_for}"], [loss]]]
        if pp is not None and path < len(pp) and int(pp["path"].iloc[path]) == path:
            r = pp.iloc[path]
            for col, label in (("licensee_defaults", "licensees in default by the legal final"),
                               ("obsolete_technologies", "technologies obsolete"),
                               ("invalidations", "licences invalidated"),
                               ("collections_amount", "collections"), ("pool_loss_fraction", "pool loss")):
                if col in pp.columns:
                    unit = "amount" if col.endswith("_amount") else "percent" if col.endswith("fraction") else "count"
                    facts.append([[label], [shown(r[col], unit, source="pool_paths.parquet", key={"path": path},
                                                  column=col, decimals=2 if unit != "count" else None)]])
            fired = [c.removeprefix("trigger_") for c in pp.columns if c.startswith("trigger_") and bool(r[c])]
            facts.append([["triggers in force at some period"], [", ".join(fired) or "none"]])
            flags = [c for c in pp.columns if c.endswith(("_needed", "_provider_failed")) and bool(r[c])]
            facts.append([["providers"], [", ".join(f.replace("_", " ") for f in flags) or "not needed"]])
        blocks.append(Table([], facts, caption=f"Worst path for {worst_for}"))
        if float(g["path_loss_fraction"].iloc[0]) == 0:
            blocks.append(Note(f"No path lost principal of {worst_for}: the ledger shows the path with its largest "
                               "interest shortfall or PV loss (path 0 if none had any).", "info"))
        deal_cols = [(c, label) for c, label in LEDGER_DEAL
                     if c in g.columns and (c not in LEDGER_IF_ANY or (g[c] != 0).any())]
        tr_cols = [(t, c, label) for t in tranche_names for c, label in LEDGER_TRANCHE if f"{t}.{c}" in g.columns]
        deal_rows = []
        tranche_rows: dict[str, list] = {t: [] for t in tranche_names}
        for _, r in g.iterrows():
            key = {"worst_for": worst_for, "period": int(r["period"])}
            row: list[Cell] = [[str(int(r["period"]))]]
            for c, _ in deal_cols:
                unit = {"cumulative_default_rate": "percent", "dscr": "multiple"}.get(c, "millions")
                row.append([shown(r[c], unit, source=src, key=key, column=c,
                                  decimals={"percent": 1, "multiple": 2}.get(unit, 3))])
            row.append([", ".join(short for e, short in EFFECTS if e in g.columns and r[e] > 0) or "—"])
            deal_rows.append(row)
            for t in tranche_names:
                tranche_rows[t].append([[str(int(r["period"]))]] + [
                    [shown(r[f"{t}.{c}"], "millions", source=src, key=key, column=f"{t}.{c}", decimals=3)]
                    for x, c, _ in tr_cols if x == t])
        blocks.append(Table([[("period", 1)] + [(label, 1) for _, label in deal_cols] + [("effects", 1)]], deal_rows,
                            wide=True, caption=f"Path {path}: the deal by period (m; default rate in %)"))
        blocks.append(Grid([Table([[("period", 1)] + [(label, 1) for x, _, label in tr_cols if x == t]],
                                  tranche_rows[t], wide=True, caption=f"Path {path}: {t} by period (m)")
                            for t in tranche_names]))
    if not len(wp):
        blocks.append(Note("worst_paths.parquet has no rows.", "missing"))
    return blocks


__all__ = ["ANALYSIS_TABLES", "CORE_TABLES", "estimate", "generic_table", "manifest_value",
           "pool_statistics_table", "summary_appendix", "tranche_table", "worst_path_blocks"]
