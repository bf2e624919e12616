"""Every Molecule scenario takes its names and host ports from tests/support/isolation.py's MOLECULE table (one
isolation scheme for every test layer), and no two test layers or scenarios share a port."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.dockhand.registry.tests.support.isolation import MOLECULE, PORT_BASE, PORT_COUNT

ROOT = Path(__file__).resolve().parents[3]
SCENARIOS = sorted(path.parent.name for path in (ROOT / "molecule").glob("*/molecule.yml"))
# The variables of a scenario that name what it creates, and those that are host ports it publishes.
NAME_KEYS = ("registry_container_name", "mol_include_container_name", "registry_service_name", "fleet_prefix",
             "ha_prefix", "secure_container")  # fmt: skip
PORT_KEYS = ("mol_include_port", "secure_port")


def scenario_vars(name: str) -> dict:
    """The scenario's variables: its inventory's ``all.vars`` and its vars/main.yml."""
    directory = ROOT / "molecule" / name
    values: dict = {}
    inventory = directory / "inventory" / "hosts.yml"
    if inventory.exists():
        values.update(yaml.safe_load(inventory.read_text())["all"].get("vars") or {})
    extra = directory / "vars" / "main.yml"
    if extra.exists():
        values.update(yaml.safe_load(extra.read_text()))
    return values


def test_every_scenario_is_in_the_table():
    assert SCENARIOS and set(SCENARIOS) == set(MOLECULE), "add the scenario to MOLECULE in tests/support/isolation.py"


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_names_and_ports_come_from_the_table(name):
    prefix, ports = MOLECULE[name]
    values = scenario_vars(name)
    names = [values[key] for key in NAME_KEYS if key in values]
    names += list(values.get("mol_containers", [])) + list(values.get("mol_volumes", []))
    assert names, "scenario %s names nothing it creates" % name
    for created in names:
        assert str(created).startswith(prefix), "scenario %s: %r does not start with %r" % (name, created, prefix)
    published = set(values.get("mol_registry_ports", [])) | {values[key] for key in PORT_KEYS if key in values}
    if ports:  # scenarios on this machine's engine: the registry port is a host port too
        published.add(values.get("registry_port", ports[0]))
    assert published == set(ports), "scenario %s publishes %s, the table says %s" % (name, sorted(published), list(ports))


def test_no_two_layers_share_a_port():
    taken = [port for _prefix, ports in MOLECULE.values() for port in ports]
    assert len(taken) == len(set(taken)), "two scenarios share a port"
    assert not [port for port in taken if PORT_BASE <= port < PORT_BASE + PORT_COUNT], "a scenario port is in the pytest range"
    prefixes = [prefix for prefix, _ports in MOLECULE.values()]
    assert not [a for a in prefixes for b in prefixes if a != b and a.startswith(b)], "one prefix starts another"
