"""The scenario's tables as frozen pydantic models, each with its own field checks.

Validation of one table at a time only; checks that need the whole tree are in
:mod:`simengine.scenario.checks`. Periods are numbered from 1 (the first payment date) to
``term_years * periods_per_year`` (the legal final) and ranges of periods are inclusive.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..errors import MISSING
from ..ratings import letter_grade, rating_to_pd, transition_matrix

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Loading = Annotated[float, Field(ge=-1.0, le=1.0)]


def _problem(key: str, value, expected: str) -> PydanticCustomError:
    """An error of a whole-table check that points at one key (``""``: the table itself)."""
    return PydanticCustomError("scenario_field", "{expected}", {"key": key, "value": value, "expected": expected})


def _has_bool(value) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, list):
        return any(_has_bool(v) for v in value)
    if isinstance(value, dict):
        return any(_has_bool(v) for v in value.values())
    return False


def _holds_bool_or_model(annotation) -> bool:
    """Whether a field's type is bool or contains a table (whose own fields are checked there)."""
    if annotation is bool or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return True
    return any(_holds_bool_or_model(a) for a in get_args(annotation))


class _Model(BaseModel):
    # inf and nan are valid TOML floats but never valid inputs here
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value, info):
        """``true``/``false`` are not numbers or names (pydantic would read ``true`` as 1.0)."""
        if _has_bool(value) and not _holds_bool_or_model(cls.model_fields[info.field_name].annotation):
            raise PydanticCustomError("bool_not_allowed", "a number or text, not true/false")
        return value


class _Credit(_Model):
    """A table whose credit is given as ``pd_annual`` or as ``rating`` (a licence, a provider)."""

    @property
    def credit_pd_annual(self) -> float:
        """The annual PD: ``pd_annual``, or the shipped table's 1-year PD of ``rating``.

        Raises KeyError for a rating not in the table (a validated Scenario has none: its checks
        report one as a ScenarioError).
        """
        return self.pd_annual if self.pd_annual is not None else rating_to_pd(self.rating)


# ---------------------------------------------------------------------------------------- deal
class Deal(_Model):
    """[deal]: name, currency, payment frequency, term and discount rate."""

    name: str
    currency: str = "CNY"
    periods_per_year: Literal[1, 2, 4, 12] = 4
    term_years: Annotated[float, Field(gt=0.0, le=100.0)]
    discount_rate: Annotated[float, Field(gt=-0.5, lt=1.0)] = 0.0
    closing_date: date | None = None

    @property
    def periods(self) -> int:
        """Payment periods to the legal final (``term_years * periods_per_year``, rounded)."""
        return int(round(self.term_years * self.periods_per_year))


# ---------------------------------------------------------------------------------------- pool
class Licence(_Credit):
    """One licence of the pool: its licensee, classes, royalty, periods and credit (``pd_annual`` or ``rating``)."""

    id: str
    licensee: str | None = None
    industry: str = "default"
    region: str = "default"
    technology: str = "default"
    ip_type: Literal["patent", "trademark", "copyright"] = "patent"
    royalty: NonNegative
    royalty_type: Literal["fixed", "running"] = "fixed"
    minimum_royalty: NonNegative = 0.0
    start_period: Annotated[int, Field(ge=1)] = 1
    end_period: Annotated[int, Field(ge=1)] | None = None
    expiry_period: Annotated[int, Field(ge=1)] | None = None
    pd_annual: Annotated[float, Field(ge=0.0, lt=1.0)] | None = None
    rating: str | None = None
    recovery: Fraction | None = None
    default_period: Annotated[int, Field(ge=1)] | None = None  # forced default (stresses, hand computations)

    @model_validator(mode="after")
    def _credit(self):
        _one_credit(self, f"licence {self.id!r}")
        if self.end_period is not None and self.end_period < self.start_period:
            raise _problem("end_period", self.end_period,
                           f"a period >= start_period ({self.start_period}) (licence {self.id!r})")
        return self


def _one_credit(m, who: str) -> None:
    if m.pd_annual is not None and m.rating is not None:
        raise _problem("", {"pd_annual": m.pd_annual, "rating": m.rating},
                       f"exactly one of pd_annual or rating, not both ({who})")
    if m.pd_annual is None and m.rating is None:
        raise _problem("", {"pd_annual": MISSING, "rating": MISSING},
                       f"exactly one of pd_annual or rating; neither is given ({who})")


_GENERATED_FIELDS = [name for name in Licence.model_fields if name not in ("id", "licensee")]


