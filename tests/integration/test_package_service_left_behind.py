"""Issue 10, "the distribution package must not start a second registry": a Debian 12 server (systemd as PID 1, over
SSH: tests/support/fleet.py) where docker-registry was installed earlier (by hand or by an older version of the
role), so docker-registry.service runs on *:5000 with no authentication. The registry role stops, disables and
masks it, and its own container then takes the port; a second run changes nothing.
"""

from __future__ import annotations

import subprocess
import sys

from support import ROOT
from support.fleet import SSH_OPTIONS
from support.isolation import PREFIX, REGISTRY_IMAGE
from support.runner import recap, run_playbook

PLAYBOOK = """
- name: The registry role on a host with the distribution package's service
  hosts: n1
  gather_facts: false
  roles:
    - role: dockhand.registry.registry
      vars:
        registry_image: "%s"
        registry_image_pull: false
        registry_container_name: pkgreg
        registry_port: 5000
        registry_bind_address: 0.0.0.0
        registry_data_path: /var/lib/dockhand/registry
"""


def test_package_service_left_behind_is_stopped_disabled_and_masked(workdir):
    prefix = PREFIX + "pkg-"
    fleet = [sys.executable, str(ROOT / "tests" / "support" / "fleet.py")]
    directory = workdir / "fleet"
    try:
        subprocess.run([*fleet, "up", "--prefix", prefix, "--dir", str(directory), "--node", "n1=bookworm:docker"],
                       check=True, capture_output=True, timeout=600)  # fmt: skip
        address = (directory / "inventory.yml").read_text().split("ansible_host: ", 1)[1].split()[0]
        key = str(directory / "id_ed25519")

        def ssh(command: str) -> str:
            done = subprocess.run(["ssh", *SSH_OPTIONS, "-i", key, "root@" + address, command],
                                  capture_output=True, text=True, check=False, timeout=600)  # fmt: skip
            return done.stdout.strip()

        ssh("apt-get update -q >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry >/dev/null 2>&1")
        assert ssh("systemctl is-active docker-registry") == "active", "the package did not start its service"
        subprocess.run("docker save %s | docker exec -i %sn1 docker load" % (REGISTRY_IMAGE, prefix), shell=True,
                       check=True, capture_output=True, timeout=600)  # fmt: skip
        (workdir / "site.yml").write_text(PLAYBOOK % REGISTRY_IMAGE)
        inventory = directory / "inventory.yml"
        first = run_playbook(workdir / "site.yml", {}, inventory=inventory)
        assert first.returncode == 0, first.stdout[-3000:]
        assert ssh("systemctl is-active docker-registry") != "active"
        assert ssh("systemctl is-enabled docker-registry") == "masked"
        assert ssh("docker inspect -f '{{.State.Running}}' pkgreg") == "true"
        assert ssh("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:5000/v2/") == "200"
        second = run_playbook(workdir / "site.yml", {}, inventory=inventory)
        assert second.returncode == 0, second.stdout[-3000:]
        assert recap(second.stdout, "n1")["changed"] == 0, second.stdout[-3000:]
    finally:
        subprocess.run([*fleet, "down", "--prefix", prefix, "--dir", str(directory)], capture_output=True, check=False, timeout=300)
