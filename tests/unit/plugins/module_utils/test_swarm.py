"""swarm.py: swarm membership and the registry Swarm service over a mocked EngineClient."""

from __future__ import annotations

import json
import os
from unittest import mock

import pytest
from docker.errors import NotFound

from ansible_collections.dockhand.registry.plugins.module_utils import swarm
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient
from ansible_collections.dockhand.registry.plugins.module_utils.swarm import (
    RegistryService,
    ServiceSpec,
    registry_config,
    view,
)
from ansible_collections.dockhand.registry.plugins.module_utils.swarm_membership import SwarmError, SwarmNode

MANAGER_STATE = {"LocalNodeState": "active", "NodeID": "node1", "ControlAvailable": True, "Cluster": {"ID": "swarmA"}}
SWARM = {"ID": "swarmA", "JoinTokens": {"Manager": "SWMTKN-m", "Worker": "SWMTKN-w"}}


def engine(api: mock.MagicMock | None = None) -> tuple[EngineClient, mock.MagicMock]:
    api = api or mock.MagicMock()
    return EngineClient(api=api), api


# -- swarm_node ------------------------------------------------------------------------------------------------------
def test_init_when_not_in_a_swarm():
    client, api = engine()
    api.info.side_effect = [{"Swarm": {"LocalNodeState": "inactive"}}, {"Swarm": MANAGER_STATE}]
    api.inspect_swarm.return_value = SWARM
    api.nodes.return_value = [{"ManagerStatus": {"Addr": "10.0.0.1:2377"}}]
    result = SwarmNode(client, "manager", [], None, "10.0.0.1", "0.0.0.0:2377").converge()
    api.init_swarm.assert_called_once_with(advertise_addr="10.0.0.1", listen_addr="0.0.0.0:2377")
    assert result["changed"] is True
    assert result["swarm_id"] == "swarmA"
    assert result["join_tokens"] == {"manager": "SWMTKN-m", "worker": "SWMTKN-w"}
    assert result["managers"] == ["10.0.0.1:2377"]
    assert result["actions"] and "initialise" in result["actions"][0]


def test_manager_already_in_its_swarm_is_ok():
    client, api = engine()
    api.info.return_value = {"Swarm": MANAGER_STATE}
    api.inspect_swarm.return_value = SWARM
    api.nodes.return_value = []
    result = SwarmNode(client, "manager", [], None, None, "0.0.0.0:2377").converge()
    assert result["changed"] is False
    api.init_swarm.assert_not_called()


def test_join_as_worker_never_returns_tokens():
    client, api = engine()
    worker = {"LocalNodeState": "active", "NodeID": "node2", "ControlAvailable": False, "RemoteManagers": [{"Addr": "10.0.0.1:2377"}]}
    api.info.side_effect = [{"Swarm": {"LocalNodeState": "inactive"}}, {"Swarm": worker}]
    result = SwarmNode(client, "worker", ["10.0.0.1:2377"], "SWMTKN-w", None, "0.0.0.0:2377").converge()
    api.join_swarm.assert_called_once_with(["10.0.0.1:2377"], "SWMTKN-w", listen_addr="0.0.0.0:2377", advertise_addr=None)
    assert result["changed"] is True
    assert "join_tokens" not in result
    assert "SWMTKN" not in json.dumps(result)


def test_joined_manager_does_not_hand_out_tokens():
    client, api = engine()
    api.info.return_value = {"Swarm": MANAGER_STATE}
    api.inspect_swarm.return_value = SWARM
    api.nodes.return_value = []
    result = SwarmNode(client, "manager", ["10.0.0.1:2377"], "SWMTKN-m", None, "0.0.0.0:2377", swarm_id="swarmA").converge()
    assert result["changed"] is False
    assert "join_tokens" not in result


def test_manager_of_another_swarm_is_an_error_naming_it():
    client, api = engine()
    api.info.return_value = {"Swarm": dict(MANAGER_STATE, Cluster={"ID": "swarmB"})}
    with pytest.raises(SwarmError, match=r"node1.*another swarm.*swarmB"):
        SwarmNode(client, "manager", ["10.0.0.1:2377"], "SWMTKN-m", None, "0.0.0.0:2377", swarm_id="swarmA").converge()
    api.leave_swarm.assert_not_called()


def test_worker_of_other_managers_is_an_error():
    client, api = engine()
    api.info.return_value = {"Swarm": {"LocalNodeState": "active", "NodeID": "node3", "RemoteManagers": [{"Addr": "10.9.9.9:2377"}]}}
    with pytest.raises(SwarmError, match="another swarm"):
        SwarmNode(client, "worker", ["10.0.0.1:2377"], "SWMTKN-w", None, "0.0.0.0:2377").converge()


