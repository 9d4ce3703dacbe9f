"""Figures, built with the object-oriented matplotlib API (no pyplot state, nothing leaks).

Each figure of the committee pack is a function of a :class:`~simengine.results.RunFolder`
returning a :class:`~matplotlib.figure.Figure`; :data:`RUN_FIGURES` names them for
``simengine plot --kind`` and the report. A figure whose table is missing from the folder raises
:class:`MissingData` naming it, so the report can say what is missing instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import ScenarioError
from ..plan import compile_plan
from ..scenario import Scenario
from ..stats import weighted_quantiles
from .run_folder import RunFolder

BASES = (("", "enhanced"), ("standalone_", "standalone"))
FAN_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
MOODYS_SCALE = ("Aaa", "Aa1", "Aa2", "Aa3", "A1", "A2", "A3", "Baa1", "Baa2", "Baa3", "Ba1", "Ba2", "Ba3",
                "B1", "B2", "B3", "Caa1", "Caa2", "Caa3", "Ca", "C")
SP_SCALE = ("AAA", "AA+", "AA", "AA-", "A+", "A", "A-", "BBB+", "BBB", "BBB-", "BB+", "BB", "BB-", "B+", "B", "B-",
            "CCC+", "CCC", "CCC-", "CCC/C", "CC", "C", "D")
SP_LETTERS = ("AAA", "AA", "A", "BBB", "BB", "B", "CCC/C")  # the grades of the shipped S&P-style table


class MissingData(LookupError):
    """A figure's data is not in the run folder (the message names the table or column)."""


def _need(run: RunFolder, *tables: str) -> None:
    missing = [t for t in tables if not run.has(t)]
    if missing:
        raise MissingData(", ".join(f"{t}.parquet" for t in missing))


def _read(run: RunFolder, table: str, columns: list[str]) -> pd.DataFrame:
    """Columns of a table, or :class:`MissingData` naming what the folder lacks."""
    _need(run, table)
    missing = [c for c in columns if c not in run.columns(table)]
    if missing:
        raise MissingData(", ".join(f"{table}.{c}" for c in missing))
    return run.table(table, columns)


