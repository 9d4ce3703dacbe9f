"""Common random numbers: a variant of a prepared run, re-run on the same paths, paired.

Every random number is a pure function of (seed, path, stream, index), so re-running a variant
of the scenario (other hazards, drivers switched off, another structure) at the same path
addresses under the same sampling measure changes only what the variant changes; the difference
of a per-path statistic between two variants then has the standard error of its per-path
differences, usually far below that of either estimate.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._layout import BASIS_ENHANCED, BASIS_STANDALONE, TRANCHE_OUT, ChunkOutputs
from ..engine import RunSpec, run_chunk
from ..plan import Plan, compile_plan
from ..stats import weighted_mean_se

BASES = ((BASIS_ENHANCED, "enhanced"), (BASIS_STANDALONE, "standalone"))


class Paired(NamedTuple):
    """A statistic's mean under two variants and their paired difference, with standard errors."""

    base: float
    base_se: float
    variant: float
    variant_se: float
    difference: float  # variant - base
    difference_se: float


class Weighted(NamedTuple):
    """Per-tranche output columns of one variant, each times the path's weight, and the weights."""

    columns: tuple[np.ndarray, ...]  # each ndarray(float64), shape (paths, 2, tranches): W · x, both bases
    weights: np.ndarray  # ndarray(float64), shape (paths,)


class CommonRandomNumbers:
    """Variants of one prepared run on its first ``paths`` path addresses, under its measure.

    Parameters
    ----------
    spec : RunSpec
        The prepared run: scenario, plan, seed, chunking and sampling measure (frozen: no pilot).
    paths : int
        How many of the run's paths to re-run (the first ones).
    """

    def __init__(self, spec: RunSpec, paths: int):
        self.spec = spec
        self.paths = int(paths)
        self.pairs = bool(spec.sampling.antithetic)
        self._plans: dict[str, Plan] = {}

    def plan(self, overrides: dict | None = None) -> Plan:
        """The compiled plan of the variant ``overrides`` (dotted keys) of the run's scenario."""
        if not overrides:
            return self.spec.plan
        key = repr(sorted(overrides.items()))
        if key not in self._plans:
            self._plans[key] = compile_plan(self.spec.scenario.with_overrides(overrides))
        return self._plans[key]

    def run(self, overrides: dict | None = None, plan: Plan | None = None) -> ChunkOutputs:
        """Every kernel output of a variant over the first ``paths`` paths, chunk by chunk.

        The variant is ``plan`` where given (a plan built from this run's, e.g. with arrays
        replaced), else that of ``overrides`` (:meth:`plan`). Returns the fields of
        :class:`simengine._layout.ChunkOutputs`, each with ``paths`` rows.
        """
        return ChunkOutputs(*self.keep(tuple, overrides, plan))

    def keep(self, extract, overrides: dict | None = None, plan: Plan | None = None) -> tuple[np.ndarray, ...]:
        """What an analysis reads of a variant's kernel outputs: ``extract(outputs)`` of each chunk
        (a tuple of arrays with a row per path; ``outputs`` a :class:`simengine._layout.ChunkOutputs`),
        joined over the chunks, the rest of each chunk's outputs dropped as it is read.

        The variant is ``plan`` where given, else that of ``overrides`` (:meth:`plan`).
        """
        plan = plan if plan is not None else self.plan(overrides)
        spec = self.spec
        parts = [extract(run_chunk(plan, spec.seed, first, min(spec.chunk_paths, self.paths - first), spec.sampling))
                 for first in range(0, self.paths, spec.chunk_paths)]
        if len(parts) == 1:
            return tuple(parts[0])
        return tuple(np.concatenate(field) for field in zip(*parts))

    def weighted(self, column: str, overrides: dict | None = None, plan: Plan | None = None) -> np.ndarray:
        """W · x per path of a per-tranche output column (a name of ``_layout.TRANCHE_OUT``).

        Returns ndarray(float64), shape (paths, 2, tranches): both bases (``_layout.BASIS_*``).
        """
        return self.weighted_columns((column,), overrides, plan).columns[0]

    def weighted_columns(self, columns: tuple[str, ...], overrides: dict | None = None,
                         plan: Plan | None = None) -> Weighted:
        """:meth:`weighted` of each of ``columns``, and the weights, from one pass of the kernels,
        chunk by chunk (only these are kept and joined, not every output of :meth:`run`)."""
        cs = [TRANCHE_OUT.index(column) for column in columns]
        *weighted, weights = self.keep(
            lambda out: (*(out.tranche[:, :, :, c] * out.weights[:, None, None] for c in cs), out.weights),
            overrides, plan)
        return Weighted(tuple(weighted), weights)

    def mean_se(self, weighted: np.ndarray) -> tuple[float, float]:
        """Mean and standard error of one column of :meth:`weighted` (pairs kept together)."""
        return weighted_mean_se(weighted, np.ones(len(weighted)), self.pairs)

    def paired(self, base: np.ndarray, variant: np.ndarray) -> Paired:
        """Means of two weighted columns over the same paths and of their per-path difference."""
        b, b_se = self.mean_se(base)
        v, v_se = self.mean_se(variant)
        d, d_se = self.mean_se(variant - base)
        return Paired(b, b_se, v, v_se, d, d_se)
