"""tag_images and push_images with a fake engine and fake registries."""

from __future__ import annotations

import threading

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineError
from ansible_collections.dockhand.registry.plugins.module_utils.publish import (
    ItemsFailed,
    TagItem,
    push_images,
    repo_digest,
    tag_images,
)
from ansible_collections.dockhand.registry.plugins.module_utils.transport import RegistryAuthError

REG = "localhost:5100"


def sha(char: str) -> str:
    return "sha256:" + char * 64


class FakeEngine:
    """Local images by tag; ``tag`` and ``push`` record what they were asked."""

    def __init__(self, images: dict[str, dict] | None = None, push_digests: dict[str, str] | None = None) -> None:
        self.images = images or {}
        self.push_digests = push_digests or {}
        self.tagged: list[tuple[str, str, str]] = []
        self.pushed: list[str] = []
        self.push_errors: dict[str, str] = {}
        self.lock = threading.Lock()

    def add(self, tag: str, image_id: str, repo_digests: list[str] | None = None) -> None:
        self.images[tag] = {"Id": image_id, "RepoDigests": repo_digests or [], "RepoTags": [tag]}

    def image_index(self):
        return dict(self.images)

    def image(self, ref):
        if ref in self.images:
            return self.images[ref]
        for image in self.images.values():
            if image["Id"] == ref or image["Id"].startswith("sha256:" + ref):
                return image
        return None

    def tag(self, image_id, repository, tag):
        self.tagged.append((image_id, repository, tag))
        self.images["%s:%s" % (repository, tag)] = {"Id": image_id, "RepoDigests": [], "RepoTags": []}

    def push(self, repository, tag, auth_config=None):
        name = "%s:%s" % (repository, tag)
        with self.lock:
            self.pushed.append(name)
        if name in self.push_errors:
            raise EngineError("push of %s refused: %s" % (name, self.push_errors[name]))
        return self.push_digests[name]


class FakeRegistry:
    # push_images settles each registry's scheme once, through this property, before the HEADs.
    base_url = "http://fake"

    def __init__(self, tags: dict[str, str] | None = None, error: Exception | None = None) -> None:
        self.tags = tags or {}
        self.error = error
        self.asked: list[str] = []

    def holds_image(self, repository, manifest_digest, image_id):
        # These fakes hold manifests only by digest, no configs: the registry holds the image when it is the same ID.
        return manifest_digest == image_id

    def manifest_digest(self, repository, tag):
        self.asked.append("%s:%s" % (repository, tag))
        if self.error:
            raise self.error
        return self.tags.get("%s:%s" % (repository, tag))


def factory(registry: FakeRegistry):
    return lambda address: registry


# -- image_push ------------------------------------------------------------------------
def test_unchanged_when_repo_digest_equals_registry_digest():
    engine = FakeEngine()
    engine.add(REG + "/demo:1.0", sha("a"), [REG + "/demo@" + sha("1")])
    registry = FakeRegistry({"demo:1.0": sha("1")})
    result = push_images(engine, [REG + "/demo:1.0"], factory(registry))
    assert result["changed"] is False
    assert result["pushed"] == []
    assert engine.pushed == []
    assert result["images"][0]["digest"] == sha("1")


def test_changed_when_tag_absent():
    engine = FakeEngine(push_digests={REG + "/demo:1.0": sha("1")})
    engine.add(REG + "/demo:1.0", sha("a"))
    result = push_images(engine, [REG + "/demo:1.0"], factory(FakeRegistry()))
    assert result["changed"] is True
    assert engine.pushed == [REG + "/demo:1.0"]
    item = result["images"][0]
    assert (item["digest_before"], item["digest"], item["pushed"], item["changed"]) == (None, sha("1"), True, True)
    assert result["diff"] == {"before": {REG + "/demo:1.0": None}, "after": {REG + "/demo:1.0": sha("1")}}
    assert result["actions"] == ["push %s/demo:1.0 (registry lacked the tag)" % REG]


