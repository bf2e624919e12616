"""site.yml with a fleet inventory: bad input fails first, with one line naming the host and the value, and nothing
is created (an address that does not resolve, an empty registry group, a missing registry_address).

Two inventory hosts that are both this machine (local connection); the run must stop in the first play.
"""

from __future__ import annotations

import json

import pytest

from support import ROOT
from support.fleet import registry_node
from support.isolation import PREFIX, REGISTRY_IMAGE
from support.runner import run_playbook

from .conftest import docker


def _site(tmp_path, inventory: dict, extra: dict) -> str:
    path = tmp_path / "hosts.json"
    path.write_text(json.dumps(inventory))
    extra = dict(extra, registry_container_name=PREFIX + "fleet-input", registry_data_path=str(tmp_path / "data"))
    done = run_playbook(ROOT / "site.yml", extra, inventory=path, timeout=300)
    assert done.returncode != 0, done.stdout[-3000:]
    return done.stdout + done.stderr


LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": str(ROOT / ".venv/bin/python")}
TWO = {"one": LOCAL, "two": LOCAL}


@pytest.mark.parametrize(
    ("inventory", "extra", "message"),
    [
        ({"all": {"hosts": TWO}}, {}, "registry_address is required with more than one host"),
        (
            {"all": {"hosts": TWO, "children": {"registry_hosts": {"hosts": {}}, "publish_hosts": {"hosts": {"one": {}}}}}},
            {"registry_address": "localhost:5999"},
            "inventory group registry_hosts is empty",
        ),
        ({"all": {"hosts": TWO}}, {"registry_address": "no-such-host.invalid:5000"}, "registry_address no-such-host.invalid:5000 does not resolve on one"),
        ({"all": {"hosts": TWO}}, {"registry_address": "http://registry:5000"}, "invalid registry_address 'http://registry:5000' on one"),
    ],
)
def test_fleet_bad_input_fails_before_anything_changes(tmp_path, inventory, extra, message):
    output = _site(tmp_path, inventory, extra)
    assert message in " ".join(output.split()), output[-3000:]
    assert "PLAY [Docker engines]" not in output, "the run went past the checks"
    assert not docker("ps", "-aq", "--filter", "name=^/%sfleet-input$" % PREFIX).strip()
    assert not (tmp_path / "data").exists()


def test_client_that_cannot_reach_the_registry_fails_naming_host_and_address(workdir):
    """A client whose registry_address does not answer (a test host's closed port): one line naming the client and
    the address, before its daemon.json or certs.d is touched."""
    daemon_json = workdir / "daemon.json"
    with registry_node(PREFIX + "unreach-", workdir / "fleet", REGISTRY_IMAGE) as node:
        address = "%s:5999" % node.address  # nothing listens there
        playbook = workdir / "client.yml"
        playbook.write_text(json.dumps([{
            "name": "An engine as a client of a registry it cannot reach",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [{
                "name": "Configure the engine for the registry",
                "ansible.builtin.include_role": {"name": "dockhand.registry.engine", "tasks_from": "registry"},
                "vars": {"engine_registry_address": address, "engine_registry_reach_timeout": 3,
                         "engine_daemon_json": str(daemon_json), "engine_daemon_apply": "none"},
            }],
        }]))  # fmt: skip
        done = run_playbook(playbook, {}, timeout=120)
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0, output[-3000:]
    assert "registry_address %s is not reachable from localhost" % address in output, output[-3000:]
    assert not daemon_json.exists()
