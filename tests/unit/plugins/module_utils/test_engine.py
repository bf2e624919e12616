"""EngineClient over a mocked docker.APIClient."""

from __future__ import annotations

from unittest import mock

import pytest
from docker.errors import APIError, NotFound

from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient, EngineError, tls_settings

DIGEST = "sha256:" + "d" * 64
IMAGE_ID = "sha256:" + "e" * 64


def engine() -> tuple[EngineClient, mock.MagicMock]:
    api = mock.MagicMock()
    return EngineClient(api=api), api


def api_error(message: str, status: int = 500) -> APIError:
    response = mock.Mock(status_code=status, reason="x")
    return APIError(message, response=response, explanation=message)


# -- push ------------------------------------------------------------------------------
def test_push_returns_digest_from_aux():
    client, api = engine()
    api.push.return_value = iter(
        [
            {"status": "The push refers to repository [localhost:5100/demo]"},
            {"status": "Layer already exists", "id": "abc"},
            {"status": "1.0: digest: %s size: 528" % DIGEST},
            {"progressDetail": {}, "aux": {"Tag": "1.0", "Digest": DIGEST, "Size": 528}},
        ]
    )
    assert client.push("localhost:5100/demo", "1.0", {"username": "u"}) == DIGEST
    api.push.assert_called_once_with(
        "localhost:5100/demo", tag="1.0", stream=True, decode=True, auth_config={"username": "u"}
    )


def test_push_stream_error_names_the_image():
    client, api = engine()
    api.push.return_value = iter(
        [
            {"status": "The push refers to repository [localhost:5100/demo]"},
            {"errorDetail": {"message": "denied:\nrequested access to the resource is denied"}, "error": "denied"},
        ]
    )
    with pytest.raises(EngineError) as err:
        client.push("localhost:5100/demo", "1.0")
    text = str(err.value)
    assert "localhost:5100/demo:1.0" in text
    assert "requested access to the resource is denied" in text
    assert "\n" not in text


def test_push_stream_error_without_detail():
    client, api = engine()
    api.push.return_value = iter([{"error": "connection refused"}])
    with pytest.raises(EngineError, match=r"push of r.io/x:2 refused: connection refused"):
        client.push("r.io/x", "2")


def test_push_sdk_error_names_the_image():
    client, api = engine()
    api.push.side_effect = api_error("no such image")
    with pytest.raises(EngineError, match=r"push of localhost:5100/demo:1.0 failed: no such image"):
        client.push("localhost:5100/demo", "1.0")


def test_push_without_digest_is_an_error():
    client, api = engine()
    api.push.return_value = iter([{"status": "Pushed"}])
    with pytest.raises(EngineError, match="without a digest"):
        client.push("localhost:5100/demo", "1.0")


# -- pull ------------------------------------------------------------------------------
def test_pull_returns_image_id():
    client, api = engine()
    api.pull.return_value = iter([{"status": "Pulling"}, {"status": "Digest: %s" % DIGEST}])
    api.inspect_image.return_value = {"Id": IMAGE_ID}
    assert client.pull("localhost:5100/demo", "1.0") == IMAGE_ID
    api.inspect_image.assert_called_once_with("localhost:5100/demo:1.0")


def test_pull_stream_error():
    client, api = engine()
    api.pull.return_value = iter([{"error": "manifest unknown", "errorDetail": {"message": "manifest unknown"}}])
    with pytest.raises(EngineError, match="pull of localhost:5100/demo:9 failed: manifest unknown"):
        client.pull("localhost:5100/demo", "9")


# -- build -----------------------------------------------------------------------------
def test_build_returns_id_from_aux():
    client, api = engine()
    api.build.return_value = iter(
        [{"stream": "Step 1/2 : FROM scratch\n"}, {"aux": {"ID": IMAGE_ID}}, {"stream": "Successfully built eeee\n"}]
    )
    assert client.build("/ctx", "demo:1", dockerfile="Dockerfile.x") == IMAGE_ID
    kwargs = api.build.call_args.kwargs
    assert kwargs["path"] == "/ctx" and kwargs["tag"] == "demo:1" and kwargs["dockerfile"] == "Dockerfile.x"
    assert kwargs["decode"] is True


def test_build_falls_back_to_inspect():
    client, api = engine()
    api.build.return_value = iter([{"stream": "Successfully built eeee\n"}])
    api.inspect_image.return_value = {"Id": IMAGE_ID}
    assert client.build("/ctx", "demo:1") == IMAGE_ID


def test_build_stream_error_names_tag_and_context():
    client, api = engine()
    api.build.return_value = iter(
        [{"stream": "Step 1/2"}, {"error": "COPY failed", "errorDetail": {"message": "COPY failed: no such file"}}]
    )
    with pytest.raises(EngineError, match="build of demo:1 from /ctx failed: COPY failed: no such file"):
        client.build("/ctx", "demo:1")


# -- load ------------------------------------------------------------------------------
def test_load_reports_loaded_names(tmp_path):
    archive = tmp_path / "x.tar"
    archive.write_bytes(b"tar")
    client, api = engine()
    api.load_image.return_value = iter(
        [{"stream": "Loaded image: demo:1\n"}, {"stream": "Loaded image ID: %s\n" % IMAGE_ID}]
    )
    assert client.load(str(archive)) == ["demo:1", IMAGE_ID]


