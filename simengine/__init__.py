"""simengine: Monte Carlo risk engine for intellectual-property royalty securitisations.

Layers, imports going one way down: :mod:`cli` → :mod:`batch` → :mod:`simulation` →
:mod:`analysis` → :mod:`results` → :mod:`engine` → :mod:`_kernels` → :mod:`plan` →
:mod:`scenario` → leaves (:mod:`rng`, :mod:`stats`, :mod:`ratings`, :mod:`errors`, :mod:`_jit`,
:mod:`_layout`, :mod:`_io`, :mod:`_progress`). This face imports the scenario layer only, so
``import simengine`` and ``simengine validate`` never load the kernels.
"""

from ._version import __version__
from .errors import ScenarioError
from .scenario import Scenario, load_scenario


def simulate(scenario, paths=None, seed=None, chunk_paths=None, threads=None, progress=None, spool_dir=None,
             variance_reduction=None, tranche=None, target_rse=None, attribution_paths=None):
    """Simulate ``scenario`` (a :class:`Scenario` or a path to a TOML file); see
    :func:`simengine.simulation.simulate`. Returns a :class:`SimulationResult`."""
    from .simulation import simulate as _simulate  # the public face loads the engine on first use

    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    return _simulate(scenario, paths=paths, seed=seed, chunk_paths=chunk_paths, threads=threads,
                     progress=progress, spool_dir=spool_dir, variance_reduction=variance_reduction,
                     tranche=tranche, target_rse=target_rse, attribution_paths=attribution_paths)


def __getattr__(name: str):
    if name == "SimulationResult":  # loaded on first use, like simulate
        from .results import SimulationResult

        return SimulationResult
    raise AttributeError(f"module 'simengine' has no attribute {name!r}")


__all__ = ["Scenario", "ScenarioError", "SimulationResult", "load_scenario", "simulate", "__version__"]
