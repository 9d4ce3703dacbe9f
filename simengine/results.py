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
from .scenario import Scenario
from .stats import (Z95, batch_se, exceedance, kish_ess, variance_reduction, weighted_mean_se,
                    weighted_quantile_es, wilson)

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


def _ratio(num: np.ndarray, den: np.ndarray) -> float:
    d = den.sum()
    return float(num.sum() / d) if d > 0 else math.nan


def _weighted_quantiles(x: np.ndarray, w: np.ndarray, qs) -> list[float]:
    order = np.argsort(x, kind="stable")
    cdf = np.cumsum(w[order]) / w.sum()
    return [float(x[order][min(int(np.searchsorted(cdf, q - 1e-12)), len(x) - 1)]) for q in qs]


class SimulationResult:
    """What :func:`simengine.simulate` returns.

    Per-path tables live in Parquet parts in a spool folder and load on first use; every
    statistic is computed from them in path order, so it does not depend on chunking.
    """

    def __init__(self, spec, paths: int, spool: Path, parts: list[str], timings: dict,
                 owns_spool: bool = False, threads: int = 1, stop: dict | None = None):
        self.spec = spec
        self.scenario: Scenario = spec.scenario
        self.plan: Plan = spec.plan
        self.paths = paths
        self.seed = spec.seed
        self.chunk_paths = spec.chunk_paths
        self.sampling = spec.sampling
        self.stop = stop  # how a --target-rse run ended; None otherwise
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
        pairs = self.sampling.antithetic
        wp = self.plan.waterfall
        horizon = self.plan.periods / wp.periods_per_year
        ess = kish_ess(w)
        w_mean, w_se = weighted_mean_se(np.ones(n), w, pairs)
        rows = [dict(tranche=name, balance_amount=float(wp.tranche_balance[k]),
                     coupon=float(wp.tranche_coupon_per_period[k] * wp.periods_per_year), paths=n,
                     variance_reduction=self.spec.sampling_info["variance_reduction"],
                     is_global_shift=self.sampling.global_shift, is_chi2_scale=self.sampling.chi2_scale,
                     ess_kish=ess, weight_mean=w_mean, weight_mean_se=w_se)
                for k, name in enumerate(self.plan.tranche_names)]
        for prefix, _ in BASES:
            loss = self._matrix(prefix + "loss_fraction")
            defaulted = self._matrix(prefix + "defaulted").astype(float)
            wal = self._matrix(prefix + "wal_years")
            pv = self._matrix(prefix + "pv_loss_fraction")
            short = self._matrix(prefix + "interest_shortfall_amount")
            for k, row in enumerate(rows):
                pd_, pd_se = weighted_mean_se(defaulted[:, k], w, pairs)
                el, el_se = weighted_mean_se(loss[:, k], w, pairs)
                pv_mean, pv_se = weighted_mean_se(pv[:, k], w, pairs)
                short_mean, short_se = weighted_mean_se(short[:, k], w, pairs)
                n_eff = pd_ * (1 - pd_) / pd_se ** 2 if pd_se > 0 else float(n)
                lo, hi = wilson(pd_, n_eff)
                # statistics that are not plain means get batch-means standard errors
                tail = lambda x, ww, d, wl: np.array(
                    [_ratio(ww * x, ww * d), _ratio(ww * wl, ww), _weighted_quantiles(x, ww, [0.5])[0]]
                    + [v for pair in weighted_quantile_es(x, ww, LEVELS) for v in pair])
                values = tail(loss[:, k], w, defaulted[:, k], wal[:, k])
                errors = batch_se(tail, (loss[:, k], w, defaulted[:, k], wal[:, k]), pairs=pairs)
                lgd, wal_mean, q50 = values[:3]
                el_lo, el_hi = max(0.0, el - Z95 * el_se), el + Z95 * el_se
                m_best = ratings.implied_moodys(el_lo, wal_mean)
                m_worst = ratings.implied_moodys(el_hi, wal_mean)
                s_best = ratings.implied_sp(lo, horizon)
                s_worst = ratings.implied_sp(hi, horizon)
                row.update({
                    prefix + "pd": pd_, prefix + "pd_se": pd_se, prefix + "pd_lower": lo, prefix + "pd_upper": hi,
                    prefix + "pd_n_eff": n_eff,
                    prefix + "pd_vr": variance_reduction(defaulted[:, k], w, pd_se),
                    prefix + "el": el, prefix + "el_se": el_se,
                    prefix + "el_vr": variance_reduction(loss[:, k], w, el_se),
                    prefix + "lgd": lgd, prefix + "lgd_se": errors[0],
                    prefix + "pv_loss": pv_mean, prefix + "pv_loss_se": pv_se,
                    prefix + "wal_years": wal_mean, prefix + "wal_years_se": errors[1],
                    prefix + "interest_shortfall_mean_amount": short_mean,
                    prefix + "interest_shortfall_mean_amount_se": short_se,
                    prefix + "loss_q50": q50, prefix + "loss_q50_se": errors[2],
                })
                for j, name in enumerate(LEVEL_NAMES):
                    row[prefix + f"var_{name}"] = values[3 + 2 * j]
                    row[prefix + f"var_{name}_se"] = errors[3 + 2 * j]
                    row[prefix + f"es_{name}"] = values[4 + 2 * j]
                    row[prefix + f"es_{name}_se"] = errors[4 + 2 * j]
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
            for name, x in (("commitment_draw_mean_amount", commit[:, k]), ("guarantee_draw_mean_amount", guar[:, k]),
                            ("p_commitment_drawn", (commit[:, k] > 0).astype(float)),
                            ("p_guarantee_drawn", (guar[:, k] > 0).astype(float))):
                row[name], row[name + "_se"] = weighted_mean_se(x, w, pairs)
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

        pairs = self.sampling.antithetic
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
            parts = [run_chunk(plan, self.seed, first, min(self.chunk_paths, n - first), self.sampling)
                     for first in range(0, n, self.chunk_paths)]
            loss[name] = np.concatenate([p["tranche"][:, :, :, T_LOSS] * p["weights"][:, None, None]
                                         for p in parts])  # (n, basis, tranche)
        rows = []
        mean_se = lambda x: weighted_mean_se(x, np.ones(n), pairs)  # x already carries the weights
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
        pairs = self.sampling.antithetic
        dr = t["default_fraction"].to_numpy()
        levels = (0.5, 0.95, 0.99, 0.999)
        q = _weighted_quantiles(dr, w, levels)
        q_se = batch_se(lambda x, ww: np.array(_weighted_quantiles(x, ww, levels)), (dr, w), pairs=pairs)
        tl = self._read("tranche_losses", ["commitment_draw_amount", "guarantee_draw_amount"])
        nt = len(self.plan.tranche_names)
        c_any = tl.column(0).to_numpy().reshape(self.paths, nt).sum(axis=1) > 0
        g_any = tl.column(1).to_numpy().reshape(self.paths, nt).sum(axis=1) > 0
        needed_c = t["commitment_needed"].to_numpy()
        needed_g = t["guarantee_needed"].to_numpy()
        out = {
            "paths": self.paths, "ess_kish": kish_ess(w),
            "licensee_default_rate_q50": q[0], "licensee_default_rate_q95": q[1],
            "licensee_default_rate_q99": q[2], "licensee_default_rate_q999": q[3],
            "scheduled_collections_amount": float(self.plan.pool.scheduled_total),
            "commitment_provider_failed_given_needed": (
                float((w * t["commitment_provider_failed"]).sum() / (w * needed_c).sum()) if needed_c.any() else math.nan),
            "guarantee_provider_failed_given_needed": (
                float((w * t["guarantee_provider_failed"]).sum() / (w * needed_g).sum()) if needed_g.any() else math.nan),
        }
        means = {"licensee_default_rate_mean": dr, "expected_collections_amount": t["collections_amount"],
                 "p_commitment_needed": needed_c, "p_commitment_drawn": c_any,
                 "p_guarantee_needed": needed_g, "p_guarantee_drawn": g_any,
                 "p_commitment_provider_failed_when_needed": t["commitment_provider_failed"],
                 "p_guarantee_provider_failed_when_needed": t["guarantee_provider_failed"]}
        means.update({f"p_trigger_{name}": t[f"trigger_{name}"] for name in self.plan.trigger_names})
        for key, values in means.items():
            out[key], out[key + "_se"] = weighted_mean_se(np.asarray(values, dtype=float), w, pairs)
        for name, se in zip(("q50", "q95", "q99", "q999"), q_se):
            out[f"licensee_default_rate_{name}_se"] = float(se)
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
        """Per period and tranche: weighted mean (with its standard error) and 5/50/95% quantiles
        of each ledger item.

        Computed from full ledgers of the first ``cashflow_sample_paths`` paths (stated in the
        ``sample_paths`` column), re-simulated from their addresses.
        """
        from .engine import ledgers

        n = min(self.paths, self.scenario.model.simulation.cashflow_sample_paths)
        led, _ = ledgers(self.plan, self.seed, np.arange(n, dtype=np.int64), self.sampling)
        w = self.weights[:n]
        rows = []
        for owner, item, c in self._ledger_frame(led):
            if item == "dscr":
                continue  # a ratio, infinite when nothing is due: not a cash flow
            for p in range(self.plan.periods):
                x = led[:, p, c]
                qs = _weighted_quantiles(x, w, CASHFLOW_QUANTILES)
                mean, se = weighted_mean_se(x, w, self.sampling.antithetic)
                rows.append((p + 1, owner, item, mean, se, *qs, n))
        return pd.DataFrame(rows, columns=["period", "tranche", "item", "mean", "mean_se", "q05", "q50", "q95",
                                           "sample_paths"])

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
        led, _ = ledgers(self.plan, self.seed, np.array([p for _, p in chosen], np.int64), self.sampling)
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
            "variance_reduction": self.spec.sampling_info["variance_reduction"],
            "sampling": self.sampling._asdict(), "sampling_choice": self.spec.sampling_info,
            "target": self.stop, "engine": _versions(),
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
                            ("cashflows", self.cashflows), ("worst_paths", self.worst_paths),
                            ("loss_exceedance", self.exceedance_table)):
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

    @cached_property
    def exceedance_table(self) -> pd.DataFrame:
        """Every tranche's weighted exceedance curve with its 95% band (points: :func:`stats.exceedance`).

        Columns: tranche, basis, loss_fraction x, probability P(L > x), se, lower, upper. With
        antithetic pairs the standard error treats paths as independent, which overstates it
        when the pairs are negatively correlated (the point of antithetics).
        """
        frames = []
        for t in self.plan.tranche_names:
            for b in ("enhanced", "standalone"):
                x, prob, se = self.loss_exceedance(t, b)
                frames.append(pd.DataFrame({"tranche": t, "basis": b, "loss_fraction": x, "probability": prob,
                                            "se": se, "lower": np.clip(prob - Z95 * se, 0, 1),
                                            "upper": np.clip(prob + Z95 * se, 0, 1)}))
        return pd.concat(frames, ignore_index=True)

    def plot_loss_curves(self):
        """Loss exceedance curves per tranche on a log probability axis; returns a Figure."""
        from .plots import loss_curves_figure

        curves = {(t, b): self.loss_exceedance(t, b) for t in self.plan.tranche_names
                  for b in ("enhanced", "standalone")}
        return loss_curves_figure(curves, self.summary, self.scenario.name, self.paths,
                                  self.spec.sampling_info["variance_reduction"])


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
