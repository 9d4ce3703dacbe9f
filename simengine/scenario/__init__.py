"""Scenario: TOML/dict → validated, immutable :class:`Scenario`.

Validation only; nothing here knows about arrays or kernels (that is :mod:`simengine.plan`).
Modules, each importing only those named before it: :mod:`.model` (the pydantic tables),
:mod:`.messages` (pydantic errors as text for people) and :mod:`.keys` (dotted keys),
:mod:`.load` (TOML, ``extends``, pool files) and :mod:`.checks` (whole-tree checks),
:mod:`.scenario` (:class:`Scenario`, :func:`load_scenario`).
"""

from .model import (
                    Correlation,
                    Deal,
                    DefaultRisk,
                    Demand,
                    Fees,
                    Importance,
                    IndustryDemand,
                    Legal,
                    Licence,
                    Obsolescence,
                    Pool,
                    PoolGenerate,
                    Provider,
                    Reserve,
                    Risk,
                    ScenarioModel,
                    Simulation,
                    Step,
                    Stress,
                    StressDefault,
                    Structure,
                    TechnologyObsolescence,
                    Tranche,
                    Trigger,
                    factor_names,
)
from .scenario import Scenario, load_scenario

__all__ = [
    "Scenario", "load_scenario", "ScenarioModel", "factor_names",
    "Deal", "Licence", "PoolGenerate", "Pool",
    "DefaultRisk", "Correlation", "TechnologyObsolescence", "Obsolescence", "IndustryDemand", "Demand", "Legal", "Risk",
    "Tranche", "Fees", "Reserve", "Trigger", "Provider", "Step", "Structure",
    "Importance", "Simulation", "Stress", "StressDefault",
]