class PoolGenerate(_Model):
    """A synthetic pool: ``count`` licences, one licensee each; a list value is cycled."""

    count: Annotated[int, Field(ge=1, le=1_000_000)]
    id_prefix: str = "L"
    industry: str | list[str] = "default"
    region: str | list[str] = "default"
    technology: str | list[str] = "default"
    ip_type: str | list[str] = "patent"
    royalty: float | list[float]
    royalty_type: str | list[str] = "fixed"
    minimum_royalty: float | list[float] = 0.0
    start_period: int | list[int] = 1
    end_period: int | list[int] | None = None
    expiry_period: int | list[int] | None = None
    pd_annual: float | list[float] | None = None
    rating: str | list[str] | None = None
    recovery: float | list[float] | None = None
    default_period: int | list[int] | None = None

    @model_validator(mode="after")
    def _no_empty_lists(self):
        for name in _GENERATED_FIELDS:
            if getattr(self, name) == []:
                raise _problem(name, [], "a value or a non-empty list of values to cycle through")
        return self

    def expand(self) -> list[dict]:
        """The licences as dictionaries of licence fields; ids are ``id_prefix`` and a zero-padded number."""
        rows = []
        width = len(str(self.count))
        for i in range(self.count):
            row = {"id": f"{self.id_prefix}{i + 1:0{width}d}"}
            for name in _GENERATED_FIELDS:
                value = getattr(self, name)
                if isinstance(value, list):
                    value = value[i % len(value)]
                if value is not None:
                    row[name] = value
            rows.append(row)
        return rows


class Pool(_Model):
    """[pool]: exactly one source: ``licences``, a CSV/Parquet ``file`` or ``generate``."""

    licences: list[Licence] | None = None
    file: str | None = None
    generate: PoolGenerate | None = None

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("licences", "file", "generate") if getattr(self, k) is not None]
        if len(given) != 1:
            raise _problem("", given or MISSING,
                           "exactly one pool source: [[pool.licences]], pool.file or [pool.generate]")
        return self


# ---------------------------------------------------------------------------------------- risk
class DefaultRisk(_Model):
    """[risk.default]: the licensee default model (copula, recoveries, re-licensing, PD stress)."""

    enabled: bool = True
    copula: Literal["gaussian", "student_t"] = "gaussian"
    dof: Annotated[float, Field(gt=0.0, le=1000.0)] = 5.0
    recovery_model: Literal["fixed", "beta"] = "fixed"
    recovery_stdev: NonNegative = 0.0
    relicense_lag_periods: Annotated[int, Field(ge=1)] = 4
    relicense_haircut: Fraction = 1.0
    pd_multiplier: NonNegative = 1.0  # stress: every licensee's annual PD times this
    # systematic recovery (beta model): the beta quantile of Phi(loading G + sqrt(1 - loading^2) e),
    # G the global factor, so bad times mean low recoveries; 0 = independent gamma draws
    recovery_global_loading: Loading = 0.0


class Correlation(_Model):
    """Variance shares (pairwise latent correlations) of the global, industry and region factors.

    Two licensees in the same industry and region have latent correlation
    ``global + industry + region``; in different ones, ``global``.
    """

    global_: Fraction = Field(0.0, alias="global")
    industry: Fraction = 0.0
    region: Fraction = 0.0
    factors: list[str] | None = None
    matrix: list[list[float]] | None = None

    @model_validator(mode="after")
    def _shares(self):
        total = self.global_ + self.industry + self.region
        if total > 1.0 + 1e-12:
            raise _problem("", {"global": self.global_, "industry": self.industry, "region": self.region},
                           f"global + industry + region <= 1 (they sum to {total:g}; each is a share "
                           "of the latent variance)")
        if self.factors is None and self.matrix is not None:
            raise _problem("factors", MISSING, "the factor names of the rows of matrix (a matrix needs them)")
        if self.matrix is None and self.factors is not None:
            raise _problem("matrix", MISSING, "a factor correlation matrix to go with factors")
        return self


def factor_names(industries, regions) -> list[str]:
    """The systematic factors in their one order: the rows of ``risk.correlation.matrix`` once
    sorted, and of the plan's factor Cholesky root.

    Parameters
    ----------
    industries, regions : sequence of str
        The pool's industries and regions, sorted.

    Returns
    -------
    list of str
        ``["global", "industry.A", ..., "region.X", ...]``.
    """
    return ["global"] + [f"industry.{x}" for x in industries] + [f"region.{x}" for x in regions]


class TechnologyObsolescence(_Model):
    """[risk.obsolescence.technologies.NAME]: one technology's values over the defaults."""

    hazard_annual: NonNegative | None = None
    severity: Fraction | None = None
    hazard_multiplier_after_obsolescence: NonNegative | None = None
    period: Annotated[int, Field(ge=1)] | None = None


