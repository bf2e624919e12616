"""image_push's decision (the registry's digest of the tag, by HEAD, against the RepoDigest the engine recorded for that
repository) and its check-mode guard, judged on the whole result: what was pushed, with which credentials, what the
result and the diff say, which failures are reported and how."""

from __future__ import annotations

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.publish import ItemsFailed, push_images
from ansible_collections.dockhand.registry.plugins.module_utils.transport import RegistryError, RegistryUnreachable
from ansible_collections.dockhand.registry.tests.unit.plugins.module_utils.test_publish import FakeEngine, sha

REG = "localhost:5100"


class Registry:
    """Tags by ``repo:tag``; holds_image answers only for the repository and digest it holds the image under."""

    def __init__(self, tags: dict[str, str] | None = None, holds: dict[tuple[str, str], str] | None = None,
                 errors: dict[str, Exception] | None = None, warnings: list[str] | None = None) -> None:  # fmt: skip
        self.tags = tags or {}
        self.holds = holds or {}
        self.errors = errors or {}
        self.warnings = warnings or []
        self.base_url = "http://" + REG

    def manifest_digest(self, repository, tag):
        key = "%s:%s" % (repository, tag)
        if key in self.errors:
            raise self.errors[key]
        return self.tags.get(key)

    def holds_image(self, repository, manifest_digest, image_id):
        return self.holds.get((repository, manifest_digest)) == image_id


def engine_with(*images: tuple[str, str, list[str]]) -> FakeEngine:
    engine = FakeEngine(push_digests={})
    for name, image_id, digests in images:
        engine.add(name, image_id, digests)
    return engine


def test_the_registry_digest_against_the_repo_digest_of_that_repository():
    engine = engine_with(
        ("%s/app:1" % REG, sha("1"), ["%s/other@%s" % (REG, sha("a")), "%s/app@%s" % (REG, sha("b"))]),
        ("%s/app:2" % REG, sha("2"), ["%s/app@%s" % (REG, sha("c"))]),
    )
    engine.push_digests = {"%s/app:2" % REG: sha("d")}
    registry = Registry({"app:1": sha("b"), "app:2": sha("e")})
    result = push_images(engine, ["%s/app:1" % REG, "%s/app:2" % REG], lambda address: registry)
    assert engine.pushed == ["%s/app:2" % REG]
    assert result == {
        "changed": True,
        "images": [
            {"name": "%s/app:1" % REG, "registry": REG, "repository": "app", "tag": "1", "image_id": sha("1"),
             "digest_before": sha("b"), "digest": sha("b"), "pushed": False, "changed": False},
            {"name": "%s/app:2" % REG, "registry": REG, "repository": "app", "tag": "2", "image_id": sha("2"),
             "digest_before": sha("e"), "digest": sha("d"), "pushed": True, "changed": True},
        ],
        "pushed": ["%s/app:2" % REG],
        "actions": ["push %s/app:2 (registry had %s)" % (REG, sha("e"))],
        "diff": {"before": {"%s/app:1" % REG: sha("b"), "%s/app:2" % REG: sha("e")},
                 "after": {"%s/app:1" % REG: sha("b"), "%s/app:2" % REG: sha("d")}},
    }  # fmt: skip


def test_check_mode_pushes_nothing_and_predicts_a_new_digest():
    engine = engine_with(("%s/app:1" % REG, sha("1"), []))
    result = push_images(engine, ["%s/app:1" % REG], lambda address: Registry(), check_mode=True)
    assert engine.pushed == []
    assert result["images"][0]["digest"] is None and result["images"][0]["changed"] is True
    assert result["actions"] == ["push %s/app:1 (registry lacked the tag)" % REG]
    assert result["diff"] == {"before": {"%s/app:1" % REG: None}, "after": {"%s/app:1" % REG: "(new digest after push)"}}


def test_a_loaded_image_the_registry_holds_under_that_repository_is_not_pushed():
    engine = engine_with(("%s/app:1" % REG, sha("1"), []), ("%s/other:1" % REG, sha("1"), []))
    registry = Registry({"app:1": sha("m"), "other:1": sha("m")}, holds={("app", sha("m")): sha("1")})
    result = push_images(engine, ["%s/app:1" % REG, "%s/other:1" % REG], lambda address: registry, check_mode=True)
    assert [(i["name"], i["pushed"]) for i in result["images"]] == [("%s/app:1" % REG, False), ("%s/other:1" % REG, True)]


