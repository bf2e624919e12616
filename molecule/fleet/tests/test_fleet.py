"""The fleet scenario: three Debian servers after site.yml (and a reboot of the registry host), checked over SSH.

testinfra's ansible backend reaches each node through Molecule's inventory (SSH as root with the run's key).
"""

from __future__ import annotations

import json
import shlex

import pytest
import testinfra

ADDRESS = "dh-fl-reg:5000"
CA = "/etc/docker/certs.d/%s/ca.crt" % ADDRESS
ALL = ["reg", "pub", "cli"]


_HOSTS: dict = {}


def node(name: str):
    """A node over SSH through Molecule's inventory (the --ansible-inventory Molecule gives testinfra)."""
    if name not in _HOSTS:
        _HOSTS[name] = testinfra.get_host("ansible://%s" % name, ansible_inventory=_INVENTORY[0])
    return _HOSTS[name]


_INVENTORY: list = []


@pytest.fixture(scope="session", autouse=True)
def _inventory(request):
    _INVENTORY[:] = [request.config.getoption("ansible_inventory")]


@pytest.fixture(scope="module", params=ALL)
def each(request, _inventory):
    return request.param, node(request.param)


def test_engine_enabled_and_active_under_systemd(each):
    name, host = each
    assert host.run("systemctl is-enabled docker").stdout.strip() == "enabled", name
    assert host.run("systemctl is-active docker").stdout.strip() == "active", name
    assert host.run("docker version --format '{{.Client.Version}}'").rc == 0, "%s: no docker CLI" % name


def test_distribution_python_sdk_on_each_host(each):
    name, host = each
    version = host.check_output("/usr/bin/python3 -c 'import docker; print(docker.__version__)'")
    dist = host.check_output(". /etc/os-release; echo $VERSION_CODENAME")
    assert version == {"bookworm": "5.0.3", "trixie": "7.1.0"}[dist], (name, dist, version)
    # Distribution packages, nothing from pip in the system Python.
    assert host.package("python3-docker").is_installed
    assert host.run("ls -d /usr/local/lib/python3*/dist-packages/docker").rc != 0, "docker SDK installed with pip"


def test_publish_host_got_docker_from_the_role():
    host = node("pub")
    assert host.package("docker.io").is_installed
    assert host.package("docker-cli").is_installed  # Debian 13: the CLI is its own package


def test_the_distribution_package_must_not_start_a_second_registry():
    """Installing docker-registry on a systemd host would start docker-registry.service on *:5000: it must not."""
    host = node("reg")
    assert not host.package("docker-registry").is_installed, "the role must unpack the binary, not install the package"
    service = host.service("docker-registry")
    assert not service.is_running
    assert not service.is_enabled
    # The registry was built from the package's binary all the same: it is there, executable, and is distribution's.
    binary = host.file("/var/lib/dockhand/registry-image/package/root/usr/bin/docker-registry")
    assert binary.exists and binary.mode & 0o111, "the unpacked docker-registry binary is missing or not executable"
    assert "distribution" in host.check_output("%s --version" % binary.path)
    # Only the registry container (through docker-proxy) listens on 5000.
    listeners = host.check_output("ss -Hltnp 'sport = :5000'")
    assert listeners, "nothing listens on 5000"
    for line in listeners.splitlines():
        assert "docker-proxy" in line, line


def test_ca_installed_on_every_client(each):
    name, host = each
    ca = node("reg").file("/etc/dockhand/registry/tls/ca.crt").content_string
    installed = host.file(CA)
    assert installed.exists, name
    assert installed.content_string == ca, name


def test_daemon_json_merged_and_reloaded_not_restarted(fleet_vars):
    host = node("cli")
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    for key, value in fleet_vars["fleet_planted"].items():
        assert config[key] == value, "the planted key %s was lost" % key
    assert config["registry-mirrors"] == fleet_vars["engine_registry_mirrors"]
    assert "insecure-registries" not in config, "TLS registry: no plain HTTP"
    mirrors = json.loads(host.check_output("docker info --format '{{json .RegistryConfig.Mirrors}}'"))
    assert [m.rstrip("/") for m in mirrors] == fleet_vars["engine_registry_mirrors"], "the reload did not apply registry-mirrors"
    pid = host.check_output("systemctl show -p MainPID --value docker")
    assert pid == host.file("/root/fleet-dockerd-pid").content_string.strip(), "the engine was restarted, not reloaded"


def test_client_pulls_each_image_by_digest_with_the_same_image_id(fleet_vars):
    pub, cli = node("pub"), node("cli")
    login = "printf %%s %s | docker login -u %s --password-stdin %s" % (
        shlex.quote(fleet_vars["publish_password"]),
        shlex.quote(fleet_vars["publish_username"]),
        ADDRESS,
    )
    cli.check_output(login)
    try:
        for image in fleet_vars["publish_images"]:
            pushed = "%s/%s:%s" % (ADDRESS, image["repository"], image["tag"])
            attrs = json.loads(pub.check_output("docker image inspect %s" % pushed))[0]
            digests = [d for d in attrs["RepoDigests"] if d.startswith("%s/%s@" % (ADDRESS, image["repository"]))]
            assert digests, attrs["RepoDigests"]
            cli.check_output("docker pull -q %s" % digests[0])
            assert cli.check_output("docker image inspect --format '{{.Id}}' %s" % digests[0]) == attrs["Id"]
    finally:
        cli.run("docker logout %s" % ADDRESS)


def test_registry_came_back_after_reboot_with_its_data(fleet_vars):
    host = node("reg")
    # The side effect restarted the node: its /run (a tmpfs) lost the marker written before, so systemd booted again.
    assert not host.file("/run/fleet-before-reboot").exists
    state = json.loads(host.check_output("docker inspect registry"))[0]
    assert state["State"]["Running"] and state["HostConfig"]["RestartPolicy"]["Name"] == "always"
    auth = "%s:%s" % (fleet_vars["publish_username"], fleet_vars["publish_password"])
    catalog = json.loads(host.check_output("curl -sf --cacert %s -u %s https://%s/v2/_catalog" % (CA, shlex.quote(auth), ADDRESS)))
    assert sorted(catalog["repositories"]) == sorted(i["repository"] for i in fleet_vars["publish_images"])


def test_a_key_that_needs_a_restart_restarts_the_engine_and_containers_come_back():
    """Last test (it restarts reg's engine): a daemon.json key dockerd reads only at start is applied by a restart,
    and the registry container (restart policy always) comes back by itself."""
    host = node("reg")
    before = host.check_output("systemctl show -p MainPID --value docker")
    result = host.ansible("dockhand.registry.engine_daemon_config", """settings='{"log-level": "info"}'""", check=False)
    assert result["changed"] and result["restart_keys"] == ["log-level"], result
    assert result["applied"] == "systemctl restart docker", result
    assert host.check_output("systemctl show -p MainPID --value docker") != before
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert config["log-level"] == "info" and "registry-mirrors" in config
    answered = host.run(
        "for i in $(seq 60); do curl -s -o /dev/null -w '%%{http_code}' --cacert %s https://%s/v2/ | grep -qx 401 && exit 0;"
        " sleep 1; done; exit 1" % (CA, ADDRESS)
    )
    assert answered.rc == 0, "the registry did not come back after the engine restart"
    again = host.ansible("dockhand.registry.engine_daemon_config", """settings='{"log-level": "info"}'""", check=False)
    assert not again["changed"], again
