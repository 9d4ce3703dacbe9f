"""Command line: ``simengine validate|run|batch|sweep|plot|report``. Thin; kernels are imported only
when something is simulated.

Exit codes: 0 ok, 2 bad input, 1 failure (for a batch: 1 if any scenario failed, else 2 if any
was bad input).
"""

from __future__ import annotations

import argparse
import errno
import gc
import logging
import os
import shutil
import signal
import sys
import traceback
from pathlib import Path

from .analysis_cli import ANALYSIS_COMMANDS, analysis, analysis_parsers, names
from .cli_args import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, Parser, invalid, positive_float, positive_int, seed_arg

ALLOW_ENV = "SIMENGINE_ALLOW_PATHS"  # read by simengine.scenario.load
# the figures `plot --kind` draws: results.plots.RUN_FIGURES and the batch chart (named here so that
# --help imports no plotting; a test keeps the two lists equal)
PLOT_KINDS = ("loss-curves", "loss-histograms", "default-counts", "loss-timing", "cashflows", "triggers-providers",
              "ratings", "stratification", "royalty-schedule")
BATCH_PLOT_KINDS = ("batch-comparison",)


def build_parser() -> argparse.ArgumentParser:
    """The ``simengine`` argument parser (every subcommand)."""
    parser = Parser(prog="simengine", description="Monte Carlo risk engine for IP royalty securitisations.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)

    p = sub.add_parser("validate", help="check scenario files without simulating")
    p.add_argument("files", nargs="+", help="scenario TOML files")
    _allow_path(p)

    p = sub.add_parser("run", help="simulate one scenario and write its run folder")
    p.add_argument("file", help="scenario TOML file")
    _allow_path(p)
    p.add_argument("--paths", type=positive_int, help="number of Monte Carlo paths (default: the scenario's)")
    p.add_argument("--seed", type=seed_arg, help="random seed (default: the scenario's)")
    p.add_argument("--out", help="run folder (default: results/<scenario file stem>)")
    p.add_argument("--threads", type=positive_int, help="numba threads (results do not depend on it)")
    p.add_argument("--chunk-paths", type=positive_int, help="paths per chunk; sets memory, not results")
    p.add_argument("--no-plot", action="store_true", help="skip loss_curves.png")
    p.add_argument("--attribution-paths", type=positive_int,
                   help="paths the channel attribution re-runs with each driver off (default: a tenth of the "
                        "paths, at least 10,000, at most 50,000)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished run in --out (the old run stays until the new one is complete)")
    p.add_argument("--allow-long", action="store_true",
                   help="run even when the estimated simulation time is over a day")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--variance-reduction", choices=["none", "importance", "antithetic", "importance+antithetic"],
                   help="sampling measure (default: the scenario's [simulation] variance_reduction)")
    p.add_argument("--tranche", help="tranche that importance sampling and --target-rse aim at (default: the first)")
    p.add_argument("--target-rse", type=positive_float,
                   help="add chunks until the tranche's PD has this relative standard error (e.g. 0.1)")
    p.add_argument("--max-paths", type=positive_int, default=10_000_000,
                   help="path cap for --target-rse (default 10,000,000)")
    p.add_argument("--rating-tables", metavar="sp[,moodys]",
                   help="implied-rating tables to report: sp (S&P 2024, verified; the default) and/or moodys "
                        "(derived EL table, shown with its provenance)")

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

    p = sub.add_parser("plot", help="draw one figure of the committee pack (default: loss exceedance curves) "
                                    "to PNG or SVG")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by `simengine run` (or a batch folder for "
                                                      "--kind batch-comparison)")
    p.add_argument("--out", help="SVG if it ends in .svg, else PNG (default: RUN_DIR/loss_curves.png for "
                                 "loss-curves, else RUN_DIR/<kind>.png)")
    p.add_argument("--kind", metavar="KIND", help="the figure: " + ", ".join(PLOT_KINDS + BATCH_PLOT_KINDS)
                   + " (default: loss-curves; batch-comparison for a batch folder)")
    p.add_argument("--base", help="batch-comparison: the scenario id differences are taken against")

    p = sub.add_parser("report", help="write the committee pack: one self-contained HTML page of a run folder, or "
                                      "the comparison page of a batch folder")
    p.add_argument("folder", metavar="RUN_DIR|BATCH_DIR",
                   help="a folder written by `simengine run` or `simengine batch`")
    p.add_argument("--out", metavar="FILE.html", help="the HTML file (default: FOLDER/report.html)")
    p.add_argument("--pdf", action="store_true", help="also print it to FILE.pdf with headless Chromium")
    p.add_argument("--base", help="batch: the scenario id differences are taken against (default: 'base', else the "
                                  "first finished scenario)")
    p.add_argument("--figures", choices=["svg", "png"], default="svg", help="embedded figure format (default svg)")
    analysis_parsers(sub)
    return parser


