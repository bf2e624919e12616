"""push_images in check mode: targets not tagged yet (sources) and a registry that does not exist yet."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.publish import ItemsFailed, push_images
from ansible_collections.dockhand.registry.plugins.module_utils.transport import RegistryUnreachable

ALPHA = {"Id": "sha256:" + "a" * 64, "RepoDigests": ["localhost:5000/alpha@sha256:" + "d" * 64]}
BETA = {"Id": "sha256:" + "b" * 64, "RepoDigests": []}


class FakeEngine:
    def __init__(self, images: dict[str, dict[str, Any]]) -> None:
        self.images = images
        self.pushed: list[str] = []

    def image_index(self) -> dict[str, dict[str, Any]]:
        return dict(self.images)

    def image(self, ref: str) -> dict[str, Any] | None:
        return self.images.get(ref)

    def push(self, name: str, tag: str, auth: Any = None) -> str:
        self.pushed.append("%s:%s" % (name, tag))
        return "sha256:" + "e" * 64


class FakeRegistry:
    # push_images settles each registry's scheme once, through this property, before the HEADs.
    base_url = "http://fake"

    def __init__(self, digests: dict[str, str] | None) -> None:
        self.digests = digests

    def holds_image(self, repository, manifest_digest, image_id):
        # These fakes hold manifests only by digest, no configs: the registry holds the image when it is the same ID.
        return manifest_digest == image_id

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        if self.digests is None:
            raise RegistryUnreachable("registry localhost:5000 is unreachable")
        return self.digests.get("%s:%s" % (repository, tag))


def run(engine: FakeEngine, digests: dict[str, str] | None, names: list[str], **kwargs: Any) -> dict[str, Any]:
    return push_images(engine, names, registry_factory=lambda registry: FakeRegistry(digests), **kwargs)


def test_check_mode_looks_up_an_untagged_target_through_its_source():
    engine = FakeEngine({"alpha:1.0": ALPHA, "beta:1.0": BETA, "localhost:5000/alpha:1.0": ALPHA})
    result = run(
        engine,
        {"alpha:1.0": "sha256:" + "d" * 64},
        ["localhost:5000/alpha:1.0", "localhost:5000/beta:1.0"],
        check_mode=True,
        sources={"localhost:5000/alpha:1.0": "alpha:1.0", "localhost:5000/beta:1.0": "beta:1.0"},
    )
    assert result["pushed"] == ["localhost:5000/beta:1.0"]
    assert result["images"][1]["image_id"] == BETA["Id"]
    assert engine.pushed == []


def test_check_mode_source_carries_the_digest_already_pushed():
    # The target tag is gone locally, but the source's RepoDigests show the registry has it: nothing to push.
    engine = FakeEngine({"alpha:1.0": ALPHA})
    result = run(engine, {"alpha:1.0": "sha256:" + "d" * 64}, ["localhost:5000/alpha:1.0"], check_mode=True,
                 sources={"localhost:5000/alpha:1.0": "alpha:1.0"})
    assert result["pushed"] == []
    assert result["changed"] is False


def test_sources_are_not_used_outside_check_mode():
    engine = FakeEngine({"beta:1.0": BETA})
    with pytest.raises(ItemsFailed, match=r"localhost:5000/beta:1\.0 not found"):
        run(engine, {}, ["localhost:5000/beta:1.0"], sources={"localhost:5000/beta:1.0": "beta:1.0"})


def test_check_mode_takes_an_unreachable_registry_as_empty_and_warns():
    engine = FakeEngine({"localhost:5000/alpha:1.0": ALPHA, "localhost:5000/beta:1.0": BETA})
    result = run(engine, None, ["localhost:5000/alpha:1.0", "localhost:5000/beta:1.0"], check_mode=True)
    assert result["pushed"] == ["localhost:5000/alpha:1.0", "localhost:5000/beta:1.0"]
    assert result["warnings"] == ["check mode: registry localhost:5000 does not answer, taken as empty"]
    assert engine.pushed == []


def test_unreachable_registry_fails_outside_check_mode():
    engine = FakeEngine({"localhost:5000/alpha:1.0": ALPHA})
    with pytest.raises(ItemsFailed, match="unreachable"):
        run(engine, None, ["localhost:5000/alpha:1.0"])
    assert engine.pushed == []