def test_new_tag_with_existing_layers_is_changed():
    # demo:1.0 is in the registry; demo:latest names the same image and is not: the engine
    # only says "Layer already exists", yet a manifest is written for the new tag.
    engine = FakeEngine(push_digests={REG + "/demo:latest": sha("1")})
    engine.add(REG + "/demo:1.0", sha("a"), [REG + "/demo@" + sha("1")])
    engine.add(REG + "/demo:latest", sha("a"), [REG + "/demo@" + sha("1")])
    registry = FakeRegistry({"demo:1.0": sha("1")})
    result = push_images(engine, [REG + "/demo:1.0", REG + "/demo:latest"], factory(registry))
    assert engine.pushed == [REG + "/demo:latest"]
    assert [i["changed"] for i in result["images"]] == [False, True]
    assert result["changed"] is True


def test_moved_tag_is_changed():
    engine = FakeEngine(push_digests={REG + "/demo:1.0": sha("2")})
    engine.add(REG + "/demo:1.0", sha("b"))  # rebuilt image: no RepoDigest for the repository yet
    registry = FakeRegistry({"demo:1.0": sha("1")})
    result = push_images(engine, [REG + "/demo:1.0"], factory(registry))
    assert result["images"][0]["digest_before"] == sha("1")
    assert result["images"][0]["digest"] == sha("2")
    assert result["changed"] is True


def test_repo_digest_of_another_repository_does_not_count():
    engine = FakeEngine(push_digests={REG + "/copy:1": sha("1")})
    engine.add(REG + "/copy:1", sha("a"), [REG + "/demo@" + sha("1")])
    registry = FakeRegistry({"copy:1": sha("1")})
    # The registry's digest equals a RepoDigest of another repository: not proof the tag is there.
    result = push_images(engine, [REG + "/copy:1"], factory(registry))
    assert engine.pushed == [REG + "/copy:1"]
    # Pushed, but the registry's digest for the tag did not move: not a change.
    assert result["changed"] is False


def test_check_mode_pushes_nothing_and_lists_would_push():
    engine = FakeEngine()
    engine.add(REG + "/a:1", sha("a"))
    engine.add(REG + "/b:1", sha("b"), [REG + "/b@" + sha("2")])
    registry = FakeRegistry({"b:1": sha("2")})
    result = push_images(engine, [REG + "/a:1", REG + "/b:1"], factory(registry), check_mode=True)
    assert engine.pushed == []
    assert result["changed"] is True
    assert result["pushed"] == [REG + "/a:1"]
    assert [i["pushed"] for i in result["images"]] == [True, False]


def test_check_mode_all_present_is_not_changed():
    engine = FakeEngine()
    engine.add(REG + "/b:1", sha("b"), [REG + "/b@" + sha("2")])
    result = push_images(engine, [REG + "/b:1"], factory(FakeRegistry({"b:1": sha("2")})), check_mode=True)
    assert result["changed"] is False and result["pushed"] == []


@pytest.mark.parametrize(
    "bad, message",
    [
        ("localhost:5100/UPPER:1", "'localhost:5100/UPPER:1'"),
        ("demo:1", "image demo:1 names no registry"),
        (REG + "/demo@" + sha("1"), "push a tag, not a digest"),
    ],
)
def test_one_bad_reference_pushes_nothing(bad, message):
    engine = FakeEngine(push_digests={REG + "/ok:1": sha("1")})
    engine.add(REG + "/ok:1", sha("a"))
    registry = FakeRegistry()
    with pytest.raises(ItemsFailed) as err:
        push_images(engine, [REG + "/ok:1", bad], factory(registry))
    assert message in str(err.value)
    assert engine.pushed == []
    assert registry.asked == []


def test_missing_local_image_pushes_nothing():
    engine = FakeEngine(push_digests={REG + "/ok:1": sha("1")})
    engine.add(REG + "/ok:1", sha("a"))
    registry = FakeRegistry()
    with pytest.raises(ItemsFailed, match="local image localhost:5100/missing:2 not found"):
        push_images(engine, [REG + "/ok:1", REG + "/missing:2"], factory(registry))
    assert engine.pushed == []


