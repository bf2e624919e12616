from __future__ import annotations

import sys
from pathlib import Path

import pytest

SCENARIO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SCENARIO.parent / "shared"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from moltest import scenario_vars  # noqa: E402


@pytest.fixture(scope="session")
def mol_vars() -> dict:
    return scenario_vars(SCENARIO)