def _allow_path(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-path", action="append", default=[], metavar="DIR",
                   help="a folder outside the scenario's folder tree that extends / pool.file may name "
                        f"(repeatable; also the environment variable {ALLOW_ENV})")


def _batch_options(p: argparse.ArgumentParser, default_out: str) -> None:
    _allow_path(p)
    p.add_argument("--out", help=f"batch folder (default: {default_out})")
    p.add_argument("--resume", action="store_true",
                   help="continue the batch in --out: finished scenarios and chunks are skipped")
    p.add_argument("--scheduler", metavar="local|ADDRESS",
                   help="run on Dask: 'local' starts a LocalCluster on this machine; an address "
                        "(tcp://host:8786) uses that cluster, whose workers must see --out at the same path")
    p.add_argument("--paths", type=positive_int, help="Monte Carlo paths of every scenario (default: each one's)")
    p.add_argument("--seed", type=seed_arg, help="random seed of every scenario (default: each one's)")
    p.add_argument("--chunk-paths", type=positive_int, help="paths per chunk; sets memory, not results")
    p.add_argument("--analyses", metavar="NAME[,NAME...]",
                   help="analyses run on each scenario as it finishes: breakevens, sensitivity, "
                        "deterministic_stresses, contributions, provider_cost (default: none)")
    p.add_argument("--analysis-paths", type=positive_int, help="paths each analysis re-runs (default: the run's)")


def entry() -> int:
    """The console script and ``python -m simengine``: :func:`main`, then the interpreter's exit.

    The collector's full passes walk the million objects that numba, pandas and matplotlib hold
    (3-4 a run, 0.1-0.2 s of a W1 run on the benchmark VM): this process runs a tenth as many
    (its oldest generation waits for 100 younger collections, not 10). Before the exit every
    object left is frozen out of the collector: tearing down the modules otherwise walks them
    all again, 0.5-0.6 s of each run. Files are closed and atexit handlers run as before.
    """
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)
    code = main()
    gc.freeze()
    return code


FULL_COLLECTION_EVERY = 100  # middle-generation collections per full one (CPython's default: 10)


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
    if getattr(args, "allow_path", None):  # through the environment, so batch workers see it too
        os.environ[ALLOW_ENV] = os.pathsep.join([*map(str, args.allow_path), os.environ.get(ALLOW_ENV, "")]).rstrip(
            os.pathsep)
    handler = {"validate": _validate, "run": _run, "batch": _batch, "sweep": _sweep, "plot": _plot,
               "report": _report, **{name: analysis for name in ANALYSIS_COMMANDS}}[args.command]
    for sig in (signal.SIGTERM, signal.SIGHUP):  # unwind like Ctrl-C, so every exit path cleans up
        signal.signal(sig, _raise_interrupted)
    try:
        return handler(args)
    except (KeyboardInterrupt, _Interrupted) as exc:  # before a run started writing (a run says what it left)
        name = str(exc) or "SIGINT"
        print(f"interrupted ({name}) before anything was written", file=sys.stderr)
        return 128 + getattr(signal, name, signal.SIGINT)




def _validate(args) -> int:
    from .errors import ScenarioError
    from .scenario import load_scenario

    worst = EXIT_OK
    for file in args.files:
        try:
            sc = load_scenario(file)
        except ScenarioError as exc:
            invalid(exc)
            worst = EXIT_BAD_INPUT
            continue
        print(f"ok {file}: {sc.name}, {len(sc.licences)} licences, {sc.periods} periods, "
              f"{len(sc.model.structure.tranches)} tranches")
        for warning in sc.warnings:
            print(f"WARNING {file}: {warning}", file=sys.stderr)
    return worst


