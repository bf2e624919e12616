"""Argument handling of each module, through AnsibleModule with patched arguments."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.dockhand.registry.plugins.modules import (
    image_provision,
    image_push,
    image_tag,
    registry_container,
)


def run(module, args, capsys) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


def fails(module, args, capsys, *fragments) -> dict:
    with mock.patch.object(module, "EngineClient") as engine:
        result = run(module, args, capsys)
    assert result.get("failed") is True, result
    for fragment in fragments:
        assert fragment in result["msg"], result["msg"]
    assert "\n" not in result["msg"]
    engine.assert_not_called()
    engine.from_params.assert_not_called()
    return result


# -- image_push ------------------------------------------------------------------------
def test_push_name_and_images_exclusive(capsys):
    fails(image_push, {"name": "localhost:5100/a:1", "images": ["localhost:5100/b:1"]}, capsys, "mutually exclusive")


def test_push_needs_name_or_images(capsys):
    fails(image_push, {}, capsys, "one of the following is required: name, images")


def test_push_username_needs_password(capsys):
    fails(image_push, {"name": "localhost:5100/a:1", "username": "u"}, capsys, "username", "password")


def test_push_workers_at_least_one(capsys):
    fails(image_push, {"name": "localhost:5100/a:1", "workers": 0}, capsys, "workers must be between 1 and 64, got 0")


def test_push_scheme_choices(capsys):
    fails(image_push, {"name": "localhost:5100/a:1", "registry_scheme": "ftp"}, capsys, "registry_scheme", "ftp")


@pytest.mark.parametrize("old", ["scheme", "ca_cert", "cacert_path", "docker_timeout"])
def test_push_old_option_names_refused(capsys, old):
    # 0.x clean break: the names before the registry_ prefix (and docker_timeout) are unknown, not aliases.
    fails(image_push, {"name": "localhost:5100/a:1", old: "x"}, capsys, "Unsupported parameters", old)


def test_engine_options_reach_the_client(capsys, monkeypatch):
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    monkeypatch.setenv("DOCKER_TIMEOUT", "33")
    args = {"source": "a:1", "targets": ["b:1"], "docker_host": "tcp://127.0.0.1:2376", "validate_certs": True}
    with mock.patch.object(image_tag, "EngineClient") as engine, mock.patch.object(image_tag, "tag_images", return_value={"changed": False}):
        run(image_tag, args, capsys)
    params = engine.from_params.call_args.args[0]
    assert (params["docker_host"], params["timeout"], params["validate_certs"], params["tls"]) == ("tcp://127.0.0.1:2376", 33, True, False)


def test_push_bad_reference_fails_cleanly(capsys):
    with mock.patch.object(image_push, "EngineClient"):
        result = run(image_push, {"images": ["localhost:5100/Bad:1"]}, capsys)
    assert result["failed"] is True
    assert "invalid image reference 'localhost:5100/Bad:1'" in result["msg"]


def test_push_calls_push_images_once(capsys):
    with mock.patch.object(image_push, "EngineClient"), mock.patch.object(
        image_push, "push_images", return_value={"changed": False, "images": [], "pushed": [], "diff": {}}
    ) as push:
        result = run(image_push, {"name": "localhost:5100/a:1", "workers": 2}, capsys)
    assert result["changed"] is False and "diff" not in result
    args, kwargs = push.call_args
    assert args[1] == ["localhost:5100/a:1"]
    assert kwargs["workers"] == 2 and kwargs["check_mode"] is False


# -- image_tag -------------------------------------------------------------------------
def test_tag_images_and_source_exclusive(capsys):
    fails(
        image_tag,
        {"images": [{"source": "a:1", "targets": ["b:1"]}], "source": "a:1", "targets": ["b:1"]},
        capsys,
        "mutually exclusive",
    )


def test_tag_source_needs_targets(capsys):
    fails(image_tag, {"source": "a:1"}, capsys, "source", "targets")


def test_tag_item_needs_targets(capsys):
    fails(image_tag, {"images": [{"source": "a:1"}]}, capsys, "targets")


def test_tag_needs_something(capsys):
    fails(image_tag, {}, capsys, "one of the following is required: images, source")


# -- image_provision -------------------------------------------------------------------
def test_provision_force_build_needs_build_path(capsys):
    fails(image_provision, {"name": "a:1", "force_build": True}, capsys, "force_build needs build_path")


def test_provision_dockerfile_needs_build_path(capsys):
    fails(image_provision, {"name": "a:1", "dockerfile": "D"}, capsys, "dockerfile", "build_path")


def test_provision_name_required(capsys):
    fails(image_provision, {}, capsys, "name")


# -- registry_container ----------------------------------------------------------------
def test_container_data_path_and_volume_exclusive(capsys):
    fails(
        registry_container,
        {"image": "registry:2", "data_path": "/tmp/dh-it/x", "volume": "v"},
        capsys,
        "mutually exclusive: data_path|volume",
    )


def test_container_needs_data_location(capsys):
    fails(registry_container, {"image": "registry:2"}, capsys, "data_path", "volume")


def test_container_needs_image_when_started(capsys):
    fails(registry_container, {"data_path": "/tmp/dh-it/x"}, capsys, "image")


def test_container_bad_restart_policy(capsys):
    fails(
        registry_container,
        {"image": "registry:2", "data_path": "/tmp/dh-it/x", "restart_policy": "sometimes"},
        capsys,
        "restart_policy",
        "sometimes",
    )


def test_container_bad_port_fails_before_engine(capsys):
    fails(
        registry_container, {"image": "registry:2", "data_path": "/tmp/dh-it/x", "port": 70000}, capsys, "70000"
    )


def test_container_bad_bind_address(capsys):
    fails(
        registry_container,
        {"image": "registry:2", "data_path": "/tmp/dh-it/x", "bind_address": "nowhere"},
        capsys,
        "bind_address 'nowhere'",
    )


def test_container_absent_needs_no_image(capsys):
    with mock.patch.object(registry_container, "EngineClient"), mock.patch.object(
        registry_container.RegistryContainer,
        "converge",
        return_value={"changed": False, "actions": [], "container": {}, "diff": {}},
    ):
        result = run(registry_container, {"state": "absent", "name": "dh-it-x"}, capsys)
    assert result.get("failed") is not True, result
    assert result["changed"] is False


def test_container_env_values_become_strings(capsys):
    seen = {}

    def converge(self):
        seen.update(self.spec.env)
        return {"changed": False, "actions": [], "container": {}, "diff": {}}

    with mock.patch.object(registry_container, "EngineClient"), mock.patch.object(
        registry_container.RegistryContainer, "converge", converge
    ):
        run(
            registry_container,
            {"image": "registry:2", "volume": "v1", "env": {"A": True, "B": 3, "C": "x"}},
            capsys,
        )
    assert seen == {"A": "true", "B": "3", "C": "x"}
