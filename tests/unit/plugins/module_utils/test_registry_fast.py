"""RegistryClient's fast GET path (manifests and configuration blobs through urllib3 on the session's own pool)
against a real HTTP(S) server on loopback: auth retries, TLS options, redirects, errors in one line."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time

import pytest
import urllib3

from ansible_collections.dockhand.registry.plugins.module_utils.catalog import read_catalog
from ansible_collections.dockhand.registry.plugins.module_utils.registry import RegistryClient
from ansible_collections.dockhand.registry.plugins.module_utils.tls import generate
from ansible_collections.dockhand.registry.plugins.module_utils.transport import (
    RegistryAuthError,
    RegistryError,
    RegistryUnreachable,
)
from ansible_collections.dockhand.registry.tests.support.unit import LoopbackServer, QuietHandler, http_servers

V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG = json.dumps({"created": "2026-11-30T01:02:03Z", "os": "linux"}).encode()
CONFIG_DIGEST = "sha256:" + hashlib.sha256(CONFIG).hexdigest()
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": V2, "config": {"digest": CONFIG_DIGEST, "size": len(CONFIG)},
                       "layers": [{"digest": "sha256:" + "1" * 64, "size": 1000}]}).encode()
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
BASIC = "Basic " + base64.b64encode(b"alice:s3cret").decode()


class Registry(LoopbackServer):
    """One repository ``app`` with tags ``a`` and ``b`` (one image); ``auth`` None, "basic" or "bearer";
    ``redirect`` sends configuration blobs elsewhere (as object storage does); every request in ``seen``
    (method, path, Authorization)."""

    def __init__(self, auth: str | None = None, redirect: bool = False, delay: float = 0.0) -> None:
        super().__init__(Handler)
        self.auth = auth
        self.redirect = redirect
        self.delay = delay
        self.tokens_given = 0


class Handler(QuietHandler):
    server: Registry

    def _authorized(self, given: str) -> bool:
        if self.server.auth == "basic":
            return given == BASIC
        if self.server.auth == "bearer":
            return given == "Bearer tok-repository:app:pull"
        return True

    def do_GET(self) -> None:
        given = self.headers.get("Authorization", "")
        with self.server.lock:
            self.server.seen.append(("GET", self.path, given))
        if self.path.startswith("http://"):  # asked as a proxy
            self.path = "/" + self.path.split("/", 3)[3]
        if self.server.delay:
            time.sleep(self.server.delay)
        if self.path.startswith("/token"):
            if given != BASIC:
                return self._send(401)
            scope = self.path.split("scope=", 1)[1].split("&")[0].replace("%3A", ":")
            with self.server.lock:
                self.server.tokens_given += 1
            return self._send(200, json.dumps({"token": "tok-" + scope}).encode())
        if self.path.startswith("/storage/"):
            return self._send(200, CONFIG, {"Content-Type": "application/octet-stream"})
        if not self._authorized(given):
            if self.server.auth == "basic":
                challenge = 'Basic realm="registry"'
            else:
                challenge = 'Bearer realm="http://%s/token",service="registry",scope="repository:app:pull"' % self.server.address
            return self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": challenge})
        if self.path == "/v2/_catalog?n=1000":
            return self._send(200, json.dumps({"repositories": ["app"]}).encode())
        if self.path == "/v2/app/tags/list?n=1000":
            return self._send(200, json.dumps({"name": "app", "tags": ["a", "b"]}).encode())
        if self.path in ("/v2/app/manifests/a", "/v2/app/manifests/b", "/v2/app/manifests/" + MANIFEST_DIGEST):
            return self._send(200, MANIFEST, {"Content-Type": V2, "Docker-Content-Digest": MANIFEST_DIGEST})
        if self.path == "/v2/app/blobs/" + CONFIG_DIGEST:
            if self.server.redirect:
                return self._send(307, b"", {"Location": "http://%s/storage/config" % self.server.address})
            return self._send(200, CONFIG, {"Content-Type": "application/octet-stream"})
        if self.path == "/v2/app/blobs/sha256:" + "e" * 64:
            return self._send(500, b'{"errors":[{"code":"UNKNOWN","message":"disk\non fire"}]}')
        return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')


@pytest.fixture
def serve():
    with http_servers(Registry) as start:
        yield start


def test_fast_path_reads_manifest_and_config(serve):
    server = serve()
    client = RegistryClient(server.address, scheme="http")
    assert client.manifest("app", "a") == (MANIFEST_DIGEST, V2, json.loads(MANIFEST))
    assert client.blob_json("app", CONFIG_DIGEST)["created"] == "2026-11-30T01:02:03Z"
    assert client.manifest("app", "missing") is None
    assert isinstance(client._fast_pool(), urllib3.HTTPConnectionPool)
    # The pool is the session adapter's own: requests (tag lists here) and the fast path share its connections.
    assert client.tags("app") == ["a", "b"]
    pools = client.session.get_adapter("http://x").poolmanager.pools
    assert [pools[key] for key in pools.keys()] == [client._fast_pool()]


def test_catalog_over_the_fast_path_shares_one_configuration_read(serve):
    server = serve()
    held = read_catalog(RegistryClient(server.address, scheme="http", pool_size=4))
    tags = held["repositories"][0]["tags"]
    assert [(t["tag"], t["digest"], t["created"], t["size"]) for t in tags] == [
        ("a", MANIFEST_DIGEST, "2026-11-30T01:02:03Z", len(CONFIG) + 1000),
        ("b", MANIFEST_DIGEST, "2026-11-30T01:02:03Z", len(CONFIG) + 1000),
    ]
    assert [path for _m, path, _a in server.seen].count("/v2/app/blobs/" + CONFIG_DIGEST) == 1


def test_catalog_without_created_reads_no_configuration(serve):
    server = serve()
    held = read_catalog(RegistryClient(server.address, scheme="http", pool_size=4), created=False)
    assert [(t["tag"], t["created"], t["size"]) for t in held["repositories"][0]["tags"]] == [
        ("a", None, len(CONFIG) + 1000), ("b", None, len(CONFIG) + 1000)]
    assert not [path for _m, path, _a in server.seen if "/blobs/" in path]


def test_basic_challenge_answered_once_then_header_on_every_request(serve):
    server = serve(auth="basic")
    client = RegistryClient(server.address, username="alice", password="s3cret", scheme="http", pool_size=4)
    held = read_catalog(client)
    assert len(held["repositories"][0]["tags"]) == 2
    fast = [(path, auth) for _m, path, auth in server.seen if "/manifests/" in path or "/blobs/" in path]
    assert len(fast) == 3 and all(auth == BASIC for _path, auth in fast)
    assert client.warnings  # the password went over plain HTTP because registry_scheme http was asked for


def test_bearer_token_fetched_once_per_scope_and_sent(serve):
    server = serve(auth="bearer")
    client = RegistryClient(server.address, username="alice", password="s3cret", scheme="http", pool_size=1)
    assert client.manifest("app", "a")[0] == MANIFEST_DIGEST
    assert client.manifest("app", "b")[0] == MANIFEST_DIGEST
    assert client.blob_json("app", CONFIG_DIGEST)["os"] == "linux"
    assert server.tokens_given == 1
    answered = [auth for _m, path, auth in server.seen if path.startswith("/v2/app/")]
    assert answered == ["", "Bearer tok-repository:app:pull", "Bearer tok-repository:app:pull", "Bearer tok-repository:app:pull"]


def test_refused_credentials_one_line(serve):
    server = serve(auth="basic")
    client = RegistryClient(server.address, username="alice", password="wrong", scheme="http")
    with pytest.raises(RegistryAuthError, match=r"^registry 127\.0\.0\.1:[0-9]+ refused the login of user 'alice'$"):
        client.manifest("app", "a")


def test_no_credentials_one_line(serve):
    server = serve(auth="bearer")
    with pytest.raises(RegistryAuthError, match=r"requires authentication: give username and password$"):
        RegistryClient(server.address, scheme="http").blob_json("app", CONFIG_DIGEST)


def test_no_password_over_implicit_plain_http(serve):
    server = serve(auth="basic")
    client = RegistryClient(server.address, username="alice", password="s3cret")  # auto: http on loopback
    with pytest.raises(RegistryAuthError, match="speaks plain HTTP"):
        client.manifest("app", "a")
    assert not [auth for _m, _p, auth in server.seen if auth]


def test_redirected_blob_followed_by_requests_without_credentials(serve):
    server = serve(auth="basic", redirect=True)
    client = RegistryClient(server.address, username="alice", password="s3cret", scheme="http")
    assert client.blob_json("app", CONFIG_DIGEST)["created"] == "2026-11-30T01:02:03Z"
    assert ("GET", "/storage/config") in [(m, p) for m, p, _a in server.seen]


def test_server_error_one_line(serve):
    server = serve()
    with pytest.raises(RegistryError) as raised:
        RegistryClient(server.address, scheme="http").blob_json("app", "sha256:" + "e" * 64)
    assert "answered 500 to GET /v2/app/blobs/sha256:eee" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_refused_connection_one_line():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = RegistryClient("127.0.0.1:%d" % port, scheme="http")
    with pytest.raises(RegistryUnreachable, match=r"^registry 127.0.0.1:\d+ is unreachable: Connection refused$"):
        client.manifest("app", "a")


def test_time_out_one_line(serve):
    server = serve(delay=1.0)
    client = RegistryClient(server.address, scheme="http", timeout=0.2)
    with pytest.raises(RegistryUnreachable, match=r"is unreachable: .*timed out") as raised:
        client.manifest("app", "a")
    assert "\n" not in str(raised.value)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return generate(str(tmp_path_factory.mktemp("tls")), ["127.0.0.1"])


def test_tls_verified_with_ca_cert(serve, tls_files):
    server = serve(tls=tls_files)
    client = RegistryClient(server.address, scheme="https", ca_cert=tls_files["ca_cert"])
    assert client.manifest("app", "a")[0] == MANIFEST_DIGEST
    pool = client._fast_pool()
    assert isinstance(pool, urllib3.HTTPSConnectionPool)
    assert pool.ca_certs == tls_files["ca_cert"] and pool.cert_reqs == "CERT_REQUIRED"


def test_tls_unknown_ca_refused_in_one_line(serve, tls_files, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    server = serve(tls=tls_files)
    client = RegistryClient(server.address, scheme="https")
    with pytest.raises(RegistryUnreachable, match="CERTIFICATE_VERIFY_FAILED") as raised:
        client.manifest("app", "a")
    assert "\n" not in str(raised.value)


def test_tls_ca_from_requests_environment_as_requests_does(serve, tls_files, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_files["ca_cert"])
    server = serve(tls=tls_files)
    assert RegistryClient(server.address, scheme="https").manifest("app", "a")[0] == MANIFEST_DIGEST


def test_tls_not_verified_when_validate_certs_off(serve, tls_files):
    server = serve(tls=tls_files)
    client = RegistryClient(server.address, scheme="https", validate_certs=False)
    assert client.blob_json("app", CONFIG_DIGEST)["os"] == "linux"
    assert client._fast_pool().cert_reqs == "CERT_NONE"


def test_proxy_from_environment_keeps_every_request_on_requests(serve, monkeypatch):
    server = serve()
    monkeypatch.setenv("HTTP_PROXY", "http://%s" % server.address)  # the test server stands in for the proxy
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = RegistryClient("registry.invalid:5000", scheme="http")
    assert client._fast_pool() is None
    assert client.manifest("app", "a")[0] == MANIFEST_DIGEST  # sent to the proxy, with the absolute URL
    assert server.seen[-1][1] == "http://registry.invalid:5000/v2/app/manifests/a"


def test_session_given_keeps_requests(serve):
    import requests

    server = serve()
    client = RegistryClient(server.address, scheme="http", session=requests.Session())
    assert client._fast_pool() is None
    assert client.manifest("app", "a")[0] == MANIFEST_DIGEST
