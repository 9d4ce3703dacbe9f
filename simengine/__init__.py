"""simengine: Monte Carlo risk engine for intellectual-property royalty securitisations.

Layers: :mod:`schema` (validation) → :mod:`plan` (typed arrays) → :mod:`kernels` (numba) →
:mod:`results` (statistics, Parquet, plots) → :mod:`cli`.
"""

__version__ = "0.1.0"

from .errors import ScenarioError  # noqa: E402
from .scenario import Scenario, load_scenario  # noqa: E402


def simulate(scenario, paths=None, seed=None, chunk_paths=None, threads=None, progress=None, spool_dir=None,
             variance_reduction=None, tranche=None, target_rse=None):
    """Simulate ``scenario`` (a :class:`Scenario` or a path to a TOML file); see :func:`engine.simulate`."""
    from .engine import simulate as _simulate

    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    return _simulate(scenario, paths=paths, seed=seed, chunk_paths=chunk_paths, threads=threads,
                     progress=progress, spool_dir=spool_dir, variance_reduction=variance_reduction,
                     tranche=tranche, target_rse=target_rse)


__all__ = ["Scenario", "ScenarioError", "load_scenario", "simulate", "__version__"]
