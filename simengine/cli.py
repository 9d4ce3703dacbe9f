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

    p = sub.add_parser("plot", help="draw loss exceedance curves of a run folder to PNG")
    p.add_argument("run_dir", help="a folder written by `simengine run`")
    p.add_argument("--out", help="PNG path (default: RUN_DIR/loss_curves.png)")
    return parser


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
    handler = {"validate": _validate, "run": _run, "batch": _batch, "sweep": _sweep, "plot": _plot}[args.command]
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
        if args.rating_tables is not None:
            sc = sc.with_overrides({"simulation.rating_tables": [t.strip() for t in args.rating_tables.split(",")]})
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
    from .batch import Batch, BatchInputError

    try:
        batch = Batch(jobs, out, resume=args.resume, scheduler=args.scheduler, paths=args.paths, seed=args.seed,
                      chunk_paths=args.chunk_paths, argv=sys.argv[1:])
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
