"""Results: statistics (SPEC §6), Parquet outputs (SPEC §5) and plots."""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import time
import uuid
import weakref
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__, _jit, ratings
from .plan import LEDGER_DEAL, LEDGER_TRANCHE, Plan
from .schema import Scenario
from .stats import Z95, exceedance, weighted_mean_se, weighted_quantile_es, wilson

LEVELS = (0.95, 0.99, 0.999)
LEVEL_NAMES = ("95", "99", "999")
BASES = (("", "enhanced"), ("standalone_", "standalone"))
CASHFLOW_QUANTILES = (0.05, 0.5, 0.95)
ATTRIBUTION_PATHS = 50_000


def _versions() -> dict:
    import numba
    import scipy

    return {"simengine": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "scipy": scipy.__version__, "pandas": pd.__version__,
            "pyarrow": pa.__version__}


def _weighted_quantiles(x: np.ndarray, w: np.ndarray, qs) -> list[float]:
    order = np.argsort(x, kind="stable")
    cdf = np.cumsum(w[order]) / w.sum()
    return [float(x[order][min(int(np.searchsorted(cdf, q - 1e-12)), len(x) - 1)]) for q in qs]


class SimulationResult:
    """What :func:`simengine.simulate` returns.

    Per-path tables live in Parquet parts in a spool folder and load on first use; every
    statistic is computed from them in path order, so it does not depend on chunking.
    """

    def __init__(self, scenario: Scenario, plan: Plan, paths: int, seed: int, chunk_paths: int,
                 spool: Path, parts: list[str], timings: dict, owns_spool: bool = False, threads: int = 1):
        self.scenario = scenario
        self.plan = plan
        self.paths = paths
        self.seed = seed
        self.chunk_paths = chunk_paths
        self.spool = Path(spool)
        self.parts = parts
        self.timings = dict(timings)
        self.threads = threads
        if owns_spool:  # a temporary spool lives exactly as long as the result
            weakref.finalize(self, shutil.rmtree, str(self.spool), True)

    def __repr__(self) -> str:
        return f"SimulationResult({self.scenario.name!r}, paths={self.paths}, seed={self.seed})"

    # ------------------------------------------------------------------------------ raw tables
    def _read(self, folder: str, columns=None) -> pa.Table:
        return pa.concat_tables([pq.read_table(self.spool / folder / p, columns=columns) for p in self.parts])

    def _matrix(self, column: str) -> np.ndarray:
        """A tranche_losses column as ndarray, shape (paths, tranches)."""
        values = self._read("tranche_losses", [column]).column(0).to_numpy(zero_copy_only=False)
        return np.asarray(values).reshape(self.paths, len(self.plan.tranche_names))

    @cached_property
    def weights(self) -> np.ndarray:
        return self._read("pool_paths", ["weight"]).column(0).to_numpy()

    @cached_property
    def tranche_losses(self) -> pd.DataFrame:
        """One row per (path, tranche): loss fractions, PV loss, shortfalls, WAL, draws."""
        return self._read("tranche_losses").to_pandas()

    @cached_property
    def pool_paths(self) -> pd.DataFrame:
        """One row per path: defaults, obsolescence, invalidations, collections, pool loss."""
        return self._read("pool_paths").to_pandas()

    # ------------------------------------------------------------------------------- summary
    @cached_property
    def summary(self) -> pd.DataFrame:
        """One row per tranche: SPEC §6 metrics, enhanced (no prefix) and ``standalone_``."""
        w = self.weights
        n = self.paths
        wp = self.plan.waterfall
        horizon = self.plan.periods / wp.periods_per_year
        rows = [dict(tranche=name, balance_amount=float(wp.tranche_balance[k]),
                     coupon=float(wp.tranche_coupon_per_period[k] * wp.periods_per_year), paths=n)
                for k, name in enumerate(self.plan.tranche_names)]
        for prefix, _ in BASES:
            loss = self._matrix(prefix + "loss_fraction")
            defaulted = self._matrix(prefix + "defaulted").astype(float)
            wal = self._matrix(prefix + "wal_years")
            pv = self._matrix(prefix + "pv_loss_fraction")
            short = self._matrix(prefix + "interest_shortfall_amount")
            for k, row in enumerate(rows):
                pd_, pd_se = weighted_mean_se(defaulted[:, k], w)
                el, el_se = weighted_mean_se(loss[:, k], w)
                n_eff = pd_ * (1 - pd_) / pd_se ** 2 if pd_se > 0 else float(n)
                lo, hi = wilson(pd_, n_eff)
                wal_mean = float((w * wal[:, k]).sum() / w.sum())
                el_lo, el_hi = max(0.0, el - Z95 * el_se), el + Z95 * el_se
                m_best = ratings.implied_moodys(el_lo, wal_mean)
                m_worst = ratings.implied_moodys(el_hi, wal_mean)
                s_best = ratings.implied_sp(lo, horizon)
                s_worst = ratings.implied_sp(hi, horizon)
                row.update({
                    prefix + "pd": pd_, prefix + "pd_se": pd_se, prefix + "pd_lower": lo, prefix + "pd_upper": hi,
                    prefix + "el": el, prefix + "el_se": el_se,
                    prefix + "lgd": el / pd_ if pd_ > 0 else math.nan,
                    prefix + "pv_loss": float((w * pv[:, k]).mean()),
                    prefix + "wal_years": wal_mean,
                    prefix + "interest_shortfall_mean_amount": float((w * short[:, k]).mean()),
                    prefix + "loss_q50": _weighted_quantiles(loss[:, k], w, [0.5])[0],
                })
                for (var, es), name in zip(weighted_quantile_es(loss[:, k], w, LEVELS), LEVEL_NAMES):
                    row[prefix + f"var_{name}"] = var
                    row[prefix + f"es_{name}"] = es
                row.update({
                    prefix + "rating_moodys": ratings.implied_moodys(el, wal_mean),
                    prefix + "rating_moodys_range": ratings.notch_range(m_best, m_worst),
                    prefix + "rating_sp": ratings.implied_sp(pd_, horizon),
                    prefix + "rating_sp_range": ratings.notch_range(s_best, s_worst),
                })
        attribution = self.channel_attribution.set_index(["tranche", "basis"])
        for prefix, basis in BASES:
            for row in rows:
                a = attribution.loc[(row["tranche"], basis)]
                for col in ("el_credit_only", "via_obsolescence", "via_obsolescence_se", "via_demand",
                            "via_demand_se", "interaction"):
                    name = col if col.startswith("el_") else f"el_{col}"
                    row[prefix + name] = float(a[col])
                row["attribution_paths"] = int(a["attribution_paths"])
        commit = self._matrix("commitment_draw_amount")
        guar = self._matrix("guarantee_draw_amount")
        for k, row in enumerate(rows):
            row["commitment_draw_mean_amount"] = float((w * commit[:, k]).mean())
            row["guarantee_draw_mean_amount"] = float((w * guar[:, k]).mean())
            row["p_commitment_drawn"] = float((w * (commit[:, k] > 0)).mean())
            row["p_guarantee_drawn"] = float((w * (guar[:, k] > 0)).mean())
        return pd.DataFrame(rows)

    @cached_property
    def channel_attribution(self) -> pd.DataFrame:
        """How much of each tranche's EL comes through each risk channel.

        The first ``attribution_paths`` paths are re-run with obsolescence off, demand off and
        both off; addressed randomness keeps every other draw, so the differences are paired
        (common random numbers) and their standard errors are those of per-path differences.
        ``via_obsolescence`` = EL(full) - EL(obsolescence off): the hazard multiplier on fixed
        royalties and the severity on running ones; ``via_demand`` likewise; ``interaction`` is
        what is left over the credit-only EL.
        """
        from .engine import run_chunk
        from .kernels import T_LOSS
        from .plan import compile_plan

        n = min(self.paths, ATTRIBUTION_PATHS)
        variants = {
            "full": self.scenario,
            "no_obsolescence": self.scenario.with_overrides({"risk.obsolescence.enabled": False}),
            "no_demand": self.scenario.with_overrides({"risk.demand.enabled": False}),
            "credit_only": self.scenario.with_overrides({"risk.obsolescence.enabled": False,
                                                         "risk.demand.enabled": False}),
        }
        m = self.scenario.model.risk
        same = {"full": "full", "no_obsolescence": "full" if not m.obsolescence.enabled else "no_obsolescence",
                "no_demand": "full" if not m.demand.enabled else "no_demand"}
        same["credit_only"] = {("full", "full"): "full", ("no_obsolescence", "full"): "no_obsolescence",
                               ("full", "no_demand"): "no_demand"}.get(
            (same["no_obsolescence"], same["no_demand"]), "credit_only")
        loss = {}
        for name, sc in variants.items():
            if same[name] != name:  # that driver is already off: nothing to re-run
                loss[name] = loss[same[name]]
                continue
            plan = self.plan if name == "full" else compile_plan(sc)
            parts = [run_chunk(plan, self.seed, first, min(self.chunk_paths, n - first))
                     for first in range(0, n, self.chunk_paths)]
            loss[name] = np.concatenate([p["tranche"][:, :, :, T_LOSS] * p["weights"][:, None, None]
                                         for p in parts])  # (n, basis, tranche)
        rows = []
        mean_se = lambda x: (float(x.mean()), float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan)
        for k, tranche in enumerate(self.plan.tranche_names):
            for b, basis in ((1, "enhanced"), (0, "standalone")):
                full = loss["full"][:, b, k]
                row = {"tranche": tranche, "basis": basis, "attribution_paths": n}
                row["el"], row["el_se"] = mean_se(full)
                row["el_credit_only"], row["el_credit_only_se"] = mean_se(loss["credit_only"][:, b, k])
                row["via_obsolescence"], row["via_obsolescence_se"] = mean_se(full - loss["no_obsolescence"][:, b, k])
                row["via_demand"], row["via_demand_se"] = mean_se(full - loss["no_demand"][:, b, k])
                row["interaction"] = row["el"] - row["el_credit_only"] - row["via_obsolescence"] - row["via_demand"]
                rows.append(row)
        return pd.DataFrame(rows)

    @cached_property
    def pool_summary(self) -> dict:
        """Pool-level statistics (SPEC §6): default rates, collections, triggers, providers."""
        cols = ["weight", "default_fraction", "collections_amount", "commitment_needed",
                "commitment_provider_failed", "guarantee_needed", "guarantee_provider_failed"]
        cols += [f"trigger_{t}" for t in self.plan.trigger_names]
        t = self._read("pool_paths", cols).to_pandas()
        w = t["weight"].to_numpy()
        mean = lambda c: float((w * t[c].to_numpy(dtype=float)).mean())
        dr = t["default_fraction"].to_numpy()
        q = _weighted_quantiles(dr, w, (0.5, 0.95, 0.99, 0.999))
        tl = self._read("tranche_losses", ["commitment_draw_amount", "guarantee_draw_amount"])
        nt = len(self.plan.tranche_names)
        c_any = tl.column(0).to_numpy().reshape(self.paths, nt).sum(axis=1) > 0
        g_any = tl.column(1).to_numpy().reshape(self.paths, nt).sum(axis=1) > 0
        needed_c = t["commitment_needed"].to_numpy()
        needed_g = t["guarantee_needed"].to_numpy()
        out = {
            "paths": self.paths,
            "licensee_default_rate_mean": mean("default_fraction"),
            "licensee_default_rate_q50": q[0], "licensee_default_rate_q95": q[1],
            "licensee_default_rate_q99": q[2], "licensee_default_rate_q999": q[3],
            "expected_collections_amount": mean("collections_amount"),
            "scheduled_collections_amount": float(self.plan.pool.scheduled_total),
            "p_commitment_needed": mean("commitment_needed"),
            "p_commitment_drawn": float((w * c_any).mean()),
            "p_guarantee_needed": mean("guarantee_needed"),
            "p_guarantee_drawn": float((w * g_any).mean()),
            "p_commitment_provider_failed_when_needed": mean("commitment_provider_failed"),
            "p_guarantee_provider_failed_when_needed": mean("guarantee_provider_failed"),
            "commitment_provider_failed_given_needed": (
                float((w * t["commitment_provider_failed"]).sum() / (w * needed_c).sum()) if needed_c.any() else math.nan),
            "guarantee_provider_failed_given_needed": (
                float((w * t["guarantee_provider_failed"]).sum() / (w * needed_g).sum()) if needed_g.any() else math.nan),
        }
        for name in self.plan.trigger_names:
            out[f"p_trigger_{name}"] = mean(f"trigger_{name}")
        return out

    # ----------------------------------------------------------------------------- cash flows
    def _ledger_frame(self, ledgers: np.ndarray) -> list[tuple[str, str, int]]:
        cols = [("deal", name, i) for i, name in enumerate(LEDGER_DEAL)]
        base = len(LEDGER_DEAL)
        for k, t in enumerate(self.plan.tranche_names):
            cols += [(t, name, base + k * len(LEDGER_TRANCHE) + j) for j, name in enumerate(LEDGER_TRANCHE)]
        return cols

    @cached_property
    def cashflows(self) -> pd.DataFrame:
        """Per period and tranche: weighted mean and 5/50/95% quantiles of each ledger item.

        Computed from full ledgers of the first ``cashflow_sample_paths`` paths (stated in the
        ``sample_paths`` column), re-simulated from their addresses.
        """
        from .engine import ledgers

        n = min(self.paths, self.scenario.model.simulation.cashflow_sample_paths)
        led, _ = ledgers(self.plan, self.seed, np.arange(n, dtype=np.int64))
        w = self.weights[:n]
        rows = []
        for owner, item, c in self._ledger_frame(led):
            if item == "dscr":
                continue  # a ratio, infinite when nothing is due: not a cash flow
            for p in range(self.plan.periods):
                x = led[:, p, c]
                qs = _weighted_quantiles(x, w, CASHFLOW_QUANTILES)
                rows.append((p + 1, owner, item, float((w * x).sum() / w.sum()), *qs, n))
        return pd.DataFrame(rows, columns=["period", "tranche", "item", "mean", "q05", "q50", "q95", "sample_paths"])

    @cached_property
    def worst_paths(self) -> pd.DataFrame:
        """Full ledgers of the worst path for each tranche (largest loss, then shortfall, then PV loss)."""
        from .engine import ledgers

        loss = self._matrix("loss_fraction")
        short = self._matrix("interest_shortfall_amount")
        pv = self._matrix("pv_loss_fraction")
        chosen = []
        for k, name in enumerate(self.plan.tranche_names):
            order = np.lexsort((np.arange(self.paths), -pv[:, k], -short[:, k], -loss[:, k]))
            chosen.append((name, int(order[0])))
        led, _ = ledgers(self.plan, self.seed, np.array([p for _, p in chosen], np.int64))
        frames = []
        cols = self._ledger_frame(led)
        for i, (name, path) in enumerate(chosen):
            data = {"worst_for": name, "path": path,
                    "path_loss_fraction": float(loss[path, self.plan.tranche_names.index(name)]),
                    "period": np.arange(1, self.plan.periods + 1)}
            for owner, item, c in cols:
                data[item if owner == "deal" else f"{owner}.{item}"] = led[i, :, c]
            frames.append(pd.DataFrame(data))
        return pd.concat(frames, ignore_index=True)

    # --------------------------------------------------------------------------------- output
    def provenance(self) -> dict:
        sim = self.scenario.model.simulation
        return {
            "scenario": self.scenario.name, "scenario_file": self.scenario.source,
            "scenario_hash": self.scenario.file_hash, "seed": self.seed, "paths": self.paths,
            "chunk_paths": self.chunk_paths, "cashflow_sample_paths": min(self.paths, sim.cashflow_sample_paths),
            "variance_reduction": sim.variance_reduction, "engine": _versions(),
            "numba_threading_layer": _jit.threading_layer(), "threads": self.threads,
            "numba_disabled": _jit.DISABLED,
        }

    def manifest(self, status: str, timings: dict | None = None) -> dict:
        return {**self.provenance(), "status": status, "timings": {**self.timings, **(timings or {})},
                "resolved_scenario": self.scenario.resolved(), "pool_summary": self.pool_summary,
                "rating_tables": ratings.TABLE_VERSIONS,
                "units": "fractions of original tranche balance unless a column ends in _amount"}

    def to_parquet(self, out_dir: str | Path) -> Path:
        """Write the run folder (SPEC §5). Each file appears complete or not at all."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        _atomic_json(out / "manifest.json", {**self.provenance(), "status": "writing"})
        meta = {b"simengine": json.dumps(self.provenance(), default=str).encode()}
        summary = self.summary
        pool_summary = pd.DataFrame([self.pool_summary])
        for name, frame in (("summary", summary), ("pool_summary", pool_summary),
                            ("channel_attribution", self.channel_attribution),
                            ("cashflows", self.cashflows), ("worst_paths", self.worst_paths)):
            table = pa.Table.from_pandas(frame, preserve_index=False)
            _atomic_parquet(out / f"{name}.parquet", [table], meta)
        for folder in ("tranche_losses", "pool_paths"):
            _atomic_parquet(out / f"{folder}.parquet",
                            (pq.read_table(self.spool / folder / p) for p in self.parts), meta)
        timings = {"write_seconds": time.perf_counter() - start}
        _atomic_json(out / "manifest.json", self.manifest("ok", timings))
        return out

    # ---------------------------------------------------------------------------------- plots
    def loss_exceedance(self, tranche: str, basis: str = "enhanced"):
        """(x, P(L > x), standard error) for one tranche; weighted."""
        prefix = "" if basis == "enhanced" else "standalone_"
        loss = self._matrix(prefix + "loss_fraction")[:, self.plan.tranche_names.index(tranche)]
        return exceedance(loss, self.weights)

    def plot_loss_curves(self):
        """Loss exceedance curves per tranche on a log probability axis; returns a Figure."""
        from .plots import loss_curves_figure

        curves = {(t, b): self.loss_exceedance(t, b) for t in self.plan.tranche_names
                  for b in ("enhanced", "standalone")}
        return loss_curves_figure(curves, self.summary, self.scenario.name, self.paths)


def _atomic_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default))
    os.replace(tmp, path)


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return str(x)


def _atomic_parquet(path: Path, tables, meta: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    writer = None
    try:
        for table in tables:
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
        writer.close()
        writer = None
        os.replace(tmp, path)
    finally:
        if writer is not None:
            writer.close()
        if tmp.exists():
            tmp.unlink()


def load_run(run_dir: str | Path) -> dict:
    """Read a run folder back: manifest and tables as pandas DataFrames."""
    run = Path(run_dir)
    manifest_path = run / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{run}: no manifest.json (not a simengine run folder)")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("status") != "ok":
        raise ValueError(f"{run}: run status is {manifest.get('status')!r}, not 'ok'")
    return {"manifest": manifest, "summary": pd.read_parquet(run / "summary.parquet"),
            "tranche_losses_path": run / "tranche_losses.parquet"}
