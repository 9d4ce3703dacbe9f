import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
os.chdir(ROOT)  # scenario paths in tests are relative to the repository root


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _shipped_library_allowed(monkeypatch):
    """Tests write variants of the shipped scenarios into temporary folders; those may extend the
    shipped library (scenarios/), as a user would allow with --allow-path."""
    monkeypatch.setenv("SIMENGINE_ALLOW_PATHS", str(ROOT / "scenarios"))