# a run's disk need per path, in bytes: a per-path row of each tranche and of the pool, spooled
# and then copied into the run folder (both exist while it is written), before compression
_BYTES_PER_TRANCHE_PATH = 2 * 110
_BYTES_PER_POOL_PATH = 2 * 120
_BYTES_PER_PERIOD_PATH = 2 * 4  # the cumulative default fraction (float32) of every period
_LICENCE_PERIODS_PER_SECOND = 2e8  # a conservative kernel throughput, for the time estimate only
_LONG_RUN_SECONDS = 24 * 3600


def _estimate(sc, paths: int) -> tuple[float, float]:
    """(bytes, seconds) a run of ``paths`` paths needs: rough, for refusing the absurd."""
    tranches, periods = len(sc.model.structure.tranches), sc.periods
    per_path = tranches * _BYTES_PER_TRANCHE_PATH + _BYTES_PER_POOL_PATH + periods * _BYTES_PER_PERIOD_PATH
    return paths * per_path, paths * len(sc.licences) * periods / _LICENCE_PERIODS_PER_SECOND


class _Interrupted(BaseException):
    """SIGTERM or SIGHUP, raised where the process was, so the run unwinds as on Ctrl-C."""


def _raise_interrupted(signum, frame):
    raise _Interrupted(signal.Signals(signum).name)


