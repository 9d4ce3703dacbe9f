"""Scenario schema: TOML/dict → validated, immutable :class:`Scenario`.

Validation only; nothing here knows about arrays or kernels (that is :mod:`simengine.plan`).
Periods are numbered from 1 (the first payment date) to ``term_years * periods_per_year``
(the legal final) and ranges of periods are inclusive.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import tomllib
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ScenarioError, ScenarioErrors
from .ratings import rating_to_pd

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Loading = Annotated[float, Field(ge=-1.0, le=1.0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ---------------------------------------------------------------------------------------- deal
class Deal(_Model):
    name: str
    currency: str = "CNY"
    periods_per_year: Literal[1, 2, 4, 12] = 4
    term_years: Annotated[float, Field(gt=0.0, le=100.0)]
    discount_rate: Annotated[float, Field(gt=-0.5, lt=1.0)] = 0.0
    closing_date: date | None = None

    @property
    def periods(self) -> int:
        return int(round(self.term_years * self.periods_per_year))


# ---------------------------------------------------------------------------------------- pool
class Licence(_Model):
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

    @model_validator(mode="after")
    def _credit(self):
        if (self.pd_annual is None) == (self.rating is None):
            raise ValueError("exactly one of pd_annual or rating")
        if self.end_period is not None and self.end_period < self.start_period:
            raise ValueError(f"end_period ({self.end_period}) >= start_period ({self.start_period})")
        return self


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

    def expand(self) -> list[dict]:
        rows = []
        width = len(str(self.count))
        for i in range(self.count):
            row = {"id": f"{self.id_prefix}{i + 1:0{width}d}"}
            for name in _GENERATED_FIELDS:
                value = getattr(self, name)
                if isinstance(value, list):
                    if not value:
                        raise ValueError(f"{name}: an empty list")
                    value = value[i % len(value)]
                if value is not None:
                    row[name] = value
            rows.append(row)
        return rows


class Pool(_Model):
    licences: list[Licence] | None = None
    file: str | None = None
    generate: PoolGenerate | None = None

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("licences", "file", "generate") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("exactly one of licences, file or generate")
        return self


# ---------------------------------------------------------------------------------------- risk
class DefaultRisk(_Model):
    enabled: bool = True
    copula: Literal["gaussian", "student_t"] = "gaussian"
    dof: Annotated[float, Field(gt=0.0, le=1000.0)] = 5.0
    recovery_model: Literal["fixed", "beta"] = "fixed"
    recovery_stdev: NonNegative = 0.0
    relicense_lag_periods: Annotated[int, Field(ge=1)] = 4
    relicense_haircut: Fraction = 1.0


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
            raise ValueError(f"global + industry + region <= 1 (got {total:g})")
        if (self.factors is None) != (self.matrix is None):
            raise ValueError("factors and matrix together (a matrix needs its factor names)")
        return self


class TechnologyObsolescence(_Model):
    hazard_annual: NonNegative | None = None
    severity: Fraction | None = None
    hazard_multiplier_after_obsolescence: NonNegative | None = None
    period: Annotated[int, Field(ge=1)] | None = None


class Obsolescence(_Model):
    enabled: bool = True
    hazard_annual: NonNegative = 0.0
    severity: Fraction = 1.0
    global_loading: Loading = 0.0
    hazard_multiplier_after_obsolescence: NonNegative = 1.0
    technologies: dict[str, TechnologyObsolescence] = {}


class IndustryDemand(_Model):
    drift_annual: float | None = None
    volatility_annual: NonNegative | None = None
    mean_reversion_annual: NonNegative | None = None
    global_loading: Loading | None = None
    demand_hazard_elasticity: float | None = None


class Demand(_Model):
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
    enabled: bool = True
    invalidation_hazard_annual: NonNegative = 0.0
    technologies: dict[str, NonNegative] = {}
    ip_types: dict[Literal["patent", "trademark", "copyright"], NonNegative] = {}


class Risk(_Model):
    default: DefaultRisk = DefaultRisk()
    correlation: Correlation = Correlation()
    obsolescence: Obsolescence = Obsolescence()
    demand: Demand = Demand()
    legal: Legal = Legal()


# ----------------------------------------------------------------------------------- structure
class Tranche(_Model):
    name: str
    balance: Annotated[float, Field(gt=0.0)]
    coupon: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    interest_deferrable: bool = False
    amortisation: Literal["sequential", "pro_rata", "bullet"] | list[NonNegative] = "sequential"
    maturity_period: Annotated[int, Field(ge=1)] | None = None


class Fees(_Model):
    fixed_per_period: NonNegative = 0.0
    bps_annual: NonNegative = 0.0


class Reserve(_Model):
    initial_amount: NonNegative = 0.0
    target_amount: NonNegative | None = None
    target_fraction: NonNegative | None = None
    covers: list[str] | None = None

    @model_validator(mode="after")
    def _target(self):
        if self.target_amount is not None and self.target_fraction is not None:
            raise ValueError("at most one of target_amount or target_fraction")
        return self


class Trigger(_Model):
    name: str
    metric: Literal["cumulative_default_rate", "dscr"]
    threshold: NonNegative
    effect: Literal["sequential", "trap", "accelerate"]
    curable: bool = False
    consecutive_periods: Annotated[int, Field(ge=1)] = 1


class Provider(_Model):
    provider: str
    pd_annual: Annotated[float, Field(ge=0.0, lt=1.0)] | None = None
    rating: str | None = None
    loading: Loading = 0.0
    cap_amount: NonNegative | None = None
    covers: list[str]

    @model_validator(mode="after")
    def _credit(self):
        if (self.pd_annual is None) == (self.rating is None):
            raise ValueError("exactly one of pd_annual or rating")
        return self


class Step(_Model):
    step: Literal["fees", "interest", "reserve", "principal", "residual"]
    tranches: list[str] | None = None


class Structure(_Model):
    tranches: Annotated[list[Tranche], Field(min_length=1)]
    fees: Fees = Fees()
    reserve: Reserve = Reserve()
    triggers: list[Trigger] = []
    payment_commitment: Provider | None = None
    guarantee: Provider | None = None
    waterfall: list[Step] | None = None


class Simulation(_Model):
    paths: Annotated[int, Field(ge=1)] = 100_000
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    chunk_paths: Annotated[int, Field(ge=1)] = 50_000
    cashflow_sample_paths: Annotated[int, Field(ge=1)] = 10_000
    variance_reduction: Literal["none"] = "none"


class ScenarioModel(_Model):
    extends: str | None = None
    deal: Deal
    pool: Pool
    risk: Risk = Risk()
    structure: Structure
    simulation: Simulation = Simulation()


# ------------------------------------------------------------------------------------ loading
def _loc_to_path(loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "list[str]", "float", "list[float]", "int", "list[int]", "none",
                      "literal['sequential','pro_rata','bullet']", "list[constrained-float]"):
            continue  # pydantic's union-branch labels say nothing to a person
        else:
            out += ("." if out else "") + str(part)
    return out


def _errors_from_pydantic(file, err: ValidationError, prefix: str = "") -> ScenarioErrors:
    seen, errors = set(), []
    for e in err.errors(include_url=False):
        path = _loc_to_path(e["loc"])
        path = f"{prefix}.{path}" if prefix and path else (prefix or path)
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if e["type"] == "extra_forbidden":
            msg = "no such key (a typo?)"
        elif e["type"] == "missing":
            msg = "a value (this key is required)"
        key = (path, msg)
        if key in seen:
            continue
        seen.add(key)
        errors.append(ScenarioError(file, path, e.get("input", None) if e["type"] != "missing" else None, msg))
    return ScenarioErrors(errors)


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _read_toml(path: Path, chain: tuple[Path, ...]) -> dict:
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise ScenarioError(chain[-1], "extends", str(path), f"no cycle in extends ({cycle})")
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        where = chain[-1] if chain else path
        raise ScenarioError(where, "extends" if chain else "", str(path), "an existing scenario file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(path, "", str(exc), "valid TOML") from None
    pool = raw.get("pool")
    if isinstance(pool, dict) and isinstance(pool.get("file"), str):
        pool["file"] = str((path.parent / pool["file"]).resolve())  # relative to the file that says it
    parent = raw.get("extends")
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ScenarioError(path, "extends", parent, "a path to the base scenario (string)")
    base = _read_toml((path.parent / parent).resolve(), (*chain, path))
    base.pop("extends", None)
    merged = _deep_merge(base, {k: v for k, v in raw.items() if k != "extends"})
    merged["extends"] = parent
    return merged


def _read_pool_file(file: str, source: str, periods: int) -> list[dict]:
    import pandas as pd

    path = Path(file)
    if not path.exists():
        raise ScenarioError(source, "pool.file", file, "an existing CSV or Parquet file")
    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)
        elif path.suffix.lower() == ".csv":
            frame = pd.read_csv(path, dtype={"id": str, "licensee": str})
        else:
            raise ScenarioError(source, "pool.file", file, "a .csv or .parquet file")
    except ScenarioError:
        raise
    except Exception as exc:  # a malformed file is bad input, not a crash
        raise ScenarioError(source, "pool.file", file, f"a readable table ({exc})") from None
    unknown = sorted(set(frame.columns) - set(Licence.model_fields))
    if unknown:
        raise ScenarioError(file, "columns", unknown, f"only licence fields {sorted(Licence.model_fields)}")
    rows = []
    for record in frame.to_dict(orient="records"):
        row = {}
        for k, v in record.items():
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            row[k] = v.item() if isinstance(v, np.generic) else v
        for k in ("start_period", "end_period", "expiry_period"):
            if isinstance(row.get(k), float) and row[k].is_integer():
                row[k] = int(row[k])
        if "id" in row:
            row["id"] = str(row["id"])
        rows.append(row)
    return rows


def _set_dotted(raw: dict, key: str, value) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[int(part)]
            continue
        node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


class Scenario:
    """A validated, immutable scenario.

    Build with :func:`load_scenario`, :meth:`from_dict` or :meth:`with_overrides`. ``raw`` is
    the resolved dictionary (``extends`` merged, pool file paths absolute); ``model`` the
    pydantic tree; ``licences`` the expanded pool (a tuple of :class:`Licence`).
    """

    __slots__ = ("model", "raw", "source", "licences", "__dict__")

    def __init__(self, raw: dict, source: str = "<dict>"):
        self.source = str(source)
        self.raw = copy.deepcopy(raw)
        try:
            model = ScenarioModel.model_validate(self.raw)
        except ValidationError as exc:
            raise _errors_from_pydantic(self.source, exc) from None
        self.model = model
        self.licences = self._expand_pool(model)
        self._check(model)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: dict, source: str = "<dict>") -> "Scenario":
        return cls(raw, source)

    def with_overrides(self, overrides: dict[str, Any]) -> "Scenario":
        """A new scenario with dotted keys replaced, e.g. ``{"risk.correlation.global": 0.3}``."""
        raw = copy.deepcopy(self.raw)
        for key, value in overrides.items():
            try:
                _set_dotted(raw, key, value)
            except (KeyError, IndexError, ValueError, TypeError, AttributeError):
                raise ScenarioError(self.source, key, value, "a key path that exists in the scenario") from None
        return Scenario(raw, self.source)

    # -- derived --------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.model.deal.name

    @property
    def periods(self) -> int:
        return self.model.deal.periods

    @cached_property
    def file_hash(self) -> str:
        """sha256 of the resolved scenario (and its pool file's bytes)."""
        h = hashlib.sha256(json.dumps(self.raw, sort_keys=True, default=str).encode())
        if self.model.pool.file:
            h.update(Path(self.model.pool.file).read_bytes())
        return h.hexdigest()

    def resolved(self) -> dict:
        """The validated scenario as plain JSON-able data (defaults filled in)."""
        return json.loads(self.model.model_dump_json(by_alias=True))

    def __repr__(self) -> str:
        return f"Scenario({self.name!r}, licences={len(self.licences)}, source={self.source!r})"

    # -- checks that need the whole tree ---------------------------------------------------------
    def _expand_pool(self, m: ScenarioModel) -> tuple[Licence, ...]:
        pool = m.pool
        if pool.licences is not None:
            return tuple(pool.licences)
        if pool.generate is not None:
            try:
                rows = pool.generate.expand()
            except ValueError as exc:
                raise ScenarioError(self.source, "pool.generate", None, str(exc)) from None
            where, prefix = self.source, "pool.generate"
        else:
            rows = _read_pool_file(pool.file, self.source, m.deal.periods)
            where, prefix = pool.file, "rows"
        out, errors = [], []
        for i, row in enumerate(rows):
            try:
                out.append(Licence.model_validate(row))
            except ValidationError as exc:
                errors.extend(_errors_from_pydantic(where, exc, f"{prefix}[{i}]").errors)
                if len(errors) >= 20:
                    break
        if errors:
            raise ScenarioErrors(errors)
        return tuple(out)

    def _check(self, m: ScenarioModel) -> None:
        f = self.source
        errors: list[ScenarioError] = []
        err = lambda path, value, expected: errors.append(ScenarioError(f, path, value, expected))
        deal = m.deal
        T = deal.periods
        if abs(deal.term_years * deal.periods_per_year - T) > 1e-9:
            err("deal.term_years", deal.term_years,
                f"a whole number of periods at {deal.periods_per_year} per year")
        if not self.licences:
            err("pool", None, "at least one licence")
        ids, licensees = set(), {}
        pool_prefix = "pool.licences" if m.pool.licences is not None else "pool"
        for i, lic in enumerate(self.licences):
            p = f"{pool_prefix}[{i}]"
            if lic.id in ids:
                err(f"{p}.id", lic.id, "a unique licence id")
            ids.add(lic.id)
            for key in ("start_period", "end_period", "expiry_period"):
                v = getattr(lic, key)
                if v is not None and v > T:
                    err(f"{p}.{key}", v, f"a period in 1..{T} (term_years x periods_per_year)")
            if lic.rating is not None:
                try:
                    rating_to_pd(lic.rating)
                except KeyError as exc:
                    err(f"{p}.rating", lic.rating, str(exc.args[0]))
            if lic.royalty_type == "running" and lic.minimum_royalty > lic.royalty:
                err(f"{p}.minimum_royalty", lic.minimum_royalty, f"at most the royalty ({lic.royalty})")
            who = lic.licensee or lic.id
            key = (lic.industry, lic.region, lic.technology, lic.pd_annual, lic.rating)
            if who in licensees and licensees[who] != key:
                err(f"{p}.licensee", who, "the same industry, region, technology and credit on every "
                    "licence of one licensee (the copula draws one default time per licensee)")
            licensees.setdefault(who, key)
            if len(errors) >= 20:
                break
        st = m.structure
        names = [t.name for t in st.tranches]
        for i, t in enumerate(st.tranches):
            if names.count(t.name) > 1:
                err(f"structure.tranches[{i}].name", t.name, "a unique tranche name")
            if t.maturity_period is not None and t.maturity_period > T:
                err(f"structure.tranches[{i}].maturity_period", t.maturity_period, f"a period in 1..{T}")
            if isinstance(t.amortisation, list):
                if len(t.amortisation) > T:
                    err(f"structure.tranches[{i}].amortisation", len(t.amortisation),
                        f"a schedule of at most {T} periods")
                if sum(t.amortisation) > 1.0 + 1e-9:
                    err(f"structure.tranches[{i}].amortisation", sum(t.amortisation),
                        "schedule fractions of the original balance that sum to at most 1")

        def check_names(path: str, listed):
            for j, name in enumerate(listed or []):
                if name not in names:
                    err(f"{path}[{j}]", name, f"a tranche name in {names}")

        check_names("structure.reserve.covers", st.reserve.covers)
        for key in ("payment_commitment", "guarantee"):
            prov = getattr(st, key)
            if prov is not None:
                check_names(f"structure.{key}.covers", prov.covers)
                if prov.rating is not None:
                    try:
                        rating_to_pd(prov.rating)
                    except KeyError as exc:
                        err(f"structure.{key}.rating", prov.rating, str(exc.args[0]))
        for i, step in enumerate(st.waterfall or []):
            check_names(f"structure.waterfall[{i}].tranches", step.tranches)
            if step.step in ("interest", "principal") and not step.tranches:
                err(f"structure.waterfall[{i}].tranches", step.tranches,
                    f"the tranches this {step.step} step pays")
        if st.waterfall is not None:
            paid = {n for s in st.waterfall if s.step == "principal" for n in (s.tranches or [])}
            missing = [n for n in names if n not in paid]
            if missing:
                err("structure.waterfall", missing, "a principal step for every tranche")
        corr = m.risk.correlation
        if corr.matrix is not None:
            self._check_matrix(corr, err)
        if m.risk.default.copula == "student_t" and m.risk.default.dof <= 0:
            err("risk.default.dof", m.risk.default.dof, "degrees of freedom > 0")
        if m.risk.default.recovery_model == "beta":
            for i, lic in enumerate(self.licences):
                mean = lic.recovery if lic.recovery is not None else 1.0 - m.risk.default.relicense_haircut
                sd = m.risk.default.recovery_stdev
                if sd > 0 and not (0.0 < mean < 1.0 and sd * sd < mean * (1.0 - mean)):
                    err("risk.default.recovery_stdev", sd,
                        f"a beta stdev below sqrt(mean*(1-mean)) with 0 < mean < 1 (licence {lic.id}: mean {mean})")
                    break
        if errors:
            raise ScenarioErrors(errors)

    def _check_matrix(self, corr: Correlation, err) -> None:
        industries = sorted({l.industry for l in self.licences})
        regions = sorted({l.region for l in self.licences})
        want = ["global"] + [f"industry.{x}" for x in industries] + [f"region.{x}" for x in regions]
        if sorted(corr.factors) != sorted(want) or corr.factors[0] != "global":
            err("risk.correlation.factors", corr.factors, f"'global' first, then exactly {want[1:]}")
            return
        C = np.asarray(corr.matrix, dtype=float)
        n = len(corr.factors)
        if C.shape != (n, n):
            err("risk.correlation.matrix", list(C.shape), f"a {n}x{n} matrix (one row per factor)")
            return
        if not np.allclose(C, C.T, atol=1e-12) or not np.allclose(np.diag(C), 1.0, atol=1e-12):
            err("risk.correlation.matrix", "not symmetric with unit diagonal",
                "a symmetric correlation matrix with ones on the diagonal")
            return
        smallest = float(np.linalg.eigvalsh(C).min())
        if smallest < -1e-10:
            err("risk.correlation.matrix", f"smallest eigenvalue {smallest:.6g}",
                "a positive semi-definite matrix (all eigenvalues >= 0)")


def load_scenario(path: str | Path) -> Scenario:
    """Read a TOML scenario (following ``extends``) and validate it."""
    path = Path(path).resolve()
    raw = _read_toml(path, ())
    return Scenario(raw, str(path))
