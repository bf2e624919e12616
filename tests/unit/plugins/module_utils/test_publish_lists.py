"""Whole lists in one run: one registry client per registry, concurrent HEADs, per-item results."""

from __future__ import annotations

import threading
import time

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineError
from ansible_collections.dockhand.registry.plugins.module_utils.publish import (
    HEAD_WORKERS,
    ItemsFailed,
    TagItem,
    publish_images,
    push_images,
    tag_images,
)


class FakeEngine:
    def __init__(self, images: dict[str, dict], refuse: set[str] = frozenset()) -> None:
        self.images = images
        self.refuse = refuse
        self.tagged: list[str] = []
        self.pushed: list[str] = []
        self.index_calls = 0

    def image_index(self) -> dict[str, dict]:
        self.index_calls += 1
        return dict(self.images)

    def image(self, ref: str) -> dict | None:
        return self.images.get(ref)

    def tag(self, image: str, repository: str, tag: str) -> None:
        name = "%s:%s" % (repository, tag)
        if name in self.refuse:
            raise EngineError("cannot tag %s as %s: refused" % (image, name))
        self.tagged.append(name)
        self.images[name] = {"Id": image, "RepoDigests": []}

    def push(self, repository: str, tag: str, auth_config=None) -> str:
        name = "%s:%s" % (repository, tag)
        if name in self.refuse:
            raise EngineError("push of %s refused: denied" % name)
        self.pushed.append(name)
        return "sha256:" + "d" * 64


class FakeRegistry:
    def __init__(self, held: dict[str, str], delay: float = 0.0) -> None:
        self.held = held
        self.delay = delay
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return "http://fake"

    def holds_image(self, repository, manifest_digest, image_id):
        # These fakes hold manifests only by digest, no configs: the registry holds the image when it is the same ID.
        return manifest_digest == image_id

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(self.delay)
        with self.lock:
            self.active -= 1
        return self.held.get("%s:%s" % (repository, tag))


def _images(n: int) -> dict[str, dict]:
    return {
        "localhost:5000/app%d:1" % i: {"Id": "sha256:%064d" % i, "RepoDigests": ["localhost:5000/app%d@sha256:%064d" % (i, i)]}
        for i in range(n)
    }


def test_push_list_makes_one_registry_client_and_heads_concurrently():
    n = 40
    engine = FakeEngine(_images(n))
    registry = FakeRegistry({"app%d:1" % i: "sha256:%064d" % i for i in range(n)}, delay=0.02)
    made: list[str] = []

    def factory(name: str) -> FakeRegistry:
        made.append(name)
        return registry

    result = push_images(engine, ["localhost:5000/app%d:1" % i for i in range(n)], factory, workers=2)
    assert made == ["localhost:5000"]
    assert engine.index_calls == 1
    assert registry.peak >= min(HEAD_WORKERS, n) // 2  # HEADs overlap, beyond the 2 push workers
    assert result["changed"] is False
    assert [r["name"] for r in result["images"]] == ["localhost:5000/app%d:1" % i for i in range(n)]


def test_push_failure_reports_every_image_in_order():
    n = 6
    engine = FakeEngine(_images(n), refuse={"localhost:5000/app2:1", "localhost:5000/app4:1"})
    registry = FakeRegistry({})
    with pytest.raises(ItemsFailed) as failed:
        push_images(engine, ["localhost:5000/app%d:1" % i for i in range(n)], lambda name: registry, workers=3)
    assert "app2" in str(failed.value) and "app4" in str(failed.value)
    results = failed.value.results
    assert [r["name"] for r in results] == ["localhost:5000/app%d:1" % i for i in range(n)]
    assert [bool(r.get("failed")) for r in results] == [False, False, True, False, True, False]
    assert sorted(engine.pushed) == sorted("localhost:5000/app%d:1" % i for i in (0, 1, 3, 5))


def test_tag_failure_does_not_hide_the_other_items():
    engine = FakeEngine({"a:1": {"Id": "sha256:a"}, "b:1": {"Id": "sha256:b"}, "c:1": {"Id": "sha256:c"}},
                        refuse={"r:5000/b:1"})
    items = [TagItem("%s:1" % x, ["r:5000/%s:1" % x]) for x in "abc"]
    with pytest.raises(ItemsFailed) as failed:
        tag_images(engine, items)
    assert "r:5000/b:1" in str(failed.value)
    assert engine.tagged == ["r:5000/a:1", "r:5000/c:1"]
    results = failed.value.results
    assert [r["source"] for r in results] == ["a:1", "b:1", "c:1"]
    assert [r["changed"] for r in results] == [True, False, True]
    assert results[1]["failed"] is True


def test_publish_tags_then_pushes_in_one_run_and_is_idempotent():
    engine = FakeEngine({"a:1": {"Id": "sha256:a", "RepoDigests": []}, "b:1": {"Id": "sha256:b", "RepoDigests": []}})
    registry = FakeRegistry({})
    items = [TagItem("a:1", ["r:5000/a:1"]), TagItem("b:1", ["r:5000/b:1", "r:5000/b:latest"])]
    result = publish_images(engine, items, lambda name: registry)
    assert result["changed"] is True
    assert result["tagged"] == ["r:5000/a:1", "r:5000/b:1", "r:5000/b:latest"]
    assert [r["name"] for r in result["images"]] == result["tagged"]
    assert all(r["tagged"] and r["pushed"] for r in result["images"])
    # the registry now holds what the engine recorded: nothing to do the second time
    for name in ("a", "b"):
        engine.images["%s:1" % name]["RepoDigests"] = ["r:5000/%s@sha256:%s" % (name, "d" * 64)]
    registry.held.update({"a:1": "sha256:" + "d" * 64, "b:1": "sha256:" + "d" * 64, "b:latest": "sha256:" + "d" * 64})
    again = publish_images(engine, items, lambda name: registry)
    assert again["changed"] is False and again["tagged"] == [] and again["pushed"] == [] and again["actions"] == []


def test_publish_check_mode_tags_and_pushes_nothing():
    engine = FakeEngine({"a:1": {"Id": "sha256:a", "RepoDigests": []}})
    result = publish_images(engine, [TagItem("a:1", ["r:5000/a:1"])], lambda name: FakeRegistry({}), check_mode=True)
    assert result["changed"] is True and result["pushed"] == ["r:5000/a:1"]
    assert result["actions"] == ["tag a:1 as r:5000/a:1", "push r:5000/a:1 (registry lacked the tag)"]
    assert engine.tagged == [] and engine.pushed == []
