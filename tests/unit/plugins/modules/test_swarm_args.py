"""Argument handling of swarm_node and registry_service: bad values fail in one line before the engine is asked."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.dockhand.registry.plugins.modules import registry_service, swarm_node


def fails(module, args, capsys, *fragments) -> dict:
    with mock.patch.object(module, "EngineClient") as engine, patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{") :])
    assert result.get("failed") is True, result
    for fragment in fragments:
        assert fragment in result["msg"], result["msg"]
    assert "\n" not in result["msg"]
    engine.assert_not_called()
    return result


def test_service_data_path_and_volume_exclusive(capsys):
    fails(registry_service, {"image": "registry:2", "data_path": "/srv/r", "volume": "v"}, capsys, "mutually exclusive: data_path|volume")


def test_service_needs_storage(capsys):
    fails(registry_service, {"image": "registry:2"}, capsys, "data_path", "volume")


def test_service_bad_port(capsys):
    fails(registry_service, {"image": "registry:2", "data_path": "/srv/r", "port": 0}, capsys, "port 0")


def test_service_publish_mode_choices(capsys):
    fails(registry_service, {"image": "registry:2", "data_path": "/srv/r", "publish_mode": "mesh"}, capsys, "publish_mode")


def test_service_tls_needs_both(capsys):
    fails(registry_service, {"image": "registry:2", "data_path": "/srv/r", "tls_cert": "/x"}, capsys, "tls_cert", "tls_key")


def test_service_http_secret_is_never_echoed(capsys):
    result = fails(registry_service, {"image": "registry:2", "data_path": "/srv/r", "port": -1, "http_secret": "hunter2hunter2"}, capsys, "port -1")
    assert "hunter2hunter2" not in json.dumps(result)


def test_node_join_addr_needs_token(capsys):
    fails(swarm_node, {"role": "worker", "join_addr": ["10.0.0.1:2377"]}, capsys, "join_token")


def test_node_worker_cannot_start_a_swarm(capsys):
    fails(swarm_node, {"role": "worker"}, capsys, "needs join_addr")