def test_several_bad_items_all_named():
    engine = FakeEngine()
    with pytest.raises(ItemsFailed) as err:
        push_images(engine, ["a:1", "B", REG + "/x:1"], factory(FakeRegistry()))
    text = str(err.value)
    assert text.startswith("2 images failed")
    assert "a:1" in text and "'B'" in text


def test_refused_login_pushes_nothing():
    engine = FakeEngine(push_digests={REG + "/ok:1": sha("1")})
    engine.add(REG + "/ok:1", sha("a"))
    registry = FakeRegistry(error=RegistryAuthError("registry localhost:5100 refused the login of user 'u'"))
    with pytest.raises(ItemsFailed, match="refused the login"):
        push_images(engine, [REG + "/ok:1"], factory(registry))
    assert engine.pushed == []


def test_results_in_input_order_and_one_failure_does_not_hide_others():
    names = [REG + "/img%d:1" % i for i in range(6)]
    engine = FakeEngine(push_digests={n: sha(str(i)) for i, n in enumerate(names)})
    for i, name in enumerate(names):
        engine.add(name, sha("abcdef"[i]))
    engine.push_errors[names[2]] = "blob upload unknown"
    with pytest.raises(ItemsFailed) as err:
        push_images(engine, names, factory(FakeRegistry()), workers=3)
    assert "localhost:5100/img2:1" in str(err.value)
    assert "blob upload unknown" in str(err.value)
    results = err.value.results
    assert [r["name"] for r in results] == names
    assert [bool(r.get("failed")) for r in results] == [False, False, True, False, False, False]
    assert [r["digest"] for r in results if not r.get("failed")] == [sha(str(i)) for i in (0, 1, 3, 4, 5)]
    assert sorted(engine.pushed) == sorted(names)


def test_duplicates_pushed_once_and_default_tag():
    engine = FakeEngine(push_digests={REG + "/demo:latest": sha("1")})
    engine.add(REG + "/demo:latest", sha("a"))
    result = push_images(engine, [REG + "/demo", REG + "/demo:latest"], factory(FakeRegistry()))
    assert engine.pushed == [REG + "/demo:latest"]
    assert [i["name"] for i in result["images"]] == [REG + "/demo:latest"]


def test_repo_digest_exact_repository():
    image = {"RepoDigests": [REG + "/demo/sub@" + sha("1"), REG + "/demo@" + sha("2")]}
    assert repo_digest(image, REG + "/demo") == sha("2")
    assert repo_digest(image, REG + "/dem") is None
    assert repo_digest({"RepoDigests": None}, "x") is None


# -- image_tag -------------------------------------------------------------------------
def test_tag_new_target_changed_then_not():
    engine = FakeEngine()
    engine.add("demo:1.0", sha("a"))
    result = tag_images(engine, [TagItem("demo:1.0", [REG + "/demo:1.0", REG + "/demo"])])
    assert result["changed"] is True
    assert result["tagged"] == [REG + "/demo:1.0", REG + "/demo:latest"]
    assert engine.tagged == [(sha("a"), REG + "/demo", "1.0"), (sha("a"), REG + "/demo", "latest")]
    again = tag_images(engine, [TagItem("demo:1.0", [REG + "/demo:1.0", REG + "/demo"])])
    assert result["actions"] == ["tag demo:1.0 as %s/demo:1.0" % REG, "tag demo:1.0 as %s/demo:latest" % REG]
    assert again["changed"] is False and again["tagged"] == [] and again["actions"] == []


