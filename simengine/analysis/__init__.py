"""Re-simulation under common random numbers: the one place a prepared run is re-run.

:mod:`.crn` re-runs variants of a prepared scenario on the same path addresses under the same
sampling measure and pairs the results; :mod:`.attribution` (channel attribution) is its first
user, breakevens and sensitivities the next.
"""

from .attribution import channel_attribution
from .crn import CommonRandomNumbers, Paired

__all__ = ["CommonRandomNumbers", "Paired", "channel_attribution"]
