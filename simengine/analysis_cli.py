"""The committee's analyses on the command line (issue 14): ``breakeven``, ``sensitivity``,
``stresses``, ``contributions``, ``provider-cost``. Argparse and printing only."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from .cli_args import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, invalid, positive_float, positive_int, seed_arg

# subcommand -> the analysis (table) it writes
ANALYSIS_COMMANDS = {"breakeven": "breakevens", "sensitivity": "sensitivity", "stresses": "deterministic_stresses",
                     "contributions": "contributions", "provider-cost": "provider_cost"}


def analysis_parsers(sub) -> None:
    """The committee's analyses (issue 14): breakeven, sensitivity, stresses, contributions, provider-cost."""
    p = sub.add_parser("breakeven", help="driver values at which each tranche first loses or leaves its grade")
    analysis_options(p)
    p.add_argument("--driver", action="append", metavar="NAME[,NAME...]",
                   help="pd_multiplier, obsolescence_multiplier, royalty_decline, demand_drift, correlation, "
                        "relicense_haircut, provider_pd_multiplier (default: all; repeat or comma-separate)")
    p.add_argument("--tranche", action="append", metavar="NAME[,NAME...]", help="default: every tranche")
    p.add_argument("--basis", choices=["enhanced", "standalone", "both"], default="both")
    p.add_argument("--criterion", action="append", metavar="first_loss|rating|el",
                   help="first_loss (PD > --pd-tolerance), rating (below --target-rating), el (EL > --el-target); "
                        "default first_loss and rating")
    p.add_argument("--pd-tolerance", type=positive_float, default=1e-4, help="PD at which a tranche 'loses' (1e-4)")
    p.add_argument("--el-target", type=positive_float, help="EL at which a tranche breaks (criterion el)")
    p.add_argument("--rating-scale", choices=["moodys", "sp"], default="moodys",
                   help="moodys: EL at the WAL; sp: PD at the legal final (default moodys)")
    p.add_argument("--target-rating", help="grade a tranche must keep (default: its grade in the base run)")
    p.add_argument("--range", dest="ranges", action="append", metavar="DRIVER=LO,HI",
                   help="search range of a driver (an end left empty keeps the default), e.g. pd_multiplier=,8")
    p.add_argument("--rtol", type=positive_float, default=0.01, help="relative width of the final bracket (0.01)")

    p = sub.add_parser("sensitivity", help="tornado: each driver down and up, change in EL and PD (paired)")
    analysis_options(p)
    p.add_argument("--driver", action="append", metavar="NAME[,NAME...]",
                   help="default: pd_multiplier, obsolescence_multiplier, royalty_decline, correlation, "
                        "relicense_haircut, provider_pd_multiplier (those that act on the deal)")
    p.add_argument("--shock", dest="shocks", action="append", metavar="DRIVER=DOWN,UP",
                   help="signed moves added to the driver's base value, e.g. pd_multiplier=-0.5,1 (0.5x, 2x)")

    p = sub.add_parser("stresses", help="deterministic: largest-obligor test and breakeven default rate")
    analysis_options(p, paths=False)
    p.add_argument("--largest", type=positive_int, help="largest k licensees to default (default min(10, pool))")
    p.add_argument("--timing", action="append", metavar="front|back|PERIOD",
                   help="largest-obligor default timing (default front and back: period 1, periods // 2 + 1)")
    p.add_argument("--bdr-timing", action="append", metavar="front|back|even|PERIOD",
                   help="BDR default timing (default front, back and even)")
    p.add_argument("--recovery", type=float, help="re-licensing recovery of every licence (default: its mean)")

    p = sub.add_parser("contributions", help="obligor concentration and contributions to tranche EL and ES")
    analysis_options(p)
    p.add_argument("--top", type=positive_int, default=20, help="licensees listed one by one (default 20)")
    p.add_argument("--level", type=positive_float, default=0.99, help="ES level of tail contributions (0.99)")

    p = sub.add_parser("provider-cost", help="provider draw amounts and their PV, residual, equity IRR")
    analysis_options(p)
    p.add_argument("--equity-tranche", help="the originator's tranche (default: the most junior)")


def analysis_options(p: argparse.ArgumentParser, paths: bool = True) -> None:
    """The options every analysis subcommand shares."""
    p.add_argument("target", metavar="FILE|RUN_DIR", help="a scenario file, or a run folder (its paths and measure)")
    if paths:
        p.add_argument("--paths", type=positive_int,
                       help="paths re-run per variant (default: the run's; for FILE, the scenario's)")
    p.add_argument("--seed", type=seed_arg, help="random seed of a FILE's base run (default: the scenario's)")
    p.add_argument("--out", help="folder for the table and figure (default: RUN_DIR, or results/<file stem>)")
    p.add_argument("--threads", type=positive_int, help="numba threads (results do not depend on it)")
    p.add_argument("--no-plot", action="store_true", help="skip the figure")


def names(values) -> list[str] | None:
    """Repeated and comma-separated option values as one list (None where none were given)."""
    return [x.strip() for v in values for x in v.split(",") if x.strip()] if values else None


