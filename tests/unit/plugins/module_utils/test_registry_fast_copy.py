"""RegistryClient's copy requests on the fast path (urllib3 on the session's pool) against real HTTP servers on loopback:
a blob streamed from one registry into another, mounts, blob HEADs, manifest PUTs, tag and catalog listings."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.registry import Manifest, RegistryClient
from ansible_collections.dockhand.registry.tests.support.unit import LoopbackServer, QuietHandler, http_servers

BLOB = bytes(range(256)) * 4096  # 1 MiB
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
BASIC = "Basic " + base64.b64encode(b"bob:pw").decode()


class Store(LoopbackServer):
    """Blobs and manifests in memory; ``auth`` basic or None; every request (method, path, client port) in ``seen``."""

    def __init__(self, auth: bool = False) -> None:
        super().__init__(Handler)
        self.auth = auth
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, bytes] = {}


class Handler(QuietHandler):
    server: Store

    def _allowed(self) -> bool:
        with self.server.lock:
            self.server.seen.append((self.command, self.path, self.client_address[1]))
        if self.server.auth and self.headers.get("Authorization") != BASIC:
            self._send(401, b"{}", {"WWW-Authenticate": 'Basic realm="r"'})
            return False
        return True

    def do_HEAD(self) -> None:
        if not self._allowed():
            return
        if self.path == "/v2/app/blobs/sha256:" + "7" * 64:
            return self._send(307, b"", {"Location": "http://elsewhere.invalid/x"})
        digest = self.path.rsplit("/", 1)[1]
        self._send(200 if digest in self.server.blobs else 404, b"")

    def do_GET(self) -> None:
        if not self._allowed():
            return
        if self.path.startswith("/v2/new/tags/list"):
            return self._send(404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}')
        if self.path.startswith("/v2/app/tags/list"):
            return self._send(200, json.dumps({"tags": ["1", "2"]}).encode())
        if self.path.startswith("/v2/_catalog"):
            link = {"Link": '</v2/_catalog?last=b&n=1000>; rel="next"'} if "last=" not in self.path else {}
            return self._send(200, json.dumps({"repositories": ["a", "b"] if link else ["c"]}).encode(), link)
        digest = self.path.rsplit("/", 1)[1]
        if digest in self.server.blobs:
            return self._send(200, self.server.blobs[digest], {"Content-Type": "application/octet-stream"})
        self._send(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')

    def do_POST(self) -> None:
        if not self._allowed():
            return
        if "mount=" in self.path:
            return self._send(201, b"", {"Location": "/v2/app/blobs/" + BLOB_DIGEST})
        self._send(202, b"", {"Location": "http://%s/v2/app/blobs/uploads/u1?_state=s" % self.server.address})

    def do_PUT(self) -> None:
        if not self._allowed():
            return
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if "/blobs/uploads/" in self.path:
            digest = self.path.split("digest=", 1)[1]
            if "sha256:" + hashlib.sha256(body).hexdigest() != digest.replace("%3A", ":"):
                return self._send(400, b'{"errors":[{"code":"DIGEST_INVALID"}]}')
            self.server.blobs[digest.replace("%3A", ":")] = body
            return self._send(201)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        self.server.manifests[self.path] = body
        self._send(201, b"", {"Docker-Content-Digest": digest})


@pytest.fixture
def store():
    with http_servers(Store) as start:
        yield start


def test_blob_streams_from_one_registry_into_another_over_reused_connections(store):
    src, dest = store(), store(auth=True)
    src.blobs[BLOB_DIGEST] = BLOB
    reader = RegistryClient(src.address, scheme="http")
    writer = RegistryClient(dest.address, username="bob", password="pw", scheme="http")
    assert writer._fast_pool() is not None and not writer.has_blob("app", BLOB_DIGEST)
    for _round in range(2):
        location = writer.start_upload("app")
        stream = reader.open_blob("app", BLOB_DIGEST, len(BLOB))
        writer.upload_blob("app", location, BLOB_DIGEST, stream)
        stream.close()
        assert stream.sent == len(BLOB) and dest.blobs[BLOB_DIGEST] == BLOB
    assert writer.has_blob("app", BLOB_DIGEST)
    # Each blob read to its end gave its connection back: both reads on one connection.
    assert len({port for _m, _p, port in src.seen}) == 1
    assert [m for m, _p, _port in dest.seen].count("PUT") == 2


def test_mount_query_and_a_redirected_blob_head(store):
    dest = store()
    client = RegistryClient(dest.address, scheme="http")
    assert client.start_upload("app", BLOB_DIGEST, "team/base") is None
    assert dest.seen[-1][:2] == ("POST", "/v2/app/blobs/uploads/?mount=%s&from=team%%2Fbase" % BLOB_DIGEST.replace(":", "%3A"))
    assert client.has_blob("app", "sha256:" + "7" * 64)  # a 307 to storage: the registry has it


def test_manifest_put_sends_the_bytes_verbatim(store):
    dest = store()
    data = b'{"schemaVersion": 2,  "mediaType": "application/vnd.oci.image.manifest.v1+json"}'
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    client = RegistryClient(dest.address, scheme="http")
    assert client.put_manifest("app", "1.0", Manifest(data, "application/vnd.oci.image.manifest.v1+json", digest)) == digest
    assert dest.manifests["/v2/app/manifests/1.0"] == data


def test_repository_tags_tells_an_unknown_repository_apart(store):
    client = RegistryClient(store().address, scheme="http")
    assert client.repository_tags("new") is None
    assert client.repository_tags("app") == ["1", "2"]


def test_catalog_stops_after_max_pages(store):
    client = RegistryClient(store().address, scheme="http")
    assert client.catalog(max_pages=1) is None
    assert client.catalog(max_pages=2) == ["a", "b", "c"] == client.catalog()
