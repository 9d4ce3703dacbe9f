"""Command line: ``simengine validate|run|batch|sweep|plot``. Thin; kernels are imported only
when something is simulated.

Exit codes: 0 ok, 2 bad input, 1 failure (for a batch: 1 if any scenario failed, else 2 if any
was bad input).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
# subcommand -> the analysis (table) it writes
ANALYSIS_COMMANDS = {"breakeven": "breakevens", "sensitivity": "sensitivity", "stresses": "deterministic_stresses",
                     "contributions": "contributions", "provider-cost": "provider_cost"}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own exit code is already 2; keep its wording
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number > 0")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 0 <= seed < 2**63")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``simengine`` argument parser (every subcommand)."""
    parser = _Parser(prog="simengine", description="Monte Carlo risk engine for IP royalty securitisations.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("validate", help="check scenario files without simulating")
    p.add_argument("files", nargs="+", help="scenario TOML files")

    p = sub.add_parser("run", help="simulate one scenario and write its run folder")
    p.add_argument("file", help="scenario TOML file")
    p.add_argument("--paths", type=_positive_int, help="number of Monte Carlo paths (default: the scenario's)")
    p.add_argument("--seed", type=_seed, help="random seed (default: the scenario's)")
    p.add_argument("--out", help="run folder (default: results/<scenario file stem>)")
    p.add_argument("--threads", type=_positive_int, help="numba threads (results do not depend on it)")
    p.add_argument("--chunk-paths", type=_positive_int, help="paths per chunk; sets memory, not results")
    p.add_argument("--no-plot", action="store_true", help="skip loss_curves.png")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--variance-reduction", choices=["none", "importance", "antithetic", "importance+antithetic"],
                   help="sampling measure (default: the scenario's [simulation] variance_reduction)")
    p.add_argument("--tranche", help="tranche that importance sampling and --target-rse aim at (default: the first)")
    p.add_argument("--target-rse", type=_positive_float,
                   help="add chunks until the tranche's PD has this relative standard error (e.g. 0.1)")
    p.add_argument("--max-paths", type=_positive_int, default=10_000_000,
                   help="path cap for --target-rse (default 10,000,000)")

    p = sub.add_parser("batch", help="run many scenarios into one batch folder; resumable, on Dask if asked")
    p.add_argument("inputs", nargs="+", metavar="FILES|DIR|GLOB",
                   help="scenario files, folders (their *.toml) or quoted globs")
    _batch_options(p, "results/batch-<first input's name>")

    p = sub.add_parser("sweep", help="run a grid of overrides of one scenario as a batch")
    p.add_argument("file", help="scenario TOML file")
    p.add_argument("--set", dest="sets", action="append", required=True, metavar="KEY=V1,V2,...",
                   help="a dotted key and its values (TOML: 0.3, 2, true, \"BB\"); repeat for a grid, "
                        "e.g. --set risk.default.pd_multiplier=1,2,3 --set risk.correlation.global=0.15,0.35")
    _batch_options(p, "results/sweep-<file stem>")

    p = sub.add_parser("plot", help="draw loss exceedance curves of a run folder to PNG")
    p.add_argument("run_dir", help="a folder written by `simengine run`")
    p.add_argument("--out", help="PNG path (default: RUN_DIR/loss_curves.png)")
    _analysis_parsers(sub)
    return parser