def test_tag_moved_target_changed():
    engine = FakeEngine()
    engine.add("demo:2.0", sha("b"))
    engine.add(REG + "/demo:1.0", sha("a"))
    result = tag_images(engine, [TagItem("demo:2.0", [REG + "/demo:1.0"])])
    assert result["changed"] is True
    assert result["images"][0]["targets"][0]["before"] == sha("a")
    assert result["diff"]["before"] == {REG + "/demo:1.0": sha("a")}
    assert result["diff"]["after"] == {REG + "/demo:1.0": sha("b")}


def test_tag_check_mode_tags_nothing():
    engine = FakeEngine()
    engine.add("demo:1.0", sha("a"))
    result = tag_images(engine, [TagItem("demo:1.0", [REG + "/demo:1.0"])], check_mode=True)
    assert result["changed"] is True and result["tagged"] == [REG + "/demo:1.0"]
    assert engine.tagged == []


def test_tag_validate_first():
    engine = FakeEngine()
    engine.add("demo:1.0", sha("a"))
    with pytest.raises(ItemsFailed, match="source image nothere:1 not found"):
        tag_images(engine, [TagItem("demo:1.0", [REG + "/demo:1.0"]), TagItem("nothere:1", [REG + "/x:1"])])
    assert engine.tagged == []
    with pytest.raises(ItemsFailed, match="'localhost:5100/Bad:1'"):
        tag_images(engine, [TagItem("demo:1.0", [REG + "/demo:1.0"]), TagItem("demo:1.0", [REG + "/Bad:1"])])
    assert engine.tagged == []


def test_tag_results_in_input_order():
    engine = FakeEngine()
    for i in range(4):
        engine.add("img%d:1" % i, sha("abcd"[i]))
    items = [TagItem("img%d:1" % i, [REG + "/img%d:1" % i]) for i in (3, 1, 0, 2)]
    result = tag_images(engine, items)
    assert [r["source"] for r in result["images"]] == ["img3:1", "img1:1", "img0:1", "img2:1"]


def test_tag_source_by_image_id():
    engine = FakeEngine()
    engine.add("demo:1.0", sha("a"))
    result = tag_images(engine, [TagItem(sha("a"), [REG + "/demo:1.0"])])
    assert engine.tagged == [(sha("a"), REG + "/demo", "1.0")]
    assert result["images"][0]["image_id"] == sha("a")


def test_tag_source_by_short_image_id():
    engine = FakeEngine()
    engine.add("demo:1.0", sha("a"))
    result = tag_images(engine, [TagItem("aaaaaaaaaaaa", [REG + "/demo:1.0"])])
    assert engine.tagged == [(sha("a"), REG + "/demo", "1.0")]
    assert result["images"][0]["image_id"] == sha("a")


def test_tag_target_with_digest_refused():
    engine = FakeEngine()
    engine.add("demo:1.0", sha("a"))
    bad = REG + "/demo@" + sha("1")
    with pytest.raises(ItemsFailed) as err:
        tag_images(engine, [TagItem("demo:1.0", [REG + "/demo:1.0", bad])])
    assert bad in str(err.value)
    assert engine.tagged == []


def test_tag_same_target_for_two_images_refused():
    engine = FakeEngine()
    engine.add("a:1", sha("a"))
    engine.add("b:1", sha("b"))
    with pytest.raises(ItemsFailed, match="target localhost:5100/x:1 is given for two different images"):
        tag_images(engine, [TagItem("a:1", [REG + "/x:1"]), TagItem("b:1", [REG + "/x:1"])])
    assert engine.tagged == []


def test_tag_same_target_twice_for_one_image_tags_once():
    engine = FakeEngine()
    engine.add("a:1", sha("a"))
    result = tag_images(engine, [TagItem("a:1", [REG + "/x:1"]), TagItem(sha("a"), [REG + "/x:1"])])
    assert engine.tagged == [(sha("a"), REG + "/x", "1")]
    assert result["tagged"] == [REG + "/x:1"]
    assert result["diff"]["before"] == {REG + "/x:1": None}
    again = tag_images(engine, [TagItem("a:1", [REG + "/x:1"]), TagItem(sha("a"), [REG + "/x:1"])])
    assert again["changed"] is False
