"""Argument handling of swarm_node and registry_service: bad values fail in one line before the engine is asked."""

from __future__ import annotations

import json

from ansible_collections.dockhand.registry.plugins.modules import registry_service, swarm_node
from ansible_collections.dockhand.registry.tests.support.unit import module_fails


def fails(module, args, capsys, *fragments) -> dict:
    return module_fails(module, "EngineClient", args, capsys, *fragments)


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
