"""The role_include scenario: each non-default value given to the included roles took effect."""

from __future__ import annotations

import pytest
from moltest import Registry, inspect


@pytest.fixture(scope="module")
def container(host, mol_vars):
    found = inspect(host, "--type", "container", mol_vars["mol_include_container_name"])
    assert found, "container %s not found" % mol_vars["mol_include_container_name"]
    return found


@pytest.fixture(scope="module")
def registry(mol_vars):
    return Registry("127.0.0.1:%s" % mol_vars["mol_include_port"])


def test_container_has_the_given_name_and_runs(container):
    assert container["State"]["Running"] is True


def test_restart_policy_is_unless_stopped(container, mol_vars):
    policy = container["HostConfig"]["RestartPolicy"]["Name"]
    assert policy == "unless-stopped" == mol_vars["mol_include_restart_policy"]


def test_port_is_the_given_one(host, container, mol_vars):
    bindings = container["NetworkSettings"]["Ports"]["5000/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(mol_vars["mol_include_port"])}]
    assert host.socket("tcp://127.0.0.1:%s" % mol_vars["mol_include_port"]).is_listening


def test_data_is_on_the_named_volume(container, mol_vars):
    # The data on the named volume, no anonymous volume; the only other mount is the rendered configuration file.
    assert sorted((m["Type"], m.get("Name"), m["Destination"]) for m in container["Mounts"]) == [
        ("bind", None, "/etc/docker/registry/config.yml"),
        ("volume", mol_vars["mol_include_volume"], "/var/lib/registry"),
    ]


def test_named_volume_holds_the_repositories(host, mol_vars):
    volume = inspect(host, "--type", "volume", mol_vars["mol_include_volume"])
    assert volume, "volume %s not found" % mol_vars["mol_include_volume"]
    for image in mol_vars["mol_include_images"]:
        path = "%s/docker/registry/v2/repositories/%s/_manifests" % (volume["Mountpoint"], image["repository"])
        assert host.file(path).is_directory, path


def test_env_is_passed(container, mol_vars):
    for key, value in mol_vars["mol_include_env"].items():
        assert "%s=%s" % (key, value) in container["Config"]["Env"]


def test_registry_holds_exactly_the_published_images(registry, mol_vars):
    expected = {image["repository"]: [str(image["tag"])] for image in mol_vars["mol_include_images"]}
    assert {repo: sorted(registry.tags(repo)) for repo in registry.catalog()} == expected
