import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
os.chdir(ROOT)  # scenario paths in tests are relative to the repository root
