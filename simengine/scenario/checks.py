"""Checks that need the whole scenario tree: periods against the term, unique names, names that
must refer to each other, credit, the factor correlation matrix.

Each check takes the validated model (and the expanded pool) and reports to an
:class:`ErrorSink`; :func:`check_scenario` runs them all and raises every problem at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import numpy as np

from ..errors import MISSING, ScenarioError, ScenarioErrors
from ..ratings import rating_symbols, rating_to_pd
from .messages import did_you_mean, row_label, unique_errors
from .model import Correlation, Licence, Pool, ScenarioModel, factor_names

_TYPO_CUTOFF = 0.85
_MAX_LICENCE_ERRORS = 20  # the licence checks stop once this many problems are found


class ErrorSink:
    """Collects the problems of one scenario: ``sink(path, value, expected, file=None)``.

    Parameters
    ----------
    source : str
        The scenario file; the file of every problem that names no other.
    """

    def __init__(self, source: str):
        self.source = source
        self.errors: list[ScenarioError] = []

    def __call__(self, path: str, value, expected: str, file: str | None = None) -> None:
        """Record that ``value`` at key ``path`` is not what was ``expected``."""
        self.errors.append(ScenarioError(file or self.source, path, value, expected))

    def __len__(self) -> int:
        return len(self.errors)

    def raise_any(self) -> None:
        """Raise :class:`ScenarioErrors` with every problem found (repeats dropped), if any."""
        if self.errors:
            raise ScenarioErrors(unique_errors(self.errors))


def check_scenario(model: ScenarioModel, licences: Sequence[Licence], source: str) -> None:
    """Run every whole-tree check; raise :class:`ScenarioErrors` listing all problems found.

    Parameters
    ----------
    model : ScenarioModel
        The validated tree.
    licences : sequence of Licence
        The expanded pool.
    source : str
        The scenario file.
    """
    sink = ErrorSink(source)
    check_licences(model, licences, sink)
    check_names_used(model, licences, sink)
    check_structure(model, sink)
    if model.risk.correlation.matrix is not None:
        check_matrix(model.risk.correlation, licences, sink)
    check_default(model, licences, sink)
    check_stress(model, licences, sink)
    sink.raise_any()


def licence_place(pool: Pool, source: str, i: int, key: str) -> tuple[str, str]:
    """Where a person finds field ``key`` of licence ``i``: (file, key path)."""
    if pool.licences is not None:
        return source, f"pool.licences[{i}].{key}"
    if pool.generate is not None:
        return source, f"pool.generate.{key}"
    return pool.file, f"{row_label(pool.file, i)}, column {key}"


def check_licences(model: ScenarioModel, licences: Sequence[Licence], err: ErrorSink) -> None:
    """The term as whole periods, then each licence: unique id, periods within the term, a known
    rating, a minimum royalty within the royalty, one set of attributes per licensee."""

    def err_licence(i, key, value, expected):
        file, path = licence_place(model.pool, err.source, i, key)
        err(path, value, expected, file)

    deal = model.deal
    T = deal.periods
    if abs(deal.term_years * deal.periods_per_year - T) > 1e-9:
        err("deal.term_years", deal.term_years,
            f"a whole number of periods at {deal.periods_per_year} per year "
            f"(term_years x periods_per_year = {deal.term_years * deal.periods_per_year:g})")
    if not licences:
        err("pool.licences", [], "at least one licence")
    if licences and not any(lic.royalty > 0 for lic in licences):
        err("pool.licences", "every royalty 0",
            "at least one licence with a royalty above 0 (the pool would pay nothing)")
    ids, licensees = {}, {}
    for i, lic in enumerate(licences):
        if lic.id in ids:
            err_licence(i, "id", lic.id, f"a unique licence id (also licence {ids[lic.id] + 1} of the pool)")
        ids.setdefault(lic.id, i)
        for key in ("start_period", "end_period", "expiry_period", "default_period"):
            v = getattr(lic, key)
            if v is not None and v > T:
                err_licence(i, key, v, f"a period in 1..{T} (term_years x periods_per_year; "
                            f"licence {lic.id!r})")
            elif key != "start_period" and v is not None and v < lic.start_period:
                err_licence(i, key, v, f"a period at or after start_period ({lic.start_period}; licence {lic.id!r} "
                            "would pay nothing)")
        if lic.rating is not None:
            try:
                rating_to_pd(lic.rating)
            except KeyError as exc:
                err_licence(i, "rating", lic.rating, str(exc.args[0]) + did_you_mean(lic.rating, rating_symbols()))
        if lic.royalty_type == "running" and lic.minimum_royalty > lic.royalty:
            err_licence(i, "minimum_royalty", lic.minimum_royalty, f"at most the royalty ({lic.royalty})")
        who = lic.licensee or lic.id
        key = (lic.industry, lic.region, lic.technology, lic.pd_annual, lic.rating, lic.default_period)
        if who in licensees and licensees[who] != key:
            err_licence(i, "licensee", who, "the same industry, region, technology, credit and default_period "
                        "on every licence of one licensee (the copula draws one default time per licensee)")
        licensees.setdefault(who, key)
        if len(err) >= _MAX_LICENCE_ERRORS:
            break


def check_names_used(model: ScenarioModel, licences: Sequence[Licence], err: ErrorSink) -> None:
    """A technology or industry named in [risk] but held by no licence, and nearly equal to
    one that is, is a typo (its parameters would silently not apply). Names far from every
    pool name are allowed: a shared base file may list classes that this pool lacks."""
    technologies = sorted({lic.technology for lic in licences})
    industries = sorted({lic.industry for lic in licences})
    risk = model.risk
    for path, named, known, what in (
        ("risk.obsolescence.technologies", risk.obsolescence.technologies, technologies, "a technology"),
        ("risk.legal.technologies", risk.legal.technologies, technologies, "a technology"),
        ("risk.demand.industries", risk.demand.industries, industries, "an industry"),
    ):
        for name in named:
            if name in known:
                continue
            close = [k for k in known if k.lower() == name.lower()] or difflib.get_close_matches(
                name, known, n=1, cutoff=_TYPO_CUTOFF)
            if close:
                err(f"{path}.{name}", name, f"{what} that some licence has, one of {known} "
                    f"(did you mean {close[0]!r}?)")


def check_structure(model: ScenarioModel, err: ErrorSink) -> None:
    """Tranches, triggers, reserve, providers and waterfall steps against the term and each other;
    the importance-sampling target tranche."""
    T = model.deal.periods
    st = model.structure
    names = [t.name for t in st.tranches]
    for i, t in enumerate(st.tranches):
        if names.count(t.name) > 1 and names.index(t.name) != i:
            err(f"structure.tranches[{i}].name", t.name,
                f"a unique tranche name (structure.tranches[{names.index(t.name)}] is also {t.name!r})")
        if t.maturity_period is not None and t.maturity_period > T:
            err(f"structure.tranches[{i}].maturity_period", t.maturity_period, f"a period in 1..{T}")
        if isinstance(t.amortisation, list):
            if len(t.amortisation) > T:
                err(f"structure.tranches[{i}].amortisation", len(t.amortisation),
                    f"a schedule of at most {T} periods")
            if sum(t.amortisation) > 1.0 + 1e-9:
                err(f"structure.tranches[{i}].amortisation", sum(t.amortisation),
                    "schedule fractions of the original balance that sum to at most 1")
    triggers = [t.name for t in st.triggers]
    for i, name in enumerate(triggers):
        if triggers.index(name) != i:
            err(f"structure.triggers[{i}].name", name,
                f"a unique trigger name (structure.triggers[{triggers.index(name)}] is also {name!r})")

    def check_names(path: str, listed):
        if listed is not None and len(listed) == 0:
            err(path, [], "at least one tranche name (leave the key out for the default)")
        for j, name in enumerate(listed or []):
            if name not in names:
                err(f"{path}[{j}]", name, f"a tranche name, one of {names}{did_you_mean(name, names)}")

    check_names("structure.reserve.covers", st.reserve.covers)
    providers = [(key, key, getattr(st, key), key == "liquidity_facility")
                 for key in ("payment_commitment", "guarantee", "liquidity_facility") if getattr(st, key) is not None]
    providers += [(f"providers[{i}]", p.name, p, p.kind == "liquidity")
                  for i, p in enumerate(st.providers)]
    sections = {"payment_commitment", "guarantee", "liquidity_facility"}
    seen: dict[str, str] = {}
    for key, name, prov, liquidity in providers:
        check_names(f"structure.{key}.covers", prov.covers)
        if prov.rating is not None:
            try:
                rating_to_pd(prov.rating)
            except KeyError as exc:
                err(f"structure.{key}.rating", prov.rating,
                    str(exc.args[0]) + did_you_mean(prov.rating, rating_symbols()))
        if liquidity and prov.cap_amount is None:
            err(f"structure.{key}.cap_amount", MISSING, "the facility's limit (the most it lends at a time)")
        if key.startswith("providers["):
            if name in sections or name in seen:
                err(f"structure.{key}.name", name, "a provider name used by no other provider (nor "
                    f"{sorted(sections)}, the names of the provider sections)")
        seen.setdefault(name, key)
    claimants = [name for _, name, prov, liquidity in providers if prov.reimbursed or liquidity]
    for i, step in enumerate(st.waterfall or []):
        check_names(f"structure.waterfall[{i}].tranches", step.tranches)
        if step.step in ("interest", "principal") and not step.tranches:
            err(f"structure.waterfall[{i}].tranches", step.tranches,
                f"the tranches this {step.step} step pays")
        if step.step == "reimburse" and step.tranches is not None:
            err(f"structure.waterfall[{i}].tranches", step.tranches,
                "no tranches on a reimburse step (it repays providers: use providers)")
        if step.providers is not None:
            if step.step != "reimburse":
                err(f"structure.waterfall[{i}].providers", step.providers, "providers only on a reimburse step")
            for j, name in enumerate(step.providers):
                if name not in claimants:
                    err(f"structure.waterfall[{i}].providers[{j}]", name,
                        f"a provider whose draws are repaid (a liquidity facility or reimbursed = true), one of "
                        f"{claimants}{did_you_mean(name, claimants)}")
    if st.waterfall is not None:
        paid = {n for s in st.waterfall if s.step == "principal" for n in (s.tranches or [])}
        missing = [n for n in names if n not in paid]
        if missing:
            err("structure.waterfall", missing, "a principal step for every tranche")
        repaid = {n for s in st.waterfall if s.step == "reimburse" for n in (s.providers or claimants)}
        unpaid = [n for n in claimants if n not in repaid]
        if unpaid:
            err("structure.waterfall", unpaid, "a reimburse step for every provider whose draws are repaid")
    target = model.simulation.importance.tranche
    if target is not None and target not in names:
        err("simulation.importance.tranche", target,
            f"a tranche name, one of {names}{did_you_mean(target, names)}")


def check_matrix(corr: Correlation, licences: Sequence[Licence], err: ErrorSink) -> None:
    """The factor correlation matrix: its factors those of the pool, square, unit diagonal,
    entries in [-1, 1], symmetric, positive semi-definite (the first failure only)."""
    industries = sorted({lic.industry for lic in licences})
    regions = sorted({lic.region for lic in licences})
    want = factor_names(industries, regions)
    if sorted(corr.factors) != sorted(want) or corr.factors[0] != "global":
        extra = [x for x in corr.factors if x not in want]
        lacking = [x for x in want if x not in corr.factors]
        detail = "; ".join(filter(None, [f"not in the pool: {extra}" if extra else "",
                                         f"missing: {lacking}" if lacking else ""]))
        err("risk.correlation.factors", corr.factors,
            f"'global' first, then exactly {want[1:]} in any order ({detail or 'global is not first'})")
        return
    n = len(corr.factors)
    rows = corr.matrix
    if len(rows) != n or any(len(r) != n for r in rows):
        shape = f"{len(rows)} rows of lengths {sorted({len(r) for r in rows})}"
        err("risk.correlation.matrix", shape, f"a {n}x{n} matrix, one row and column per factor "
            f"in the order of factors")
        return
    C = np.asarray(rows, dtype=float)
    for i in range(n):
        if abs(rows[i][i] - 1.0) > 1e-12:
            err(f"risk.correlation.matrix[{i}][{i}]", rows[i][i], f"1 on the diagonal ({corr.factors[i]})")
            return
    for i in range(n):
        for j in range(n):
            pair = f"{corr.factors[i]} with {corr.factors[j]}"
            if abs(rows[i][j]) > 1.0:
                err(f"risk.correlation.matrix[{i}][{j}]", rows[i][j], f"a correlation in [-1, 1] ({pair})")
                return
            if j > i and abs(rows[i][j] - rows[j][i]) > 1e-12:
                err(f"risk.correlation.matrix[{i}][{j}]", rows[i][j],
                    f"a symmetric matrix: matrix[{j}][{i}] is {rows[j][i]!r} ({pair})")
                return
    values, vectors = np.linalg.eigh(C)
    smallest = float(values[0])
    if smallest < -1e-10:
        v = vectors[:, 0]
        top = np.argsort(-np.abs(v))[:3]
        weights = ", ".join(f"{corr.factors[k]} {v[k]:+.2f}" for k in top)
        err("risk.correlation.matrix", corr.matrix,
            f"a positive semi-definite matrix, but its smallest eigenvalue is {smallest:.6g} "
            f"(its eigenvector loads most on {weights})")


def check_default(model: ScenarioModel, licences: Sequence[Licence], err: ErrorSink) -> None:
    """The default model: t-copula degrees of freedom, a PD multiplier that keeps every PD below 1,
    beta recoveries whose stdev fits their mean (the first offending licence only)."""
    dflt = model.risk.default
    if dflt.copula == "student_t" and dflt.dof <= 0:
        err("risk.default.dof", dflt.dof, "degrees of freedom > 0")
    mult = dflt.pd_multiplier
    if mult != 1.0:
        for lic in licences:
            try:
                pd_ = lic.credit_pd_annual
            except KeyError:  # an unknown rating: check_licences reports it
                pd_ = 0.0
            if pd_ * mult >= 1.0:
                err("risk.default.pd_multiplier", mult,
                    f"a multiplier that keeps every annual PD below 1 (licence {lic.id}: PD {pd_:g})")
                break
    if dflt.recovery_global_loading != 0.0 and not (dflt.recovery_model == "beta" and dflt.recovery_stdev > 0):
        err("risk.default.recovery_global_loading", dflt.recovery_global_loading,
            "0 unless recovery_model = \"beta\" with recovery_stdev > 0 (the loading moves beta recoveries)")
    if dflt.recovery_model == "beta":
        for lic in licences:
            mean = lic.recovery if lic.recovery is not None else 1.0 - dflt.relicense_haircut
            sd = dflt.recovery_stdev
            if sd > 0 and not (0.0 < mean < 1.0 and sd * sd < mean * (1.0 - mean)):
                err("risk.default.recovery_stdev", sd,
                    f"a beta stdev below sqrt(mean*(1-mean)) with 0 < mean < 1 (licence {lic.id}: mean {mean})")
                break


def scenario_warnings(model: ScenarioModel, licences: Sequence[Licence]) -> list[str]:
    """What may be legitimate but deserves a person's eye (printed by ``validate`` and ``run``, kept
    in the run's manifest): notes above everything the pool is scheduled to pay, i.e. a deal that
    can only be repaid by its credit enhancement."""
    T = model.deal.periods
    scheduled = 0.0
    for lic in licences:
        last = min(lic.end_period or T, lic.expiry_period or T, T)
        scheduled += lic.royalty * max(0, last - lic.start_period + 1)
    notes = sum(t.balance for t in model.structure.tranches)
    out = []
    if notes > scheduled:
        ratio = f"{notes / scheduled:.3g}x" if scheduled > 0 else "no royalties"
        out.append(f"structure.tranches: notes of {notes:,.2f} exceed the {scheduled:,.2f} of royalties the pool is "
                   f"scheduled to pay by legal final ({ratio}): only the credit enhancement can repay them")
    return out


def check_stress(model: ScenarioModel, licences: Sequence[Licence], err: ErrorSink) -> None:
    """[[stress.defaults]]: a licensee of the pool, at most as many as there are, a period within the term."""
    T = model.deal.periods
    names = list(dict.fromkeys(lic.licensee or lic.id for lic in licences))
    for i, d in enumerate(model.stress.defaults):
        if d.licensee is not None and d.licensee not in names:
            shown = names if len(names) <= 12 else names[:12] + ["..."]
            err(f"stress.defaults[{i}].licensee", d.licensee,
                f"a licensee of the pool (licensee, or id where a licence names none), one of {shown}"
                + did_you_mean(d.licensee, names))
        if d.largest is not None and d.largest > len(names):
            err(f"stress.defaults[{i}].largest", d.largest, f"at most the number of licensees ({len(names)})")
        if d.period > T:
            err(f"stress.defaults[{i}].period", d.period, f"a period in 1..{T} (term_years x periods_per_year)")
