"""The default scenario: what site.yml left on the host, checked from the outside."""

from __future__ import annotations

from moltest import expected_content, inspect


def test_registry_container_runs_with_restart_policy_always(container, mol_vars):
    assert container["State"]["Running"] is True
    assert container["State"]["Restarting"] is False
    assert container["HostConfig"]["RestartPolicy"]["Name"] == "always" == mol_vars["registry_restart_policy"]


def test_registry_runs_the_image_built_from_the_debian_package(host, container, mol_vars):
    image = inspect(host, "--type", "image", mol_vars["registry_image"])
    assert image, "image %s not found" % mol_vars["registry_image"]
    assert container["Image"] == image["Id"]
    assert image["Config"]["Entrypoint"] == ["/bin/registry"]


def test_data_mount_is_the_configured_host_path(container, mol_vars):
    mounts = [m for m in container["Mounts"] if m["Destination"] == "/var/lib/registry"]
    assert len(mounts) == 1, container["Mounts"]
    assert mounts[0]["Type"] == "bind"
    assert mounts[0]["Source"] == mol_vars["registry_data_path"]
    # No anonymous volume anywhere: the data must survive a recreate.
    assert [m for m in container["Mounts"] if m["Type"] == "volume"] == []


def test_port_is_published_on_the_configured_address(host, container, mol_vars):
    bindings = container["NetworkSettings"]["Ports"]["5000/tcp"]
    assert bindings == [{"HostIp": mol_vars["registry_bind_address"], "HostPort": str(mol_vars["registry_port"])}]
    assert host.socket("tcp://%s:%s" % (mol_vars["registry_bind_address"], mol_vars["registry_port"])).is_listening


def test_catalog_lists_exactly_the_pushed_repositories(registry, mol_vars):
    expected = expected_content(mol_vars["publish_images"])
    assert sorted(registry.catalog()) == sorted(expected)


def test_tags_list_exactly_the_pushed_tags(registry, mol_vars):
    for repository, tags in expected_content(mol_vars["publish_images"]).items():
        assert sorted(registry.tags(repository)) == sorted(tags), repository


def test_two_tags_of_one_image_share_one_manifest(registry):
    assert registry.digest("mol/alpha", "1.0") == registry.digest("mol/alpha", "stable")
    assert registry.digest("mol/alpha", "1.0") != registry.digest("mol/alpha", "1.1")


def test_host_path_holds_the_repositories(host, mol_vars):
    root = "%s/docker/registry/v2/repositories" % mol_vars["registry_data_path"]
    for repository in expected_content(mol_vars["publish_images"]):
        for part in ("_layers", "_manifests", "_uploads"):
            assert host.file("%s/%s/%s" % (root, repository, part)).is_directory, (repository, part)


def test_each_image_pulled_back_by_digest_has_the_same_image_id(host, registry, mol_vars):
    address = mol_vars["publish_registry"]
    for image in mol_vars["publish_images"]:
        repository, tag = image.get("repository") or image["name"], image["tag"]
        source = image.get("source") or "%s:%s" % (image["name"], tag)
        digest = registry.digest(repository, tag)
        assert digest, "%s:%s not in the registry" % (repository, tag)
        by_digest = "%s/%s@%s" % (address, repository, digest)
        host.check_output("docker pull --quiet %s" % by_digest)
        assert inspect(host, "--type", "image", by_digest)["Id"] == inspect(host, "--type", "image", source)["Id"]
