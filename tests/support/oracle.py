"""The tests' oracle: a deliberately tiny reader of a Docker registry (distribution HTTP API v2) that shares no code
with the collection. Standard library only (http.client, ssl, json, hashlib): it imports nothing from plugins/ and
nothing the collection imports (no requests), so a listing, paging, Accept-header or digest bug in the collection's
own reader (RegistryClient, registry_info) cannot hide itself by being read back through the same code.

What it checks on every read:
- manifests are fetched with all four Accept media types; the bytes' sha256 must equal ``Docker-Content-Digest`` (and
  the digest asked for), the ``Content-Type`` must be one of the four and agree with the body's ``mediaType``;
- an index's children (any depth) and an image's config and layers are fetched and their digests and sizes checked;
  blobs are streamed (1 MiB at a time, constant memory, whatever the layer's size);
- ``_catalog`` and ``tags/list`` are read page by page (``n``, ``last``, the ``Link`` header) to the end, and an
  entry listed twice is an error (distribution 2.8 pages ``_catalog`` but answers ``tags/list`` in one page).

Plain HTTP for loopback addresses, HTTPS otherwise (a CA file optional); HTTP basic auth optional.

    python tests/support/oracle.py state <host:port>          # {"catalog": [...], "digests": {"repo:tag": digest}}
    python tests/support/oracle.py digest <host:port> <repo>:<tag>      # the tag's digest, or an empty line
    python tests/support/oracle.py verify <host:port> <repo>:<tag>...   # every manifest and blob each tag reaches
    python tests/support/oracle.py reachable <host:port> <repo>:<tag>   # {"manifests": [...], "blobs": [...]}
    python tests/support/oracle.py blobs <host:port> <repo> <digest>... # {digest: size, or null when absent}
    options: --scheme http|https, --cacert FILE, --user NAME (password from the environment: DH_ORACLE_PASSWORD)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import re
import ssl
import sys
import urllib.parse
from dataclasses import dataclass, field

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = (DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX)
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
ACCEPT = ", ".join(MANIFEST_TYPES)
CHUNK = 1 << 20
MANIFEST_LIMIT = 4 << 20  # distribution refuses larger manifests
LOOPBACK = re.compile(r"^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$")
NEXT_LINK = re.compile(r"<([^>]+)>\s*;\s*rel=\"?next\"?")


class OracleError(AssertionError):
    """The registry answered something it must not (or not what the test expects): reads as a test failure."""


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return "%s:%s" % (algorithm, hashlib.new(algorithm, data).hexdigest())


def _algorithm(digest: str) -> str:
    algorithm, sep, hexpart = digest.partition(":")
    if not sep or algorithm not in ("sha256", "sha512") or not re.fullmatch(r"[0-9a-f]+", hexpart):
        raise OracleError("not a digest: %r" % digest)
    return algorithm


@dataclass(frozen=True)
class Manifest:
    """One manifest as served: its raw bytes, Content-Type and (checked) digest."""

    raw: bytes
    media_type: str
    digest: str

    def body(self) -> dict:
        return json.loads(self.raw)

    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def children(self) -> list[dict]:
        """The manifests an index names (none for an image)."""
        return list(self.body().get("manifests") or []) if self.is_index() else []

    def blobs(self) -> list[dict]:
        """The config and layers an image manifest names (none for an index)."""
        if self.is_index():
            return []
        body = self.body()
        return [body["config"], *(body.get("layers") or [])]


@dataclass
class Reached:
    """Everything a tag reaches: each manifest (by digest, as served) and each blob descriptor (by digest)."""

    root: str
    manifests: dict[str, Manifest] = field(default_factory=dict)
    blobs: dict[str, dict] = field(default_factory=dict)
    blob_bytes: int = 0  # bytes downloaded and digest-checked (verify_tag_whole)

    def digests(self) -> set[str]:
        return set(self.manifests) | set(self.blobs)


class Registry:
    """One registry, read through http.client (one connection per request: nothing retried, nothing pooled)."""

    def __init__(
        self,
        address: str,
        scheme: str | None = None,
        username: str | None = None,
        password: str | None = None,
        cafile: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.address = address
        self.scheme = scheme or ("http" if LOOPBACK.match(address) else "https")
        self.timeout = timeout
        self.auth = None
        if username is not None:
            token = base64.b64encode(("%s:%s" % (username, password or "")).encode()).decode()
            self.auth = "Basic " + token
        self.context = ssl.create_default_context(cafile=cafile) if self.scheme == "https" else None

    # -- HTTP -----------------------------------------------------------------------------------------------------
    def _open(self, method: str, url: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        """Send one request and return the response (body unread). Follows up to five redirects (a blob may be
        served from elsewhere); the credentials go only to the registry itself."""
        for _hop in range(6):
            parts = urllib.parse.urlsplit(url if "://" in url else "%s://%s%s" % (self.scheme, self.address, url))
            send = dict(headers or {})
            if self.auth and parts.netloc == self.address:
                send["Authorization"] = self.auth
            if parts.scheme == "https":
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(parts.netloc, timeout=self.timeout, context=self.context)
            else:
                conn = http.client.HTTPConnection(parts.netloc, timeout=self.timeout)
            target = parts.path + ("?" + parts.query if parts.query else "")
            conn.request(method, target, headers=send)
            response = conn.getresponse()
            if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
                url = urllib.parse.urljoin("%s://%s%s" % (parts.scheme, parts.netloc, target), response.getheader("Location"))
                response.read()
                conn.close()
                continue
            return response
        raise OracleError("%s %s: too many redirects" % (method, url))

    def _read(self, method: str, path: str, headers: dict[str, str] | None = None, limit: int = MANIFEST_LIMIT):
        """``(status, headers, body)`` of one small answer (at most ``limit`` bytes)."""
        response = self._open(method, path, headers)
        try:
            body = response.read(limit + 1) if method != "HEAD" else b""
            if len(body) > limit:
                raise OracleError("%s %s: answer larger than %d bytes" % (method, path, limit))
            return response.status, response.headers, body
        finally:
            response.close()

    def _refuse(self, method: str, path: str, status: int, body: bytes) -> OracleError:
        hint = ""
        if status == 401:
            hint = " (credentials %s)" % ("refused" if self.auth else "needed")
        return OracleError("%s %s://%s%s answered %d%s: %s" % (method, self.scheme, self.address, path, status, hint, body[:300]))

    def ping(self) -> int:
        """The status of ``GET /v2/`` (200, or 401 when credentials are needed)."""
        return self._read("GET", "/v2/")[0]

    # -- listings -------------------------------------------------------------------------------------------------
    def _pages(self, path: str, key: str, page: int) -> list[str]:
        names: list[str] = []
        url: str | None = "%s?n=%d" % (path, page)
        seen: set[str] = set()
        while url:
            if url in seen:
                raise OracleError("%s: the Link header loops back to %s" % (path, url))
            seen.add(url)
            status, headers, body = self._read("GET", url)
            if status == 404 and key == "tags":
                return names  # the repository is gone (or never was)
            if status != 200:
                raise self._refuse("GET", url, status, body)
            listed = json.loads(body).get(key) or []
            names.extend(listed)
            link = NEXT_LINK.search(headers.get("Link") or "")
            if link and len(listed) > page:  # distribution 2.8 ignores n on tags/list (one page, no Link): fine
                raise OracleError("%s: %d entries on a page of n=%d, and a next page" % (url, len(listed), page))
            url = link.group(1) if link else None
        if len(set(names)) != len(names):
            raise OracleError("%s: an entry listed twice across pages: %s" % (path, sorted(names)))
        return names

    def catalog(self, page: int = 100) -> list[str]:
        """Every repository in ``_catalog``, page by page."""
        return self._pages("/v2/_catalog", "repositories", page)

    def tags(self, repository: str, page: int = 100) -> list[str]:
        """Every tag of ``repository`` (``[]`` when it has none or is unknown), page by page."""
        return self._pages("/v2/%s/tags/list" % repository, "tags", page)

    # -- manifests ------------------------------------------------------------------------------------------------
    def manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest of ``repository`` at a tag or digest (``None`` when absent), checked: sha256 of the bytes ==
        ``Docker-Content-Digest`` (== ``reference`` when it is a digest), Content-Type one of the four manifest types
        and equal to the body's ``mediaType`` when it names one."""
        path = "/v2/%s/manifests/%s" % (repository, reference)
        status, headers, raw = self._read("GET", path, {"Accept": ACCEPT})
        if status == 404:
            return None
        if status != 200:
            raise self._refuse("GET", path, status, raw)
        media_type = (headers.get("Content-Type") or "").split(";")[0].strip()
        served = headers.get("Docker-Content-Digest") or ""
        if not served:
            raise OracleError("%s: no Docker-Content-Digest header" % path)
        computed = digest_of(raw, _algorithm(served))
        if computed != served:
            raise OracleError("%s: Docker-Content-Digest %s but the bytes hash to %s" % (path, served, computed))
        if ":" in reference and digest_of(raw, _algorithm(reference)) != reference:
            raise OracleError("%s: asked for %s, the bytes hash to %s" % (path, reference, digest_of(raw, _algorithm(reference))))
        if media_type not in MANIFEST_TYPES:
            raise OracleError("%s: Content-Type %r is none of the four manifest types asked for" % (path, media_type))
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise OracleError("%s: not JSON: %s" % (path, exc)) from exc
        if body.get("mediaType") not in (None, media_type):
            raise OracleError("%s: Content-Type %s but the body says %s" % (path, media_type, body.get("mediaType")))
        return Manifest(raw=raw, media_type=media_type, digest=served)

    def head_manifest(self, repository: str, reference: str) -> str | None:
        """``Docker-Content-Digest`` of a HEAD on the manifest (all four Accept types), ``None`` when absent."""
        path = "/v2/%s/manifests/%s" % (repository, reference)
        status, headers, _body = self._read("HEAD", path, {"Accept": ACCEPT})
        if status == 404:
            return None
        if status != 200:
            raise self._refuse("HEAD", path, status, b"")
        return headers.get("Docker-Content-Digest")

    def digest(self, repository: str, tag: str) -> str | None:
        """The digest ``repository:tag`` resolves to, read by GET and checked against the bytes (``None``: absent)."""
        found = self.manifest(repository, tag)
        return found.digest if found else None

    # -- blobs ----------------------------------------------------------------------------------------------------
    def head_blob(self, repository: str, digest: str) -> int | None:
        """The size (Content-Length) of a blob, ``None`` when absent."""
        path = "/v2/%s/blobs/%s" % (repository, digest)
        status, headers, _body = self._read("HEAD", path)
        if status == 404:
            return None
        if status != 200:
            raise self._refuse("HEAD", path, status, b"")
        return int(headers.get("Content-Length") or 0)

    def blob(self, repository: str, digest: str, size: int | None = None, sink=None) -> int:
        """Download a blob 1 MiB at a time (memory stays constant, whatever its size), check its digest (and its size
        when given); each piece goes to ``sink`` when given. The number of bytes read."""
        path = "/v2/%s/blobs/%s" % (repository, digest)
        hasher = hashlib.new(_algorithm(digest))
        read = 0
        response = self._open("GET", path)
        try:
            if response.status != 200:
                raise self._refuse("GET", path, response.status, response.read(300))
            while True:
                piece = response.read(CHUNK)
                if not piece:
                    break
                hasher.update(piece)
                read += len(piece)
                if sink is not None:
                    sink(piece)
        finally:
            response.close()
        length = response.getheader("Content-Length")
        if length is not None and int(length) != read:
            raise OracleError("%s: Content-Length %s but %d bytes arrived" % (path, length, read))
        got = "%s:%s" % (hasher.name, hasher.hexdigest())
        if got != digest:
            raise OracleError("%s: the bytes hash to %s" % (path, got))
        if size is not None and size != read:
            raise OracleError("%s: the manifest says %d bytes, the registry served %d" % (path, size, read))
        return read

    # -- walks ----------------------------------------------------------------------------------------------------
    def reachable(self, repository: str, tag: str, download: bool = False) -> Reached:
        """Every manifest and blob ``repository:tag`` reaches (an index's children at any depth, each image's config
        and layers). Every manifest is fetched and checked; every blob is HEADed (present, right size), or, with
        ``download``, downloaded and digest-checked. Raises OracleError when the tag is absent or anything it names
        is missing or wrong."""
        root = self.manifest(repository, tag)
        if root is None:
            raise OracleError("%s:%s is not in the registry at %s" % (repository, tag, self.address))
        reached = Reached(root=root.digest)
        pending: list[tuple[Manifest, str]] = [(root, "%s:%s" % (repository, tag))]
        while pending:
            manifest, where = pending.pop()
            if manifest.digest in reached.manifests:
                continue
            reached.manifests[manifest.digest] = manifest
            for child in manifest.children():
                found = self.manifest(repository, child["digest"])
                if found is None:
                    raise OracleError("%s names child %s, which the registry does not hold" % (where, child["digest"]))
                if "size" in child and child["size"] != len(found.raw):
                    raise OracleError("%s names child %s of %d bytes, served %d" % (where, child["digest"], child["size"], len(found.raw)))
                pending.append((found, "%s -> %s" % (where, child["digest"])))
            for blob in manifest.blobs():
                if blob["digest"] in reached.blobs or blob.get("urls"):
                    continue  # already seen, or a foreign layer the registry never holds
                reached.blobs[blob["digest"]] = blob
                if download:
                    reached.blob_bytes += self.blob(repository, blob["digest"], blob.get("size"))
                else:
                    size = self.head_blob(repository, blob["digest"])
                    if size is None:
                        raise OracleError("%s names blob %s, which the registry does not hold" % (where, blob["digest"]))
                    if blob.get("size") not in (None, size):
                        raise OracleError("%s names blob %s of %s bytes, the registry has %d" % (where, blob["digest"], blob["size"], size))
        return reached

    def verify_tag_whole(self, repository: str, tag: str, digest: str | None = None) -> Reached:
        """``repository:tag`` whole: every manifest it reaches fetched and digest-checked byte for byte, every blob
        downloaded and digest-checked (and the tag still at ``digest`` when given)."""
        reached = self.reachable(repository, tag, download=True)
        if digest is not None and reached.root != digest:
            raise OracleError("%s:%s is at %s, expected %s" % (repository, tag, reached.root, digest))
        return reached

    def snapshot(self, page: int = 100) -> dict[str, dict[str, str]]:
        """``{repository: {tag: digest}}`` for everything the catalog lists (empty repositories included, as ``{}``);
        every digest read by GET and checked against the manifest's bytes."""
        held: dict[str, dict[str, str]] = {}
        for repository in self.catalog(page):
            held[repository] = {}
            for tag in self.tags(repository, page):
                found = self.digest(repository, tag)
                if found is not None:  # a tag deleted between the listing and the read is not held
                    held[repository][tag] = found
        return held

    def state(self) -> dict:
        """``{"catalog": [...], "digests": {"repo:tag": digest}}`` (what the playbooks read)."""
        held = self.snapshot()
        digests = {"%s:%s" % (repo, tag): digest for repo, tags in held.items() for tag, digest in tags.items()}
        return {"catalog": sorted(held), "digests": digests}


