"""registry_service's configuration: built by the one builder (registry_config.build) with the task's secret paths,
the user's mapping checked before the engine is asked, the metrics published per node, a new configuration tried
by the registry on the manager before any secret is created."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from docker.errors import NotFound

from ansible_collections.dockhand.registry.plugins.module_utils import swarm
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient
from ansible_collections.dockhand.registry.plugins.module_utils.registry_config import STORAGE_LABEL, ConfigError, ConfigSettings, Endpoint
from ansible_collections.dockhand.registry.plugins.module_utils.swarm import RegistryService, ServiceSpec, registry_config
from ansible_collections.dockhand.registry.tests.unit.plugins.module_utils.test_swarm import running_tasks, service_api


@pytest.fixture
def spec(tmp_path) -> ServiceSpec:
    return ServiceSpec(name="reg", image="registry:2", replicas=3, data_path="/srv/shared/registry", http_secret_path=str(tmp_path / "secret"))


def test_service_configuration_carries_the_settings_and_the_task_paths(spec, tmp_path):
    (tmp_path / "h").write_text("alice:x\n")
    spec.htpasswd = str(tmp_path / "h")
    spec.settings = ConfigSettings(
        blob_cache="none", log_formatter="json", metrics=True, delete_enabled=True,
        notifications=[Endpoint(url="http://hook.example/e")], config={"catalog": {"maxentries": 100}},
    )  # fmt: skip
    config = json.loads(registry_config(spec, "s3cret"))
    assert config["auth"]["htpasswd"]["path"] == "/run/secrets/htpasswd"
    assert config["http"]["draintimeout"] == "12s" and config["http"]["secret"] == "s3cret"
    assert config["http"]["debug"]["addr"] == ":5001"
    assert config["storage"]["delete"] == {"enabled": True} and "cache" not in config["storage"]
    assert config["log"]["formatter"] == "json" and config["catalog"] == {"maxentries": 100}
    assert config["notifications"]["endpoints"][0]["url"] == "http://hook.example/e"


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"settings": ConfigSettings(blob_cache="none", config={"http": {"secret": "x"}})}, ConfigError,
         "key http.secret conflicts with registry_http_secret"),
        ({"settings": ConfigSettings(blob_cache="none", config={"bogus": 1})}, ConfigError, "key 'bogus' is not a key"),
        ({"settings": ConfigSettings(blob_cache="none", metrics=True), "metrics_port": 5000}, swarm.SwarmError,
         "metrics_port 5000 is the registry's port"),
    ],
)  # fmt: skip
def test_configuration_refused_before_the_engine_is_asked(spec, change, error, message):
    for key, value in change.items():
        setattr(spec, key, value)
    api = service_api()
    with pytest.raises(error, match=message):
        RegistryService(EngineClient(api=api), spec).converge()
    api.create_service.assert_not_called()
    api.create_secret.assert_not_called()
    api.create_container.assert_not_called()


def test_metrics_published_in_host_mode_on_their_own_port(spec):
    spec.settings = ConfigSettings(blob_cache="none", metrics=True)
    spec.metrics_port = 9101
    wanted = RegistryService(EngineClient(api=service_api()), spec, check_mode=True).wanted()
    ports = wanted["EndpointSpec"]["Ports"]
    assert {"Protocol": "tcp", "TargetPort": 5001, "PublishedPort": 9101, "PublishMode": "host"} in ports
    assert [p["TargetPort"] for p in ports] == [5000, 5001]


def test_a_new_configuration_is_tried_before_any_secret_and_a_refusal_changes_nothing(spec, monkeypatch):
    monkeypatch.setattr(swarm, "wait_ready", lambda *a, **k: 0.1)
    api = service_api()
    api.inspect_service.side_effect = NotFound("no such service")
    api.create_container.return_value = {"Id": "trial"}

    def inspect_container(ref):
        if ref != "trial":
            raise NotFound("none")
        return {"Id": "trial", "State": {"Running": False, "Status": "exited", "ExitCode": 1}}

    api.inspect_container.side_effect = inspect_container
    api.logs.return_value = b"configuration error: error parsing /run/secrets/dockhand-registry.yml: bad\n"
    with pytest.raises(ConfigError, match="trial start of registry:2 exited 1\\): configuration error: error parsing"):
        RegistryService(EngineClient(api=api), spec).converge()
    api.create_secret.assert_not_called()
    api.create_service.assert_not_called()
    command = api.create_container.call_args.kwargs["command"]
    assert command == ["serve", "/run/secrets/dockhand-registry.yml"]
    api.remove_container.assert_called_with("trial", force=True)


def test_an_unchanged_configuration_is_not_tried_again(spec, monkeypatch):
    monkeypatch.setattr(swarm, "wait_ready", lambda *a, **k: 0.1)
    spec.http_secret = "fixed"
    api = service_api()
    current = RegistryService(EngineClient(api=api), spec, check_mode=True).wanted()
    secrets = current["TaskTemplate"]["ContainerSpec"]["Secrets"]
    api.secrets.return_value = [{"ID": "id", "Spec": {"Name": s["SecretName"]}} for s in secrets]
    api.inspect_service.return_value = {"ID": "svc", "Version": {"Index": 5}, "Spec": current}
    api.tasks.return_value = running_tasks(current)
    api.create_container = mock.MagicMock()
    result = RegistryService(EngineClient(api=api), spec).converge()
    assert not result["changed"]
    api.create_container.assert_not_called()


def test_tasks_carry_the_storage_driver_for_the_garbage_collection(spec):
    wanted = RegistryService(EngineClient(api=service_api()), spec, check_mode=True).wanted()
    assert wanted["TaskTemplate"]["ContainerSpec"]["Labels"][STORAGE_LABEL] == "filesystem"
    spec.settings = ConfigSettings(blob_cache="none", config={"storage": {"s3": {"region": "eu-west-1", "bucket": "b"}}})
    wanted = RegistryService(EngineClient(api=service_api()), spec, check_mode=True).wanted()
    assert wanted["TaskTemplate"]["ContainerSpec"]["Labels"][STORAGE_LABEL] == "s3"