def test_wrong_role_is_an_error_not_a_change():
    client, api = engine()
    api.info.return_value = {"Swarm": {"LocalNodeState": "active", "NodeID": "node3", "RemoteManagers": [{"Addr": "10.0.0.1:2377"}]}}
    with pytest.raises(SwarmError, match=r"is a worker.*wanted manager.*promote"):
        SwarmNode(client, "manager", ["10.0.0.1:2377"], "SWMTKN-m", None, "0.0.0.0:2377").converge()


def test_check_mode_joins_nothing():
    client, api = engine()
    api.info.return_value = {"Swarm": {"LocalNodeState": "inactive"}}
    result = SwarmNode(client, "worker", ["10.0.0.1:2377"], "SWMTKN-w", None, "0.0.0.0:2377", check_mode=True).converge()
    assert result["changed"] is True
    api.join_swarm.assert_not_called()


def test_worker_without_join_addr_is_refused():
    client, _api = engine()
    with pytest.raises(SwarmError, match="needs join_addr"):
        SwarmNode(client, "worker", [], None, None, "0.0.0.0:2377").converge()


# -- registry_service ------------------------------------------------------------------------------------------------
@pytest.fixture
def spec(tmp_path) -> ServiceSpec:
    return ServiceSpec(name="reg", image="registry:2", replicas=3, data_path="/srv/shared/registry", http_secret_path=str(tmp_path / "secret"))


def service_api(spec_dict: dict | None = None) -> mock.MagicMock:
    api = mock.MagicMock()
    api.info.return_value = {"Swarm": MANAGER_STATE}
    api.inspect_image.return_value = {"Id": "sha256:img"}
    api.secrets.return_value = []
    api.create_secret.side_effect = lambda name, data, labels=None: {"ID": "id-" + name}
    # The trial start of a new configuration (config_file.trial_start): the throwaway registry listens at once.
    api.logs.return_value = b'level=info msg="listening on [::]:5000"\n'
    api.nodes.return_value = [{"ID": "n%d" % i, "Status": {"Addr": "10.0.0.%d" % i}, "Description": {"Hostname": "node%d" % i}} for i in (1, 2, 3)]
    return api


def running_tasks(wanted: dict) -> list[dict]:
    return [
        {"ID": "t%d" % i, "NodeID": "n%d" % i, "DesiredState": "running", "Status": {"State": "running"}, "Spec": wanted["TaskTemplate"]} for i in (1, 2, 3)
    ]


def test_config_carries_the_secret_and_read_only(spec):
    config = json.loads(registry_config(spec, "s3cret"))
    assert config["http"]["secret"] == "s3cret"
    assert "maintenance" not in config["storage"]
    assert "cache" not in config["storage"]
    spec.read_only = True
    assert json.loads(registry_config(spec, "s3cret"))["storage"]["maintenance"] == {"readonly": {"enabled": True}}


def test_create_then_nothing_to_change(spec, monkeypatch):
    monkeypatch.setattr(swarm, "wait_ready", lambda *a, **k: 0.1)
    api = service_api()
    api.inspect_service.side_effect = NotFound("no such service")
    created = {}

    def create_service(task_template, **kwargs):
        created.update(TaskTemplate=task_template, Name=kwargs["name"], Mode=kwargs["mode"], UpdateConfig=kwargs["update_config"],
                       EndpointSpec=kwargs["endpoint_spec"], Labels=kwargs["labels"])  # fmt: skip
        return {"ID": "svc"}

    api.create_service.side_effect = create_service
    api.tasks.side_effect = lambda filters: running_tasks(created)
    result = RegistryService(EngineClient(api=api), spec).converge()
    assert result["changed"] is True
    assert [h["node"] for h in result["nodes"]] == ["node1", "node2", "node3"]
    assert all(h["answers"] for h in result["nodes"])
    assert os.stat(spec.http_secret_path).st_mode & 0o777 == 0o600
    container = created["TaskTemplate"]["ContainerSpec"]
    assert not [e for e in container["Env"] if e.startswith("REGISTRY_HTTP_SECRET")]
    assert created["UpdateConfig"]["FailureAction"] == "rollback"
    assert created["TaskTemplate"]["Placement"]["MaxReplicas"] == 1
    secret = open(spec.http_secret_path).read().strip()
    assert secret not in json.dumps(result)

    # Second run: the service holds that spec, the secret exists: nothing changes.
    api.inspect_service.side_effect = None
    api.inspect_service.return_value = {"ID": "svc", "Version": {"Index": 5}, "Spec": created, "UpdateStatus": {"State": "completed"}}
    api.secrets.return_value = [{"ID": s["SecretID"], "Spec": {"Name": s["SecretName"]}} for s in container["Secrets"]]
    again = RegistryService(EngineClient(api=api), spec).converge()
    assert again["changed"] is False
    api.update_service.assert_not_called()
    assert api.create_secret.call_count == 1