def _pairs(values, what: str) -> dict:
    """``KEY=A,B`` options as {key: (a, b)} of floats (an empty side is None)."""
    out = {}
    for text in values or []:
        key, sep, rest = text.partition("=")
        parts = rest.split(",")
        try:
            if not sep or len(parts) != 2:
                raise ValueError
            out[key.strip()] = tuple(float(p) if p.strip() else None for p in parts)
        except ValueError:
            raise ValueError(f"{what} {text!r}: expected DRIVER=A,B with numbers A and B") from None
    return out


def _analysis_options_of(args) -> dict:
    """The keyword arguments of the subcommand's analysis."""
    paths = getattr(args, "paths", None)
    if args.command == "breakeven":
        return {"drivers": names(args.driver), "tranches": names(args.tranche),
                "bases": ("enhanced", "standalone") if args.basis == "both" else (args.basis,),
                "criteria": tuple(names(args.criterion) or ("first_loss", "rating")),
                "pd_tolerance": args.pd_tolerance, "el_target": args.el_target, "rating_scale": args.rating_scale,
                "target_rating": args.target_rating, "ranges": _pairs(args.ranges, "--range"), "rtol": args.rtol,
                "paths": paths}
    if args.command == "sensitivity":
        shocks = _pairs(args.shocks, "--shock")
        if any(None in pair for pair in shocks.values()):
            raise ValueError("--shock: expected both moves, e.g. pd_multiplier=-0.5,1")
        return {"drivers": names(args.driver), "shocks": shocks, "paths": paths}
    if args.command == "stresses":
        return {"max_k": args.largest, "lo_timings": tuple(names(args.timing) or ("front", "back")),
                "bdr_timings": tuple(names(args.bdr_timing) or ("front", "back", "even")), "recovery": args.recovery}
    if args.command == "contributions":
        return {"top": args.top, "level": args.level, "paths": paths}
    return {"equity_tranche": args.equity_tranche, "paths": paths}


def analysis(args) -> int:
    """Run the subcommand's analysis on a scenario file or a run folder; returns the exit code."""
    from . import _jit
    from .analysis import spec_from_run
    from .analysis.drivers import AnalysisInputError
    from .analysis.suite import run_analysis
    from .errors import ScenarioError
    from .results import RunFolder, RunFolderError
    from .scenario import load_scenario
    from .simulation import prepare

    name = ANALYSIS_COMMANDS[args.command]
    target = Path(args.target)
    try:
        options = _analysis_options_of(args)
        if target.is_dir():
            if args.seed is not None:
                raise ValueError("--seed: a run folder keeps its own seed; expected no --seed with RUN_DIR")
            spec = spec_from_run(RunFolder(target))
            out = Path(args.out) if args.out else target
        else:
            sc = load_scenario(target)
            _jit.set_threads(args.threads)
            spec = prepare(sc, paths=getattr(args, "paths", None), seed=args.seed)
            out = Path(args.out) if args.out else Path("results") / target.stem
        if out.exists() and not out.is_dir():
            raise ValueError(f"{out}: --out is a file; expected a folder")
    except ScenarioError as exc:
        invalid(exc)
        return EXIT_BAD_INPUT
    except (RunFolderError, ValueError, FileNotFoundError) as exc:
        print(f"INVALID {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    _jit.set_threads(args.threads)
    try:
        table = run_analysis(name, spec, out, options, plot=not args.no_plot)
    except AnalysisInputError as exc:
        print(f"INVALID {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception:
        traceback.print_exc()
        return EXIT_FAILURE
    _print_analysis(name, table)
    print(f"wrote {out / (name + '.parquet')}" + ("" if args.no_plot else f" and {name}.png"))
    return EXIT_OK


def _print_analysis(name: str, table) -> None:
    import pandas as pd

    views = {
        "breakevens": ["driver", "tranche", "basis", "criterion", "status", "breakeven", "breakeven_se", "bracket_lo",
                       "bracket_hi", "headroom", "grade_at_base"],
        "sensitivity": ["driver", "side", "value", "tranche", "basis", "el_base", "el_change", "el_change_se",
                        "pd_change", "pd_change_se"],
        "contributions": ["tranche", "basis", "licensee", "royalty_share", "el_contribution", "el_contribution_se",
                          "el_contribution_share", "es_contribution"],
        "provider_cost": ["item", "statistic", "year", "value", "se"],
    }
    if name == "deterministic_stresses":
        lo = table[table["test"] == "largest_obligor"]
        view = lo.groupby(["timing", "tranche", "basis"], sort=False)["largest_k_survived"].first().reset_index()
        bdr = table[table["test"] == "bdr"][["timing", "tranche", "basis", "breakeven_default_rate"]]
        frames = [("largest-obligor test: largest k survived", view), ("breakeven default rate", bdr)]
    elif name == "contributions":
        from .analysis.contributions import top_contributors

        frames = [("top five contributors", top_contributors(table)[views[name]])]
    else:
        frames = [("", table[views[name]])]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 200,
                           "display.max_colwidth", 40, "display.float_format", "{:.4g}".format):
        for title, frame in frames:
            if title:
                print(title)
            print(frame.to_string(index=False))
    if name == "sensitivity":
        t = table.attrs.get("timings", {})
        print(f"{t.get('variants', 0)} variants on {t.get('paths', 0):,} paths: {t.get('total_seconds', 0):.1f}s "
              f"(base run {t.get('base_seconds', 0):.2f}s)")
