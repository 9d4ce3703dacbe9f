"""Results: statistics (SPEC §6), run folders (SPEC §5, written and read back) and figures."""

from .result import SimulationResult
from .run_folder import (
                         BatchFolder,
                         RunFolder,
                         RunFolderError,
                         check_target,
                         clean_stale,
                         staged,
                         write_run,
                         write_table,
)

__all__ = ["BatchFolder", "RunFolder", "RunFolderError", "SimulationResult", "check_target", "clean_stale", "staged",
           "write_run", "write_table"]
