"""The tests' oracle (tests/support/oracle.py) against a small in-process registry: paging, the four manifest types,
digest checks of manifests and blobs, index walks at any depth, a 256 MiB layer in constant memory, basic auth, TLS
with a CA file, redirects, the command line, and that it shares no code with the collection."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import ssl
import subprocess
import sys
import threading
import tracemalloc
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ansible_collections.dockhand.registry.tests.support import oracle

ORACLE_FILE = Path(oracle.__file__)
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
BIG_BLOCK = 1 << 20


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class BigBlob:
    """A blob of ``mebibytes`` MiB generated block by block (never held in memory); its digest computed once."""

    def __init__(self, mebibytes: int) -> None:
        self.mebibytes = mebibytes
        self.size = mebibytes * BIG_BLOCK
        hasher = hashlib.sha256()
        for block in self.blocks():
            hasher.update(block)
        self.digest = "sha256:" + hasher.hexdigest()

    def blocks(self):
        base = bytes(range(256)) * (BIG_BLOCK // 256)
        for number in range(self.mebibytes):
            yield number.to_bytes(8, "big") + base[8:]


class FakeDistribution:
    """What the oracle needs of distribution: listings with ``n``/``last``/``Link``, manifests served only under an
    Accept that names their type, blobs, basic auth. ``faults`` makes it lie in one named way."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.tags: dict[str, dict[str, str]] = {}
        self.manifests: dict[str, dict[str, tuple[bytes, str]]] = {}
        self.blobs: dict[str, dict[str, bytes | BigBlob]] = {}
        self.credentials = credentials
        self.faults: set[str] = set()
        self.requests: list[tuple[str, str, dict]] = []

    # -- content --------------------------------------------------------------------------------------------------
    def blob(self, repo: str, data: bytes | BigBlob, media_type: str = LAYER) -> dict:
        digest = data.digest if isinstance(data, BigBlob) else sha(data)
        self.blobs.setdefault(repo, {})[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": data.size if isinstance(data, BigBlob) else len(data)}

    def manifest(self, repo: str, body: dict, media_type: str, tag: str | None = None, raw: bytes | None = None) -> dict:
        data = raw if raw is not None else json.dumps(body, indent=3).encode()
        self.manifests.setdefault(repo, {})[sha(data)] = (data, media_type)
        self.tags.setdefault(repo, {})
        if tag:
            self.tags[repo][tag] = sha(data)
        return {"mediaType": media_type, "digest": sha(data), "size": len(data)}

    def image(self, repo: str, tag: str | None, layers: list[bytes | BigBlob], media_type: str = oracle.OCI_MANIFEST) -> dict:
        descriptors = [self.blob(repo, layer) for layer in layers]
        config = {"architecture": "amd64", "os": "linux", "rootfs": {"diff_ids": [d["digest"] for d in descriptors]}}
        body = {"schemaVersion": 2, "mediaType": media_type, "config": self.blob(repo, json.dumps(config).encode(), CONFIG), "layers": descriptors}
        return self.manifest(repo, body, media_type, tag)

    def index(self, repo: str, tag: str | None, children: list[dict], media_type: str = oracle.OCI_INDEX) -> dict:
        return self.manifest(repo, {"schemaVersion": 2, "mediaType": media_type, "manifests": children}, media_type, tag)

    # -- HTTP -----------------------------------------------------------------------------------------------------
    def handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                fake.answer(self, "GET")

            def do_HEAD(self) -> None:
                fake.answer(self, "HEAD")

        return Handler

    def answer(self, http: BaseHTTPRequestHandler, method: str) -> None:
        url = urllib.parse.urlsplit(http.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        self.requests.append((method, http.path, dict(http.headers)))
        if self.credentials:
            wanted = "Basic " + base64.b64encode(("%s:%s" % self.credentials).encode()).decode()
            if http.headers.get("Authorization") != wanted:
                return self.send(http, method, 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": 'Basic realm="fake"'})
        path = url.path
        if path == "/v2/":
            return self.send(http, method, 200, b"{}")
        if path == "/v2/_catalog":
            return self.page(http, method, path, "repositories", sorted(self.tags), query)
        if path.startswith("/storage/"):  # where a redirected blob is served from
            repo, digest = path[len("/storage/") :].rsplit("/", 1)
            return self.send_blob(http, method, self.blobs[repo][digest])
        repo, kind, reference = self.split(path)
        if kind == "tags":
            if repo not in self.tags:
                return self.send(http, method, 404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}')
            return self.page(http, method, path, "tags", sorted(self.tags[repo]), query, {"name": repo})
        if kind == "manifests":
            digest = self.tags.get(repo, {}).get(reference, reference)
            found = self.manifests.get(repo, {}).get(digest)
            accepted = [part.strip() for part in (http.headers.get("Accept") or "").split(",")]
            if found is None or found[1] not in accepted:
                return self.send(http, method, 404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
            raw, media_type = found
            served = digest
            if "wrong-digest-header" in self.faults:
                served = sha(raw + b"x")
            if "wrong-content-type" in self.faults:
                media_type = oracle.DOCKER_MANIFEST if media_type != oracle.DOCKER_MANIFEST else oracle.OCI_MANIFEST
            if "bytes-changed" in self.faults:
                raw = raw + b" "
            return self.send(http, method, 200, raw, {"Content-Type": media_type, "Docker-Content-Digest": served})
        if kind == "blobs":
            data = self.blobs.get(repo, {}).get(reference)
            if data is None:
                return self.send(http, method, 404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')
            if "redirect-blobs" in self.faults:
                return self.send(http, method, 307, b"", {"Location": "/storage/%s/%s" % (repo, reference)})
            if "corrupt-blobs" in self.faults and isinstance(data, bytes):
                data = bytes([data[0] ^ 1]) + data[1:]
            return self.send_blob(http, method, data)
        return self.send(http, method, 404, b"")

    @staticmethod
    def split(path: str) -> tuple[str, str, str]:
        for kind in ("manifests", "blobs", "tags"):
            marker = "/%s/" % kind
            if marker in path:
                repo, reference = path[len("/v2/") :].split(marker, 1)
                return repo, kind, reference
        return "", "", ""

    def page(self, http, method: str, path: str, key: str, names: list[str], query: dict, extra: dict | None = None) -> None:
        if "last" in query:
            names = [name for name in names if name > query["last"]]
        headers = {"Content-Type": "application/json"}
        if "n" in query and not ("one-page-tags" in self.faults and key == "tags"):
            size = int(query["n"])
            if len(names) > size:
                names = names[:size]
                headers["Link"] = '<%s?last=%s&n=%d>; rel="next"' % (path, urllib.parse.quote(names[-1]), size)
                if "link-loops" in self.faults:
                    headers["Link"] = '<%s?n=%d>; rel="next"' % (path, size)
        return self.send(http, method, 200, json.dumps({**(extra or {}), key: names}).encode(), headers)

    @staticmethod
    def send(http, method: str, status: int, body: bytes, headers: dict | None = None) -> None:
        http.send_response(status)
        for name, value in (headers or {}).items():
            http.send_header(name, value)
        http.send_header("Content-Length", str(len(body)))
        http.end_headers()
        if method != "HEAD":
            http.wfile.write(body)

    @staticmethod
    def send_blob(http, method: str, data: bytes | BigBlob) -> None:
        http.send_response(200)
        http.send_header("Content-Length", str(data.size if isinstance(data, BigBlob) else len(data)))
        http.end_headers()
        if method == "HEAD":
            return
        for block in data.blocks() if isinstance(data, BigBlob) else [data]:
            http.wfile.write(block)


@pytest.fixture
def serve():
    """``serve(fake, tls=None)`` -> ``host:port`` of a running server for ``fake`` (shut down after the test)."""
    servers = []

    def start(fake: FakeDistribution, tls: tuple[str, str] | None = None) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
        server.daemon_threads = True
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return "127.0.0.1:%d" % server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def populated() -> FakeDistribution:
    """One image of each of the four types, a Docker list and an OCI index of two images, an index of an index."""
    fake = FakeDistribution()
    fake.image("app", "oci", [b"layer one", b"layer two"])
    fake.image("app", "docker", [b"layer three"], oracle.DOCKER_MANIFEST)
    amd = fake.image("multi", None, [b"amd64 layer"])
    arm = fake.image("multi", None, [b"arm64 layer", b"amd64 layer"])
    inner = fake.index("multi", "list", [amd, arm], oracle.DOCKER_LIST)
    fake.index("multi", "oci", [amd, arm])
    fake.index("multi", "nested", [inner, fake.image("multi", None, [b"riscv layer"])])
    return fake


def test_catalog_and_tags_read_every_page_through_the_link_header(serve):
    fake = FakeDistribution()
    for number in range(7):
        fake.image("repo%d" % number, "only", [b"x%d" % number])
    for number in range(11):
        fake.image("many", "t%02d" % number, [b"layer %d" % number])
    registry = oracle.Registry(serve(fake))
    assert registry.catalog(page=3) == sorted(["many"] + ["repo%d" % n for n in range(7)])
    assert registry.tags("many", page=4) == ["t%02d" % n for n in range(11)]
    listed = [path for _method, path, _headers in fake.requests if "tags/list" in path]
    assert listed == ["/v2/many/tags/list?n=4", "/v2/many/tags/list?last=t03&n=4", "/v2/many/tags/list?last=t07&n=4"]
    assert registry.tags("gone") == []
    fake.faults.add("one-page-tags")  # distribution 2.8: tags/list ignores n (one page, no Link)
    assert registry.tags("many", page=4) == ["t%02d" % n for n in range(11)]


def test_a_page_larger_than_asked_with_a_next_page_is_an_error(serve):
    fake = FakeDistribution()
    for number in range(5):
        fake.image("repo%d" % number, "t", [b"x%d" % number])
    registry = oracle.Registry(serve(fake))
    registry._pages("/v2/_catalog", "repositories", 2)
    original = fake.page
    fake.page = lambda http, method, path, key, names, query, extra=None: original(http, method, path, key, names, {**query, "n": "3"}, extra)
    with pytest.raises(oracle.OracleError, match="3 entries on a page of n=2, and a next page"):
        registry.catalog(page=2)


def test_a_link_header_that_loops_is_an_error(serve):
    fake = FakeDistribution()
    for number in range(5):
        fake.image("repo%d" % number, "t", [b"x%d" % number])
    fake.faults.add("link-loops")
    with pytest.raises(oracle.OracleError, match="loops back"):
        oracle.Registry(serve(fake)).catalog(page=2)


@pytest.mark.parametrize(
    "repo, tag, media_type",
    [
        ("app", "oci", oracle.OCI_MANIFEST),
        ("app", "docker", oracle.DOCKER_MANIFEST),
        ("multi", "list", oracle.DOCKER_LIST),
        ("multi", "oci", oracle.OCI_INDEX),
    ],
)
def test_manifests_by_tag_and_by_digest_raw_bytes_type_and_checked_digest(serve, repo, tag, media_type):
    fake = populated()
    registry = oracle.Registry(serve(fake))
    raw, stored_type = fake.manifests[repo][fake.tags[repo][tag]]
    by_tag = registry.manifest(repo, tag)
    by_digest = registry.manifest(repo, by_tag.digest)
    assert by_tag == by_digest == oracle.Manifest(raw=raw, media_type=media_type, digest=sha(raw))
    assert stored_type == media_type
    assert registry.head_manifest(repo, tag) == sha(raw)
    accept = [headers["Accept"] for method, _path, headers in fake.requests if "/manifests/" in _path]
    assert all(set(value.split(", ")) == set(oracle.MANIFEST_TYPES) for value in accept)


def test_absent_manifests_and_blobs_read_as_none(serve):
    registry = oracle.Registry(serve(populated()))
    assert registry.manifest("app", "nope") is None
    assert registry.head_manifest("app", "nope") is None
    assert registry.digest("nothere", "latest") is None
    assert registry.head_blob("app", sha(b"never pushed")) is None


@pytest.mark.parametrize(
    "fault, message",
    [
        ("wrong-digest-header", "Docker-Content-Digest"),
        ("wrong-content-type", "the body says"),
        ("bytes-changed", "hash to"),
    ],
)
def test_a_manifest_served_wrong_is_an_error(serve, fault, message):
    fake = populated()
    registry = oracle.Registry(serve(fake))
    digest = fake.tags["app"]["oci"]
    fake.faults.add(fault)
    with pytest.raises(oracle.OracleError, match=message):
        registry.manifest("app", digest)


def test_reachable_walks_an_index_of_indexes_to_every_manifest_and_blob(serve):
    fake = populated()
    registry = oracle.Registry(serve(fake))
    reached = registry.reachable("multi", "nested")
    assert reached.root == fake.tags["multi"]["nested"]
    assert set(reached.manifests) == set(fake.manifests["multi"]) - {fake.tags["multi"]["oci"]}
    assert set(reached.blobs) == set(fake.blobs["multi"])  # three configs and three distinct layers
    assert len(reached.blobs) == 6
    assert not [path for method, path, _headers in fake.requests if method == "GET" and "/blobs/" in path]  # HEAD only
    whole = registry.verify_tag_whole("multi", "nested", digest=reached.root)
    assert whole.digests() == reached.digests()
    assert whole.blob_bytes == sum(len(data) for data in fake.blobs["multi"].values())


def test_verify_tag_whole_fails_on_a_tag_that_moved(serve):
    fake = populated()
    registry = oracle.Registry(serve(fake))
    with pytest.raises(oracle.OracleError, match="expected sha256:0"):
        registry.verify_tag_whole("app", "oci", digest="sha256:" + "0" * 64)
    with pytest.raises(oracle.OracleError, match="not in the registry"):
        registry.reachable("app", "absent")


def test_a_missing_child_a_missing_blob_and_a_corrupt_blob_are_errors(serve):
    fake = populated()
    registry = oracle.Registry(serve(fake))
    child = json.loads(fake.manifests["multi"][fake.tags["multi"]["oci"]][0])["manifests"][1]["digest"]
    raw, media_type = fake.manifests["multi"].pop(child)
    with pytest.raises(oracle.OracleError, match=r"names child .* does not hold"):
        registry.reachable("multi", "oci")
    fake.manifests["multi"][child] = (raw, media_type)
    layer = json.loads(raw)["layers"][0]["digest"]
    data = fake.blobs["multi"].pop(layer)
    with pytest.raises(oracle.OracleError, match=r"names blob .* does not hold"):
        registry.reachable("multi", "oci")
    with pytest.raises(oracle.OracleError, match="answered 404"):
        registry.verify_tag_whole("multi", "oci")
    fake.blobs["multi"][layer] = data
    registry.verify_tag_whole("multi", "oci")
    fake.faults.add("corrupt-blobs")
    registry.reachable("multi", "oci")  # HEAD cannot see a corrupt blob ...
    with pytest.raises(oracle.OracleError, match="the bytes hash to"):
        registry.verify_tag_whole("multi", "oci")  # ... the download does


def test_a_size_that_disagrees_with_the_manifest_is_an_error(serve):
    fake = FakeDistribution()
    layer = fake.blob("app", b"twelve bytes")
    config = fake.blob("app", b"{}", CONFIG)
    fake.manifest("app", {"schemaVersion": 2, "mediaType": oracle.OCI_MANIFEST, "config": config, "layers": [dict(layer, size=13)]},
                  oracle.OCI_MANIFEST, "t")  # fmt: skip
    registry = oracle.Registry(serve(fake))
    with pytest.raises(oracle.OracleError, match="of 13 bytes"):
        registry.reachable("app", "t")
    with pytest.raises(oracle.OracleError, match="says 13 bytes"):
        registry.verify_tag_whole("app", "t")


def test_a_redirected_blob_is_followed_and_checked(serve):
    fake = populated()
    fake.faults.add("redirect-blobs")
    reached = oracle.Registry(serve(fake)).verify_tag_whole("app", "oci")
    assert len(reached.blobs) == 3
    assert [path for _method, path, _headers in fake.requests if path.startswith("/storage/")]


def test_a_256_mib_layer_streams_in_constant_memory(serve):
    fake = FakeDistribution()
    big = BigBlob(256)
    fake.image("big", "t", [big])
    registry = oracle.Registry(serve(fake))
    tracemalloc.start()
    try:
        reached = registry.verify_tag_whole("big", "t")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert big.digest in reached.blobs
    assert reached.blob_bytes > 256 * BIG_BLOCK
    assert peak < 16 * BIG_BLOCK, "peak %d bytes while reading a 256 MiB layer" % peak


def test_snapshot_and_state(serve):
    fake = populated()
    fake.tags["empty"] = {}
    address = serve(fake)
    expected = {repo: dict(tags) for repo, tags in fake.tags.items()}
    assert oracle.snapshot(address) == expected
    assert oracle.tag_digests(address) == {"%s:%s" % (r, t): d for r, tags in expected.items() for t, d in tags.items()}
    assert oracle.Registry(address).state()["catalog"] == ["app", "empty", "multi"]


def test_basic_auth(serve):
    fake = populated()
    fake.credentials = ("alice", "s3cret:with colon")
    address = serve(fake)
    with pytest.raises(oracle.OracleError, match=r"401 .credentials needed"):
        oracle.Registry(address).catalog()
    with pytest.raises(oracle.OracleError, match=r"401 .credentials refused"):
        oracle.Registry(address, username="alice", password="wrong").catalog()
    registry = oracle.Registry(address, username="alice", password="s3cret:with colon")
    assert registry.ping() == 200
    assert registry.verify_tag_whole("multi", "list").root == fake.tags["multi"]["list"]


def test_https_with_a_ca_file(serve, tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    fake = populated()
    address = serve(fake, tls=(str(cert), str(key)))
    with pytest.raises(ssl.SSLError):
        oracle.Registry(address, scheme="https").ping()  # the system CAs do not know this one
    registry = oracle.Registry(address, scheme="https", cafile=str(cert))
    assert registry.scheme == "https"
    assert registry.snapshot()["app"]["oci"] == fake.tags["app"]["oci"]


def test_scheme_defaults_http_on_loopback_https_elsewhere():
    assert oracle.Registry("localhost:5000").scheme == "http"
    assert oracle.Registry("127.0.0.1:5000").scheme == "http"
    assert oracle.Registry("registry.example:5000").scheme == "https"
    assert oracle.Registry("10.0.0.5:5000").scheme == "https"


def test_the_command_line(serve, capsys, monkeypatch):
    fake = populated()
    address = serve(fake)
    assert oracle.main(["state", address]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["digests"]["multi:nested"] == fake.tags["multi"]["nested"]
    assert state["catalog"] == ["app", "multi"]
    assert oracle.main(["digest", address, "app:docker"]) == 0
    assert capsys.readouterr().out.strip() == fake.tags["app"]["docker"]
    assert oracle.main(["digest", address, "app:absent"]) == 0
    assert capsys.readouterr().out == "\n"
    assert oracle.main(["verify", address, "multi:oci", "app:oci"]) == 0
    verified = json.loads(capsys.readouterr().out)
    assert verified["multi:oci"]["manifests"] == 3 and verified["app:oci"]["blobs"] == 3
    assert oracle.main(["reachable", address, "multi:list"]) == 0
    assert json.loads(capsys.readouterr().out)["root"] == fake.tags["multi"]["list"]
    layer = json.loads(fake.manifests["app"][fake.tags["app"]["oci"]][0])["layers"][0]
    assert oracle.main(["blobs", address, "app", layer["digest"], sha(b"never")]) == 0
    assert json.loads(capsys.readouterr().out) == {layer["digest"]: layer["size"], sha(b"never"): None}
    fake.credentials = ("bob", "pw")
    assert oracle.main(["state", address]) == 1
    assert "credentials needed" in capsys.readouterr().err
    monkeypatch.setenv("DH_ORACLE_PASSWORD", "pw")
    assert oracle.main(["--user", "bob", "state", address]) == 0


def test_the_command_line_runs_as_a_script(serve):
    address = serve(populated())
    out = subprocess.run([sys.executable, str(ORACLE_FILE), "state", address], check=True, capture_output=True, text=True).stdout
    assert json.loads(out)["catalog"] == ["app", "multi"]


def test_assert_same_tag_compares_bytes_and_blobs(serve):
    source = populated()
    copy = populated()
    registries = oracle.Registry(serve(source)), oracle.Registry(serve(copy))
    assert oracle.assert_same_tag(*registries, "multi", "nested").root == source.tags["multi"]["nested"]
    raw, media_type = copy.manifests["app"][copy.tags["app"]["oci"]]
    copy.manifest("app", {}, media_type, "oci", raw=raw.replace(b"   ", b"  "))  # same JSON, other bytes
    with pytest.raises(oracle.OracleError, match="differs in the destination"):
        oracle.assert_same_tag(*registries, "app", "oci")


def test_it_shares_no_code_with_the_collection():
    """Standard library only: no plugins/, no requests, nothing the collection's reader uses besides the stdlib."""
    tree = ast.parse(ORACLE_FILE.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
