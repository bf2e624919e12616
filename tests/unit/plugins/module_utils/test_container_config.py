"""registry_container with its configuration file mounted: the debug server published on a private port, TLS,
authentication and the drain read from the file, the stop timeout kept on the container, and the garbage
collection's read-only switch (spec_from_container) keeping all of it."""

from __future__ import annotations

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import (
    InvalidSpec,
    desired_view,
    exposure_warnings,
    spec_from_container,
)
from ansible_collections.dockhand.registry.plugins.module_utils.registry_config import ConfigSettings, build, render
from ansible_collections.dockhand.registry.tests.unit.plugins.module_utils.test_container import (  # noqa: F401 # pylint: disable=unused-import
    FakeEngine,
    converge,
    no_http,
    spec,
)


def config_file(tmp_path, **settings) -> dict:
    path = tmp_path / "registry.yml"
    path.write_bytes(render(build(ConfigSettings(**settings))))
    return {"source": str(path), "target": "/etc/docker/registry/config.yml", "read_only": True}


def test_metrics_port_published_next_to_the_registry_port(tmp_path):
    engine = FakeEngine()
    s = spec(tmp_path, metrics_port=5181, mounts=[config_file(tmp_path, metrics=True)])
    result = converge(engine, s)
    assert result["container"]["ports"] == ["127.0.0.1:5100->5000/tcp", "127.0.0.1:5181->5001/tcp"]
    again = converge(engine, spec(tmp_path, metrics_port=5181, mounts=[config_file(tmp_path, metrics=True)]))
    assert not again["changed"]
    # The metrics port back off: a recreate, like any port change.
    off = converge(engine, spec(tmp_path, mounts=[config_file(tmp_path, metrics=True)]))
    assert off["changed"] and "ports" in off["actions"][0]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"metrics_port": 5100}, "metrics_port 5100 is the registry's port 5100 on 127.0.0.1: give the metrics a port of their own"),
        ({"metrics_port": 5100, "bind_address": "0.0.0.0"}, "metrics_port 5100 is the registry's port 5100"),
        ({"metrics_port": 70000}, "metrics_port 70000 is out of range"),
        ({"metrics_port": 5181, "metrics_bind_address": "localhost"}, "metrics_bind_address 'localhost' is not an IP address"),
    ],
)
def test_metrics_port_refusals(tmp_path, changes, message):
    with pytest.raises(InvalidSpec, match=message):
        spec(tmp_path, **changes).validate()


def test_metrics_port_on_the_same_number_of_another_address_is_allowed(tmp_path):
    spec(tmp_path, bind_address="192.0.2.1", metrics_port=5100, metrics_bind_address="127.0.0.1").validate()


def test_metrics_port_needs_the_debug_server_in_the_file(tmp_path):
    with pytest.raises(InvalidSpec, match=r"the configuration sets http\.debug\.addr '', not :5001"):
        spec(tmp_path, metrics_port=5181, mounts=[config_file(tmp_path)]).validate()


def test_tls_auth_and_drain_come_from_the_file(tmp_path):
    (tmp_path / "h").write_text("alice:x\n")
    mounts = [config_file(tmp_path, htpasswd="/auth/htpasswd", tls_cert="/certs/server.crt", tls_key="/certs/server.key", drain_timeout=30)]
    s = spec(tmp_path, bind_address="192.0.2.1", mounts=mounts, drain_timeout=10)
    assert s.tls_on and s.auth_on
    assert exposure_warnings(s) == []
    assert "REGISTRY_HTTP_DRAINTIMEOUT" not in s.all_env, "the file's drain is not repeated in the environment"
    assert s.stop_timeout == 35
    bare = spec(tmp_path, bind_address="192.0.2.1", drain_timeout=10)
    assert not bare.tls_on and len(exposure_warnings(bare)) == 2
    assert bare.all_env["REGISTRY_HTTP_DRAINTIMEOUT"] == "10s" and bare.stop_timeout == 15


def test_stop_timeout_kept_on_the_container_and_used_to_stop_it(tmp_path):
    engine = FakeEngine()
    converge(engine, spec(tmp_path, mounts=[config_file(tmp_path, drain_timeout=20)]))
    created = next(iter(engine.containers.values()))
    assert created["Config"]["StopTimeout"] == 25
    stops = []
    engine.stop = lambda ref, timeout=10: stops.append(timeout) or engine.containers[ref]["State"].update(Running=False)
    converge(engine, spec(tmp_path, mounts=[config_file(tmp_path, drain_timeout=20)], state="stopped"))
    assert stops == [25]


def test_a_changed_file_recreates_and_the_gc_switch_keeps_everything(tmp_path):
    engine = FakeEngine()
    mounts = [config_file(tmp_path, metrics=True)]
    converge(engine, spec(tmp_path, metrics_port=5181, mounts=mounts))
    changed = converge(engine, spec(tmp_path, metrics_port=5181, mounts=[config_file(tmp_path, metrics=True, log_level="debug", drain_timeout=10)]))
    assert changed["changed"] and "config_digest" in changed["actions"][0]
    running = next(iter(engine.containers.values()))
    again = spec_from_container(running, {"PATH": "/bin"}, "registry:2")
    assert again.metrics_port == 5181 and again.metrics_bind_address == "127.0.0.1"
    assert desired_view(again, engine.image("registry:2"))["ports"] == changed["container"]["ports"]
    assert again.stop_timeout == 15


def test_check_mode_on_a_fresh_host_expects_the_configuration_file_a_task_before_writes(tmp_path):
    missing = {"source": str(tmp_path / "not-yet.yml"), "target": "/etc/docker/registry/config.yml", "read_only": True}
    with pytest.raises(InvalidSpec, match="does not exist"):
        spec(tmp_path, mounts=[missing]).validate()
    with pytest.raises(InvalidSpec, match="does not exist"):
        spec(tmp_path, mounts=[missing]).validate(check_mode=True)
    result = converge(FakeEngine(), spec(tmp_path, mounts=[missing], config_changed=True), check_mode=True)
    assert result["changed"] and result["actions"][-1] == "create container dh-it-reg"
    with pytest.raises(InvalidSpec, match="does not exist"):
        spec(tmp_path, mounts=[missing], config_changed=True).validate()
