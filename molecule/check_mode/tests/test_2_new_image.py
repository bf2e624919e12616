"""Phase "new-image": after a real converge, site.yml in check mode with one new image reports exactly that image as
would-push and leaves the registry (content and container) as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from moltest import inspect

pytestmark = pytest.mark.phase("new-image")


@pytest.fixture(scope="module")
def snapshot(mol_vars):
    """The registry and its container just before the check run (written by side_effect.yml)."""
    return json.loads(Path(mol_vars["mol_root"], "snapshot-new-image.json").read_text(encoding="utf-8"))


def name(mol_vars, image):
    return "%s/%s:%s" % (mol_vars["publish_registry"], image.get("repository") or image["name"], image["tag"])


def test_exactly_the_new_image_would_be_pushed(report, mol_vars):
    new = [name(mol_vars, image) for image in mol_vars["mol_publish_new"]]
    assert len(new) == 1
    assert report["check_mode"] is True
    assert report["pushed"]["pushed"] == new
    assert [image["name"] for image in report["pushed"]["images"] if image["changed"]] == new
    assert report["tagged"]["tagged"] == new


def test_registry_container_would_not_change(report):
    assert report["registry_container"]["changed"] is False


def test_registry_content_is_unchanged(registry, snapshot, mol_vars):
    assert registry.snapshot() == snapshot["registry"]
    # ...and it is what the real converge pushed: the base images, not the new one.
    base = {image.get("repository") or image["name"] for image in mol_vars["mol_publish_base"]}
    assert sorted(snapshot["registry"]) == sorted(base)


def test_registry_container_is_unchanged(host, snapshot, mol_vars):
    state = inspect(host, "--type", "container", mol_vars["registry_container_name"])
    assert {"Id": state["Id"], "StartedAt": state["State"]["StartedAt"]} == snapshot["container"]
    assert state["State"]["Running"] is True


def test_new_image_not_tagged_for_the_registry(host, mol_vars):
    for image in mol_vars["mol_publish_new"]:
        assert inspect(host, "--type", "image", name(mol_vars, image)) is None