def snapshot(address: str, **options) -> dict[str, dict[str, str]]:
    """``{repository: {tag: digest}}`` of the registry at ``address`` (options as Registry takes them)."""
    return Registry(address, **options).snapshot()


def tag_digests(address: str, **options) -> dict[str, str]:
    """``{"repo:tag": digest}`` of the registry at ``address`` (options as Registry takes them)."""
    return Registry(address, **options).state()["digests"]


def assert_same_tag(source: Registry, destination: Registry, repository: str, tag: str, dest_repository: str | None = None) -> Reached:
    """``repository:tag`` in ``destination`` (as ``dest_repository`` when given) is the source's, byte for byte: the
    same manifests (raw bytes and Content-Type) and the same blobs, all downloaded from the destination and
    digest-checked. The destination's walk."""
    want = source.reachable(repository, tag)
    got = destination.verify_tag_whole(dest_repository or repository, tag)
    for digest, manifest in want.manifests.items():
        copy = got.manifests.get(digest)
        if copy is None or copy.raw != manifest.raw or copy.media_type != manifest.media_type:
            raise OracleError("%s:%s: manifest %s differs in the destination" % (repository, tag, digest))
    if set(got.manifests) != set(want.manifests) or set(got.blobs) != set(want.blobs):
        raise OracleError("%s:%s: the destination reaches other manifests or blobs than the source" % (repository, tag))
    return got


