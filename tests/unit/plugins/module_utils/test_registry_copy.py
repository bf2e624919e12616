"""RegistryClient's copy calls (manifest GET/PUT, blob HEAD, mount, upload) against a scripted session."""

from __future__ import annotations

import hashlib

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.registry import (
    Manifest,
    ManifestMissing,
    RegistryClient,
    RegistryReadOnly,
)
from ansible_collections.dockhand.registry.plugins.module_utils.transport import RegistryError
from ansible_collections.dockhand.registry.tests.support.unit import FakeResponse, FakeSession, registry_client


def client(handler) -> tuple[RegistryClient, FakeSession]:
    return registry_client(handler)


BODY = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": {}, "layers": []}'
DIGEST = "sha256:" + hashlib.sha256(BODY).hexdigest()


class BytesResponse(FakeResponse):
    def __init__(self, status: int, headers: dict, content: bytes) -> None:
        super().__init__(status, headers)
        self.content = content
        self.text = content.decode(errors="replace")


def test_get_manifest_keeps_bytes_and_checks_the_digest():
    reg, session = client(lambda m, u, **k: BytesResponse(200, {"Content-Type": "application/json"}, BODY))
    manifest = reg.get_manifest("app", DIGEST)
    assert manifest == Manifest(BODY, "application/vnd.oci.image.manifest.v1+json", DIGEST)
    assert "application/vnd.oci.image.index.v1+json" in session.calls[0][2]["headers"]["Accept"]
    with pytest.raises(RegistryError, match="with the digest"):
        reg.get_manifest("app", "sha256:" + "0" * 64)


def test_get_manifest_missing():
    reg = client(lambda m, u, **k: BytesResponse(404, {}, b"{}"))[0]
    with pytest.raises(ManifestMissing, match="app:1 is not in the registry"):
        reg.get_manifest("app", "1")


def test_put_manifest_sends_the_bytes_verbatim_with_their_type():
    reg, session = client(lambda m, u, **k: FakeResponse(201, {"Docker-Content-Digest": DIGEST}))
    assert reg.put_manifest("team/app", "1.0", Manifest(BODY, "application/vnd.oci.image.manifest.v1+json", DIGEST)) == DIGEST
    method, url, kwargs = session.calls[0]
    assert (method, url) == ("PUT", "http://localhost:5100/v2/team/app/manifests/1.0")
    assert kwargs["data"] is BODY and kwargs["headers"]["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"


def test_mount_then_upload_location():
    answers = iter([FakeResponse(201, {}), FakeResponse(202, {"Location": "/v2/app/blobs/uploads/u1?_state=x"})])
    reg, session = client(lambda m, u, **k: next(answers))
    assert reg.start_upload("app", DIGEST, "other") is None
    assert session.calls[0][2]["params"] == {"mount": DIGEST, "from": "other"}
    assert reg.start_upload("app", DIGEST, "other") == "http://localhost:5100/v2/app/blobs/uploads/u1?_state=x"


def test_cache_refuses_uploads_in_one_line():
    reg = client(lambda m, u, **k: FakeResponse(405, {}, '{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}'))[0]
    with pytest.raises(RegistryReadOnly, match=r"localhost:5100 refuses writes .*pull-through cache"):
        reg.start_upload("app")


def test_has_blob():
    reg = client(lambda m, u, **k: FakeResponse(200 if u.endswith("yes") else 404, {}))[0]
    assert reg.has_blob("app", "yes") and not reg.has_blob("app", "no")


def test_engine_push_to_a_cache_names_it():
    from unittest import mock

    from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient, EngineError

    engine = EngineClient.__new__(EngineClient)
    engine.api = mock.Mock()
    engine.api.push.return_value = iter([{"status": "Preparing"}, {"errorDetail": {"message": "unsupported"}, "error": "unsupported"}])
    with pytest.raises(EngineError, match=r"refused: unsupported \(the registry refuses pushes: a pull-through cache"):
        engine.push("localhost:5000/app", "1")