class Obsolescence(_Model):
    """[risk.obsolescence]: technology obsolescence hazards and their severity."""

    enabled: bool = True
    hazard_annual: NonNegative = 0.0
    severity: Fraction = 1.0
    global_loading: Loading = 0.0
    hazard_multiplier_after_obsolescence: NonNegative = 1.0
    technologies: dict[str, TechnologyObsolescence] = {}


class IndustryDemand(_Model):
    """[risk.demand.industries.NAME]: one industry's values over the defaults."""

    drift_annual: float | None = None
    volatility_annual: NonNegative | None = None
    mean_reversion_annual: NonNegative | None = None
    global_loading: Loading | None = None
    demand_hazard_elasticity: float | None = None


class Demand(_Model):
    """[risk.demand]: the industry demand index (GBM or OU) and its effect on default hazards."""

    enabled: bool = True
    model: Literal["gbm", "ou"] = "gbm"
    drift_annual: float = 0.0
    volatility_annual: NonNegative = 0.0
    mean_reversion_annual: NonNegative = 0.0
    global_loading: Loading = 0.0
    demand_hazard_elasticity: float = 0.0
    shock_drift_annual: float = 0.0
    shock_years: NonNegative = 0.0
    industries: dict[str, IndustryDemand] = {}


class Legal(_Model):
    """[risk.legal]: IP invalidation hazards by IP type and technology."""

    enabled: bool = True
    invalidation_hazard_annual: NonNegative = 0.0
    technologies: dict[str, NonNegative] = {}
    ip_types: dict[Literal["patent", "trademark", "copyright"], NonNegative] = {}


class Risk(_Model):
    """[risk]: default, correlation, obsolescence, demand and legal risk."""

    default: DefaultRisk = DefaultRisk()
    correlation: Correlation = Correlation()
    obsolescence: Obsolescence = Obsolescence()
    demand: Demand = Demand()
    legal: Legal = Legal()


# ----------------------------------------------------------------------------------- structure
class Tranche(_Model):
    """One note of [[structure.tranches]], most senior first."""

    name: str
    balance: Annotated[float, Field(gt=0.0)]
    coupon: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    interest_deferrable: bool = False
    amortisation: Literal["sequential", "pro_rata", "bullet"] | list[NonNegative] = "sequential"
    maturity_period: Annotated[int, Field(ge=1)] | None = None
    interest_on_deferred: bool = False  # a carried (deferred) interest shortfall accrues at the coupon


class Fees(_Model):
    """[structure.fees]: senior fees per period and as basis points a year."""

    fixed_per_period: NonNegative = 0.0
    bps_annual: NonNegative = 0.0


class Reserve(_Model):
    """[structure.reserve]: the reserve account, its target and the tranches it covers."""

    initial_amount: NonNegative = 0.0
    target_amount: NonNegative | None = None
    target_fraction: NonNegative | None = None
    covers: list[str] | None = None

    @model_validator(mode="after")
    def _target(self):
        if self.target_amount is not None and self.target_fraction is not None:
            raise _problem("", {"target_amount": self.target_amount, "target_fraction": self.target_fraction},
                           "at most one of target_amount or target_fraction")
        return self


class Trigger(_Model):
    """One of [[structure.triggers]]: a metric, a threshold and the effect of a breach.

    ``cumulative_default_rate`` breaches above its threshold; the coverage ratios ``dscr``
    (collections / (fees + interest + scheduled principal)), ``icr`` (collections / (fees +
    interest)) and ``oc`` (collateral value / notes, see [structure.oc_test]) below theirs.
    """

    name: str
    metric: Literal["cumulative_default_rate", "dscr", "icr", "oc"]
    threshold: NonNegative
    effect: Literal["sequential", "trap", "accelerate", "early_amortisation"]
    trap_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0  # share of the excess cash a trap holds
    curable: bool = False
    consecutive_periods: Annotated[int, Field(ge=1)] = 1

    @model_validator(mode="after")
    def _fraction(self):
        if self.metric == "cumulative_default_rate" and self.threshold > 1.0:
            raise _problem("threshold", self.threshold,
                           "a fraction in [0, 1] for cumulative_default_rate (10% is 0.10)")
        if self.trap_fraction != 1.0 and self.effect != "trap":
            raise _problem("trap_fraction", self.trap_fraction,
                           f"no trap_fraction with effect {self.effect!r} (it is the share a trap holds)")
        return self


