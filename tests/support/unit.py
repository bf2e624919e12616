"""Stand-ins and checks shared by the unit tests (tests/unit): a scripted HTTP session for RegistryClient, a registry in memory, and the
"bad arguments fail in one line before anything is asked" check of a module's ``main()``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.dockhand.registry.plugins.module_utils.registry import (
    BlobStream,
    Manifest,
    ManifestMissing,
    RegistryClient,
    RegistryReadOnly,
)
from ansible_collections.dockhand.registry.plugins.module_utils.transport import RegistryError


class FakeResponse:
    """A requests.Response stand-in: status, headers, and a body (``text``; ``json()`` gives it back as given)."""

    def __init__(self, status: int = 200, headers: dict | None = None, body: object = None) -> None:
        self.status_code = status
        self.headers = headers or {}
        self._body = body
        self.text = "" if body is None else str(body)

    def json(self) -> Any:
        return self._body


class FakeSession:
    """A requests.Session stand-in: ``handler(method, url, **kwargs)`` answers every call, each kept in ``calls``."""

    def __init__(self, handler) -> None:
        self.handler = handler
        self.calls: list[tuple[str, str, dict]] = []
        self.headers: dict = {}
        self.verify = True

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        return self.handler(method, url, **kwargs)

    def get(self, url, **kwargs):
        return self.request("GET", url, **kwargs)


def registry_client(handler, **options) -> tuple[RegistryClient, FakeSession]:
    """A RegistryClient for ``localhost:5100`` (plain HTTP unless told) on a FakeSession answering with ``handler``."""
    session = FakeSession(handler)
    options.setdefault("scheme", "http")
    return RegistryClient("localhost:5100", session=session, **options), session


def module_fails(module, patched: str, args: dict, capsys, *fragments: str, where: Any = None) -> dict:
    """Run ``module.main()`` with ``args``: it must fail in one line holding every fragment, without ever making
    the client ``patched`` (a name in the module, or in ``where``: ``EngineClient``, ``RegistryClient``). The
    failed result."""
    with mock.patch.object(module if where is None else where, patched) as made, patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{") :])
    assert result.get("failed") is True, result
    for fragment in fragments:
        assert fragment in result["msg"], result["msg"]
    assert "\n" not in result["msg"]
    made.assert_not_called()
    return result


V2 = "application/vnd.docker.distribution.manifest.v2+json"
INDEX = "application/vnd.oci.image.index.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Answer:
    def __init__(self, status: int, body: object = None, headers: dict | None = None) -> None:
        self.status_code = status
        self._body = body
        self.headers = headers or {}
        self.text = json.dumps(body) if body is not None else ""
        self.content = self.text.encode()

    def json(self):
        return self._body


class MemoryRegistry:
    """A registry in memory, answering RegistryClient as a requests.Session would: repositories -> tags ->
    manifest; blobs by digest; PUT of a manifest (by tag or digest); DELETE by digest removes the manifest from its
    repository and every tag of it, as distribution 2.8 does. A tag pointing at a manifest its repository no longer
    holds is dangling (listed, 404). ``before(method, path)``, when set, runs before each request is answered
    (another client acting at that moment); ``requests`` counts requests by method."""

    def __init__(self, delete_enabled: bool = True) -> None:
        self.tags: dict[str, dict[str, str]] = {}
        self.manifests: dict[str, dict] = {}
        self.blobs: dict[str, dict] = {}
        self.delete_enabled = delete_enabled
        self.deleted: list[str] = []
        self.removed: set[tuple[str, str]] = set()  # (repository, digest) deleted from that repository
        self.headers: dict = {}
        self.verify = True
        self.before = None
        # Digests whose DELETE fails half-way as 2.8's can: manifest removed, its tags left (dangling), HTTP 500.
        self.half_deletes: set[str] = set()
        self.requests: dict[str, int] = {}
        self._lock = threading.RLock()

    def put(self, repo: str, reference: str, body: dict) -> str:
        """What another client's manifest PUT does: store ``body`` in ``repo``, and tag it when ``reference`` is a tag."""
        digest = sha(json.dumps(body).encode())
        self.manifests[digest] = body
        self.removed.discard((repo, digest))
        if not reference.startswith("sha256:"):
            self.tags.setdefault(repo, {})[reference] = digest
        return digest

    def holds(self, repo: str, digest: str | None) -> bool:
        return digest in self.manifests and (repo, digest) not in self.removed

    def image(self, repo: str, tags: list[str], created: str, layer_size: int = 100, seed: str = "") -> str:
        config = {"created": created, "seed": seed or created + repo + ",".join(tags)}
        raw = json.dumps(config).encode()
        self.blobs[sha(raw)] = config
        manifest = {"schemaVersion": 2, "mediaType": V2, "config": {"digest": sha(raw), "size": len(raw)},
                    "layers": [{"digest": sha(raw + b"l"), "size": layer_size}]}
        digest = sha(json.dumps(manifest).encode())
        self.manifests[digest] = manifest
        for tag in tags:
            self.tags.setdefault(repo, {})[tag] = digest
        return digest

    def index(self, repo: str, tags: list[str], children: list[str]) -> str:
        body = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [
            {"digest": d, "platform": {"os": "linux", "architecture": arch}} for d, arch in zip(children, ["amd64", "arm64"])]}
        digest = sha(json.dumps(body).encode())
        self.manifests[digest] = body
        for tag in tags:
            self.tags.setdefault(repo, {})[tag] = digest
        return digest

    def request(self, method, url, **kwargs):
        path = url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
        if self.before is not None:
            self.before(method, path)
        with self._lock:
            self.requests[method] = self.requests.get(method, 0) + 1
            return self._answer(method, path, kwargs)

    def _answer(self, method, path, kwargs):
        parts = path.split("/")
        if path == "v2/_catalog":
            return Answer(200, {"repositories": sorted(self.tags)})
        if parts[-2] == "tags":
            repo = "/".join(parts[1:-2])
            return Answer(200, {"name": repo, "tags": sorted(self.tags.get(repo, {}))}) if repo in self.tags else Answer(404)
        repo, kind, ref = "/".join(parts[1:-2]), parts[-2], parts[-1]
        if kind == "blobs":
            return Answer(200, self.blobs[ref]) if ref in self.blobs else Answer(404)
        if method == "PUT":
            digest = self.put(repo, ref, json.loads(kwargs["data"]))
            return Answer(201, None, {"Docker-Content-Digest": digest})
        digest = ref if ref.startswith("sha256:") else self.tags.get(repo, {}).get(ref)
        if method == "DELETE":
            if not self.delete_enabled:
                return Answer(405, {"errors": [{"code": "UNSUPPORTED"}]})
            if not self.holds(repo, digest) or not ref.startswith("sha256:"):
                return Answer(404)
            self.deleted.append(digest)
            self.removed.add((repo, digest))
            if digest in self.half_deletes:
                return Answer(500, {"errors": [{"code": "UNKNOWN", "message": "unknown error", "detail": {}}]})
            self.tags[repo] = {t: d for t, d in self.tags[repo].items() if d != digest}
            return Answer(202)
        if not self.holds(repo, digest):
            return Answer(404)
        if self.manifests[digest]["mediaType"] not in (kwargs.get("headers") or {}).get("Accept", ""):
            return Answer(404)  # distribution 2.8 serves an OCI manifest only to a client that accepts its type
        return Answer(200, self.manifests[digest], {"Docker-Content-Digest": digest, "Content-Type": self.manifests[digest].get("mediaType", "")})

    def get(self, url, **kwargs):
        return self.request("GET", url, **kwargs)


