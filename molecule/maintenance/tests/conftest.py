from __future__ import annotations

import sys
from pathlib import Path

import pytest

SCENARIO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SCENARIO.parent / "shared"))

# Fixtures the tests use by name.
from moltest import container, registry, scenario_vars  # noqa: E402, F401  # pylint: disable=unused-import


@pytest.fixture(scope="module")
def mol_vars() -> dict:
    return scenario_vars(SCENARIO)