class Migration(_Model):
    """[structure.<provider>.migration]: the provider's credit moves through rating grades, one
    year at a time, by a latent-variable threshold model over a one-year transition matrix.

    The shipped matrix (``matrix = "sp_1981_2016"``, the default) or the scenario's own:
    ``grades`` (best first, rating symbols) and ``rows`` (one per grade: the one-year probabilities
    of moving to each grade, then of default; each row sums to 1).
    """

    matrix: Literal["sp_1981_2016"] | None = None
    grades: list[str] | None = None
    rows: list[list[Annotated[float, Field(ge=0.0, le=1.0)]]] | None = None

    @model_validator(mode="after")
    def _matrix(self):
        if (self.grades is None) != (self.rows is None):
            raise _problem("rows" if self.rows is None else "grades", MISSING,
                           "both grades and rows for the scenario's own transition matrix")
        if self.grades is None:
            return self
        if self.matrix is not None:
            raise _problem("matrix", self.matrix, "no shipped matrix beside the scenario's own grades and rows")
        if len(set(self.grades)) != len(self.grades) or not self.grades:
            raise _problem("grades", self.grades, "distinct rating grades, best first")
        for g in self.grades:
            try:
                letter_grade(g)
            except KeyError as exc:
                raise _problem("grades", g, str(exc.args[0])) from None
        if len(self.rows) != len(self.grades):
            raise _problem("rows", len(self.rows), f"one row per grade ({len(self.grades)})")
        for i, row in enumerate(self.rows):
            if len(row) != len(self.grades) + 1:
                raise _problem(f"rows[{i}]", row, f"{len(self.grades) + 1} probabilities: each grade, then default")
            if abs(sum(row) - 1.0) > 1e-6:
                raise _problem(f"rows[{i}]", row, f"probabilities that sum to 1 (they sum to {sum(row):.8g})")
        return self

    def table(self) -> tuple[tuple[str, ...], list[list[float]]]:
        """(grades best first, rows of one-year probabilities: each grade, then default)."""
        if self.grades is not None:
            return tuple(self.grades), [list(r) for r in self.rows]
        grades, probs = transition_matrix(self.matrix or "sp_1981_2016")
        return grades, probs.tolist()

    def initial_grade(self, rating: str) -> int:
        """Index of a provider's ``rating`` on this matrix's scale (its letter grade on a shipped
        matrix, the symbol itself on the scenario's own). Raises KeyError if it is not there."""
        grades = self.table()[0]
        if rating in grades:
            return grades.index(rating)
        if self.grades is None and letter_grade(rating) in grades:
            return grades.index(letter_grade(rating))
        raise KeyError(f"a grade of the migration matrix, one of {list(grades)}")


class OcTest(_Model):
    """[structure.oc_test]: how the ``oc`` trigger metric values the collateral.

    The value at a payment date is the present value of the scheduled royalties still to come from
    licences that still pay their licensee (re-licences are not counted), discounted at
    ``discount_rate`` (default: the deal's); with ``obsolescence = "expected"`` each royalty is
    cut by its technology's severity times the chance that the technology is obsolete by then
    (the full severity once it is).
    """

    obsolescence: Literal["none", "expected"] = "none"
    discount_rate: Annotated[float, Field(gt=-0.5, lt=1.0)] | None = None


class Provider(_Credit):
    """[structure.payment_commitment], [structure.guarantee] or [structure.liquidity_facility]: a
    credit-support provider.

    A commitment or guarantee pays interest and contractual principal shortfalls of the tranches
    it ``covers`` up to ``cap_amount`` in all; with ``reimbursed = true`` its draws become its claim,
    repaid (with interest at ``claim_rate`` a year) by the waterfall's reimburse steps. A liquidity
    facility advances fees and the interest of the tranches it covers, up to ``cap_amount``
    outstanding, and is always repaid, senior to interest by default.
    """

    provider: str
    pd_annual: Annotated[float, Field(ge=0.0, lt=1.0)] | None = None
    rating: str | None = None
    loading: Loading = 0.0
    cap_amount: NonNegative | None = None
    covers: list[str]
    migration: Migration | None = None
    reimbursed: bool = False
    claim_rate: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0

    @model_validator(mode="after")
    def _credit(self):
        _one_credit(self, f"provider {self.provider!r}")
        if self.migration is not None:
            if self.rating is None:
                raise _problem("rating", MISSING, f"a rating to migrate from (provider {self.provider!r} "
                               "has a migration table); give rating instead of pd_annual")
            try:
                self.migration.initial_grade(self.rating)
            except KeyError as exc:
                raise _problem("rating", self.rating, str(exc.args[0])) from None
        return self


