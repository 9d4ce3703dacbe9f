"""Results: statistics (SPEC §6), run folders (SPEC §5, written and read back) and figures."""

from .result import SimulationResult
from .run_folder import RunFolder, RunFolderError, write_run, write_table

__all__ = ["RunFolder", "RunFolderError", "SimulationResult", "write_run", "write_table"]
