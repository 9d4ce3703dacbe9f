"""Re-simulation under common random numbers: the one place a prepared run is re-run.

:mod:`.crn` re-runs variants of a prepared scenario on the same path addresses under the same
sampling measure and pairs the results; its users: :mod:`.attribution` (channel attribution),
:mod:`.breakeven` (driver values at which a tranche breaks), :mod:`.sensitivity` (the tornado),
:mod:`.contributions` (concentration, Euler contributions of licensees), :mod:`.provider_cost`
(draws, residual, equity IRR). :mod:`.stresses` runs deterministic stresses on one expected path;
:mod:`.drivers` names the drivers, :mod:`.runs` the base run and where tables go.
"""

from .attribution import channel_attribution
from .breakeven import breakevens
from .crn import CommonRandomNumbers, Paired
from .drivers import DRIVER_NAMES, TORNADO_DRIVERS, available_drivers
from .runs import spec_from_run, write_analysis
from .sensitivity import sensitivity
from .stresses import breakeven_default_rate, deterministic_stresses, largest_obligor_test

__all__ = [
    "DRIVER_NAMES", "TORNADO_DRIVERS", "CommonRandomNumbers", "Paired", "available_drivers", "breakeven_default_rate",
    "breakevens", "channel_attribution", "deterministic_stresses", "largest_obligor_test", "sensitivity",
    "spec_from_run", "write_analysis",
]