class ProviderEntry(Provider):
    """One row of [[structure.providers]]: a provider of any kind, named for reimburse steps."""

    kind: Literal["commitment", "guarantee", "liquidity"]
    name: str


class CleanUpCall(_Model):
    """[structure.clean_up_call]: once the notes are at most ``fraction`` of their original balance,
    they are repaid in full on the first payment date whose collections plus reserve cover fees,
    interest, the notes and every provider claim."""

    fraction: Annotated[float, Field(gt=0.0, lt=1.0)]


class Step(_Model):
    """One step of [[structure.waterfall]]."""

    step: Literal["fees", "interest", "reserve", "principal", "residual", "reimburse"]
    tranches: list[str] | None = None
    providers: list[str] | None = None  # reimburse: providers repaid here, in order (default: all with a claim)


class Structure(_Model):
    """[structure]: tranches, fees, reserve, triggers, credit support and the waterfall."""

    tranches: Annotated[list[Tranche], Field(min_length=1)]
    fees: Fees = Fees()
    reserve: Reserve = Reserve()
    triggers: list[Trigger] = []
    oc_test: OcTest = OcTest()
    payment_commitment: Provider | None = None
    guarantee: Provider | None = None
    liquidity_facility: Provider | None = None
    providers: list[ProviderEntry] = []
    clean_up_call: CleanUpCall | None = None
    waterfall: list[Step] | None = None


class Importance(_Model):
    """Importance sampling on the systematic factors; by default the pilot picks the measure."""

    tranche: str | None = None  # the tranche whose default is targeted; default: the first (most senior)
    basis: Literal["enhanced", "standalone"] = "enhanced"
    # fixes the global factor's mean; past 6 the likelihood ratios span e^36 and no practical run keeps an
    # effective sample (the run's diagnostics would withhold its ratings)
    global_shift: Annotated[float, Field(ge=-6.0, le=6.0)] | None = None
    chi2_scale: Annotated[float, Field(gt=0.0, le=1.0)] | None = None  # fixes the t mixing scale
    pilot_paths: Annotated[int, Field(ge=200, le=1_000_000)] = 4_000
    # enhanced basis: also shift the latent normals of the providers that cover the tranche
    shift_providers: bool = True
    provider_shift: Annotated[float, Field(ge=-8.0, le=8.0)] | None = None  # fixes their shift


MAX_PATHS = 10**10  # more is a typo: weeks of simulation and terabytes of per-path tables on any machine


class Simulation(_Model):
    """[simulation]: paths, seed, chunking and variance reduction."""

    paths: Annotated[int, Field(ge=1, le=MAX_PATHS)] = 100_000
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    chunk_paths: Annotated[int, Field(ge=1)] = 50_000
    cashflow_sample_paths: Annotated[int, Field(ge=1)] = 10_000
    variance_reduction: Literal["none", "importance", "antithetic", "importance+antithetic"] = "none"
    importance: Importance = Importance()
    # implied-rating maps the summary reports (simengine.ratings.TABLES): "sp" is verified, "moodys" derived
    rating_tables: list[Literal["sp", "moodys"]] = ["sp"]

    @field_validator("rating_tables")
    @classmethod
    def _unique_tables(cls, value):
        if len(set(value)) != len(value):
            raise _problem("", value, "each rating table at most once (sp, moodys)")
        return value


# -------------------------------------------------------------------------------------- stress
class StressDefault(_Model):
    """One of [[stress.defaults]]: a named licensee, or the ``largest`` k by scheduled royalty, made to
    default at ``period`` at the latest (an earlier drawn default stands)."""

    licensee: str | None = None
    largest: Annotated[int, Field(ge=1)] | None = None
    period: Annotated[int, Field(ge=1)] = 1

    @model_validator(mode="after")
    def _one_target(self):
        if (self.licensee is None) == (self.largest is None):
            raise _problem("", {"licensee": self.licensee if self.licensee is not None else MISSING,
                                "largest": self.largest if self.largest is not None else MISSING},
                           "exactly one of licensee (a name) or largest (the k largest by royalty)")
        return self


class Stress(_Model):
    """[stress]: deterministic stresses through the same waterfall.

    ``defaults`` force licensees to default; ``expected_path = true`` puts everything else at its
    expected path: no drawn licensee default, obsolescence or invalidation, demand at its drift
    without volatility, recoveries at their mean, providers that never default.
    """

    expected_path: bool = False
    defaults: list[StressDefault] = []


class ScenarioModel(_Model):
    """The whole scenario file as validated tables."""

    extends: str | None = None
    deal: Deal
    pool: Pool
    risk: Risk = Risk()
    structure: Structure
    simulation: Simulation = Simulation()
    stress: Stress = Stress()