def memory_client(fake: MemoryRegistry) -> RegistryClient:
    return RegistryClient("localhost:5500", scheme="http", session=fake, pool_size=8)  # type: ignore[arg-type]


# -- a registry for image_sync's copy logic (sync.py, replication.py) ------------------------------------------------
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRaw:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def read(self, amount, decode_content=False):
        piece = self.data[self.offset : self.offset + amount]
        self.offset += len(piece)
        return piece


class FakeBlobResponse:
    """A streamed blob answer (BlobStream reads ``raw``)."""

    def __init__(self, data: bytes) -> None:
        self.raw = FakeRaw(data)

    def close(self) -> None:
        pass


class FakeRegistry:
    """The RegistryClient calls image_sync makes, in memory (sync.py's tests, the replication's): manifests and blobs per
    repository; records every question (``calls``) and every write (``writes``)."""

    def __init__(self, name: str, read_only: bool = False) -> None:
        self.registry = name
        self.manifests: dict[str, dict[str, Manifest]] = {}
        self.blobs: dict[str, dict[str, bytes]] = {}
        self.writes: list[tuple] = []
        self.calls: list[tuple] = []  # the questions asked: ("head", repo, ref), ("blob head", repo, digest), ...
        self.read_only = read_only

    # what the tests build with
    def add_blob(self, repo: str, data: bytes) -> dict:
        self.blobs.setdefault(repo, {})[digest(data)] = data
        return {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(data), "size": len(data)}

    def add_manifest(self, repo: str, ref: str | None, body: dict) -> Manifest:
        data = json.dumps(body).encode()
        manifest = Manifest(data, body["mediaType"], digest(data))
        self.manifests.setdefault(repo, {})[manifest.digest] = manifest
        if ref:
            self.manifests[repo][ref] = manifest
        return manifest

    def add_image(self, repo: str, ref: str | None, content: bytes, arch: str = "amd64") -> dict:
        body = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": self.add_blob(repo, b"config " + content),
                "layers": [self.add_blob(repo, content)]}
        manifest = self.add_manifest(repo, ref, body)
        return {"mediaType": OCI_MANIFEST, "digest": manifest.digest, "size": len(manifest.data),
                "platform": {"os": "linux", "architecture": arch}}

    # the RegistryClient interface sync.py uses
    def ping(self) -> int:
        return 200

    def tags(self, repo: str) -> list[str]:
        self.calls.append(("tags", repo))
        return [ref for ref in self.manifests.get(repo, {}) if not ref.startswith("sha256:")]

    def repository_tags(self, repo: str) -> list[str] | None:
        """None for a repository the registry does not know (as distribution's 404 NAME_UNKNOWN)."""
        if repo not in self.manifests and repo not in self.blobs:
            self.calls.append(("tags", repo))
            return None
        return self.tags(repo)

    def catalog(self, max_pages: int | None = None) -> list[str]:
        self.calls.append(("catalog", ""))
        return sorted(set(self.manifests) | set(self.blobs))

    def get_manifest(self, repo: str, ref: str) -> Manifest:
        try:
            return self.manifests[repo][ref]
        except KeyError:
            raise ManifestMissing("%s/%s:%s is not in the registry" % (self.registry, repo, ref)) from None

    def manifest_digest(self, repo: str, ref: str) -> str | None:
        self.calls.append(("head", repo, ref))
        found = self.manifests.get(repo, {}).get(ref)
        return found.digest if found else None

    def put_manifest(self, repo: str, ref: str, manifest: Manifest) -> str:
        """Store the bytes as distribution does: refused (400) when a digest reference is not the bytes' digest, when
        an index names a child manifest the repository does not hold, or an image a blob it does not hold; the
        digest answered is the bytes' own, whatever the client believes."""
        if self.read_only:
            raise RegistryReadOnly("registry %s refuses writes" % self.registry)
        stored = digest(manifest.data)
        if ref.startswith("sha256:") and ref != stored:
            raise RegistryError("HTTP 400 DIGEST_INVALID: %s/%s@%s: the bytes hash to %s" % (self.registry, repo, ref, stored))
        body = json.loads(manifest.data)
        held = self.manifests.get(repo, {})
        for child in body.get("manifests") or []:
            if child["digest"] not in held:
                raise RegistryError("HTTP 400 MANIFEST_BLOB_UNKNOWN: %s/%s: child manifest %s is unknown" % (self.registry, repo, child["digest"]))
        for blob in ([body["config"]] if "config" in body else []) + list(body.get("layers") or []):
            if blob["digest"] not in self.blobs.get(repo, {}) and not blob.get("urls"):
                raise RegistryError("HTTP 400 MANIFEST_BLOB_UNKNOWN: %s/%s: blob %s is unknown" % (self.registry, repo, blob["digest"]))
        self.writes.append(("manifest", repo, ref))
        kept = Manifest(manifest.data, manifest.media_type, stored)
        self.manifests.setdefault(repo, {})[ref] = kept
        self.manifests[repo][stored] = kept
        return stored

    def has_blob(self, repo: str, blob: str) -> bool:
        self.calls.append(("blob head", repo, blob))
        return blob in self.blobs.get(repo, {})

    def start_upload(self, repo: str, mount: str | None = None, mount_from: str | None = None) -> str | None:
        if self.read_only:
            raise RegistryReadOnly("registry %s refuses writes (HTTP 405 to POST): it is a pull-through cache" % self.registry)
        if mount and mount in self.blobs.get(mount_from or "", {}):
            self.writes.append(("mount", repo, mount))
            self.blobs.setdefault(repo, {})[mount] = self.blobs[mount_from][mount]
            return None
        return "upload:" + repo

    def open_blob(self, repo: str, blob: str, size: int) -> BlobStream:
        return BlobStream(FakeBlobResponse(self.blobs[repo][blob]), size)

    def upload_blob(self, repo: str, location: str, blob: str, stream: BlobStream) -> None:
        if location != "upload:" + repo:
            raise RegistryError("HTTP 404 BLOB_UPLOAD_UNKNOWN: %s/%s: no upload at %r" % (self.registry, repo, location))
        pieces = []
        while True:
            piece = stream.read(7)
            if not piece:
                break
            pieces.append(piece)
        data = b"".join(pieces)
        if digest(data) != blob:
            raise RegistryError("HTTP 400 DIGEST_INVALID: %s/%s: the upload hashes to %s, not %s" % (self.registry, repo, digest(data), blob))
        self.writes.append(("blob", repo, blob))
        self.blobs.setdefault(repo, {})[blob] = data


# -- HTTP servers on loopback for the fast path's tests ---------------------------------------------------------------
class LoopbackServer(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 (a free port) answering with ``handler``; ``seen`` for the requests, ``lock``."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.seen: list[tuple] = []
        self.lock = threading.Lock()

    @property
    def address(self) -> str:
        return "127.0.0.1:%d" % self.server_address[1]


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 (connections kept), no log lines; ``_send`` one answer (no body after a HEAD)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


@contextlib.contextmanager
def http_servers(make: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """``start(tls=None, **options)``: a ``make(**options)`` server (a ThreadingHTTPServer on 127.0.0.1) serving in a
    thread, with TLS when ``tls`` holds ``cert`` and ``key`` files; every one shut down at the end."""
    servers: list[Any] = []

    def start(tls: dict | None = None, **options: Any) -> Any:
        server = make(**options)
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls["cert"], tls["key"])
            server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
