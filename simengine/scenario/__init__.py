"""Scenario files: validation (pydantic), TOML loading with extends and pool files, overrides."""

from .schema import Scenario, ScenarioModel, load_scenario

__all__ = ["Scenario", "ScenarioModel", "load_scenario"]
