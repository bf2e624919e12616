"""Check mode tells the truth: a build of an unchanged context is not a change, in check mode or not; a
digest-pinned image is pulled by its digest; a push predicted in check mode is the push the real run does."""

from __future__ import annotations

import os

from ansible_collections.dockhand.registry.plugins.module_utils.provision import CONTEXT_LABEL, context_digest, provision_image
from ansible_collections.dockhand.registry.tests.unit.plugins.module_utils.test_provision import NEW, OLD, FakeEngine


def _context(tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY f /f\n")
    (ctx / "f").write_text("one\n")
    return ctx


def test_check_mode_build_same_context_not_changed(tmp_path):
    ctx = _context(tmp_path)
    engine = FakeEngine(build_id=NEW)
    first = provision_image(engine, "demo:1", build_path=str(ctx), force_build=True, pull=False)
    assert first["changed"] is True
    assert engine.labels["demo:1"] == {CONTEXT_LABEL: context_digest(str(ctx))}
    checked = provision_image(engine, "demo:1", build_path=str(ctx), force_build=True, pull=False, check_mode=True)
    real = provision_image(engine, "demo:1", build_path=str(ctx), force_build=True, pull=False)
    assert (checked["changed"], real["changed"]) == (False, False)
    assert engine.calls == ["build %s demo:1" % ctx], "built once"


def test_check_mode_build_changed_context_predicts_build(tmp_path):
    ctx = _context(tmp_path)
    engine = FakeEngine(build_id=OLD)
    provision_image(engine, "demo:1", build_path=str(ctx), force_build=True, pull=False)
    (ctx / "f").write_text("two\n")
    engine.build_id = NEW
    checked = provision_image(engine, "demo:1", build_path=str(ctx), force_build=True, pull=False, check_mode=True)
    assert checked["changed"] is True and len(engine.calls) == 1
    real = provision_image(engine, "demo:1", build_path=str(ctx), force_build=True, pull=False)
    assert real["changed"] is True and real["image_id"] == NEW


def test_check_mode_build_context_not_copied_yet(tmp_path):
    engine = FakeEngine()
    checked = provision_image(engine, "demo:1", build_path=str(tmp_path / "absent"), force_build=True, pull=False,
                              check_mode=True)
    assert checked["changed"] is True and engine.calls == []


def test_context_digest_sees_content_mode_names_and_dockerfile(tmp_path):
    ctx = _context(tmp_path)
    base = context_digest(str(ctx))
    assert context_digest(str(ctx)) == base
    assert context_digest(str(ctx), "Other.Dockerfile") != base
    os.chmod(ctx / "f", 0o755)
    assert context_digest(str(ctx)) != base
    os.chmod(ctx / "f", 0o644)
    (ctx / "f").rename(ctx / "g")
    assert context_digest(str(ctx)) != base
    os.utime(ctx / "g", (0, 0))
    (ctx / "g").rename(ctx / "f")
    os.chmod(ctx / "f", 0o644)
    again = context_digest(str(ctx))
    (ctx / "f").touch()
    assert context_digest(str(ctx)) == again, "times do not count"


def test_digest_pinned_registry_image_pulled_by_digest():
    digest = "sha256:" + "a" * 64
    engine = FakeEngine(pull_error=False)
    result = provision_image(engine, "registry@" + digest)
    assert engine.calls == ["pull registry:%s" % digest]
    assert result["source"] == "pull" and result["changed"] is True


# -- image_push / image_publish: the registry holds the image, the engine lacks the RepoDigest ------------
class _Registry:
    base_url = "http://fake"

    def __init__(self, tags, configs):
        self.tags, self.configs, self.asked = tags, configs, []

    def manifest_digest(self, repository, tag):
        return self.tags.get("%s:%s" % (repository, tag))

    def manifest_config_digest(self, repository, reference):
        self.asked.append(reference)
        return self.configs.get(reference)

    def holds_image(self, repository, manifest_digest, image_id):
        from ansible_collections.dockhand.registry.plugins.module_utils.registry import RegistryClient

        return RegistryClient.holds_image(self, repository, manifest_digest, image_id)


class _Engine:
    def __init__(self, images):
        self.images, self.pushed = images, []

    def image_index(self):
        return self.images

    def image(self, ref):
        return self.images.get(ref)

    def push(self, repository, tag, auth_config=None):
        self.pushed.append("%s:%s" % (repository, tag))
        return "sha256:" + "m" * 64


def test_check_mode_push_after_docker_load_agrees():
    from ansible_collections.dockhand.registry.plugins.module_utils.publish import push_images

    image_id = "sha256:" + "c" * 64
    manifest = "sha256:" + "m" * 64
    loaded = {"localhost:5000/app:1": {"Id": image_id, "RepoDigests": []}}  # docker load: no RepoDigest
    outcomes = []
    for check_mode in (True, False):
        engine = _Engine(loaded)
        registry = _Registry({"app:1": manifest}, {manifest: image_id})
        outcomes.append(push_images(engine, ["localhost:5000/app:1"], lambda r, reg=registry: reg, check_mode=check_mode))
        assert engine.pushed == []
    assert [(o["changed"], o["pushed"]) for o in outcomes] == [(False, []), (False, [])]


def test_check_mode_push_other_image_under_tag_still_pushed():
    from ansible_collections.dockhand.registry.plugins.module_utils.publish import push_images

    image_id = "sha256:" + "c" * 64
    manifest = "sha256:" + "m" * 64
    loaded = {"localhost:5000/app:1": {"Id": image_id, "RepoDigests": []}}
    registry = _Registry({"app:1": manifest}, {manifest: "sha256:" + "d" * 64})
    result = push_images(_Engine(loaded), ["localhost:5000/app:1"], lambda r: registry, check_mode=True)
    assert result["changed"] is True and result["pushed"] == ["localhost:5000/app:1"]