def _analysis_parsers(sub) -> None:
    """The committee's analyses (issue 14): breakeven, sensitivity, stresses, contributions, provider-cost."""
    p = sub.add_parser("breakeven", help="driver values at which each tranche first loses or leaves its grade")
    _analysis_options(p)
    p.add_argument("--driver", action="append", metavar="NAME[,NAME...]",
                   help="pd_multiplier, obsolescence_multiplier, royalty_decline, demand_drift, correlation, "
                        "relicense_haircut, provider_pd_multiplier (default: all; repeat or comma-separate)")
    p.add_argument("--tranche", action="append", metavar="NAME[,NAME...]", help="default: every tranche")
    p.add_argument("--basis", choices=["enhanced", "standalone", "both"], default="both")
    p.add_argument("--criterion", action="append", metavar="first_loss|rating|el",
                   help="first_loss (PD > --pd-tolerance), rating (below --target-rating), el (EL > --el-target); "
                        "default first_loss and rating")
    p.add_argument("--pd-tolerance", type=_positive_float, default=1e-4, help="PD at which a tranche 'loses' (1e-4)")
    p.add_argument("--el-target", type=_positive_float, help="EL at which a tranche breaks (criterion el)")
    p.add_argument("--rating-scale", choices=["moodys", "sp"], default="moodys",
                   help="moodys: EL at the WAL; sp: PD at the legal final (default moodys)")
    p.add_argument("--target-rating", help="grade a tranche must keep (default: its grade in the base run)")
    p.add_argument("--range", dest="ranges", action="append", metavar="DRIVER=LO,HI",
                   help="search range of a driver (an end left empty keeps the default), e.g. pd_multiplier=,8")
    p.add_argument("--rtol", type=_positive_float, default=0.01, help="relative width of the final bracket (0.01)")

    p = sub.add_parser("sensitivity", help="tornado: each driver down and up, change in EL and PD (paired)")
    _analysis_options(p)
    p.add_argument("--driver", action="append", metavar="NAME[,NAME...]",
                   help="default: pd_multiplier, obsolescence_multiplier, royalty_decline, correlation, "
                        "relicense_haircut, provider_pd_multiplier (those that act on the deal)")
    p.add_argument("--shock", dest="shocks", action="append", metavar="DRIVER=DOWN,UP",
                   help="signed moves added to the driver's base value, e.g. pd_multiplier=-0.5,1 (0.5x, 2x)")

    p = sub.add_parser("stresses", help="deterministic: largest-obligor test and breakeven default rate")
    _analysis_options(p, paths=False)
    p.add_argument("--largest", type=_positive_int, help="largest k licensees to default (default min(10, pool))")
    p.add_argument("--timing", action="append", metavar="front|back|PERIOD",
                   help="largest-obligor default timing (default front and back: period 1, periods // 2 + 1)")
    p.add_argument("--bdr-timing", action="append", metavar="front|back|even|PERIOD",
                   help="BDR default timing (default front, back and even)")
    p.add_argument("--recovery", type=float, help="re-licensing recovery of every licence (default: its mean)")

    p = sub.add_parser("contributions", help="obligor concentration and contributions to tranche EL and ES")
    _analysis_options(p)
    p.add_argument("--top", type=_positive_int, default=20, help="licensees listed one by one (default 20)")
    p.add_argument("--level", type=_positive_float, default=0.99, help="ES level of tail contributions (0.99)")

    p = sub.add_parser("provider-cost", help="provider draw amounts and their PV, residual, equity IRR")
    _analysis_options(p)
    p.add_argument("--equity-tranche", help="the originator's tranche (default: the most junior)")


def _analysis_options(p: argparse.ArgumentParser, paths: bool = True) -> None:
    p.add_argument("target", metavar="FILE|RUN_DIR", help="a scenario file, or a run folder (its paths and measure)")
    if paths:
        p.add_argument("--paths", type=_positive_int,
                       help="paths re-run per variant (default: the run's; for FILE, the scenario's)")
    p.add_argument("--seed", type=_seed, help="random seed of a FILE's base run (default: the scenario's)")
    p.add_argument("--out", help="folder for the table and figure (default: RUN_DIR, or results/<file stem>)")
    p.add_argument("--threads", type=_positive_int, help="numba threads (results do not depend on it)")
    p.add_argument("--no-plot", action="store_true", help="skip the figure")