def test_env_change_is_a_rolling_update_and_check_mode_changes_nothing(spec, monkeypatch):
    monkeypatch.setattr(swarm, "wait_ready", lambda *a, **k: 0.1)
    api = service_api()
    current = RegistryService(EngineClient(api=api), spec, check_mode=True).wanted()
    api.inspect_service.return_value = {"ID": "svc", "Version": {"Index": 5}, "Spec": current}
    spec.env = {"REGISTRY_LOG_LEVEL": "debug"}
    api.create_secret.reset_mock()
    checked = RegistryService(EngineClient(api=api), spec, check_mode=True).converge()
    assert checked["changed"] is True
    assert any("rolling update" in a and "env" in a for a in checked["actions"])
    assert checked["diff"]["after"]["env"] == ["REGISTRY_LOG_LEVEL=debug"]
    api.update_service.assert_not_called()
    api.create_secret.assert_not_called()


def test_rotated_htpasswd_is_a_new_secret(spec, tmp_path):
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("alice:$2y$05$abc\n")
    spec.htpasswd = str(htpasswd)
    spec.http_secret = "fixed"
    api = service_api()
    first = view(RegistryService(EngineClient(api=api), spec, check_mode=True).wanted())
    htpasswd.write_text("alice:$2y$05$def\n")
    second = view(RegistryService(EngineClient(api=api), spec, check_mode=True).wanted())
    changed = set(first["secrets"]) ^ set(second["secrets"])
    assert len(changed) == 2
    assert all("-htpasswd-" in name for name in changed)


def test_rollback_is_reported(spec, monkeypatch):
    monkeypatch.setattr(swarm.time, "sleep", lambda s: None)
    api = service_api()
    current = RegistryService(EngineClient(api=api), spec, check_mode=True).wanted()
    spec.env = {"REGISTRY_LOG_LEVEL": "debug"}
    api.inspect_service.side_effect = [
        {"ID": "svc", "Version": {"Index": 5}, "Spec": current, "UpdateStatus": {"State": "completed", "StartedAt": "t1"}},
        {"ID": "svc", "Spec": current, "UpdateStatus": {"State": "rollback_completed", "StartedAt": "t2", "Message": "update rolled back"}},
    ]
    api.tasks.return_value = running_tasks(current)
    with pytest.raises(SwarmError, match=r"rollback_completed.*rolled back"):
        RegistryService(EngineClient(api=api), spec).converge()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data_path": None}, "exactly one of data_path and volume"),
        ({"data_path": "/"}, "data_path / is not a dedicated"),
        ({"port": 70000}, "port 70000"),
        ({"env": {"REGISTRY_HTTP_SECRET": "x"}}, "REGISTRY_HTTP_SECRET"),
        ({"htpasswd": "/nonexistent/htpasswd"}, "htpasswd /nonexistent/htpasswd is not a file"),
        ({"tls_cert": "/x"}, "tls_cert and tls_key go together"),
    ],
)
def test_bad_values_fail_before_any_change(spec, change, message):
    for key, value in change.items():
        setattr(spec, key, value)
    api = service_api()
    with pytest.raises(SwarmError, match=message):
        RegistryService(EngineClient(api=api), spec).converge()
    api.create_service.assert_not_called()
    api.create_secret.assert_not_called()


@pytest.mark.parametrize(
    ("mode", "publish", "per_node", "order"),
    [
        ("replicated", "host", 1, "stop-first"),
        ("global", "host", 0, "stop-first"),
        ("replicated", "ingress", 1, "start-first"),
        ("replicated", "host", 0, "start-first"),
    ],
)
def test_auto_update_order(spec, mode, publish, per_node, order):
    spec.mode, spec.publish_mode, spec.max_replicas_per_node = mode, publish, per_node
    assert spec.order == order


def test_not_a_manager_is_refused(spec):
    api = service_api()
    api.info.return_value = {"Swarm": {"LocalNodeState": "active", "ControlAvailable": False}}
    with pytest.raises(SwarmError, match="not a swarm manager"):
        RegistryService(EngineClient(api=api), spec).converge()


