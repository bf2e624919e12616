"""registry_container's readiness wait with a remote engine is asked of the engine, not probed on the module host.

A real Debian server (tests/support/fleet.py: systemd, sshd, its own Docker engine) runs the registry, published
on ITS loopback; the module reaches that engine over TCP (an SSH forward of the node's docker.sock). The module
host has nothing on that port, so a probe from here (what the module did before) fails every create and rolls it
back. Names: DH_PREFIX + "fl-", ports +42 and +43 of the run's range (tests/integration/README.md).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from support import ROOT
from support.isolation import DATA_ROOT, REGISTRY_IMAGE, name, port
from support.runner import run_module

PREFIX = name("fl-")
ENGINE_PORT = port(42)
REGISTRY_PORT = port(43)
STATE = DATA_ROOT / "remote-engine"
FLEET = [sys.executable, str(ROOT / "tests" / "support" / "fleet.py")]
NODE_IMAGE = "dockhand-fleet-node:bookworm-docker"
IMAGE = REGISTRY_IMAGE


def _ssh(address: str, *command: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", "-i", str(STATE / "id_ed25519"), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "root@" + address, *command],
        capture_output=True, check=False, **kwargs,
    )


@pytest.fixture(scope="module")
def remote_engine():
    if subprocess.run(["docker", "image", "inspect", NODE_IMAGE], capture_output=True, check=False).returncode:
        subprocess.run([*FLEET, "image", "bookworm", "--docker"], check=True, timeout=900)
    subprocess.run([*FLEET, "up", "--prefix", PREFIX, "--dir", str(STATE), "--node", "eng=bookworm:docker"],
                   check=True, capture_output=True, timeout=300)
    forward = None
    try:
        hosts = [line.split(":", 1)[1].strip() for line in (STATE / "inventory.yml").read_text().splitlines()
                 if line.strip().startswith("ansible_host:")]
        address = hosts[0]
        deadline = time.monotonic() + 120
        while _ssh(address, "systemctl", "is-active", "docker").stdout.strip() != b"active":
            assert time.monotonic() < deadline, "the node's engine did not start"
            time.sleep(2)
        save = subprocess.Popen(["docker", "save", IMAGE], stdout=subprocess.PIPE)
        loaded = _ssh(address, "docker", "load", stdin=save.stdout, timeout=300)
        save.wait()
        assert loaded.returncode == 0, loaded.stderr
        forward = subprocess.Popen(
            ["ssh", "-i", str(STATE / "id_ed25519"), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ExitOnForwardFailure=yes",
             "-nNT", "-L", "127.0.0.1:%d:/var/run/docker.sock" % ENGINE_PORT, "root@" + address]
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", ENGINE_PORT), timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "no SSH forward to the node's engine"
                time.sleep(0.5)
        yield address
    finally:
        if forward is not None:
            forward.terminate()
            forward.wait(10)
        subprocess.run([*FLEET, "down", "--prefix", PREFIX, "--dir", str(STATE)], capture_output=True, check=False)


def test_remote_engine_readiness_asked_of_the_engine(remote_engine):
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", REGISTRY_PORT)) != 0, "something listens on the module host's port"
    args = {"docker_host": "tcp://127.0.0.1:%d" % ENGINE_PORT, "name": PREFIX + "reg", "image": IMAGE,
            "port": REGISTRY_PORT, "bind_address": "127.0.0.1", "volume": PREFIX + "data", "wait_timeout": 30}
    first = run_module("registry_container", args)
    assert first.get("changed") and not first.get("failed"), first
    assert first["container"]["status"] == "running"
    again = run_module("registry_container", args)
    assert again.get("changed") is False and not again.get("failed"), again
    # The registry answers where it is published: on the node's loopback.
    answer = _ssh(remote_engine, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                  "http://127.0.0.1:%d/v2/" % REGISTRY_PORT)
    assert answer.stdout == b"200", answer