def test_the_push_gets_the_registry_credentials_and_a_push_with_the_same_digest_is_no_change():
    engine = engine_with(("%s/app:1" % REG, sha("1"), []))
    engine.push_digests = {"%s/app:1" % REG: sha("m")}
    asked: list[str] = []
    seen: list[object] = []
    original = engine.push
    engine.push = lambda repository, tag, auth_config=None: seen.append(auth_config) or original(repository, tag, auth_config)
    result = push_images(engine, ["%s/app:1" % REG], lambda address: Registry({"app:1": sha("m")}),
                         auth_config=lambda registry: asked.append(registry) or {"username": "u"})  # fmt: skip
    assert asked == [REG] and seen == [{"username": "u"}]
    assert result["images"][0]["pushed"] is True and result["images"][0]["changed"] is False and result["changed"] is False


def test_failed_pushes_are_results_and_one_message_names_them_all():
    engine = engine_with(("%s/a:1" % REG, sha("1"), []), ("%s/b:1" % REG, sha("2"), []), ("%s/c:1" % REG, sha("3"), []))
    engine.push_digests = {"%s/b:1" % REG: sha("b")}
    engine.push_errors = {"%s/a:1" % REG: "denied", "%s/c:1" % REG: "blob upload unknown"}
    with pytest.raises(ItemsFailed) as caught:
        push_images(engine, ["%s/a:1" % REG, "%s/b:1" % REG, "%s/c:1" % REG], lambda address: Registry(), workers=1)
    assert str(caught.value) == "2 pushes failed: push of %s/a:1 refused: denied; push of %s/c:1 refused: blob upload unknown" % (REG, REG)
    results = caught.value.results
    assert [(r["name"], r.get("failed", False), r["digest"]) for r in results] == [
        ("%s/a:1" % REG, True, None), ("%s/b:1" % REG, False, sha("b")), ("%s/c:1" % REG, True, None)]  # fmt: skip


def test_registry_errors_stop_everything_before_a_push_each_named_once_in_order():
    engine = engine_with(("%s/z:1" % REG, sha("1"), []), ("%s/a:1" % REG, sha("2"), []), ("%s/m:1" % REG, sha("3"), []))
    registry = Registry(errors={"z:1": RegistryError("refused z"), "a:1": RegistryUnreachable("down"), "m:1": RegistryError("refused m")})
    with pytest.raises(ItemsFailed) as caught:
        push_images(engine, ["%s/z:1" % REG, "%s/a:1" % REG, "%s/m:1" % REG], lambda address: registry)
    assert str(caught.value) == "3 images failed: %s/z:1: refused z; %s/a:1: down; %s/m:1: refused m" % (REG, REG, REG)
    assert engine.pushed == []


def test_check_mode_takes_an_unreachable_registry_as_empty_with_one_warning_and_passes_client_warnings_on():
    engine = engine_with(("%s/a:1" % REG, sha("1"), []), ("%s/b:1" % REG, sha("2"), []))
    registry = Registry(errors={"a:1": RegistryUnreachable("down"), "b:1": RegistryUnreachable("down")}, warnings=["plain HTTP"])
    result = push_images(engine, ["%s/a:1" % REG, "%s/b:1" % REG], lambda address: registry, check_mode=True)
    assert result["warnings"] == ["check mode: registry %s does not answer, taken as empty" % REG, "plain HTTP"]
    assert result["pushed"] == ["%s/a:1" % REG, "%s/b:1" % REG] and engine.pushed == []


def test_check_mode_and_failed_pushes_never_claim_the_old_digest_as_the_result():
    engine = engine_with(("%s/app:1" % REG, sha("1"), []), ("%s/app:2" % REG, sha("2"), []))
    registry = Registry({"app:1": sha("o"), "app:2": sha("p")})
    check = push_images(engine, ["%s/app:1" % REG], lambda address: registry, check_mode=True)
    assert check["images"][0]["digest"] is None and check["diff"]["after"] == {"%s/app:1" % REG: "(new digest after push)"}
    engine.push_errors = {"%s/app:2" % REG: "denied"}
    with pytest.raises(ItemsFailed) as caught:
        push_images(engine, ["%s/app:2" % REG], lambda address: registry)
    assert caught.value.results[0]["digest"] is None and caught.value.results[0]["digest_before"] == sha("p")
