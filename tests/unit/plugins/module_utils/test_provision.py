"""provision_image with a fake engine."""

from __future__ import annotations

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineError
from ansible_collections.dockhand.registry.plugins.module_utils.provision import provision_image

OLD = "sha256:" + "1" * 64
NEW = "sha256:" + "2" * 64


class FakeEngine:
    def __init__(self, images=None, build_id=NEW, pull_error=True, archive_holds=None):
        self.images = dict(images or {})
        self.build_id = build_id
        self.pull_error = pull_error
        self.archive_holds = archive_holds or {}
        self.calls = []
        self.labels = {}

    def image_id(self, ref):
        return self.images.get(ref)

    def image(self, ref):
        if ref not in self.images:
            return None
        return {"Id": self.images[ref], "Config": {"Labels": self.labels.get(ref)}}

    def pull(self, repository, tag):
        self.calls.append("pull %s:%s" % (repository, tag))
        if self.pull_error:
            raise EngineError("pull of %s:%s failed: no route" % (repository, tag))
        self.images["%s:%s" % (repository, tag)] = NEW
        return NEW

    def load(self, archive):
        self.calls.append("load " + archive)
        self.images.update(self.archive_holds)
        return list(self.archive_holds)

    def build(self, path, tag, dockerfile=None, labels=None):
        self.calls.append("build %s %s" % (path, tag))
        self.images[tag] = self.build_id
        self.labels[tag] = dict(labels or {})
        return self.build_id


def test_present_is_unchanged():
    engine = FakeEngine({"demo:1": OLD})
    result = provision_image(engine, "demo:1")
    assert (result["changed"], result["source"], result["image_id"]) == (False, "local", OLD)
    assert result["actions"] == []
    assert engine.calls == []


def test_force_build_unchanged_when_same_id(tmp_path):
    engine = FakeEngine({"demo:1": OLD}, build_id=OLD)
    result = provision_image(engine, "demo:1", build_path=str(tmp_path), force_build=True, pull=False)
    assert result["changed"] is False and result["source"] == "build"
    engine.build_id = NEW
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    result = provision_image(engine, "demo:1", build_path=str(tmp_path), force_build=True, pull=False)
    assert result["changed"] is True and result["image_id"] == NEW


def test_pull_fails_then_archive(tmp_path):
    archive = tmp_path / "a.tar"
    archive.write_bytes(b"x")
    engine = FakeEngine(archive_holds={"demo:1": NEW})
    result = provision_image(engine, "demo:1", archive=str(archive))
    assert result["source"] == "archive" and result["changed"] is True
    assert result["attempts"] == ["pull of demo:1 failed: no route"]
    assert result["actions"] == ["load demo:1 from archive %s" % archive]


def test_archive_without_the_image(tmp_path):
    archive = tmp_path / "a.tar"
    archive.write_bytes(b"x")
    engine = FakeEngine(archive_holds={"other:1": NEW})
    with pytest.raises(DockhandError, match=r"does not hold demo:1 .*other:1"):
        provision_image(engine, "demo:1", archive=str(archive), pull=False)


def test_missing_archive_names_it(tmp_path):
    with pytest.raises(DockhandError, match=r"image archive .*nope.tar does not exist"):
        provision_image(FakeEngine(), "demo:1", archive=str(tmp_path / "nope.tar"))


def test_missing_build_context(tmp_path):
    with pytest.raises(DockhandError, match=r"build context .*nope is not a directory"):
        provision_image(FakeEngine(), "demo:1", build_path=str(tmp_path / "nope"))


def test_bad_name_is_one_line_error():
    with pytest.raises(DockhandError, match="'Demo:1'"):
        provision_image(FakeEngine(), "Demo:1")


def test_allow_missing_and_failure():
    assert provision_image(FakeEngine(), "demo:1", allow_missing=True)["present"] is False
    with pytest.raises(DockhandError, match=r"image demo:1 is not present .*no route"):
        provision_image(FakeEngine(), "demo:1")


def test_check_mode_does_nothing(tmp_path):
    engine = FakeEngine({"demo:1": OLD})
    result = provision_image(engine, "demo:1", build_path=str(tmp_path), force_build=True, check_mode=True)
    assert result["changed"] is True and engine.calls == []
    engine = FakeEngine()
    result = provision_image(engine, "demo:1", check_mode=True)
    assert result["changed"] is True and result["source"] == "pull" and engine.calls == []
