"""Agreement of the engine and its NumPy peer on one scenario, without timing anything.

Runs ``simengine.simulate`` and ``numpy_peer.simulate`` with independent seeds (different
generators: the engine's counter-based one, NumPy's PCG64) and prints, per statistic, both means
with their standard errors and z = (engine - peer) / sqrt(se_e^2 + se_p^2)
(:func:`measure.agreement`). With 16 statistics, |z| up to about 3 is expected by chance.

``python benchmarks/peer_agreement.py scenarios/w1_workload.toml --paths 100000``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import agreement, engine_stats  # noqa: E402


def markdown(agr: dict) -> str:
    """The agreement as a Markdown table, with its headline."""
    lines = [f"max |z| = {agr['max_abs_z']:.2f} over {agr['n']} statistics; |z| > 3: {agr['n_abs_z_over_3']}.", "",
             "| basis | tranche | metric | engine | ± se | peer | ± se | z |", "|---|---|---|---|---|---|---|---|"]
    for r in agr["rows"]:
        lines.append(f"| {r['basis']} | {r['tranche']} | {r['metric']} | {r['engine']:.6g} | {r['engine_se']:.2g} | "
                     f"{r['peer']:.6g} | {r['peer_se']:.2g} | {r['z']:+.2f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    """Command line: see the module docstring."""
    import numpy_peer

    import simengine as se
    from simengine.plan import compile_plan

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario")
    ap.add_argument("--paths", type=int, default=100_000, help="paths for each of engine and peer")
    ap.add_argument("--engine-seed", type=int, default=20240611)
    ap.add_argument("--peer-seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="peer processes")
    ap.add_argument("--threads", type=int, default=None, help="engine threads")
    args = ap.parse_args(argv)
    sc = se.load_scenario(args.scenario)
    plan = compile_plan(sc)
    workers = numpy_peer.Workers(plan, args.workers) if args.workers > 1 else None
    try:
        peer = numpy_peer.simulate(plan, args.paths, args.peer_seed, workers=workers)
    finally:
        if workers:
            workers.close()
    res = se.simulate(sc, paths=args.paths, seed=args.engine_seed, threads=args.threads, progress=False)
    print(f"{args.scenario}: engine {args.paths:,} paths (seed {args.engine_seed}), "
          f"peer {args.paths:,} paths (seed {args.peer_seed})\n")
    print(markdown(agreement(engine_stats(res), peer)))


if __name__ == "__main__":
    main()
