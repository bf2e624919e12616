"""A registry's filesystem storage written by hand (distribution 2.8's layout), and a stand-in for the registry's
``garbage-collect`` that reads it on its own: the unit tests' model of the real thing (the integration tests run the
real binary)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


class Layout:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.v2 = root / "docker" / "registry" / "v2"
        self.counter = 0

    def blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return digest

    def blob_path(self, digest: str) -> Path:
        hexdigest = digest.split(":", 1)[1]
        return self.v2 / "blobs" / "sha256" / hexdigest[:2] / hexdigest / "data"

    def repo(self, name: str) -> Path:
        return self.v2 / "repositories" / name

    def link(self, path: Path, digest: str) -> None:
        path.mkdir(parents=True, exist_ok=True)
        (path / "link").write_text(digest)

    def layer(self, repo: str, data: bytes) -> dict:
        digest = self.blob(data)
        self.link(self.repo(repo) / "_layers" / "sha256" / digest.split(":")[1], digest)
        return {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": len(data)}

    def manifest(self, repo: str, body: dict, tag: str | None = None) -> str:
        digest = self.blob(json.dumps(body, sort_keys=True).encode())
        self.link(self.repo(repo) / "_manifests" / "revisions" / "sha256" / digest.split(":")[1], digest)
        if tag:
            self.tag(repo, tag, digest)
        return digest

    def tag(self, repo: str, tag: str, digest: str) -> None:
        base = self.repo(repo) / "_manifests" / "tags" / tag
        self.link(base / "current", digest)
        self.link(base / "index" / "sha256" / digest.split(":")[1], digest)

    def image(self, repo: str, layers: list[bytes], tag: str | None = None, subject: str | None = None) -> str:
        self.counter += 1
        config = self.layer(repo, json.dumps({"architecture": "amd64", "os": "linux", "n": self.counter}).encode())
        body = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [self.layer(repo, data) for data in layers]}
        if subject:
            body["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}
        return self.manifest(repo, body, tag)

    def index(self, repo: str, children: list[str], tag: str | None = None, media_type: str = OCI_INDEX) -> str:
        entries = [{"mediaType": OCI_MANIFEST, "digest": d, "size": self.blob_path(d).stat().st_size} for d in children]
        return self.manifest(repo, {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}, tag)

    def upload(self, repo: str, uuid: str, size: int, age: float = 0.0) -> Path:
        session = self.repo(repo) / "_uploads" / uuid
        (session / "hashstates" / "sha256").mkdir(parents=True)
        (session / "data").write_bytes(b"x" * size)
        (session / "startedat").write_text("2024-01-01T00:00:00Z")
        (session / "hashstates" / "sha256" / "0").write_bytes(b"h")
        when = time.time() - age
        for directory, _dirs, files in os.walk(session):
            for name in [*files, "."]:
                os.utime(os.path.join(directory, name), (when, when))
        return session

    def blobs(self) -> set[str]:
        return {"sha256:" + p.parent.name for p in (self.v2 / "blobs").rglob("data")}


class FakeBinary:
    """``registry garbage-collect`` without ``--delete-untagged`` on a Layout: enumerates every repository holding
    _manifests and each revision whose blob is there, marks it and what it references, sweeps the other blobs; prints
    what the real one prints."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def run(self, dry_run: bool) -> tuple[int, str]:
        lines, marked = [], set()
        repositories = self.layout.v2 / "repositories"
        if not repositories.is_dir():
            return 1, "failed to garbage collect: failed to mark: filesystem: Path not found: /docker/registry/v2/repositories"
        for manifests in sorted(repositories.rglob("_manifests")):
            name = str(manifests.parent.relative_to(repositories))
            lines.append(name)
            for link in sorted((manifests / "revisions").glob("*/*/link")):
                digest = link.read_text()
                path = self.layout.blob_path(digest)
                if not path.exists():
                    continue
                lines.append("%s: marking manifest %s " % (name, digest))
                marked.add(digest)
                try:
                    body = json.loads(path.read_bytes())
                except ValueError as exc:
                    return 1, "failed to garbage collect: failed to mark: failed to retrieve manifest for digest %s: %s" % (digest, exc)
                for ref in [body.get("config")] + (body.get("layers") or []) + (body.get("manifests") or []):
                    if ref:
                        lines.append("%s: marking blob %s" % (name, ref["digest"]))
                        marked.add(ref["digest"])
        sweep = sorted(self.layout.blobs() - marked)
        lines.append("\n%d blobs marked, %d blobs and 0 manifests eligible for deletion" % (len(marked), len(sweep)))
        for digest in sweep:
            lines.append("blob eligible for deletion: %s" % digest)
            if not dry_run:
                self.layout.blob_path(digest).unlink()
        return 0, "\n".join(lines) + "\n"