def _need_columns(frame: pd.DataFrame, table: str, *columns: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MissingData(", ".join(f"{table}.{c}" for c in missing))


def _title(fig: Figure, run: RunFolder, what: str) -> None:
    fig.suptitle(f"{run.scenario_name}\n{what}", fontsize=10)


def _sampling_note(run: RunFolder) -> str:
    vr = run.variance_reduction
    return f"{run.paths:,} paths" + ("" if vr == "none" else f", {vr} sampling (weighted)")


# ------------------------------------------------------------------------------------- the pool
@dataclass(frozen=True)
class PoolTable:
    """The run's pool: one row per licence, and its scheduled royalties by period.

    licences : DataFrame with id, licensee, industry, region, technology, ip_type, royalty,
        royalty_type, pd_annual, rating, scheduled_amount (to the legal final)
    schedule : ndarray(float64), shape (licences, periods)   scheduled royalty per payment date
    periods_per_year : int
    """

    licences: pd.DataFrame
    schedule: np.ndarray
    periods_per_year: int


def pool_table(run: RunFolder) -> PoolTable:
    """The pool of a run, from the resolved scenario in its manifest, scheduled as the engine
    schedules it (the compiled plan's licence periods, so expiry and end periods count).

    Raises :class:`MissingData` where the manifest has no resolved scenario, or it no longer loads
    (a pool file that moved, a scenario this version of simengine does not accept)."""
    if "resolved_scenario" not in run.manifest:
        raise MissingData("manifest.json's resolved_scenario")
    try:
        sc = Scenario.from_dict(run.manifest["resolved_scenario"],
                                source=str(run.manifest.get("scenario_file", "")))
        plan = compile_plan(sc)
    except (ScenarioError, OSError) as exc:
        raise MissingData(f"a pool that loads from manifest.json's resolved scenario "
                          f"({str(exc).splitlines()[0]})") from None
    lic = pd.DataFrame([licence.model_dump() for licence in sc.licences])
    lic["licensee"] = lic["licensee"].fillna(lic["id"])
    pool = plan.pool
    schedule = np.zeros((len(lic), plan.periods))
    for i in range(len(lic)):
        schedule[i, pool.licence_start[i]:pool.licence_last[i] + 1] = pool.licence_royalty[i]
    lic["scheduled_amount"] = pool.licence_scheduled_amount
    return PoolTable(lic, schedule, int(sc.model.deal.periods_per_year))


def stratification_figure(run: RunFolder) -> Figure:
    """Scheduled royalties by industry, technology, region, IP type and licensee (shares of the pool)."""
    pool = pool_table(run)
    lic = pool.licences
    total = lic["scheduled_amount"].sum()
    fig = Figure(figsize=(10, 6.2), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    for ax, by in zip(axes, ("industry", "technology", "region", "ip_type", "licensee")):
        share = lic.groupby(by)["scheduled_amount"].sum().sort_values(ascending=False) / total
        if by == "licensee" and len(share) > 12:  # many obligors: the concentration curve says more than bars
            top = np.cumsum(share.to_numpy()) * 100
            k = np.arange(1, len(top) + 1)
            ax.plot(k, top, color="C0")
            ax.plot(k, k / len(k) * 100, color="grey", linestyle=":", label="equal shares")
            marks = [n for n in (1, 5, 10, 20) if n <= len(top)]
            ax.plot(marks, top[np.array(marks) - 1], "o", color="C0", ms=3)
            ax.text(0.03, 0.97, "\n".join(f"largest {n}: {top[n - 1]:.1f}%" for n in marks), transform=ax.transAxes,
                    va="top", fontsize=7, bbox=dict(facecolor="white", alpha=0.8, edgecolor="none"))
            ax.set_xlabel("largest k licensees", fontsize=8)
            ax.set_ylabel("% of scheduled royalties", fontsize=8)
            ax.set_title(f"licensee concentration ({len(share)} licensees)", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7, loc="lower right")
            continue
        if len(share) > 12:
            share = pd.concat([share.iloc[:11], pd.Series({f"{len(share) - 11} others": share.iloc[11:].sum()})])
        labels = [str(s) if len(str(s)) <= 28 else str(s)[:26] + "…" for s in share.index]
        ax.barh(np.arange(len(share)), share.to_numpy() * 100, color="C0", height=0.7)
        ax.set_yticks(np.arange(len(share)), labels, fontsize=7)
        ax.set_ylim(max(len(share), 5) - 0.5, -0.5)  # bars keep one thickness however few there are
        ax.set_xlabel("% of scheduled royalties", fontsize=8)
        ax.set_title(by.replace("_", " "), fontsize=9)
        ax.grid(True, axis="x", alpha=0.3)
    ax = axes[-1]
    pd_col = lic["pd_annual"].astype(float)
    ax.scatter(lic["scheduled_amount"] / total * 100, pd_col * 100, s=14, color="C1")
    ax.set_xlabel("% of scheduled royalties", fontsize=8)
    ax.set_ylabel("licensee annual PD (%)", fontsize=8)
    ax.set_title("licensee PD against size", fontsize=9)
    ax.grid(True, alpha=0.3)
    _title(fig, run, f"pool stratification: {len(lic)} licences, scheduled royalties {total / 1e6:,.1f} m "
                     f"{run.manifest['resolved_scenario']['deal']['currency']}")
    return fig


def royalty_schedule_figure(run: RunFolder) -> Figure:
    """Scheduled royalties by period, stacked by industry, against expected collections (5–95% band)."""
    pool = pool_table(run)
    lic = pool.licences
    periods = np.arange(1, pool.schedule.shape[1] + 1)
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax = fig.add_subplot()
    industries = lic.groupby("industry")["scheduled_amount"].sum().sort_values(ascending=False).index
    stacks = [pool.schedule[(lic["industry"] == ind).to_numpy()].sum(axis=0) / 1e6 for ind in industries]
    ax.stackplot(periods, stacks, labels=[str(i) for i in industries], alpha=0.75, step="mid")
    if run.has("cashflows"):
        cf = run.table("cashflows")
        col = cf[(cf["tranche"] == "deal") & (cf["item"] == "collections_amount")].sort_values("period")
        if len(col):
            ax.plot(col["period"], col["mean"] / 1e6, color="black", marker="o", ms=3, label="expected collections")
            ax.plot(col["period"], col["q05"] / 1e6, color="black", linestyle=":", label="collections 5% and 95%")
            ax.plot(col["period"], col["q95"] / 1e6, color="black", linestyle=":")
    ax.set_xlabel(f"payment date (period; {pool.periods_per_year} a year)")
    ax.set_ylabel(f"{run.manifest['resolved_scenario']['deal']['currency']} m per period")
    ax.set_xlim(periods[0] - 0.5, periods[-1] + 0.5)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    _title(fig, run, "royalty schedule (scheduled, stacked by industry) and simulated collections")
    return fig


# ------------------------------------------------------------------------------------ losses
def loss_curves_figure(curves: dict, summary, title: str, paths: int, sampling: str = "none") -> Figure:
    """Loss exceedance P(L > x) per tranche, enhanced (solid) and standalone (dashed).

    curves : {(tranche, basis): (x, probability, standard error)}
    sampling : the run's variance reduction, for the title
    """
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.add_subplot()
    # importance sampling reaches probabilities far below 1 / paths: the axis follows the data
    smallest = min((p[p > 0].min() for _, p, _ in curves.values() if (p > 0).any()), default=1.0 / paths)
    floor = 0.5 * min(smallest, 1.0 / paths)
    tranches = list(dict.fromkeys(t for t, _ in curves))
    colours = {t: f"C{i}" for i, t in enumerate(tranches)}
    for (tranche, basis), (x, prob, se) in curves.items():
        xs, ps = x, prob  # P(L > x) is constant from one observed loss to the next
        ok = ps > 0
        if not ok.any():
            continue
        style = "-" if basis == "enhanced" else "--"
        label = f"{tranche} ({basis})"
        ax.step(xs[ok], ps[ok], where="post", linestyle=style, color=colours[tranche], label=label)
        if basis == "enhanced":
            lo = np.clip(ps - 1.96 * se, floor, 1)
            hi = np.clip(ps + 1.96 * se, floor, 1)
            ax.fill_between(xs[ok], lo[ok], hi[ok], step="post", alpha=0.15, color=colours[tranche], linewidth=0)
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.set_xlim(0, 1)
    ax.set_xlabel("loss (fraction of original tranche balance)")
    ax.set_ylabel("P(loss > x)")
    how = "" if sampling == "none" else f", {sampling} sampling (weighted paths)"
    ax.set_title(f"{title}\ntranche loss exceedance, {paths:,} paths{how}\nband: 95% Monte Carlo interval",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no tranche lost on any path", transform=ax.transAxes, ha="center")
    return fig


def loss_curves(run: RunFolder) -> Figure:
    """:func:`loss_curves_figure` of a run folder (``loss_exceedance.parquet``)."""
    _need(run, "loss_exceedance", "summary")
    return loss_curves_figure(run.exceedance_curves(), run.summary, run.scenario_name, run.paths,
                              run.variance_reduction)


def loss_histograms(run: RunFolder) -> Figure:
    """Per tranche: the weighted distribution of the loss fraction given a loss, both bases, and P(no loss)."""
    _need(run, "tranche_losses")
    tl = _read(run, "tranche_losses", ["tranche", "weight", "loss_fraction", "standalone_loss_fraction"])
    tranches = list(dict.fromkeys(tl["tranche"]))
    fig = Figure(figsize=(10, 2.6 * len(tranches) + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(tranches), 1, sharex=True))
    edges = np.linspace(0.0, 1.0, 41)
    for ax, tranche in zip(axes, tranches):
        g = tl[tl["tranche"] == tranche]
        w = g["weight"].to_numpy()
        total = w.sum()
        notes = []
        for (prefix, basis), style in zip(BASES, (dict(histtype="stepfilled", alpha=0.45), dict(histtype="step"))):
            loss = g[prefix + "loss_fraction"].to_numpy()
            hit = loss > 0
            notes.append(f"P(no loss) {basis} {(w[~hit].sum() / total):.4g}")
            if hit.any():
                ax.hist(np.clip(loss[hit], 1e-12, 1.0), bins=edges, weights=w[hit] / total, label=basis,
                        color="C0" if basis == "enhanced" else "C3", linewidth=1.2, **style)
        ax.set_yscale("log")
        ax.set_ylabel("probability per 2.5% bin", fontsize=8)
        ax.set_title(f"{tranche}: loss given a loss; " + ", ".join(notes), fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no loss on any path", transform=ax.transAxes, ha="center")
    axes[-1].set_xlabel("loss (fraction of original tranche balance)")
    axes[-1].set_xlim(0, 1)
    _title(fig, run, f"tranche loss distributions, {_sampling_note(run)}")
    return fig


def default_counts(run: RunFolder) -> Figure:
    """Distribution of the number of licensee defaults by the legal final (weighted)."""
    _need(run, "pool_paths")
    pp = _read(run, "pool_paths", ["weight", "licensee_defaults"])
    w = pp["weight"].to_numpy()
    k = pp["licensee_defaults"].to_numpy().astype(int)
    mass = np.bincount(k, weights=w) / w.sum()
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.add_subplot()
    xs = np.arange(len(mass))
    ax.bar(xs[mass > 0], mass[mass > 0], color="C0")
    mean = float((w * k).sum() / w.sum())
    ax.axvline(mean, color="C3", linestyle="--", label=f"mean {mean:.3g}")
    ax.set_yscale("log")
    ax.set_xlabel("licensees in default by the legal final")
    ax.set_ylabel("probability")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _title(fig, run, f"default-count distribution, {_sampling_note(run)}")
    return fig


def _fan(ax, periods, matrix, w, scale=1.0, colour="C0", label=""):
    """Weighted 5/25/50/75/95% bands and mean of ``matrix`` (paths, periods) by period."""
    q = np.array([weighted_quantiles(matrix[:, p], w, FAN_LEVELS) for p in range(matrix.shape[1])]) * scale
    mean = (w[:, None] * matrix).sum(axis=0) / w.sum() * scale
    ax.fill_between(periods, q[:, 0], q[:, 4], color=colour, alpha=0.15, step="mid", linewidth=0,
                    label=f"{label}5–95%")
    ax.fill_between(periods, q[:, 1], q[:, 3], color=colour, alpha=0.3, step="mid", linewidth=0,
                    label=f"{label}25–75%")
    ax.step(periods, q[:, 2], where="mid", color=colour, label=f"{label}median")
    ax.plot(periods, mean, color=colour, linestyle="--", marker=".", label=f"{label}mean")


def loss_timing(run: RunFolder) -> Figure:
    """Loss timing: the pool's cumulative default fraction by period (fan), and per tranche the
    probability that its first shortfall has happened by each period (both bases)."""
    _need(run, "pool_paths", "tranche_losses")
    pp = _read(run, "pool_paths", ["weight", "cumulative_default_fraction"])
    w = pp["weight"].to_numpy()
    cum = np.stack(pp["cumulative_default_fraction"].to_numpy()).astype(float)
    periods = np.arange(1, cum.shape[1] + 1)
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    _fan(left, periods, cum, w, scale=100.0)
    left.set_xlabel("period")
    left.set_ylabel("licensees in default (% of licensees)")
    left.set_title("cumulative licensee defaults", fontsize=9)
    left.grid(True, alpha=0.3)
    left.legend(fontsize=7, loc="upper left")
    tl = _read(run, "tranche_losses", ["tranche", "weight", "first_shortfall_period",
                                      "standalone_first_shortfall_period"])
    for i, tranche in enumerate(dict.fromkeys(tl["tranche"])):
        g = tl[tl["tranche"] == tranche]
        tw = g["weight"].to_numpy()
        for (prefix, basis), style in zip(BASES, ("-", "--")):
            first = g[prefix + "first_shortfall_period"].to_numpy(dtype=float)
            first = np.where(np.isfinite(first) & (first > 0), first, np.inf)
            p = np.array([(tw * (first <= t)).sum() for t in periods]) / tw.sum()
            right.step(periods, p * 100, where="post", linestyle=style, color=f"C{i}", label=f"{tranche} ({basis})")
    right.set_xlabel("period")
    right.set_ylabel("P(first shortfall by period) (%)")
    right.set_title("tranche shortfall timing (interest or principal short of contract)", fontsize=9)
    right.grid(True, alpha=0.3)
    right.legend(fontsize=7)
    _title(fig, run, f"loss timing, {_sampling_note(run)}")
    return fig


# -------------------------------------------------------------------------------- cash flows
def _cashflows(run: RunFolder) -> pd.DataFrame:
    _need(run, "cashflows")
    cf = run.table("cashflows")
    _need_columns(cf, "cashflows", "period", "tranche", "item", "mean", "q05", "q50", "q95")
    return cf


def _band(ax, cf, owner, item, colour, label, scale=1e-6):
    g = cf[(cf["tranche"] == owner) & (cf["item"] == item)].sort_values("period")
    if not len(g):
        return False
    ax.fill_between(g["period"], g["q05"] * scale, g["q95"] * scale, color=colour, alpha=0.15, linewidth=0)
    ax.plot(g["period"], g["mean"] * scale, color=colour, marker=".", label=f"{label} mean (5–95% band)")
    ax.plot(g["period"], g["q50"] * scale, color=colour, linestyle=":", linewidth=1)
    return True


def cashflow_fans(run: RunFolder) -> Figure:
    """Expected cash flows per tranche over time (balance; interest and principal paid; provider
    draws) and the deal's collections, reserve and residual: means with 5–95% bands."""
    cf = _cashflows(run)
    owners = [o for o in dict.fromkeys(cf["tranche"]) if o != "deal"] + ["deal"]
    panels = {"deal": (("collections_amount", "fees_paid_amount"), ("reserve_end_amount",), ("residual_amount",)),
              None: (("balance_amount",), ("interest_paid_amount", "principal_paid_amount"),
                     ("commitment_draw_amount", "guarantee_draw_amount"))}
    titles = {"deal": ("collections, fees", "reserve (end of period)", "residual to originator"),
              None: ("balance", "interest and principal paid", "provider draws")}
    fig = Figure(figsize=(10, 2.3 * len(owners) + 0.7), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(owners), 3, sharex=True))
    currency = run.manifest.get("resolved_scenario", {}).get("deal", {}).get("currency", "")
    for row, owner in zip(axes, owners):
        kind = "deal" if owner == "deal" else None
        for ax, items, title in zip(row, panels[kind], titles[kind]):
            drawn = [_band(ax, cf, owner, item, f"C{j}", item.removesuffix("_amount").replace("_", " "))
                     for j, item in enumerate(items)]
            ax.set_title(f"{owner}: {title}", fontsize=8)
            ax.grid(True, alpha=0.3)
            ax.tick_params(labelsize=7)
            if any(drawn):
                ax.legend(fontsize=6)
        row[0].set_ylabel(f"{currency} m", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("period", fontsize=8)
    n = int(cf["sample_paths"].iloc[0]) if "sample_paths" in cf.columns and len(cf) else run.paths
    _title(fig, run, f"expected cash flows by period (means, dotted medians, 5–95% bands; first {n:,} paths)")
    return fig


def triggers_providers(run: RunFolder) -> Figure:
    """By period: probability that each trigger effect is active, the cumulative default rate the
    triggers read (with their thresholds), and expected provider draws."""
    cf = _cashflows(run)
    deal = cf[cf["tranche"] == "deal"]
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    a, b, c = fig.subplots(1, 3)
    for j, (flag, style, width) in enumerate((("sequential", "-", 4.0), ("trap", "-", 1.5),
                                              ("accelerated", "--", 1.5))):
        g = deal[deal["item"] == flag].sort_values("period")
        if len(g):  # acceleration implies sequential principal: the lines may coincide
            a.step(g["period"], g["mean"] * 100, where="mid", color=f"C{j}", linestyle=style, linewidth=width,
                   alpha=0.6 if flag == "sequential" else 1.0, label=flag)
    a.set_ylabel("P(effect active) (%)", fontsize=8)
    a.set_title("trigger effects in force", fontsize=9)
    _band(b, cf, "deal", "cumulative_default_rate", "C0", "cumulative default rate", scale=100.0)
    triggers = run.manifest.get("resolved_scenario", {}).get("structure", {}).get("triggers") or []
    for t in triggers:
        if t.get("metric") == "cumulative_default_rate":
            b.axhline(100 * float(t["threshold"]), color="C3", linestyle="--", label=f"{t['name']} threshold")
    b.set_ylabel("% of scheduled royalties", fontsize=8)
    b.set_title("cumulative default rate (trigger metric)", fontsize=9)
    pool = run.pool_summary if run.has("pool_summary") else {}
    for j, kind in enumerate(("commitment", "guarantee")):
        g = deal[deal["item"] == f"{kind}_draw_amount"].sort_values("period")
        if len(g):
            p = pool.get(f"p_{kind}_drawn")
            extra = f" (P(drawn) {p:.3g})" if p is not None else ""
            c.plot(g["period"], g["mean"] / 1e6, marker=".", color=f"C{j}", label=f"{kind}{extra}")
    c.set_ylabel("expected draw (m per period)", fontsize=8)
    c.set_title("provider draws", fontsize=9)
    for ax in (a, b, c):
        ax.set_xlabel("period", fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    n = int(cf["sample_paths"].iloc[0]) if "sample_paths" in cf.columns and len(cf) else run.paths
    _title(fig, run, f"triggers and providers by period (first {n:,} paths)")
    return fig


# ----------------------------------------------------------------------------------- ratings
def _position(symbol: str, scale: tuple[str, ...]) -> float:
    if symbol in scale:
        return float(scale.index(symbol))
    if symbol.startswith("below "):
        return _position(symbol.removeprefix("below "), scale) + 1.0
    return float("nan")


def rating_figure(run: RunFolder) -> Figure:
    """Implied ratings per tranche and basis, with the notch range the 95% interval spans."""
    _need(run, "summary")
    s = run.summary
    seen = {part for c in s.columns if "rating_sp" in c for v in s[c].astype(str) for part in v.split(" .. ")}
    sp_scale = tuple(g for g in SP_SCALE if g in SP_LETTERS or g in seen)  # notches only where a table has them
    fig = Figure(figsize=(10, 1.1 + 0.55 * 2 * len(s)), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (col, scale, what) in zip(axes, (("rating_moodys", MOODYS_SCALE, "Moody's-style, from EL at WAL"),
                                             ("rating_sp", sp_scale, "S&P-style, from PD to legal final"))):
        labels, y = [], 0
        used = []
        for _, row in s.iterrows():
            for j, (prefix, basis) in enumerate(BASES):
                rating = row.get(prefix + col)
                span = str(row.get(prefix + col + "_range", rating)).split(" .. ")
                ends = [_position(x, scale) for x in span] + [_position(str(rating), scale)]
                ends = [e for e in ends if np.isfinite(e)]
                if ends:
                    ax.plot([min(ends), max(ends)], [y, y], color=f"C{j}", linewidth=6, alpha=0.35,
                            solid_capstyle="round")
                    used += ends
                pos = _position(str(rating), scale)
                if np.isfinite(pos):
                    ax.plot(pos, y, "o", color=f"C{j}")
                labels.append(f"{row['tranche']} ({basis})")
                y += 1
        lo = int(max(0, min(used, default=0) - 1))
        hi = int(min(len(scale) + 1, max(used, default=len(scale) - 1) + 2))
        ticks = np.arange(lo, hi)
        ax.set_xticks(ticks, [scale[t] if t < len(scale) else f"below {scale[-1]}" for t in ticks],
                      rotation=90, fontsize=7)
        ax.set_yticks(np.arange(len(labels)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(lo - 0.5, hi - 0.5)
        ax.set_title(what, fontsize=9)
        ax.grid(True, axis="x", alpha=0.3)
    _title(fig, run, "implied ratings: dot the estimate, bar the range its 95% interval spans")
    return fig


# --------------------------------------------------------------------------------------- batch
def batch_figure(table: pd.DataFrame, base: str, title: str) -> Figure:
    """Per tranche: each scenario's EL, enhanced and standalone (95% intervals), and its difference to
    ``base`` (paired 95% intervals where the scenarios share paths).

    table : one row per (scenario_id, tranche) with el, el_se, delta_el, delta_el_se and the same for
        standalone_el
    """
    tranches = list(dict.fromkeys(table["tranche"]))
    scenarios = list(dict.fromkeys(table["scenario_id"]))
    fig = Figure(figsize=(10, 1.2 + (0.45 + 0.36 * len(scenarios)) * len(tranches)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(tranches), 2, squeeze=False))
    y = np.arange(len(scenarios))
    bases = (("el", "enhanced", "o", "C0", -0.15), ("standalone_el", "standalone", "s", "C3", 0.15))
    for (left, right), tranche in zip(axes, tranches):
        g = table[table["tranche"] == tranche].set_index("scenario_id").reindex(scenarios)
        for stat, label, marker, colour, dy in bases:
            if stat not in g.columns:
                continue
            left.errorbar(g[stat] * 100, y + dy, xerr=1.96 * g[f"{stat}_se"].fillna(0) * 100, fmt=marker,
                          color=colour, mfc="white" if label == "standalone" else colour, capsize=3, label=label)
            right.barh(y + dy, g[f"delta_{stat}"].fillna(0) * 100, height=0.28, color=colour, alpha=0.45,
                       label=label)
            right.errorbar(g[f"delta_{stat}"] * 100, y + dy, xerr=1.96 * g[f"delta_{stat}_se"].fillna(0) * 100,
                           fmt="none", color="black", capsize=2)
        right.axvline(0, color="black", linewidth=0.8)
        left.set_title(f"{tranche}: EL (% of balance), 95% interval", fontsize=9)
        right.set_title(f"{tranche}: EL minus {base}'s (points), 95% interval", fontsize=9)
        for ax in (left, right):
            ax.set_yticks(y, scenarios, fontsize=7)
            ax.set_ylim(len(scenarios) - 0.5, -0.5)
            ax.grid(True, axis="x", alpha=0.3)
            ax.tick_params(axis="x", labelsize=7)
        left.legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    return fig


@dataclass(frozen=True)
class FigureKind:
    """One figure of the report: its function, caption and the tables it reads."""

    make: Callable[[RunFolder], Figure]
    caption: str
    tables: tuple[str, ...]


RUN_FIGURES: dict[str, FigureKind] = {
    "loss-curves": FigureKind(loss_curves, "Loss exceedance per tranche: P(loss > x) on a log axis, enhanced "
                              "(solid, 95% band) and standalone (dashed).", ("loss_exceedance",)),
    "loss-histograms": FigureKind(loss_histograms, "Loss given a loss per tranche, enhanced and standalone; "
                                  "the title gives P(no loss).", ("tranche_losses",)),
    "default-counts": FigureKind(default_counts, "Number of licensees in default by the legal final.",
                                 ("pool_paths",)),
    "loss-timing": FigureKind(loss_timing, "Left: cumulative licensee defaults by period (fan of 5/25/50/75/95% "
                              "and mean). Right: probability that each tranche has had its first shortfall "
                              "(interest or principal short of contract, before provider draws for "
                              "principal) by each period.", ("pool_paths", "tranche_losses")),
    "cashflows": FigureKind(cashflow_fans, "Expected cash flows per tranche and for the deal by period: mean "
                            "(line), median (dotted), 5–95% band.", ("cashflows",)),
    "triggers-providers": FigureKind(triggers_providers, "Trigger effects in force, the cumulative default rate "
                                     "against trigger thresholds, and expected provider draws, by period.",
                                     ("cashflows",)),
    "ratings": FigureKind(rating_figure, "Implied ratings with the notch range spanned by the 95% interval of "
                          "EL (Moody's-style) and PD (S&P-style).", ("summary",)),
    "stratification": FigureKind(stratification_figure, "Scheduled royalties by industry, technology, region, "
                                 "IP type and licensee; licensee PD against size.", ()),
    "royalty-schedule": FigureKind(royalty_schedule_figure, "Scheduled royalties by period stacked by industry, "
                                   "with simulated collections (mean; dotted: 5% and 95% quantiles).", ()),
}
