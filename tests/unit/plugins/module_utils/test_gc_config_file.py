"""registry_gc reads the storage itself only where it is files on this host: the storage driver and root directory
come from the environment (it wins), else the configuration file mounted at /etc/docker/registry/config.yml, else the
label a Swarm task carries (its configuration is a secret)."""

from __future__ import annotations

from ansible_collections.dockhand.registry.plugins.module_utils.gc import ContainerBackend
from ansible_collections.dockhand.registry.plugins.module_utils.registry_config import STORAGE_LABEL, ConfigSettings, build, render


class Engine:
    local = True

    def __init__(self, container: dict) -> None:
        self.inspected = container

    def container(self, name):
        return self.inspected


def backend(tmp_path, config: dict | None = None, env: list[str] | None = None, labels: dict | None = None) -> ContainerBackend:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    mounts = [{"Type": "bind", "Source": str(data), "Destination": "/var/lib/registry", "RW": True}]
    if config is not None:
        (tmp_path / "registry.yml").write_bytes(render(config))
        mounts.append({"Type": "bind", "Source": str(tmp_path / "registry.yml"), "Destination": "/etc/docker/registry/config.yml", "RW": False})
    container = {"Id": "c", "Config": {"Env": env or [], "Labels": labels or {}}, "Mounts": mounts}
    return ContainerBackend(Engine(container), "reg")


def test_filesystem_from_the_file_is_readable(tmp_path):
    found = backend(tmp_path, build(ConfigSettings()))
    assert found.storage_problem() is None and found.data_path() == str(tmp_path / "data")


def test_s3_in_the_file_is_not_read_here(tmp_path):
    found = backend(tmp_path, build(ConfigSettings(config={"storage": {"s3": {"region": "eu-west-1", "bucket": "b"}}})))
    assert found.storage_problem() == "it stores with the s3 (storage.s3 in its configuration file) driver"


def test_the_environment_wins_over_the_file(tmp_path):
    s3 = build(ConfigSettings(config={"storage": {"s3": {"region": "eu-west-1", "bucket": "b"}}}))
    assert backend(tmp_path, s3, env=["REGISTRY_STORAGE=filesystem"]).storage_problem() is None
    found = backend(tmp_path, build(ConfigSettings()), env=["REGISTRY_STORAGE=gcs"])
    assert found.storage_problem() == "it stores with the gcs (REGISTRY_STORAGE=gcs) driver"


def test_a_service_task_says_its_driver_by_label(tmp_path):
    assert backend(tmp_path, labels={STORAGE_LABEL: "azure"}).storage_problem() == "it stores with the azure (storage.azure in its configuration) driver"
    assert backend(tmp_path, labels={STORAGE_LABEL: "filesystem"}).storage_problem() is None
