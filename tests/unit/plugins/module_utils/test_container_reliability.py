"""RegistrySpec.validate and the port probe: bad values are refused before anything is touched."""

from __future__ import annotations

import socket

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError
from ansible_collections.dockhand.registry.plugins.module_utils.container import port_problem
from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import InvalidSpec, RegistrySpec
from ansible_collections.dockhand.registry.plugins.module_utils.reference import InvalidReference, parse


def spec(tmp_path, **overrides) -> RegistrySpec:
    values = {"name": "registry", "image": "registry:2", "data_path": str(tmp_path / "data")}
    values.update(overrides)
    return RegistrySpec(**values)


def test_good_spec_passes(tmp_path):
    spec(tmp_path).validate()


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"port": 70000}, "70000"),
        ({"port": 0}, "0"),
        ({"bind_address": "localhost-ish"}, "localhost-ish"),
        ({"restart_policy": "sometimes"}, "sometimes"),
        ({"restart_retries": 3}, "restart_retries 3"),
        ({"restart_retries": -1, "restart_policy": "on-failure"}, "-1"),
        ({"data_path": "relative/dir"}, "relative/dir"),
        ({"mounts": [{"source": "/no/such/file", "target": "/auth"}]}, "/no/such/file"),
    ],
)
def test_bad_values_are_named(tmp_path, overrides, named):
    with pytest.raises(InvalidSpec) as err:
        spec(tmp_path, **overrides).validate()
    assert named in str(err.value) and "\n" not in str(err.value)


def test_on_failure_takes_retries(tmp_path):
    spec(tmp_path, restart_policy="on-failure", restart_retries=3).validate()


def test_data_path_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidSpec, match="is not a directory"):
        spec(tmp_path, data_path=str(tmp_path / "file" / "data")).validate()
    with pytest.raises(InvalidSpec, match="exists and is not a directory"):
        spec(tmp_path, data_path=str(tmp_path / "file")).validate()


def test_port_problem_sees_a_listener():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        assert "in use" in (port_problem("127.0.0.1", holder.getsockname()[1]) or "")
    finally:
        holder.close()


def test_invalid_reference_is_a_module_error():
    with pytest.raises(DockhandError):
        parse("Bad/UPPER:1")
    assert issubclass(InvalidReference, ValueError)
