from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

SCENARIO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SCENARIO.parent / "shared"))

# Fixtures the tests use by name.
from moltest import registry, scenario_vars  # noqa: E402, F401  # pylint: disable=unused-import


@pytest.fixture(scope="module")
def mol_vars() -> dict:
    return scenario_vars(SCENARIO)


@pytest.fixture(scope="module")
def phase(mol_vars) -> str:
    """The phase the scenario is in (written by prepare.yml, then side_effect.yml)."""
    return Path(mol_vars["mol_root"], "phase").read_text(encoding="utf-8").strip()


@pytest.fixture(scope="module")
def report(mol_vars, phase) -> dict:
    """What the last check-mode converge of this phase reported (written by converge.yml)."""
    return json.loads(Path(mol_vars["mol_root"], "report-%s-check.json" % phase).read_text(encoding="utf-8"))


PHASES = ("fresh", "new-image")


def pytest_configure(config):
    config.addinivalue_line("markers", "phase(name): run the test only while the scenario is in the phase name")


@pytest.fixture(scope="module", autouse=True)
def _only_in_its_phase(request, phase):
    """Verify runs once per phase; each test module is marked with the phase it checks."""
    assert phase in PHASES, "unknown phase %r" % phase
    marker = request.node.get_closest_marker("phase")
    if marker and marker.args[0] != phase:
        pytest.skip("checks the phase %s (now: %s)" % (marker.args[0], phase))