def _split(reference: str) -> tuple[str, str]:
    repository, sep, tag = reference.rpartition(":")
    if not sep or not repository or "/" in tag:
        raise SystemExit("not <repository>:<tag>: %r" % reference)
    return repository, tag


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="oracle.py", description="Read a registry independently of the collection.")
    parser.add_argument("--scheme", choices=("http", "https"))
    parser.add_argument("--cacert")
    parser.add_argument("--user", help="basic auth user (password from DH_ORACLE_PASSWORD)")
    parser.add_argument("command", choices=("state", "digest", "verify", "reachable", "blobs"))
    parser.add_argument("address")
    parser.add_argument("references", nargs="*", metavar="repo:tag", help="(blobs: <repo> <digest>...)")
    args = parser.parse_args(argv)
    registry = Registry(args.address, scheme=args.scheme, username=args.user, password=os.environ.get("DH_ORACLE_PASSWORD"), cafile=args.cacert)
    try:
        if args.command == "state":
            print(json.dumps(registry.state(), sort_keys=True))
        elif args.command == "digest":
            print(registry.digest(*_split(args.references[0])) or "")
        elif args.command == "blobs":
            repository, digests = args.references[0], args.references[1:]
            print(json.dumps({digest: registry.head_blob(repository, digest) for digest in digests}, sort_keys=True))
        elif args.command == "reachable":
            reached = registry.reachable(*_split(args.references[0]))
            print(json.dumps({"root": reached.root, "manifests": sorted(reached.manifests), "blobs": sorted(reached.blobs)}))
        else:
            out = {}
            for reference in args.references:
                reached = registry.verify_tag_whole(*_split(reference))
                out[reference] = {"digest": reached.root, "manifests": len(reached.manifests), "blobs": len(reached.blobs), "bytes": reached.blob_bytes}
            print(json.dumps(out, sort_keys=True))
    except (OracleError, OSError, http.client.HTTPException) as exc:
        sys.stderr.write("oracle: %s\n" % exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
