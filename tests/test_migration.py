"""Provider credit migration (issue 12): a provider's grade moves one year at a time through a
one-year transition matrix by a latent-variable threshold model.

Each year's latent ``a·Z_y + sqrt(1 - a²)·e_y`` is N(0, 1) and independent of the other years'
(Z_y are the year's own global shocks), so whatever the loading the grade is a Markov chain with
the matrix as its one-year law: the probabilities of default, of a downgrade and of falling below
investment grade by the legal final are powers of (absorbing versions of) the matrix. Checked
here by Monte Carlo within its error, plain and importance-sampled; deterministic matrices give
deterministic paths; the Bowie case (a downgrade with no loss) is exact.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_reference import z_tol

import simengine as se
from simengine import _layout as k
from simengine import ratings
from simengine.engine import Sampling, run_chunk
from simengine.errors import ScenarioError
from simengine.plan import compile_plan


def pool_with_guarantor(migration: dict, rating: str = "A", loading: float = 0.5, years: float = 3.0,
                        ppy: int = 4, n: int = 20, pd_: float = 0.05):
    base = se.load_scenario("scenarios/synthetic_homogeneous.toml")
    tranches = [{"name": "senior", "balance": 0.8 * n, "interest_deferrable": True},
                {"name": "junior", "balance": 0.2 * n, "interest_deferrable": True}]
    return base.with_overrides({
        "deal.term_years": years, "deal.periods_per_year": ppy, "pool.generate.count": n,
        "pool.generate.pd_annual": pd_, "pool.generate.royalty": 1.0 / (years * ppy),
        "structure.tranches": tranches,
        "structure.guarantee": {"provider": "G", "rating": rating, "loading": loading, "covers": ["senior"],
                                "migration": migration}})


def chain_probabilities(start: int, years: int) -> dict[str, float]:
    """Closed form on the shipped matrix: P(default), P(worse than the start grade at some
    anniversary or default), P(below investment grade at some anniversary or default) by ``years``."""
    grades, m = ratings.transition_matrix("sp_1981_2016")
    g = len(grades)
    full = np.zeros((g + 1, g + 1))
    full[:g] = m
    full[g, g] = 1.0

    def absorbed(worst_allowed: int) -> float:
        a = full.copy()
        for s in range(worst_allowed + 1, g + 1):  # states past the allowed one absorb
            a[s] = 0.0
            a[s, s] = 1.0
        p = np.linalg.matrix_power(a, years)[start]
        return float(p[worst_allowed + 1:].sum())

    return {"default": float(np.linalg.matrix_power(full, years)[start, g]), "downgraded": absorbed(start),
            "below_ig": absorbed(len(ratings.INVESTMENT_GRADE) - 1)}


@pytest.mark.parametrize("loading", [0.0, 0.6])
def test_migration_reproduces_the_matrix_powers(loading):
    """Grade A, 3 years, quarterly: default, downgrade and sub-investment-grade frequencies equal
    the closed form within Monte Carlo error, for any loading on the global factor."""
    plan = compile_plan(pool_with_guarantor({}, "A", loading))
    assert plan.provider_grades[0] == (*ratings.SP_LETTERS, "D")
    start = ratings.SP_LETTERS.index("A")
    want = chain_probabilities(start, 3)
    paths = 200_000
    out = run_chunk(plan, 7, 0, paths)
    worst = out.provider[:, 0, k.PR_WORST_GRADE]
    got = {"default": (worst == 7).mean(), "downgraded": (worst > start).mean(), "below_ig": (worst >= 4).mean()}
    tol = z_tol(3)
    for name, p in want.items():
        assert abs(got[name] - p) <= tol * math.sqrt(p * (1 - p) / paths), (name, got[name], p)
    # a default falls within its year and is the provider's default period for the waterfall
    period = out.provider[:, 0, k.PR_DEFAULT_PERIOD]
    assert ((period < 12) == (worst == 7)).all()


def test_importance_sampling_of_a_migrating_provider_is_unbiased():
    """A shift of every yearly normal (nu = -1) with its likelihood ratio: the weighted default
    frequency of a BBB guarantor over 3 years matches (M^3)[BBB, D] within the weighted error,
    with many more defaults seen than plain sampling would, and a smaller error."""
    plan = compile_plan(pool_with_guarantor({}, "BBB", 0.5))
    start = ratings.SP_LETTERS.index("BBB")
    want = chain_probabilities(start, 3)["default"]
    paths = 40_000
    out = run_chunk(plan, 3, 0, paths, Sampling(0.0, 1.0, False, (-1.0,)))
    x = (out.provider[:, 0, k.PR_WORST_GRADE] == 7) * out.weights
    est, se_ = x.mean(), x.std(ddof=1) / math.sqrt(paths)
    assert abs(est - want) <= z_tol(1) * se_, (est, want, se_)
    assert (out.provider[:, 0, k.PR_WORST_GRADE] == 7).mean() > 10 * want
    assert se_ < math.sqrt(want * (1 - want) / paths)  # a smaller error than plain sampling's


def test_a_deterministic_matrix_gives_deterministic_paths():
    """A → BBB → BB → default with probability 1: every path downgrades at the first two
    anniversaries and defaults within the third year (annual periods: in its period)."""
    own = {"grades": ["A", "BBB", "BB"], "rows": [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}
    plan = compile_plan(pool_with_guarantor(own, "A", 0.5, years=3.0, ppy=1))
    out = run_chunk(plan, 1, 0, 500)
    assert (out.provider[:, 0, k.PR_WORST_GRADE] == 3).all()  # "D" on the scenario's own scale
    assert (out.provider[:, 0, k.PR_DEFAULT_PERIOD] == 2).all()
    # a 2.5-year deal (half-yearly) holds half of the third year: the default, uniform within its
    # year, falls inside the deal (period 4) on about half the paths; otherwise the worst is BB
    plan = compile_plan(pool_with_guarantor(own, "A", 0.5, years=2.5, ppy=2))
    paths = 2_000
    out = run_chunk(plan, 1, 0, paths)
    worst, period = out.provider[:, 0, k.PR_WORST_GRADE], out.provider[:, 0, k.PR_DEFAULT_PERIOD]
    assert set(np.unique(worst)) == {2.0, 3.0} and ((worst == 3) == (period == 4)).all()
    assert ((worst == 2) == (period == 5)).all()  # 5 = never
    assert abs((worst == 3).mean() - 0.5) <= z_tol(1) * math.sqrt(0.25 / paths)


def test_bowie_a_guarantor_downgrade_without_a_loss(tmp_path):
    """The guarantor (A) is downgraded to BBB in the first year on every path and never defaults;
    the pool loses often standalone, never enhanced. The enhanced rating is AAA, capped at A at
    closing; on every path the guarantor's BBB caps it lower: a downgrade with no loss."""
    own = {"grades": ["A", "BBB"], "rows": [[0, 1, 0], [0, 1, 0]]}
    sc = pool_with_guarantor(own, "A", 0.5, pd_=0.2)
    res = se.simulate(sc, paths=4_000, seed=1, progress=False)
    s = res.summary.set_index("tranche").loc["senior"]
    assert s["pd"] == 0.0 and s["standalone_pd"] > 0.1
    assert s["rating_sp"] == "AAA" and s["rating_enhanced_capped"] == "A"
    assert s["p_rating_enhanced_capped_downgrade"] == 1.0 and s["p_rating_enhanced_capped_downgrade_no_loss"] == 1.0
    ps = res.pool_summary
    assert ps["p_guarantee_downgraded"] == 1.0
    assert ps["p_guarantee_below_investment_grade"] == 0.0 and ps["p_guarantee_defaulted"] == 0.0
    out = res.to_parquet(tmp_path / "run")
    grades = pq.read_table(out / "pool_paths.parquet", columns=["guarantee_worst_grade"]).to_pandas()
    assert set(grades["guarantee_worst_grade"]) == {"BBB"}


def test_migration_needs_a_rating_on_its_scale():
    with pytest.raises(ScenarioError, match="rating to migrate from"):
        se.load_scenario("scenarios/guangzhou_patent_2019.toml").with_overrides(
            {"structure.guarantee.migration": {}})
    with pytest.raises(ScenarioError, match="a grade of the migration matrix"):
        pool_with_guarantor({"grades": ["A", "BBB"], "rows": [[0.9, 0.1, 0.0], [0.1, 0.8, 0.1]]}, rating="AA")
    with pytest.raises(ScenarioError, match="sum to 1"):
        pool_with_guarantor({"grades": ["A", "BBB"], "rows": [[0.9, 0.2, 0.0], [0.1, 0.8, 0.1]]})
    with pytest.raises(ScenarioError, match="rating symbol"):
        pool_with_guarantor({"grades": ["A", "Q"], "rows": [[0.9, 0.1, 0.0], [0.1, 0.8, 0.1]]})
