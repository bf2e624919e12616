"""registry_info / registry_prune logic against an in-memory registry (no network)."""

from __future__ import annotations

import datetime
import hashlib
import json

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.gc import parse_output
from ansible_collections.dockhand.registry.plugins.module_utils.inventory import (
    InvalidPattern,
    Rule,
    TagInfo,
    compile_patterns,
    compile_rules,
    inventory,
    natural_key,
    newest_first,
    plan_prune,
    run_prune,
)
from ansible_collections.dockhand.registry.plugins.module_utils.registry import RegistryClient, RegistryDeleteDisabled

V2 = "application/vnd.docker.distribution.manifest.v2+json"
INDEX = "application/vnd.oci.image.index.v1+json"
NOW = datetime.datetime(2026, 11, 30, tzinfo=datetime.timezone.utc)


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


class FakeRegistry:
    """repositories -> tags -> manifest; blobs by digest; DELETE by digest removes every tag of it."""

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


def client(fake: FakeRegistry) -> RegistryClient:
    return RegistryClient("localhost:5500", scheme="http", session=fake, pool_size=8)  # type: ignore[arg-type]


def twelve(fake: FakeRegistry) -> None:
    for n in range(11):
        fake.image("app", ["1.%d" % n] + (["latest"] if n == 10 else []), "2026-11-%02dT00:00:00Z" % (n + 1))


# -- ordering -----------------------------------------------------------------------------
def test_natural_key_orders_versions():
    names = ["1.10", "1.9", "latest", "1.9-rc1", "1.0", "2"]
    assert sorted(names, key=natural_key) == ["1.0", "1.9", "1.9-rc1", "1.10", "2", "latest"]


def test_equal_created_times_order_by_version_highest_first():
    same = "2026-01-01T00:00:00Z"
    infos = [TagInfo("a", t, digest=t, created=same) for t in ["1.9", "1.10", "1.2"]]
    infos.append(TagInfo("a", "0.1", digest="x", created="2026-02-01T00:00:00Z"))
    assert [i.tag for i in newest_first(infos)] == ["0.1", "1.10", "1.9", "1.2"]
    assert [i.tag for i in newest_first(list(reversed(infos)))] == ["0.1", "1.10", "1.9", "1.2"]


# -- planning -------------------------------------------------------------------------------
def rule(**kw) -> Rule:
    return compile_rules([dict({"repository": ".*"}, **kw)])[0]


def infos_of(fake: FakeRegistry, repo: str = "app") -> list[TagInfo]:
    return inventory(client(fake), [repo])["infos"][repo]


def test_keep_three_and_latest_deletes_eight():
    fake = FakeRegistry()
    twelve(fake)
    plan = plan_prune(infos_of(fake), rule(keep_last=3, keep_tags=["latest"]), NOW)
    gone = sorted(t for tags in plan["delete"].values() for t in tags)
    assert gone == ["1.%d" % n for n in range(8)]
    assert set(plan["keep"]) == {"1.8", "1.9", "1.10", "latest"}


def test_a_digest_shared_with_a_kept_tag_is_never_deleted():
    fake = FakeRegistry()
    twelve(fake)
    fake.tags["app"]["stable"] = fake.tags["app"]["1.2"]  # an old digest a release tag still points at
    plan = plan_prune(infos_of(fake), rule(keep_last=3, keep_tags=["latest", "stable"]), NOW)
    assert fake.tags["app"]["1.2"] not in plan["delete"]
    assert plan["keep"]["1.2"].startswith("shares digest")


def test_children_of_a_kept_index_are_protected():
    fake = FakeRegistry()
    amd = fake.image("app", ["amd"], "2026-01-01T00:00:00Z")
    arm = fake.image("app", ["arm"], "2026-01-01T00:00:00Z", seed="arm")
    fake.index("app", ["multi"], [amd, arm])
    held = infos_of(fake)
    multi = next(i for i in held if i.tag == "multi")
    assert multi.platforms == ["linux/amd64", "linux/arm64"]
    assert multi.size == sum(i.size for i in held if i.tag in ("amd", "arm"))
    plan = plan_prune(held, rule(keep_last=0, keep_tags=["multi"]), NOW)
    assert plan["delete"] == {}


def test_older_than_days_guards_young_tags():
    fake = FakeRegistry()
    fake.image("app", ["old"], "2026-01-01T00:00:00Z")
    fake.image("app", ["young"], "2026-11-29T00:00:00Z")
    plan = plan_prune(infos_of(fake), rule(older_than_days=7), NOW)
    assert [t for tags in plan["delete"].values() for t in tags] == ["old"]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"repository": "app"}], "neither keep_last nor older_than_days"),
        ([{"keep_last": -1}], "keep_last -1"),
        ([{"keep_last": 1, "keep_tags": ["("]}], "keep_tags pattern '('"),
        ([{"repository": "[", "keep_last": 1}], "repository pattern '['"),
    ],
)
def test_bad_rules_are_refused_naming_the_value(rules, message):
    with pytest.raises(InvalidPattern, match=message.replace("(", r"\(").replace("[", r"\[")):
        compile_rules(rules)


def test_patterns_match_the_whole_name():
    assert [p.pattern for p in compile_patterns(["a.*"], "x")] == ["a.*"]
    fake = FakeRegistry()
    fake.image("app", ["1"], "2026-01-01T00:00:00Z")
    fake.image("apple", ["1"], "2026-01-01T00:00:00Z")
    assert [r["name"] for r in inventory(client(fake), ["app"])["repositories"]] == ["app"]


# -- run_prune -------------------------------------------------------------------------------
def test_check_mode_deletes_nothing_and_a_rerun_deletes_nothing():
    fake = FakeRegistry()
    twelve(fake)
    rules = [{"repository": "app", "keep_last": 3, "keep_tags": ["latest"]}]
    check = run_prune(client(fake), rules, check_mode=True, now=NOW)
    assert check["changed"] and len(check["deleted"]) == 8 and fake.deleted == []
    assert check["diff"]["after"]["tags"]["app"] == ["1.8", "1.9", "1.10", "latest"]
    done = run_prune(client(fake), rules, now=NOW)
    assert done["changed"] and sorted(fake.deleted) == sorted(d["digest"] for d in check["deleted"])
    again = run_prune(client(fake), rules, now=NOW)
    assert not again["changed"] and again["deleted"] == []


def test_deletes_disabled_fail_before_anything_goes():
    fake = FakeRegistry(delete_enabled=False)
    twelve(fake)
    with pytest.raises(RegistryDeleteDisabled, match="REGISTRY_STORAGE_DELETE_ENABLED=true"):
        run_prune(client(fake), [{"keep_last": 3}], now=NOW)
    assert len(fake.tags["app"]) == 12


# -- gc output -------------------------------------------------------------------------------
def test_parse_gc_output():
    out = ("app: marking manifest sha256:" + "a" * 64 + "\n"
           "3 blobs marked, 2 blobs and 1 manifests eligible for deletion\n"
           "blob eligible for deletion: sha256:" + "b" * 64 + "\n"
           "blob eligible for deletion: sha256:" + "c" * 64 + "\n")
    parsed = parse_output(out)
    assert parsed["marked"] == 3 and parsed["eligible_blobs"] == 2 and parsed["eligible_manifests"] == 1
    assert parsed["digests"] == ["sha256:" + "b" * 64, "sha256:" + "c" * 64]
