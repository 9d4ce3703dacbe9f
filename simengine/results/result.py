"""The result of a run: cached statistics (SPEC §6) from its spooled per-path tables, plots,
and the run folder (SPEC §5) it writes."""

from __future__ import annotations

import math
import shutil
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property, partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from .. import _jit, ratings
from .._io import versions
from .._layout import CLAIMS, LEDGER_RATIOS, PROVIDER_KINDS, TRANCHE_DRAWS, ledger_columns
from .._progress import PhaseClock
from ..engine import RunSpec, SpooledColumns, ledgers, model_code_hash, resolved_hash
from ..plan import Plan, provider_rows
from ..scenario import Scenario
from ..stats import (
    WEIGHT_MEAN_Z,
    Z95,
    batch_se,
    effective_hits,
    event_sampling_ok,
    exceedance,
    kish_ess,
    quantiles_at,
    tail_statistics,
    upper_bound_no_events,
    variance_reduction,
    weighted_mean_se,
    weighted_means,
    weighted_quantiles,
    weighted_quantiles_rows,
    wilson,
    worst_path,
)
from .plots import loss_curves_figure
from .run_folder import write_run

LEVELS = (0.95, 0.99, 0.999)
LEVEL_NAMES = ("95", "99", "999")
BASES = (("", "enhanced"), ("standalone_", "standalone"))
CASHFLOW_QUANTILES = (0.05, 0.5, 0.95)
SUMMARY_COLUMNS = ("loss_fraction", "defaulted", "wal_years", "pv_loss_fraction", "interest_shortfall_amount")
UNRELIABLE = "unreliable"  # in place of a rating the run's sampling cannot support