def test_load_stream_error(tmp_path):
    archive = tmp_path / "x.tar"
    archive.write_bytes(b"tar")
    client, api = engine()
    api.load_image.return_value = iter([{"error": "unexpected EOF", "errorDetail": {"message": "unexpected EOF"}}])
    with pytest.raises(EngineError, match=r"cannot load image archive .*x.tar: unexpected EOF"):
        client.load(str(archive))


def test_load_missing_archive(tmp_path):
    client, _api = engine()
    with pytest.raises(EngineError, match=r"cannot read image archive .*nope.tar"):
        client.load(str(tmp_path / "nope.tar"))


# -- images, containers ----------------------------------------------------------------
def test_image_not_found_is_none():
    client, api = engine()
    api.inspect_image.side_effect = NotFound("no such image")
    assert client.image("demo:1") is None
    assert client.image_id("demo:1") is None


def test_image_other_error_raises():
    client, api = engine()
    api.inspect_image.side_effect = api_error("daemon sad")
    with pytest.raises(EngineError, match="cannot inspect image demo:1: daemon sad"):
        client.image("demo:1")


def test_image_index_by_tag():
    client, api = engine()
    api.images.return_value = [
        {"Id": "a", "RepoTags": ["demo:1", "localhost:5100/demo:1"]},
        {"Id": "b", "RepoTags": None},
    ]
    index = client.image_index()
    assert set(index) == {"demo:1", "localhost:5100/demo:1"}
    assert index["demo:1"]["Id"] == "a"


def test_tag_forces_and_names_failure():
    client, api = engine()
    client.tag(IMAGE_ID, "localhost:5100/demo", "1")
    api.tag.assert_called_once_with(IMAGE_ID, "localhost:5100/demo", "1", force=True)
    api.tag.side_effect = api_error("boom")
    with pytest.raises(EngineError, match=r"cannot tag .* as localhost:5100/demo:1: boom"):
        client.tag(IMAGE_ID, "localhost:5100/demo", "1")


def test_container_calls_name_the_container():
    client, api = engine()
    api.start.side_effect = api_error("port is already allocated")
    with pytest.raises(EngineError, match="cannot start container reg: port is already allocated"):
        client.start("reg")
    client.update_restart_policy("reg", {"Name": "no"})
    api.update_container.assert_called_once_with("reg", restart_policy={"Name": "no"})


def test_container_not_found_is_none():
    client, api = engine()
    api.inspect_container.side_effect = NotFound("no such container")
    assert client.container("reg") is None


def test_unreachable_engine():
    with pytest.raises(EngineError, match=r"cannot reach the Docker engine at unix:///nonexistent.sock"):
        EngineClient("unix:///nonexistent.sock", timeout=2)


# -- TLS settings (community.docker's semantics) ---------------------------------------
def test_no_tls_without_tls_or_validate_certs(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    assert tls_settings(False, False, client_cert="c", client_key="k", cert_dir=str(tmp_path)) is None


def test_tls_without_verification():
    assert tls_settings(tls=True) == {"client_cert": None, "ca_cert": None, "verify": False}


def test_validate_certs_implies_tls_and_takes_cert_path(tmp_path):
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    settings = tls_settings(validate_certs=True, cert_dir=str(tmp_path))
    assert settings == {
        "client_cert": (str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")),
        "ca_cert": str(tmp_path / "ca.pem"),
        "verify": True,
    }


def test_given_paths_win_over_cert_path(tmp_path):
    for name in ("ca.pem", "cert.pem", "key.pem", "mine.pem"):
        (tmp_path / name).write_text("x")
    mine = str(tmp_path / "mine.pem")
    settings = tls_settings(validate_certs=True, ca_path=mine, cert_dir=str(tmp_path))
    assert settings["ca_cert"] == mine


def test_client_cert_needs_key(tmp_path):
    (tmp_path / "cert.pem").write_text("x")
    with pytest.raises(EngineError, match="client_cert and client_key go together: got only client_cert"):
        tls_settings(tls=True, client_cert=str(tmp_path / "cert.pem"))


def test_missing_ca_file_named():
    with pytest.raises(EngineError, match=r"ca_path /nonexistent/ca\.pem: no such file"):
        tls_settings(validate_certs=True, ca_path="/nonexistent/ca.pem")


def test_from_params_refuses_zero_timeout():
    params = {"docker_host": None, "timeout": 0, "tls": False, "validate_certs": False}
    with pytest.raises(EngineError, match="timeout must be at least 1 second, got 0"):
        EngineClient.from_params(dict(params, ca_path=None, client_cert=None, client_key=None))


def test_engine_ca_wins_over_requests_ca_bundle(tmp_path, monkeypatch):
    # requests merges REQUESTS_CA_BUNDLE over a Session's verify; the engine's CA must stay the one given.
    from docker.tls import TLSConfig

    from ansible_collections.dockhand.registry.plugins.module_utils.engine import _api_client

    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    api = _api_client(base_url="tcp://127.0.0.1:1", version="1.41", tls=TLSConfig(ca_cert=str(ca), verify=True))
    assert api.base_url.startswith("https://")
    assert api.merge_environment_settings(api.base_url + "/version", {}, False, None, None)["verify"] == str(ca)
