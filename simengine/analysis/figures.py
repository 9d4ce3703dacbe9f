"""Figures of the analysis tables (matplotlib's object-oriented API: a Figure each, no pyplot state)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..stats import Z95


def _label(text, width: int = 40) -> str:
    """A label the default font can draw: ASCII (others shown as '?'), at most ``width`` characters."""
    text = str(text).encode("ascii", "replace").decode()
    return text if len(text) <= width else text[:width - 3] + "..."


def _grid(n: int, width: float = 5.0, height: float = 3.2, cols: int = 2) -> tuple[Figure, list]:
    cols = max(1, min(cols, n))
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n)]
    return fig, axes


def breakeven_figure(table: pd.DataFrame, title: str = "") -> Figure:
    """One panel per driver: the breakeven of each tranche, basis and criterion with its 95% Monte
    Carlo band; the base value dashed; a tranche that does not break within the range drawn to its
    end and marked '>'."""
    drivers = [d for d in dict.fromkeys(table["driver"]) if (table["driver"] == d).any()]
    fig, axes = _grid(max(1, len(drivers)), height=0.45 * table.groupby("driver").size().max() + 1.2)
    for ax, d in zip(axes, drivers):
        g = table[table["driver"] == d].reset_index(drop=True)
        labels = [_label(f"{r.tranche} {r.basis}: {r.criterion}") for r in g.itertuples()]
        y = np.arange(len(g))
        for i, r in enumerate(g.itertuples()):
            if r.status == "found":
                err = Z95 * r.breakeven_se if np.isfinite(r.breakeven_se) else 0.0
                ax.barh(i, r.breakeven, xerr=err, color="C0" if r.basis == "enhanced" else "C1", alpha=0.8)
            elif r.status == "not_broken_in_range":
                ax.barh(i, r.range_hi, color="0.85", hatch="//")
                ax.text(r.range_hi, i, " >", va="center")
            elif r.status == "broken_in_whole_range":
                ax.text(r.base_value, i, " broken at every value in range", va="center", fontsize=7)
        if len(g) and np.isfinite(g["base_value"].iloc[0]):
            ax.axvline(g["base_value"].iloc[0], color="k", ls="--", lw=1)
        ax.set_yticks(y, labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(d, fontsize=9)
    fig.suptitle(_label(title, 100) or "Breakevens (95% Monte Carlo band; dashed: base)", fontsize=10)
    return fig


def tornado_figure(table: pd.DataFrame, statistic: str = "el", title: str = "") -> Figure:
    """Change of each tranche's ``statistic`` (el or pd) when each driver moves down and up, one
    panel per tranche and basis, drivers sorted by impact; whiskers are 95% paired bands."""
    groups = list(table.groupby(["tranche", "basis"], sort=False))
    fig, axes = _grid(max(1, len(groups)), height=0.4 * table["driver"].nunique() + 1.4)
    for ax, ((tranche, basis), g) in zip(axes, groups):
        wide = g.pivot_table(index="driver", columns="side", values=[f"{statistic}_change", f"{statistic}_change_se"],
                             aggfunc="first")
        impact = wide[f"{statistic}_change"].abs().max(axis=1).sort_values()
        y = np.arange(len(impact))
        for side, color in (("down", "C0"), ("up", "C3")):
            if side not in wide[f"{statistic}_change"]:
                continue
            values = wide[f"{statistic}_change"][side].reindex(impact.index)
            errors = Z95 * wide[f"{statistic}_change_se"][side].reindex(impact.index)
            ax.barh(y, values, xerr=errors, color=color, alpha=0.75, label=side)
        ax.axvline(0.0, color="k", lw=0.8)
        ax.set_yticks(y, list(impact.index), fontsize=8)
        ax.set_title(_label(f"{tranche} ({basis}): change in {statistic.upper()}", 60), fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(_label(title, 100) or "Sensitivity (common random numbers; 95% paired bands)", fontsize=10)
    return fig


def stresses_figure(table: pd.DataFrame, title: str = "") -> Figure:
    """Largest-obligor test: each tranche's loss as the k largest licensees default, one panel per timing."""
    lo = table[table["test"] == "largest_obligor"]
    timings = list(dict.fromkeys(lo["timing"]))
    fig, axes = _grid(max(1, len(timings)))
    for ax, timing in zip(axes, timings):
        g = lo[lo["timing"] == timing]
        for (tranche, basis), h in g.groupby(["tranche", "basis"], sort=False):
            ax.plot(h["k"], h["loss_fraction"], marker="o", ls="-" if basis == "enhanced" else ":",
                    label=_label(f"{tranche} {basis}"))
        ax.set_xlabel("largest licensees defaulted (k)")
        ax.set_ylabel("loss fraction")
        ax.set_title(f"timing {timing} (period {g['period'].iloc[0]})", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(_label(title, 100) or "Largest-obligor test (expected path otherwise)", fontsize=10)
    return fig


def contributions_figure(table: pd.DataFrame, n: int = 10, title: str = "") -> Figure:
    """The ``n`` largest EL contributions of each tranche and basis with 95% bands."""
    groups = [(key, g) for key, g in table.groupby(["tranche", "basis"], sort=False) if g["el"].iloc[0] > 0]
    fig, axes = _grid(max(1, len(groups)), height=0.3 * n + 1.4)
    for ax, ((tranche, basis), g) in zip(axes, groups):
        g = g.sort_values("el_contribution", ascending=False).head(n)[::-1]
        y = np.arange(len(g))
        ax.barh(y, g["el_contribution"], xerr=Z95 * g["el_contribution_se"], color="C2", alpha=0.8)
        ax.set_yticks(y, [_label(x, 28) for x in g["licensee"]], fontsize=7)
        ax.set_title(_label(f"{tranche} ({basis}): EL {g['el'].iloc[0]:.3g}", 60), fontsize=9)
    fig.suptitle(_label(title, 100) or "Contributions to tranche EL (Euler allocation of the pool shortfall)",
                 fontsize=10)
    return fig


def provider_cost_figure(table: pd.DataFrame, title: str = "") -> Figure:
    """P(drawn) by year for each provider kind, with 95% bands."""
    drawn = table[table["statistic"] == "p_drawn"]
    items = list(dict.fromkeys(drawn["item"]))
    fig, axes = _grid(max(1, len(items)))
    for ax, item in zip(axes, items):
        g = drawn[drawn["item"] == item]
        ax.bar(g["year"].astype(int), g["value"], yerr=Z95 * g["se"], color="C4", alpha=0.8)
        ax.set_xlabel("year")
        ax.set_ylabel("P(drawn)")
        ax.set_title(item, fontsize=9)
    fig.suptitle(_label(title, 100) or "Provider draws by year", fontsize=10)
    return fig