class SimulationResult:
    """What :func:`simengine.simulate` returns.

    Per-path tables live in per-chunk parts in a spool folder and load on first use; every
    statistic is computed from them in path order, so it does not depend on chunking.

    Parameters
    ----------
    spec : RunSpec
        The prepared run (scenario, plan, seed, chunking, sampling measure).
    paths : int
        Paths simulated (the first ``n_chunks`` chunks of ``spec``).
    spool : Path
        Folder of the per-chunk parts (``tranche_losses/``, ``pool_paths/``).
    n_chunks : int
        Chunks in the spool that belong to this result.
    timings : dict
        Seconds spent, for the manifest.
    owns_spool : bool
        Delete the spool when the result is garbage-collected.
    threads : int
        kernel threads used (for the manifest; results do not depend on it).
    stop : dict or None
        How a target-RSE run stopped.
    attribution : callable or None
        Returns the channel attribution table (:func:`simengine.analysis.channel_attribution`);
        called with ``full=``, a function of ``n`` giving the run's own weighted losses of its
        first ``n`` paths, so the full scenario is read from the spool, not simulated again.
    attribution_choice : dict or None
        How many paths the attribution re-runs and by what rule (for the provenance).
    """

    def __init__(self, spec: RunSpec, paths: int, spool: Path, n_chunks: int, timings: dict,
                 owns_spool: bool = False, threads: int = 1, stop: dict | None = None,
                 attribution: Callable[[], pd.DataFrame] | None = None, attribution_choice: dict | None = None):
        self.spec = spec
        self.scenario: Scenario = spec.scenario
        self.plan: Plan = spec.plan
        self.paths = paths
        self.seed = spec.seed
        self.chunk_paths = spec.chunk_paths
        self.sampling = spec.sampling
        self.stop = stop  # how a --target-rse run ended; None otherwise
        self.spool = Path(spool)
        self.timings = dict(timings)
        self.threads = threads
        self._attribution = attribution  # injected by the simulation layer: re-runs live in analysis
        self.attribution_choice = attribution_choice
        self.clock = PhaseClock()  # seconds per phase of the statistics and the writing, for the manifest
        self.columns = SpooledColumns(self.spool, n_chunks, len(spec.plan.tranche_names), self.clock)
        self._worst_grades: dict[str, np.ndarray] = {}
        if owns_spool:  # a temporary spool lives exactly as long as the result
            weakref.finalize(self, shutil.rmtree, str(self.spool), True)

    def __repr__(self) -> str:
        return f"SimulationResult({self.scenario.name!r}, paths={self.paths}, seed={self.seed})"

    # ------------------------------------------------------------------------------ raw tables
    def _read(self, folder: str, columns=None) -> pa.Table:
        return self.columns.read(folder, columns)

    def _matrix(self, column: str) -> np.ndarray:
        """A tranche_losses column as ndarray, shape (paths, tranches)."""
        return self.columns.matrix(column)

    def release(self) -> None:
        """Drop the spooled columns kept for the statistics (:meth:`SpooledColumns.release`)."""
        self.columns.release()
        self._worst_grades.clear()

    @cached_property
    def weights(self) -> np.ndarray:
        """Likelihood-ratio weight of each path, ndarray(float64), shape (paths,); 1 for plain MC."""
        return self.columns.column("pool_paths", "weight")

    @cached_property
    def tranche_losses(self) -> pd.DataFrame:
        """One row per (path, tranche): loss fractions, PV loss, shortfalls, WAL, draws."""
        return self._read("tranche_losses").to_pandas()

    @cached_property
    def pool_paths(self) -> pd.DataFrame:
        """One row per path: defaults, obsolescence, invalidations, collections, pool loss."""
        return self._read("pool_paths").to_pandas()

    # ------------------------------------------------------------------------------- summary
    @property
    def rating_tables(self) -> tuple[str, ...]:
        """The implied-rating tables this run reports (``simulation.rating_tables``), in
        :data:`simengine.ratings.TABLES` order."""
        chosen = self.scenario.model.simulation.rating_tables
        return tuple(key for key in ratings.TABLES if key in chosen)

    @cached_property
    def guarantor_grades(self) -> list[list[str]]:
        """Per tranche, the S&P letter grades at closing of the guarantors that cover it."""
        rows = provider_rows(self.scenario)
        return [[r.grade for r in rows if PROVIDER_KINDS[r.kind] == "guarantee" and name in r.covers]
                for name in self.plan.tranche_names]

    @cached_property
    def migrating_providers(self) -> list[tuple[int, str, tuple[str, ...]]]:
        """(provider row, kind, grade labels best first with "D" last) of each provider that migrates."""
        kinds = self.plan.waterfall.provider_kind
        return [(j, PROVIDER_KINDS[kinds[j]], labels) for j, labels in enumerate(self.plan.provider_grades)
                if labels is not None]

    def worst_grades(self, kind: str) -> np.ndarray:
        """A migrating provider's worst grade on each path as S&P-scale ranks (0 = AAA, 7 = default),
        ndarray(float64), shape (paths,)."""
        if kind not in self._worst_grades:  # asked for per tranche and guarantor: read once
            labels = next(lab for _, k, lab in self.migrating_providers if k == kind)
            ranks = np.array([ratings.migration_grade_rank(label) for label in labels])
            codes = self._read("pool_paths", [f"{kind}_worst_grade"]).column(0)
            codes = pa.chunked_array([c.indices for c in codes.chunks]).to_numpy() if codes.num_chunks else np.zeros(0)
            self._worst_grades[kind] = ranks[codes.astype(np.int64)]
        return self._worst_grades[kind]

    @cached_property
    def summary(self) -> pd.DataFrame:
        """One row per tranche: SPEC §6 metrics, enhanced (no prefix) and ``standalone_``."""
        with self.clock("summary"):
            return self._summary()

    def _summary(self) -> pd.DataFrame:
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
                     ess_kish=ess, weight_mean=w_mean, weight_mean_se=w_se,
                     weight_max_share=float(w.max() / w.sum()) if n else math.nan)
                for k, name in enumerate(self.plan.tranche_names)]
        self.columns.prefetch("tranche_losses", [prefix + name for prefix, _ in BASES for name in SUMMARY_COLUMNS]
                              + [f"{kind}_draw_amount" for kind in PROVIDER_KINDS], self.threads)
        for prefix, _ in BASES:
            loss = self._matrix(prefix + "loss_fraction")
            defaulted = self._matrix(prefix + "defaulted").astype(float)
            wal = self._matrix(prefix + "wal_years")
            pv = self._matrix(prefix + "pv_loss_fraction")
            short = self._matrix(prefix + "interest_shortfall_amount")
            means = weighted_means([x[:, k] for k in range(len(rows)) for x in (defaulted, loss, pv, short)], w, pairs,
                                   self.threads)
            for k, row in enumerate(rows):
                (pd_, pd_se), (el, el_se), (pv_mean, pv_se), (short_mean, short_se) = means[4 * k:4 * k + 4]
                no_default = not (defaulted[:, k] > 0).any()
                if no_default:  # k = 0: the sample SE is 0; bound PD by Clopper-Pearson on the effective size
                    n_eff = ess
                    lo, hi = 0.0, upper_bound_no_events(ess)
                else:
                    n_eff = pd_ * (1 - pd_) / pd_se ** 2 if pd_se > 0 else float(n)
                    lo, hi = wilson(pd_, n_eff)
                if not (loss[:, k] > 0).any():  # a loss fraction is at most 1 and a loss is a default: EL <= PD
                    el_lo, el_hi = 0.0, hi
                else:
                    el_lo, el_hi = max(0.0, el - Z95 * el_se), el + Z95 * el_se
                # statistics that are not plain means get batch-means standard errors
                order = self.columns.order(prefix + "loss_fraction", k)
                values = tail_statistics(loss[:, k], w, defaulted[:, k], wal[:, k], order, levels=LEVELS)
                errors = batch_se(partial(tail_statistics, levels=LEVELS), (loss[:, k], w, defaulted[:, k], wal[:, k]),
                                  pairs=pairs, order=order)
                lgd, wal_mean, q50 = values[:3]
                row.update({
                    prefix + "pd": pd_, prefix + "pd_se": pd_se, prefix + "pd_lower": lo, prefix + "pd_upper": hi,
                    prefix + "pd_n_eff": n_eff, prefix + "no_loss_observed": no_default,
                    prefix + "pd_vr": variance_reduction(defaulted[:, k], w, pd_se),
                    prefix + "el": el, prefix + "el_se": el_se, prefix + "el_lower": el_lo, prefix + "el_upper": el_hi,
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
                hits, ess_hits = effective_hits(defaulted[:, k] > 0, w)
                ok, note = event_sampling_ok(hits, ess_hits)
                row.update({prefix + "effective_hits": ess_hits, prefix + "sampling_ok": ok,
                            prefix + "sampling_note": note})
                estimates = {"pd": (pd_, lo, hi, horizon), "el": (el, el_lo, el_hi, wal_mean)}
                for key in self.rating_tables:
                    table = ratings.TABLES[key]
                    value, best, worst, h = estimates[table.estimate]
                    row[prefix + f"rating_{key}"] = ratings.implied(key, value, h)
                    row[prefix + f"rating_{key}_range"] = ratings.notch_range(ratings.implied(key, best, h),
                                                                             ratings.implied(key, worst, h))
        if "sp" in self.rating_tables:
            for k, row in enumerate(rows):
                row["rating_enhanced_capped"] = ratings.capped_rating(row["rating_sp"], row["standalone_rating_sp"],
                                                              self.guarantor_grades[k])
            self._capped_downgrades(rows, w, pairs)
        attribution = self.channel_attribution.set_index(["tranche", "basis"])
        for prefix, basis in BASES:
            for row in rows:
                a = attribution.loc[(row["tranche"], basis)]
                for col in ("el_credit_only", "via_obsolescence", "via_obsolescence_se", "via_demand",
                            "via_demand_se", "interaction"):
                    name = col if col.startswith("el_") else f"el_{col}"
                    row[prefix + name] = float(a[col])
                row["attribution_paths"] = int(a["attribution_paths"])
        self._check_measure(rows)
        for prefix, _ in BASES:  # a rating the sampling cannot support is withheld, not printed
            for row in rows:
                if not row[prefix + "sampling_ok"]:
                    for name in [c for c in row if c.startswith(prefix + "rating_")]:
                        row[name] = UNRELIABLE
        draws = {kind: self._matrix(f"{kind}_draw_amount") for kind in PROVIDER_KINDS}
        for k, row in enumerate(rows):
            stats = [(f"{kind}_draw_mean_amount", x[:, k]) for kind, x in draws.items()]
            stats += [(f"p_{kind}_drawn", x[:, k] > 0) for kind, x in draws.items()]
            for (name, _), (mean, se) in zip(stats, weighted_means([x for _, x in stats], w, pairs, self.threads)):
                row[name], row[name + "_se"] = mean, se
        return pd.DataFrame(rows)

    def _check_measure(self, rows: list[dict]) -> None:
        """Mark every tranche statistic unreliable when the likelihood ratios do not average 1
        within ``WEIGHT_MEAN_Z`` standard errors: the sample then misses part of the scenario's own
        measure. Only the pilot's own target keeps its verdict (the measure was chosen to cover its
        loss, and its effective hits were checked); a shift fixed by hand gets no such benefit."""
        info = self.spec.sampling_info
        mean, se = rows[0]["weight_mean"], rows[0]["weight_mean_se"]
        if info["variance_reduction"] == "none" or abs(mean - 1.0) <= WEIGHT_MEAN_Z * se:
            return
        piloted = not info.get("fixed", False)
        for prefix, basis in BASES:
            for row in rows:
                if piloted and row["tranche"] == info.get("target_tranche") and basis == info.get("target_basis"):
                    continue
                if row[prefix + "sampling_ok"]:
                    row[prefix + "sampling_ok"] = False
                    why = "was aimed at another tranche" if piloted else "was fixed by hand (let the pilot choose it)"
                    row[prefix + "sampling_note"] = (
                        f"the likelihood ratios average {mean:.3g} +- {se:.2g}, not 1: the measure {why}")

    @cached_property
    def sampling_warnings(self) -> list[str]:
        """What the run's own sampling checks found, one line each (empty when all is well).

        Per tranche and basis: its losses resting on too few effective paths (ratings withheld,
        ``sampling_ok`` false); for the run: the mean likelihood ratio more than ``WEIGHT_MEAN_Z``
        standard errors from 1 (the measure is off for whole-distribution statistics).
        """
        s = self.summary
        out = []
        for prefix, basis in BASES:
            for _, row in s[~s[prefix + "sampling_ok"].astype(bool)].iterrows():
                out.append(f"tranche {row['tranche']} ({basis}): PD, EL and loss quantiles unreliable: "
                           f"{row[prefix + 'sampling_note']}; ratings withheld")
        mean, se = float(s["weight_mean"].iloc[0]), float(s["weight_mean_se"].iloc[0])
        if self.spec.sampling_info["variance_reduction"] != "none" and not abs(mean - 1.0) <= WEIGHT_MEAN_Z * se:
            out.append(f"the likelihood ratios average {mean:.3g} +- {se:.2g}, not 1: pool statistics and tranches "
                       "the measure was not aimed at may be far off (Kish effective sample size "
                       f"{float(s['ess_kish'].iloc[0]):,.0f} of {self.paths:,})")
        return out

    def _capped_downgrades(self, rows: list[dict], w: np.ndarray, pairs: bool) -> None:
        """Where a guarantor migrates: P(on a path its worst grade pulls the capped rating below the
        one at closing), and that without an enhanced loss or default (the Bowie case), per tranche."""
        migrating = {j: kind for j, kind, _ in self.migrating_providers}
        kinds = self.plan.waterfall.provider_kind
        covers = self.plan.waterfall.provider_covers
        guarantors = [j for j in range(len(kinds)) if PROVIDER_KINDS[kinds[j]] == "guarantee"]
        if not any(j in migrating for j in guarantors):
            return
        rank = ratings.grade_rank
        closing_grade = {r: row.grade for r, row in enumerate(provider_rows(self.scenario))}
        loss = self._matrix("loss_fraction")
        defaulted = self._matrix("defaulted").astype(bool)
        for k, row in enumerate(rows):
            closing = rank("sp", row["rating_enhanced_capped"])
            cap = np.full(self.paths, rank("sp", row["rating_sp"]))
            for j in (j for j in guarantors if covers[j, k]):
                cap = np.maximum(cap, self.worst_grades(migrating[j]) if j in migrating
                                 else rank("sp", closing_grade[j]))
            cap = np.minimum(cap, rank("sp", row["standalone_rating_sp"]))
            down = (cap > closing).astype(float) if not math.isnan(closing) else np.zeros(self.paths)
            no_loss = down * ((loss[:, k] <= 0) & ~defaulted[:, k])
            for name, x in (("p_rating_enhanced_capped_downgrade", down),
                            ("p_rating_enhanced_capped_downgrade_no_loss", no_loss)):
                row[name], row[name + "_se"] = weighted_mean_se(x, w, pairs)

    @cached_property
    def rating_levels(self) -> pd.DataFrame:
        """Scenario default rates by rating (the SDR of S&P's CDO Evaluator): for each grade of the
        S&P table, the pool's cumulative licensee default rate and pool loss rate that are exceeded
        with the grade's cumulative PD at the legal final (the horizon every tranche's PD is
        measured at), i.e. their weighted quantiles at level 1 - PD_grade.

        Columns: table, grade, horizon_years, grade_pd (the monotone threshold of
        :func:`simengine.ratings.thresholds`), tail_paths (grade_pd x Kish's effective sample
        size: how many effective paths lie beyond the quantile), default_rate (fraction of
        licensees by count) and pool_loss_rate (1 - collections / scheduled), each with a
        batch-means standard error (``_se``). NaN where grade_pd is 0 (the 100% quantile: no
        sample estimates it) or the horizon lies beyond the table.
        """
        with self.clock("rating_levels"):
            return self._rating_levels()

    def _rating_levels(self) -> pd.DataFrame:
        w = self.weights
        rates = ("default_fraction", "pool_loss_fraction")
        wp = self.plan.waterfall
        horizon = self.plan.periods / wp.periods_per_year
        grades = ratings.table_grades("sp")
        limits = ratings.thresholds("sp", horizon)
        if limits is None:
            limits = np.full(len(grades), math.nan)
        ess = kish_ess(w)
        usable = [p for p in limits if p > 0]
        levels = [1.0 - p for p in usable]
        values, errors = [], []
        for name in rates:  # each column sorted once: its batches' orders are cut from it
            x, order = self.columns.column("pool_paths", name), self.columns.order(name) if levels else None
            values.append(weighted_quantiles(x, w, levels, order) if levels else [])
            errors.append(batch_se(partial(quantiles_at, levels=levels), (x, w), pairs=self.sampling.antithetic,
                                   order=order) if levels else [])
        rows = []
        j = 0
        for grade, p in zip(grades, limits):
            row = {"table": "sp", "grade": grade, "horizon_years": horizon, "grade_pd": float(p),
                   "tail_paths": float(p) * ess}
            for name, v, e in zip(("default_rate", "pool_loss_rate"), values, errors):
                row[name], row[name + "_se"] = (float(v[j]), float(e[j])) if p > 0 else (math.nan, math.nan)
            j += int(p > 0)
            rows.append(row)
        return pd.DataFrame(rows)

    @cached_property
    def channel_attribution(self) -> pd.DataFrame:
        """How much of each tranche's EL comes through each risk channel (common random numbers);
        see :func:`simengine.analysis.channel_attribution`."""
        if self._attribution is None:
            raise ValueError("this result was built without channel attribution")
        with self.clock("channel_attribution"):
            return self._attribution(full=self.columns.weighted_losses)

    @cached_property
    def pool_summary(self) -> dict:
        """Pool-level statistics (SPEC §6): default rates, collections, triggers, providers."""
        with self.clock("pool_summary"):
            return self._pool_summary()

    def _pool_summary(self) -> dict:
        def t(name: str) -> np.ndarray:
            return self.columns.column("pool_paths", name)

        w = self.weights
        pairs = self.sampling.antithetic
        self.columns.prefetch("pool_paths", ["default_fraction", "collections_amount", "call_period", *CLAIMS]
                              + [f"{kind}_{what}" for kind in PROVIDER_KINDS for what in ("needed", "provider_failed")]
                              + [f"trigger_{name}" for name in self.plan.trigger_names], self.threads)
        dr = t("default_fraction")
        levels = (0.5, 0.95, 0.99, 0.999)
        order = self.columns.order("default_fraction")  # shared with rating_levels
        q = weighted_quantiles(dr, w, levels, order)
        q_se = batch_se(partial(quantiles_at, levels=levels), (dr, w), pairs=pairs, order=order)
        drawn = {kind: self._matrix(column).sum(axis=1) > 0 for kind, column in zip(PROVIDER_KINDS, TRANCHE_DRAWS)}
        needed = {kind: t(f"{kind}_needed") for kind in PROVIDER_KINDS}
        failed = {kind: t(f"{kind}_provider_failed") for kind in PROVIDER_KINDS}
        out = {
            "paths": self.paths, "ess_kish": kish_ess(w),
            "licensee_default_rate_q50": q[0], "licensee_default_rate_q95": q[1],
            "licensee_default_rate_q99": q[2], "licensee_default_rate_q999": q[3],
            "scheduled_collections_amount": float(self.plan.pool.scheduled_total),
        }
        for kind in PROVIDER_KINDS:
            n = needed[kind]
            out[f"{kind}_provider_failed_given_needed"] = (
                float((w * failed[kind]).sum() / (w * n).sum()) if n.any() else math.nan)
        means = {"licensee_default_rate_mean": dr, "expected_collections_amount": t("collections_amount")}
        for kind in PROVIDER_KINDS:
            means[f"p_{kind}_needed"] = needed[kind]
            means[f"p_{kind}_drawn"] = drawn[kind]
        for kind in PROVIDER_KINDS:
            means[f"p_{kind}_provider_failed_when_needed"] = failed[kind]
        means.update({f"p_trigger_{name}": t(f"trigger_{name}") for name in self.plan.trigger_names})
        for j, kind, labels in self.migrating_providers:  # credit migration: grades over the deal
            worst = self.worst_grades(kind)
            start = ratings.migration_grade_rank(labels[int(self.plan.pool.provider_initial_grade[j])])
            means[f"p_{kind}_downgraded"] = worst > start
            means[f"p_{kind}_below_investment_grade"] = worst >= len(ratings.INVESTMENT_GRADE)
            means[f"p_{kind}_defaulted"] = worst >= len(ratings.SP_LETTERS)
        # what the providers are still owed at legal final, and the clean-up call
        for kind, name in zip(PROVIDER_KINDS, CLAIMS):
            owed = t(name)
            means[f"p_{kind}_claim_outstanding_at_final"] = owed > 0
            means[f"{kind}_unreimbursed_mean_amount"] = owed
        call = np.asarray(t("call_period"), dtype=float)  # a null (not called) reads as NaN
        called = ~np.isnan(call)
        means["p_called"] = called
        for key, (mean, se) in zip(means, weighted_means(list(means.values()), w, pairs, self.threads)):
            out[key], out[key + "_se"] = mean, se
        out["call_period_mean"] = float((w * call)[called].sum() / w[called].sum()) if called.any() else math.nan
        for name, se in zip(("q50", "q95", "q99", "q999"), q_se):
            out[f"licensee_default_rate_{name}_se"] = float(se)
        return out

    # ----------------------------------------------------------------------------- cash flows
    @cached_property
    def cashflows(self) -> pd.DataFrame:
        """Per period and tranche: weighted mean (with its standard error) and 5/50/95% quantiles
        of each ledger item.

        Computed from full ledgers of the first ``cashflow_sample_paths`` paths (stated in the
        ``sample_paths`` column), re-simulated from their addresses.
        """
        n = min(self.paths, self.scenario.model.simulation.cashflow_sample_paths)
        with self.clock("cashflows_ledgers"):
            led, _ = ledgers(self.plan, self.seed, np.arange(n, dtype=np.int64), self.sampling, threads=None)
        with self.clock("cashflows"):
            return self._cashflows(led, n)

    def _cashflows(self, led: np.ndarray, n: int) -> pd.DataFrame:
        w = self.weights[:n]
        # ratios (infinite when nothing is due, NaN when not computed) are not cash flows
        items = [(owner, item, c) for owner, item, c in ledger_columns(self.plan.tranche_names)
                 if item not in LEDGER_RATIOS]

        def item_rows(owner: str, item: str, c: int) -> list[tuple]:
            per_period = np.ascontiguousarray(led[:, :, c].T)  # the item's periods as contiguous rows
            qs = weighted_quantiles_rows(per_period, w, CASHFLOW_QUANTILES)  # every period at once
            mean, se = weighted_mean_se(per_period, w, self.sampling.antithetic)
            return [(p + 1, owner, item, float(mean[p]), float(se[p]), *qs[:, p], n) for p in range(len(mean))]

        with ThreadPoolExecutor(max(1, self.threads)) as pool:  # numpy's partitions release the GIL
            parts = list(pool.map(lambda args: item_rows(*args), items))
        columns = ["period", "tranche", "item", "mean", "mean_se", "q05", "q50", "q95", "sample_paths"]
        return pd.DataFrame([row for part in parts for row in part], columns=columns)

    @cached_property
    def worst_paths(self) -> pd.DataFrame:
        """Full ledgers of the worst path for each tranche (largest loss, then shortfall, then PV loss)."""
        with self.clock("worst_paths"):
            return self._worst_paths()

    def _worst_paths(self) -> pd.DataFrame:
        loss = self._matrix("loss_fraction")
        short = self._matrix("interest_shortfall_amount")
        pv = self._matrix("pv_loss_fraction")
        chosen = []
        for k, name in enumerate(self.plan.tranche_names):
            chosen.append((name, worst_path(loss[:, k], short[:, k], pv[:, k])))
        with self.clock("worst_paths_ledgers"):
            led, _ = ledgers(self.plan, self.seed, np.array([p for _, p in chosen], np.int64), self.sampling)
        frames = []
        cols = ledger_columns(self.plan.tranche_names)
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
        """Where the numbers come from: scenario, seed, paths, chunking, sampling, versions."""
        sim = self.scenario.model.simulation
        return {
            "scenario": self.scenario.name, "scenario_file": self.scenario.source,
            "scenario_hash": self.scenario.file_hash, "resolved_scenario_hash": resolved_hash(self.scenario),
            "model_code": model_code_hash(),
            "seed": self.seed, "paths": self.paths,
            "chunk_paths": self.chunk_paths, "cashflow_sample_paths": min(self.paths, sim.cashflow_sample_paths),
            "channel_attribution": self.attribution_choice,
            "variance_reduction": self.spec.sampling_info["variance_reduction"],
            "sampling": self.sampling._asdict(), "sampling_choice": self.spec.sampling_info,
            "target": self.stop, "engine": versions(),
            "numba_threading_layer": _jit.threading_layer(), "threads": self.threads,
            "numba_disabled": _jit.DISABLED, "rating_tables": list(self.rating_tables),
        }

    def manifest(self, status: str, timings: dict | None = None) -> dict:
        """``manifest.json`` of the run folder with ``status`` (``"ok"`` once everything is written)."""
        timings = {**self.timings, **(timings or {}), "phases": self.clock.seconds}
        return {**self.provenance(), "status": status, "timings": timings,
                "resolved_scenario": self.scenario.resolved(), "pool_summary": self.pool_summary,
                "rating_tables": {key: {"source": ratings.TABLES[key].source, "verified": ratings.TABLES[key].verified}
                                  for key in self.rating_tables},
                "scenario_warnings": self.scenario.warnings, "sampling_warnings": self.sampling_warnings,
                "units": "fractions of original tranche balance unless a column ends in _amount"}

    def to_parquet(self, out_dir: str | Path) -> Path:
        """Write the run folder (SPEC §5); each file appears complete or not at all."""
        return write_run(self, Path(out_dir))

    # ---------------------------------------------------------------------------------- plots
    def loss_exceedance(self, tranche: str, basis: str = "enhanced"):
        """(x, P(L > x), standard error) for one tranche; weighted."""
        return self._curves[(tranche, basis)]

    @cached_property
    def _curves(self) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """{(tranche, basis): :meth:`loss_exceedance`}, each from the loss column's one sort."""
        with self.clock("exceedance"):
            curves = {}
            for k, t in enumerate(self.plan.tranche_names):
                for prefix, basis in BASES:
                    loss = self._matrix(prefix + "loss_fraction")[:, k]
                    curves[(t, basis)] = exceedance(loss, self.weights, self.columns.order(prefix + "loss_fraction", k))
            return curves

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
                x, prob, se = self._curves[(t, b)]
                frames.append(pd.DataFrame({"tranche": t, "basis": b, "loss_fraction": x, "probability": prob,
                                            "se": se, "lower": np.clip(prob - Z95 * se, 0, 1),
                                            "upper": np.clip(prob + Z95 * se, 0, 1)}))
        return pd.concat(frames, ignore_index=True)

    def plot_loss_curves(self):
        """Loss exceedance curves per tranche on a log probability axis; returns a Figure."""
        summary = self.summary
        with self.clock("plot"):
            return loss_curves_figure(dict(self._curves), summary, self.scenario.name, self.paths,
                                      self.spec.sampling_info["variance_reduction"])
