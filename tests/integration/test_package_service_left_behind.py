"""The distribution package must not start a second registry: a Debian 12 server (systemd as PID 1, over
SSH: tests/support/fleet.py) where docker-registry was installed earlier (by hand or by an older version of the
role), so docker-registry.service runs on *:5000 with no authentication. The registry role stops, disables and
masks it, and its own container then takes the port; a second run changes nothing.
"""

from __future__ import annotations

from support.fleet import registry_node
from support.isolation import PREFIX, REGISTRY_IMAGE
from support.runner import recap, role_playbook, run_playbook

REGISTRY_VARS = {
    "registry_image_pull": False,
    "registry_container_name": "pkgreg",
    "registry_port": 5000,
    "registry_bind_address": "0.0.0.0",
    "registry_data_path": "/var/lib/dockhand/registry",
}


def test_package_service_left_behind_is_stopped_disabled_and_masked(workdir):
    with registry_node(PREFIX + "pkg-", workdir / "fleet", REGISTRY_IMAGE) as node:
        node.ssh("apt-get update -q >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry >/dev/null 2>&1")
        assert node.ssh("systemctl is-active docker-registry") == "active", "the package did not start its service"
        playbook = role_playbook(workdir / "registry.yml", "n1", "registry", dict(REGISTRY_VARS, registry_image=REGISTRY_IMAGE))
        first = run_playbook(playbook, {}, inventory=node.inventory)
        assert first.returncode == 0, first.stdout[-3000:]
        assert node.ssh("systemctl is-active docker-registry") != "active"
        assert node.ssh("systemctl is-enabled docker-registry") == "masked"
        assert node.ssh("docker inspect -f '{{.State.Running}}' pkgreg") == "true"
        assert node.ssh("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:5000/v2/") == "200"
        second = run_playbook(playbook, {}, inventory=node.inventory)
        assert second.returncode == 0, second.stdout[-3000:]
        assert recap(second.stdout, "n1")["changed"] == 0, second.stdout[-3000:]
