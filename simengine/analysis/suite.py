"""The committee's analyses by name: compute one, write its table (with provenance) and figure.

Used by the command line (one analysis per subcommand) and by batches (``--analyses``), so a
run folder holds ``breakevens``, ``sensitivity``, ``deterministic_stresses``, ``contributions``
(with ``concentration``) and ``provider_cost`` beside the run's own tables.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from ..engine import RunSpec
from .breakeven import breakevens
from .contributions import concentration, contributions
from .drivers import check_known
from .figures import (
    breakeven_figure,
    contributions_figure,
    provider_cost_figure,
    stresses_figure,
    tornado_figure,
)
from .provider_cost import provider_cost
from .runs import write_analysis
from .sensitivity import sensitivity
from .stresses import deterministic_stresses

log = logging.getLogger("simengine")

ANALYSES = ("breakevens", "sensitivity", "deterministic_stresses", "contributions", "provider_cost")


def check_analyses(names) -> list[str]:
    """``names`` as a list of analyses; raises AnalysisInputError naming the first unknown one."""
    return check_known(names, ANALYSES, "analysis")


def run_analysis(name: str, spec: RunSpec, out: str | Path | None, options: dict | None = None,
                 plot: bool = True) -> pd.DataFrame:
    """Compute analysis ``name`` on ``spec`` with ``options`` (keyword arguments of its function;
    ``paths`` is the paths re-run) and, where ``out`` is given, write ``out/<name>.parquet`` and its
    figure. Returns the table."""
    check_analyses([name])
    options = dict(options or {})
    t0 = time.perf_counter()
    paths = options.get("paths") or spec.paths
    figure = None
    if name == "breakevens":
        table = breakevens(spec, **options)
        figure = breakeven_figure(table, f"{spec.scenario.name}: breakevens") if plot else None
    elif name == "sensitivity":
        table = sensitivity(spec, **options)
        figure = tornado_figure(table, title=f"{spec.scenario.name}: sensitivity of EL") if plot else None
    elif name == "deterministic_stresses":
        options.pop("paths", None)
        table = deterministic_stresses(spec, **options)
        paths = 1
        figure = stresses_figure(table, f"{spec.scenario.name}: largest-obligor test") if plot else None
    elif name == "contributions":
        table = contributions(spec, **options)
        figure = contributions_figure(table, title=f"{spec.scenario.name}: contributions to EL") if plot else None
        if out is not None:
            write_analysis(out, "concentration", concentration(spec.plan), spec, {}, 0)
    else:
        table = provider_cost(spec, **options)
        figure = provider_cost_figure(table, f"{spec.scenario.name}: provider draws") if plot else None
    seconds = time.perf_counter() - t0
    log.info("%s: %s on %d paths in %.1fs", spec.scenario.name, name, paths, seconds)
    if out is not None:
        options = {**options, "seconds": seconds}
        write_analysis(out, name, table, spec, options, paths, figure)
    return table


def run_analyses(spec: RunSpec, out: str | Path, names, paths: int | None = None) -> dict[str, pd.DataFrame]:
    """Every analysis of ``names`` with its defaults (``paths``: the paths each re-runs, default the
    run's) into ``out``. Returns {name: table}."""
    return {name: run_analysis(name, spec, out, {"paths": paths} if paths else None)
            for name in check_analyses(names)}
