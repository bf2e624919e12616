"""Stand-ins and checks shared by the unit tests (tests/unit): a scripted HTTP session for RegistryClient, a registry in memory, and the
"bad arguments fail in one line before anything is asked" check of a module's ``main()``."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.dockhand.registry.plugins.module_utils.registry import RegistryClient


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
    manifest; blobs by digest; DELETE by digest removes every tag of it."""

    def __init__(self, delete_enabled: bool = True) -> None:
        self.tags: dict[str, dict[str, str]] = {}
        self.manifests: dict[str, dict] = {}
        self.blobs: dict[str, dict] = {}
        self.delete_enabled = delete_enabled
        self.deleted: list[str] = []
        self.headers: dict = {}
        self.verify = True

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
        parts = path.split("/")
        if path == "v2/_catalog":
            return Answer(200, {"repositories": sorted(self.tags)})
        if parts[-2] == "tags":
            repo = "/".join(parts[1:-2])
            return Answer(200, {"name": repo, "tags": sorted(self.tags.get(repo, {}))}) if repo in self.tags else Answer(404)
        repo, kind, ref = "/".join(parts[1:-2]), parts[-2], parts[-1]
        if kind == "blobs":
            return Answer(200, self.blobs[ref]) if ref in self.blobs else Answer(404)
        digest = ref if ref.startswith("sha256:") else self.tags.get(repo, {}).get(ref)
        if method == "DELETE":
            if not self.delete_enabled:
                return Answer(405, {"errors": [{"code": "UNSUPPORTED"}]})
            if digest not in self.manifests or digest not in self.tags.get(repo, {}).values():
                return Answer(404)
            self.deleted.append(digest)
            self.tags[repo] = {t: d for t, d in self.tags[repo].items() if d != digest}
            return Answer(202)
        if digest not in self.manifests:
            return Answer(404)
        if self.manifests[digest]["mediaType"] not in (kwargs.get("headers") or {}).get("Accept", ""):
            return Answer(404)  # distribution 2.8 serves an OCI manifest only to a client that accepts its type
        return Answer(200, self.manifests[digest], {"Docker-Content-Digest": digest})

    def get(self, url, **kwargs):
        return self.request("GET", url, **kwargs)


def memory_client(fake: MemoryRegistry) -> RegistryClient:
    return RegistryClient("localhost:5500", scheme="http", session=fake, pool_size=8)  # type: ignore[arg-type]