def _batch_options(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("--out", help=f"batch folder (default: {default_out})")
    p.add_argument("--resume", action="store_true",
                   help="continue the batch in --out: finished scenarios and chunks are skipped")
    p.add_argument("--scheduler", metavar="local|ADDRESS",
                   help="run on Dask: 'local' starts a LocalCluster on this machine; an address "
                        "(tcp://host:8786) uses that cluster, whose workers must see --out at the same path")
    p.add_argument("--paths", type=_positive_int, help="Monte Carlo paths of every scenario (default: each one's)")
    p.add_argument("--seed", type=_seed, help="random seed of every scenario (default: each one's)")
    p.add_argument("--chunk-paths", type=_positive_int, help="paths per chunk; sets memory, not results")
    p.add_argument("--analyses", metavar="NAME[,NAME...]",
                   help="analyses run on each scenario as it finishes: breakevens, sensitivity, "
                        "deterministic_stresses, contributions, provider_cost (default: none)")
    p.add_argument("--analysis-paths", type=_positive_int, help="paths each analysis re-runs (default: the run's)")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 failure, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return EXIT_OK
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    handler = {"validate": _validate, "run": _run, "batch": _batch, "sweep": _sweep, "plot": _plot,
               **{name: _analysis for name in ANALYSIS_COMMANDS}}[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted; no output was left looking complete", file=sys.stderr)
        return EXIT_FAILURE


def _invalid(exc) -> None:
    for line in str(exc).splitlines():
        print(f"INVALID {line}", file=sys.stderr)


def _validate(args) -> int:
    from .errors import ScenarioError
    from .scenario import load_scenario

    worst = EXIT_OK
    for file in args.files:
        try:
            sc = load_scenario(file)
        except ScenarioError as exc:
            _invalid(exc)
            worst = EXIT_BAD_INPUT
            continue
        print(f"ok {file}: {sc.name}, {len(sc.licences)} licences, {sc.periods} periods, "
              f"{len(sc.model.structure.tranches)} tranches")
    return worst


def _run(args) -> int:
    from .errors import ScenarioError
    from .scenario import load_scenario

    try:
        sc = load_scenario(args.file)
    except ScenarioError as exc:
        _invalid(exc)
        return EXIT_BAD_INPUT
    out = Path(args.out) if args.out else Path("results") / Path(args.file).stem
    if args.target_rse is not None and args.paths is not None:
        print("INVALID --paths: with --target-rse the run decides its paths; expected --max-paths for the cap",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    if out.exists() and not out.is_dir():
        print(f"INVALID {out}: --out is a file; expected a folder", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        from ._io import atomic_figure
        from .simulation import simulate

        paths = args.max_paths if args.target_rse is not None else args.paths
        res = simulate(sc, paths=paths, seed=args.seed, chunk_paths=args.chunk_paths,
                       threads=args.threads, progress=not args.quiet, variance_reduction=args.variance_reduction,
                       tranche=args.tranche, target_rse=args.target_rse)
        res.to_parquet(out)
        if not args.no_plot:
            atomic_figure(out / "loss_curves.png", res.plot_loss_curves())
    except ScenarioError as exc:
        _invalid(exc)
        return EXIT_BAD_INPUT
    except Exception as exc:  # a failure is reported, and the run folder says it failed
        traceback.print_exc()
        if out.exists():
            from ._io import atomic_json

            atomic_json(out / "manifest.json",
                        {"status": "failed", "error": repr(exc), "scenario_file": str(args.file)})
        return EXIT_FAILURE
    _print_summary(res, out)
    return EXIT_OK


def _batch(args) -> int:
    from .batch import BatchInputError, default_out, file_jobs

    try:
        jobs = file_jobs(args.inputs)
    except BatchInputError as exc:
        _invalid(exc)
        return EXIT_BAD_INPUT
    return _run_batch(args, jobs, Path(args.out) if args.out else default_out(args.inputs, "batch"))


def _sweep(args) -> int:
    from .batch import BatchInputError, default_out, sweep_jobs
    from .errors import ScenarioError
    from .scenario import load_scenario

    try:
        load_scenario(args.file)  # a bad base file is bad input for every point: say it once
        jobs = sweep_jobs(args.file, args.sets)
    except (ScenarioError, BatchInputError) as exc:
        _invalid(exc)
        return EXIT_BAD_INPUT
    return _run_batch(args, jobs, Path(args.out) if args.out else default_out([args.file], "sweep"))


def _run_batch(args, jobs, out: Path) -> int:
    from .analysis.suite import ANALYSES
    from .batch import Batch, BatchInputError

    analyses = _names([args.analyses]) if args.analyses else []
    unknown = [a for a in analyses if a not in ANALYSES]
    if unknown:
        print(f"INVALID --analyses {unknown[0]!r}: expected one of {', '.join(ANALYSES)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        batch = Batch(jobs, out, resume=args.resume, scheduler=args.scheduler, paths=args.paths, seed=args.seed,
                      chunk_paths=args.chunk_paths, argv=sys.argv[1:], analyses=analyses,
                      analysis_paths=args.analysis_paths)
        code = batch.run()
    except BatchInputError as exc:
        _invalid(exc)
        return EXIT_BAD_INPUT
    rows = list(batch.rows.values())
    width = max(len(r["scenario_id"]) for r in rows) if rows else 0
    for r in rows:
        seconds = f"{r['total_seconds']:.1f}s" if r.get("total_seconds") is not None else ""
        error = (r["error"] or "").splitlines()[0] if r.get("error") else ""
        print(f"{r['status']:<9} {r['scenario_id']:<{width}} {seconds:>8}  {error}".rstrip())
    c = batch.counts()
    print(f"batch {batch.batch_id}: {c['ok']} ok, {c['bad_input']} bad input, {c['failed']} failed -> {batch.out}")
    return code


def _print_summary(res, out: Path) -> None:
    import pandas as pd

    s = res.summary
    cols = ["tranche", "pd", "pd_se", "pd_vr", "el", "el_se", "wal_years", "rating_moodys", "rating_moodys_range",
            "rating_sp", "rating_sp_range", "standalone_pd", "standalone_el", "standalone_rating_moodys"]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3g}".format):
        print(s[cols].to_string(index=False))
    if res.stop is not None:
        st = res.stop
        verdict = ("reached" if st["reached"] else f"NOT reached: path cap {res.spec.paths:,} hit")
        print(f"target: {st['tranche']} PD relative standard error {st['rse']:.3g} <= {st['target_rse']:g} "
              f"{verdict} after {st['paths']:,} paths")
    ess = s["ess_kish"].iloc[0]
    print(f"sampling: {res.spec.sampling_info['variance_reduction']}, global factor mean "
          f"{res.sampling.global_shift:.3g}, chi2 scale {res.sampling.chi2_scale:.3g}; "
          f"Kish effective sample size {ess:,.0f}")
    t = res.timings
    print(f"{res.paths:,} paths, seed {res.seed}: simulate {t['simulate_seconds']:.2f}s "
          f"(compile {t['compile_seconds']:.2f}s apart) -> {out}")


def _plot(args) -> int:
    from ._io import atomic_figure
    from .results import RunFolder, RunFolderError
    from .results.plots import loss_curves_figure

    try:
        run = RunFolder(args.run_dir)
    except RunFolderError as exc:
        print(f"INVALID {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    fig = loss_curves_figure(run.exceedance_curves(), run.summary, run.scenario_name, run.paths,
                             run.variance_reduction)
    target = Path(args.out) if args.out else run.path / "loss_curves.png"
    atomic_figure(target, fig, fmt="png")
    print(f"wrote {target}")
    return EXIT_OK


# ------------------------------------------------------------------------------------- analyses
def _names(values) -> list[str] | None:
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
        return {"drivers": _names(args.driver), "tranches": _names(args.tranche),
                "bases": ("enhanced", "standalone") if args.basis == "both" else (args.basis,),
                "criteria": tuple(_names(args.criterion) or ("first_loss", "rating")),
                "pd_tolerance": args.pd_tolerance, "el_target": args.el_target, "rating_scale": args.rating_scale,
                "target_rating": args.target_rating, "ranges": _pairs(args.ranges, "--range"), "rtol": args.rtol,
                "paths": paths}
    if args.command == "sensitivity":
        shocks = _pairs(args.shocks, "--shock")
        if any(None in pair for pair in shocks.values()):
            raise ValueError("--shock: expected both moves, e.g. pd_multiplier=-0.5,1")
        return {"drivers": _names(args.driver), "shocks": shocks, "paths": paths}
    if args.command == "stresses":
        return {"max_k": args.largest, "lo_timings": tuple(_names(args.timing) or ("front", "back")),
                "bdr_timings": tuple(_names(args.bdr_timing) or ("front", "back", "even")), "recovery": args.recovery}
    if args.command == "contributions":
        return {"top": args.top, "level": args.level, "paths": paths}
    return {"equity_tranche": args.equity_tranche, "paths": paths}


def _analysis(args) -> int:
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
        _invalid(exc)
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