def _run(args) -> int:
    from .errors import ScenarioError
    from .results import RunFolderError, check_target, clean_stale, staged
    from .scenario import load_scenario

    try:
        sc = load_scenario(args.file)
        if args.rating_tables is not None:
            sc = sc.with_overrides({"simulation.rating_tables": [t.strip() for t in args.rating_tables.split(",")]})
    except ScenarioError as exc:
        invalid(exc)
        return EXIT_BAD_INPUT
    for warning in sc.warnings:
        print(f"WARNING {args.file}: {warning}", file=sys.stderr)
    out = Path(args.out) if args.out else Path("results") / Path(args.file).stem
    if args.target_rse is not None and args.paths is not None:
        print("INVALID --paths: with --target-rse the run decides its paths; expected --max-paths for the cap",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        check_target(out, args.overwrite)
    except RunFolderError as exc:
        print(f"INVALID {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from . import _jit

    if args.threads is not None and args.threads > _jit.max_threads():
        print(f"INVALID --threads {args.threads}: expected 1..{_jit.max_threads()} (the threads numba can run "
              "here; NUMBA_NUM_THREADS)", file=sys.stderr)
        return EXIT_BAD_INPUT
    paths = args.max_paths if args.target_rse is not None else (args.paths or sc.model.simulation.paths)
    if args.attribution_paths is not None:
        from .analysis.attribution import check_attribution_paths

        try:
            check_attribution_paths(args.attribution_paths, paths, "--attribution-paths")
        except ValueError as exc:
            invalid(exc)
            return EXIT_BAD_INPUT
    need, seconds = _estimate(sc, paths)
    capped = args.target_rse is not None  # a cap the run may stop well short of: warn, do not refuse
    if seconds > _LONG_RUN_SECONDS and not args.allow_long and not capped:
        print(f"INVALID --paths {paths:,}: about {seconds / 3600:,.0f} hours of simulation on this scenario "
              f"({len(sc.licences)} licences x {sc.periods} periods a path); expected fewer paths, or --allow-long "
              "if you mean it", file=sys.stderr)
        return EXIT_BAD_INPUT
    for stale in clean_stale(out):
        print(f"cleaned up {stale} (left by a run that was killed)", file=sys.stderr)
    try:
        with staged(out) as stage:
            free = shutil.disk_usage(stage).free
            if need > free and not capped:
                raise RunFolderError(f"{out.parent}: about {_size(need)} needed for {paths:,} paths, "
                                     f"{_size(free)} free; expected fewer paths or another --out")
            if need > 1e9 or need > free:
                what = "at its path cap " if capped else ""
                print(f"this run needs {what}about {_size(need)} in {out.parent} ({_size(free)} free)",
                      file=sys.stderr)
            res = _simulate_into(sc, args, stage)
    except RunFolderError as exc:
        print(f"INVALID {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):  # found before simulating: bad input
            print(f"INVALID {out}: --out cannot be written ({exc.strerror}: {exc.filename or out.parent}); "
                  f"expected a writable folder; {_kept(out)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            print(f"FAILED {out}: {exc.strerror} while writing; {_kept(out)}", file=sys.stderr)
            return EXIT_FAILURE
        traceback.print_exc()
        print(f"FAILED {out}: {exc}; {_kept(out)}", file=sys.stderr)
        return EXIT_FAILURE
    except ScenarioError as exc:
        invalid(exc)
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, _Interrupted) as exc:
        name = str(exc) or "SIGINT"
        print(f"interrupted ({name}): nothing of this run was kept; {_kept(out)}", file=sys.stderr)
        return 128 + getattr(signal, name, signal.SIGINT)
    except Exception as exc:  # a failure is reported; the run folder is left as it was
        traceback.print_exc()
        print(f"FAILED {out}: {type(exc).__name__}: {exc}; {_kept(out)}", file=sys.stderr)
        return EXIT_FAILURE
    _print_summary(res, out)
    return EXIT_OK


def _size(n: float) -> str:
    """Bytes for people: ``3.2 MB``, ``41 GB``."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:.0f} bytes"


def _kept(out: Path) -> str:
    """What a failed or interrupted run left at ``out``: a true sentence."""
    if not out.exists():
        return f"{out} was not created"
    return f"{out} holds the previous run, untouched" if (out / "manifest.json").exists() else f"{out} is as it was"


def _simulate_into(sc, args, stage: Path):
    """Simulate and write the run folder into ``stage`` (spool inside it, removed before the swap)."""
    from ._io import atomic_figure
    from .simulation import simulate

    spool = stage / ".spool"
    res = simulate(sc, paths=args.max_paths if args.target_rse is not None else args.paths, seed=args.seed,
                   chunk_paths=args.chunk_paths, threads=args.threads, progress=not args.quiet,
                   variance_reduction=args.variance_reduction, tranche=args.tranche, target_rse=args.target_rse,
                   spool_dir=spool, attribution_paths=args.attribution_paths)
    if not args.no_plot:  # before the tables: the manifest, written last, then holds the plot's seconds too
        figure = res.plot_loss_curves()
        with res.clock("plot"):
            atomic_figure(stage / "loss_curves.png", figure)
    res.to_parquet(stage)
    res.release()
    shutil.rmtree(spool)
    return res


def _batch(args) -> int:
    from .batch import BatchInputError, default_out, file_jobs

    try:
        jobs = file_jobs(args.inputs)
    except BatchInputError as exc:
        invalid(exc)
        return EXIT_BAD_INPUT
    return _run_batch(args, jobs, Path(args.out) if args.out else default_out(args.inputs, "batch"))


def _sweep(args) -> int:
    from .batch import BatchInputError, check_sweep_keys, default_out, sweep_jobs
    from .errors import ScenarioError
    from .scenario import load_scenario

    try:
        base = load_scenario(args.file)  # a bad base file is bad input for every point: say it once
        check_sweep_keys(base, args.sets)
        jobs = sweep_jobs(args.file, args.sets)
    except (ScenarioError, BatchInputError) as exc:
        invalid(exc)
        return EXIT_BAD_INPUT
    return _run_batch(args, jobs, Path(args.out) if args.out else default_out([args.file], "sweep"))


def _run_batch(args, jobs, out: Path) -> int:
    from .analysis.suite import ANALYSES
    from .batch import Batch, BatchInputError

    analyses = names([args.analyses]) if args.analyses else []
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
        invalid(exc)
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

    for warning in res.sampling_warnings:
        print(f"WARNING sampling: {warning}", file=sys.stderr)
    s = res.summary
    cols = ["tranche", "pd", "pd_se", "pd_upper", "pd_vr", "el", "el_se", "wal_years"]
    for key in res.rating_tables:
        cols += [f"rating_{key}", f"rating_{key}_range"]
    cols += ["standalone_pd", "standalone_el"] + [f"standalone_rating_{key}" for key in res.rating_tables]
    cols += ["rating_enhanced_capped"] if "rating_enhanced_capped" in s.columns else []
    with pd.option_context("display.width", 220, "display.max_columns", 24, "display.float_format", "{:.3g}".format):
        print(s[cols].to_string(index=False))
    for _, row in s[s["no_loss_observed"]].iterrows():
        print(f"{row['tranche']}: no loss observed in {res.paths:,} paths; PD <= {row['pd_upper']:.3g} "
              f"(one-sided 95%, effective sample {row['pd_n_eff']:,.0f})")
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
    from .results import BatchFolder, RunFolder, RunFolderError

    folder = Path(args.run_dir)
    is_batch = BatchFolder.is_batch(folder)
    kind = args.kind or ("batch-comparison" if is_batch else "loss-curves")
    if kind not in PLOT_KINDS + BATCH_PLOT_KINDS:
        print(f"INVALID --kind {kind!r}: expected one of {', '.join(PLOT_KINDS + BATCH_PLOT_KINDS)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if (kind in BATCH_PLOT_KINDS) != is_batch:
        what = "a batch folder (with batch_manifest.json)" if kind in BATCH_PLOT_KINDS else "a run folder"
        print(f"INVALID {folder}: --kind {kind} draws {what}; this is "
              f"{'a batch folder' if is_batch else 'not one'}", file=sys.stderr)
        return EXIT_BAD_INPUT
    default = folder / ("loss_curves.png" if kind == "loss-curves" else f"{kind}.png")
    target = Path(args.out) if args.out else default
    fmt = "svg" if target.suffix.lower() == ".svg" else "png"  # PNG whatever the name, as `plot` always wrote
    if target.is_dir():
        print(f"INVALID --out {target}: is a folder; expected a .png or .svg file", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        if is_batch:
            from .results.plots import batch_figure
            from .results.report_batch import BatchReport

            report = BatchReport(BatchFolder(folder), args.base)
            table = report.comparison()
            if table.empty:
                print(f"INVALID {folder}: no finished scenario to compare", file=sys.stderr)
                return EXIT_BAD_INPUT
            fig = batch_figure(table, str(report.base), f"batch {report.batch.batch_id}: expected loss by scenario")
        else:
            from .results.plots import RUN_FIGURES, MissingData

            run = RunFolder(folder)
            try:
                fig = RUN_FIGURES[kind].make(run)
            except MissingData as exc:
                print(f"INVALID {folder}: --kind {kind} needs {exc}, which this run folder does not hold",
                      file=sys.stderr)
                return EXIT_BAD_INPUT
    except RunFolderError as exc:
        print(f"INVALID {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_figure(target, fig, fmt=fmt)
    print(f"wrote {target}")
    return EXIT_OK


def _report(args) -> int:
    from .results import BatchFolder, RunFolder, RunFolderError

    folder = Path(args.folder)
    target = Path(args.out) if args.out else folder / "report.html"
    if target.suffix.lower() not in (".html", ".htm"):
        print(f"INVALID --out {target}: expected an .html file", file=sys.stderr)
        return EXIT_BAD_INPUT
    if target.is_dir():
        print(f"INVALID --out {target}: is a folder; expected an .html file", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        if BatchFolder.is_batch(folder):
            from .results.report_batch import batch_report

            html = batch_report(BatchFolder(folder), args.base, args.figures)
        else:
            if args.base:
                print(f"INVALID --base: only a batch folder has scenarios to compare; {folder} is not one",
                      file=sys.stderr)
                return EXIT_BAD_INPUT
            from .results.report import run_report

            html = run_report(RunFolder(folder), args.figures)
    except RunFolderError as exc:
        expected = ("" if "; expected" in str(exc)
                    else "; expected a folder written by `simengine run` or `simengine batch`")
        print(f"INVALID {exc}{expected}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from .results.report import write_report

    write_report(html, target)
    print(f"wrote {target}")
    if args.pdf:
        from ._io import atomic_bytes
        from .results.browser import BrowserError, print_pdf

        pdf = target.with_suffix(".pdf")
        try:
            atomic_bytes(pdf, print_pdf(target))
        except BrowserError as exc:
            print(f"FAILED --pdf: {str(exc).splitlines()[0]} (the HTML is written: {target})", file=sys.stderr)
            return EXIT_FAILURE
        print(f"wrote {pdf}")
    return EXIT_OK


