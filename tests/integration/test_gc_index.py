"""registry_gc keeps everything a tag reaches: the platform images of a kept image index, tagged or not.

One registry container (port +34), images built through the registry API (tests/support/registry_api.py, no engine):

- ``<prefix>gcx/app``: ``stable`` (kept by keep_tags), single-platform ``1``, ``2`` (sharing its layer with ``stable``),
  ``4`` (pushed twice: its first manifest is left without a tag), and two multi-platform images, ``3`` and ``5``: OCI
  indexes whose platform images (linux/amd64, linux/arm64) have no tag of their own;
- ``<prefix>gcx/team/tools`` (a nested name): one tag, which the prune takes (keep_last 0);

``registry_prune`` keep_last 2 + keep_tags [stable] keeps ``5``, ``4`` and ``stable``. Then, as a registry killed in the
middle of a prune leaves it, tag ``1`` is put back without its manifest (a dangling tag), and two upload sessions are
left unfinished (one last written two hours ago). ``registry_gc`` with ``delete_untagged`` (check mode, twice for
real), then once more with ``uploads_older_than_minutes: 0``.

Read back by code that shares nothing with the collection: the tests' oracle (tests/support/oracle.py: every manifest
and blob a kept tag reaches, digest-checked from the raw bytes) and skopeo (``inspect --raw`` byte for byte,
``copy --all``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from ansible_collections.dockhand.registry.tests.support import registry_api as api
from support.isolation import PREFIX, REGISTRY_IMAGE, port
from support.oracle import Registry
from support.runner import run_module

PORT = port(34)
REGISTRY = "127.0.0.1:%d" % PORT
NAME = PREFIX + "gcx"
APP = PREFIX + "gcx/app"
TOOLS = PREFIX + "gcx/team/tools"
ORACLE = Registry(REGISTRY)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tags(repository: str) -> list[str]:
    return sorted(ORACLE.tags(repository))


def skopeo(*args: str) -> bytes:
    done = subprocess.run(["skopeo", *args], capture_output=True, check=False, timeout=120)
    assert done.returncode == 0, "skopeo %s: %s" % (" ".join(args), done.stderr.decode()[-1000:])
    return done.stdout


def read_whole(repository: str, tag: str, expected: str, copy_to: Path) -> int:
    """Everything ``repository:tag`` reaches, by two readers that share nothing with the collection: the oracle (every
    manifest and blob, digest-checked) and skopeo (each manifest's raw bytes, then ``copy --all``). Returns the number
    of blobs (configs and layers)."""
    reached = ORACLE.verify_tag_whole(repository, tag, expected)
    for digest, manifest in reached.manifests.items():
        assert skopeo("inspect", "--raw", "--tls-verify=false", "docker://%s/%s@%s" % (REGISTRY, repository, digest)) == manifest.raw
    assert sha256(skopeo("inspect", "--raw", "--tls-verify=false", "docker://%s/%s:%s" % (REGISTRY, repository, tag))) == expected
    shutil.rmtree(copy_to, ignore_errors=True)
    skopeo("copy", "--all", "--quiet", "--src-tls-verify=false", "docker://%s/%s:%s" % (REGISTRY, repository, tag), "dir:%s" % copy_to)
    copied = {path.name for path in copy_to.iterdir()}
    assert {digest.split(":")[1] for digest in reached.blobs} <= copied, (repository, tag, sorted(copied))
    return len(reached.blobs)


def abandoned_upload(repository: str, size: int) -> str:
    """An upload session with ``size`` bytes written and never finished; its uuid."""
    request = urllib.request.Request("http://%s/v2/%s/blobs/uploads/" % (REGISTRY, repository), method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=30) as answer:
        location = answer.headers["Location"]
        uuid = answer.headers["Docker-Upload-UUID"]
    url = location if location.startswith("http") else "http://%s%s" % (REGISTRY, location)
    patch = urllib.request.Request(url, method="PATCH", data=os.urandom(size), headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(patch, timeout=30) as answer:
        assert answer.status == 202
    return uuid


def gc(check: bool = False, **args: object) -> dict:
    result = run_module("registry_gc", dict({"name": NAME, "delete_untagged": True, "wait_timeout": 30}, **args), check=check)
    assert not result.get("failed"), result
    return result


@pytest.fixture
def registry(workdir):
    data = workdir / "data"
    started = run_module(
        "registry_container",
        {"name": NAME, "image": REGISTRY_IMAGE, "port": PORT, "bind_address": "127.0.0.1", "data_path": str(data), "wait_timeout": 30,
         "env": {"REGISTRY_STORAGE_DELETE_ENABLED": "true"}},
    )  # fmt: skip
    assert not started.get("failed"), started
    return data / "docker" / "registry" / "v2"


def test_gc_keeps_every_platform_image_of_a_kept_index(registry, workdir, dh_vars):
    marker = dh_vars["dh_marker"]
    shared = api.tar_layer("shared", "shared layer %s\n" % marker)
    pushed = {"stable": api.push_image(REGISTRY, APP, "stable", [shared])["digest"]}
    pushed["1"] = api.push_image(REGISTRY, APP, "1", [api.tar_layer("one", "1 %s\n" % marker)])["digest"]
    pushed["2"] = api.push_image(REGISTRY, APP, "2", [shared, api.tar_layer("two", "")])["digest"]
    pushed["3"] = api.push_index(REGISTRY, APP, "3", marker + "-3")
    first_4 = api.push_image(REGISTRY, APP, "4", [api.tar_layer("four", "first 4 %s\n" % marker)])["digest"]
    pushed["4"] = api.push_image(REGISTRY, APP, "4", [api.tar_layer("four", "4 %s\n" % marker)])["digest"]
    pushed["5"] = api.push_index(REGISTRY, APP, "5", marker + "-5")
    api.push_image(REGISTRY, TOOLS, "old", [api.tar_layer("tool", "tool %s\n" % marker)])
    assert first_4 != pushed["4"]
    tag_1 = registry / "repositories" / APP / "_manifests" / "tags" / "1"
    kept_tag_1 = workdir / "tag-1"
    shutil.copytree(tag_1, kept_tag_1)

    pruned = run_module(
        "registry_prune",
        {"registry": REGISTRY, "registry_scheme": "http",
         "rules": [{"repository": APP, "keep_last": 2, "keep_tags": ["stable"]}, {"repository": TOOLS, "keep_last": 0}]},
    )  # fmt: skip
    assert pruned["changed"] and sorted(t for d in pruned["deleted"] for t in d["tags"]) == ["1", "2", "3", "old"], pruned
    assert tags(APP) == ["4", "5", "stable"] and tags(TOOLS) == []
    # A registry killed in the middle of a prune: the manifest of 1 gone, its tag left behind.
    shutil.copytree(kept_tag_1, tag_1)
    assert tags(APP) == ["1", "4", "5", "stable"] and ORACLE.manifest(APP, "1") is None
    # Two upload sessions never finished: one written two hours ago, one just now.
    old_upload = abandoned_upload(APP, 120000)
    young_upload = abandoned_upload(APP, 1000)
    two_hours_ago = time.time() - 7200
    for directory, _dirs, files in os.walk(registry / "repositories" / APP / "_uploads" / old_upload):
        for name in [*files, "."]:
            os.utime(os.path.join(directory, name), (two_hours_ago, two_hours_ago))

    check = gc(check=True)
    sizes = {d: (registry / "blobs" / "sha256" / d[7:9] / d[7:] / "data").stat().st_size for d in check.get("removed", [])}
    first = gc()
    second = gc()
    print("FIGURES GC of an index: %s" % {k: first.get(k) for k in ("blobs_removed", "bytes_removed", "manifests_removed", "read_only_seconds", "gc_seconds")})

    # Everything a kept tag reaches reads whole, byte for byte; the rest is gone.
    blobs = sum(read_whole(APP, tag, pushed[tag], workdir / ("copy-" + tag)) for tag in ("stable", "4", "5"))
    assert blobs == 2 + 2 + 4, blobs
    assert tags(APP) == ["4", "5", "stable"]
    assert ORACLE.manifest(APP, pushed["3"]) is None and ORACLE.manifest(APP, first_4) is None
    # The emptied repository is no longer listed: in _catalog, and by registry_info.
    assert APP in ORACLE.catalog() and TOOLS not in ORACLE.catalog()
    info = run_module("registry_info", {"registry": REGISTRY, "registry_scheme": "http", "repositories": [PREFIX + "gcx/.*"], "details": False})
    assert [r["name"] for r in info["repositories"]] == [APP], info

    # What went, as the result says: the old index 3 with its platform images, the first push of 4, 1 and 2 (not the
    # layer 2 shares with stable): 19 blobs; the nested repository the prune emptied, the dangling tag, the old upload.
    untagged = sorted("%s@%s" % (APP, child["digest"]) for child in ORACLE.manifest(APP, "5").children())
    assert first["changed"] and not second["changed"], (first, second)
    assert first["manifests_removed"] == 3 and "%s@%s" % (APP, first_4) in first["manifests"], first
    assert not set(untagged) & set(first["manifests"]), first["manifests"]
    assert first["blobs_removed"] == 19 == len(first["removed"]) and first["bytes_removed"] == sum(sizes.values()) > 0, (first, sizes)
    assert first["repositories_removed"] == [TOOLS] and first["dangling_tags_removed"] == ["%s:1" % APP], first
    assert first["uploads_removed"] == 1 and first["upload_bytes_removed"] >= 120000, first
    for key in ("removed", "blobs_removed", "bytes_removed", "manifests", "repositories_removed", "dangling_tags_removed", "uploads_removed",
                "upload_bytes_removed"):
        assert check[key] == first[key], (key, check[key], first[key])
    assert second["blobs_removed"] == 0 and second["manifests"] == [] and second["read_only_seconds"] == 0.0, second
    assert (registry / "repositories" / APP / "_uploads" / young_upload).is_dir()
    assert not (registry / "repositories" / APP / "_uploads" / old_upload).exists()

    # Every upload session, when asked: the young one too.
    every = gc(uploads_older_than_minutes=0)
    assert every["changed"] and every["uploads_removed"] == 1 and every["blobs_removed"] == 0, every
    assert not gc(uploads_older_than_minutes=0)["changed"]
    assert read_whole(APP, "5", pushed["5"], workdir / "copy-5") == 4
