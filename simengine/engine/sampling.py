"""The sampling measure paths are drawn under: plain Monte Carlo, antithetic pairs, or importance
sampling on the systematic factors and the providers' latent variables (whose parameters
:mod:`.importance` chooses)."""

from __future__ import annotations

from typing import NamedTuple


class Sampling(NamedTuple):
    """The measure paths are drawn under; weights turn it back into the scenario's own.

    global_shift : mean of the global factor (0 = plain Monte Carlo)
    chi2_scale : scale of the Student-t chi-square mixing variable, times its nominal (1 = plain)
    antithetic : paths 2m and 2m+1 are an antithetic pair
    provider_shift : mean of each provider row's idiosyncratic normal (of each of its yearly draws
        when it migrates), in provider-row order; () = none shifted
    """

    global_shift: float = 0.0
    chi2_scale: float = 1.0
    antithetic: bool = False
    provider_shift: tuple[float, ...] = ()

    @classmethod
    def from_record(cls, record: dict) -> Sampling:
        """The measure from its JSON record (a manifest's ``sampling``): lists become tuples again."""
        return cls(**{**record, "provider_shift": tuple(float(x) for x in record.get("provider_shift", ()))})


PLAIN = Sampling()