def test_check_mode_before_the_swarm_exists_says_it_would_create(spec):
    api = service_api()
    api.info.return_value = {"Swarm": {"LocalNodeState": "inactive"}}
    result = RegistryService(EngineClient(api=api), spec, check_mode=True).converge()
    assert result["changed"] is True
    assert "create service reg" in result["actions"][0]
    api.create_service.assert_not_called()


# -- EngineClient's swarm calls --------------------------------------------------------------------------------------
def test_engine_service_missing_is_none_and_errors_are_one_line():
    from docker.errors import APIError

    from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineError

    client, api = engine()
    api.inspect_service.side_effect = NotFound("no such service")
    assert client.service("reg") is None
    response = mock.Mock(status_code=500, reason="x")
    api.create_service.side_effect = APIError("boom", response=response, explanation="port 5000 is\nalready in use")
    with pytest.raises(EngineError) as err:
        client.create_service({"Name": "reg", "TaskTemplate": {"ContainerSpec": {"Image": "registry:2"}}})
    assert str(err.value) == "cannot create service reg: port 5000 is already in use"
    api.join_swarm.side_effect = APIError("x", response=response, explanation="timeout")
    with pytest.raises(EngineError) as err:
        client.swarm_join(["10.0.0.1:2377"], "SWMTKN-secret", None, "0.0.0.0:2377")
    assert "SWMTKN" not in str(err.value)
    assert "10.0.0.1:2377" in str(err.value)


def test_engine_passes_specs_as_the_engine_json():
    client, api = engine()
    api.create_service.return_value = {"ID": "svc"}
    spec = {
        "Name": "reg",
        "Labels": {"a": "b"},
        "TaskTemplate": {"ContainerSpec": {"Image": "registry:2"}},
        "Mode": {"Replicated": {"Replicas": 3}},
        "UpdateConfig": {"Order": "stop-first"},
        "RollbackConfig": {"Order": "stop-first"},
        "EndpointSpec": {"Ports": []},
    }
    assert client.create_service(spec) == "svc"
    api.create_service.assert_called_once_with(
        spec["TaskTemplate"],
        name="reg",
        labels={"a": "b"},
        mode={"Replicated": {"Replicas": 3}},
        update_config={"Order": "stop-first"},
        rollback_config={"Order": "stop-first"},
        endpoint_spec={"Ports": []},
    )


def test_new_storage_of_a_service_holding_repositories_is_refused_unless_adopted(spec, monkeypatch):
    import io
    import tarfile

    from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import InvalidSpec

    monkeypatch.setattr(swarm, "wait_ready", lambda *a, **k: 0.1)
    api = service_api()
    current = RegistryService(EngineClient(api=api), spec, check_mode=True).wanted()
    api.inspect_service.return_value = {"ID": "svc", "Version": {"Index": 5}, "Spec": current}
    api.inspect_container.side_effect = NotFound("no helper left")
    probes = iter(range(100))
    made: dict[str, str] = {}

    def create_container(image, name, host_config, **kwargs):
        made["probe%d" % next(probes)] = host_config["mounts"][0]["Source"]
        return {"Id": list(made)[-1]}

    api.create_host_config.side_effect = lambda **options: options

    def get_archive(container, path):
        if made[container] != "/srv/shared/registry" or not path.startswith("/var/lib/registry/docker"):
            raise NotFound("no such path")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.addfile(tarfile.TarInfo("./team/app/_manifests"))
        return iter([buffer.getvalue()]), {}

    api.create_container.side_effect = create_container
    api.get_archive.side_effect = get_archive
    moved = ServiceSpec(**dict(vars(spec), data_path="/srv/shared/new"))
    for check_mode in (True, False):
        with pytest.raises(InvalidSpec) as refused:
            RegistryService(EngineClient(api=api), moved, check_mode=check_mode).converge()
        assert "data_path /srv/shared/registry" in str(refused.value) and "data_path /srv/shared/new" in str(refused.value)
        assert "e.g. team/app" in str(refused.value) and "data_move: adopt_empty" in str(refused.value)
    with pytest.raises(InvalidSpec, match="data_move copy is not available: the replicas write to the shared storage"):
        RegistryService(EngineClient(api=api), ServiceSpec(**dict(vars(moved), data_move="copy"))).converge()
    api.update_service.assert_not_called()
    assert api.remove_container.call_count == api.create_container.call_count  # every helper removed
    adopted = RegistryService(EngineClient(api=api), ServiceSpec(**dict(vars(moved), data_move="adopt_empty")), check_mode=True).converge()
    assert any("start on the empty data_path /srv/shared/new" in a for a in adopted["actions"]) and adopted["changed"]
