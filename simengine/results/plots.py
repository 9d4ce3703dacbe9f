"""Figures, built with the object-oriented matplotlib API (no pyplot state, nothing leaks)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


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
