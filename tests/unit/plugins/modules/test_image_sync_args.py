"""image_sync's argument handling: one-line errors before any registry is asked."""

from __future__ import annotations

import json

from ansible_collections.dockhand.registry.plugins.module_utils import registry
from ansible_collections.dockhand.registry.plugins.modules import image_sync
from ansible_collections.dockhand.registry.tests.support.unit import module_fails


def fails(args, capsys, *fragments) -> dict:
    return module_fails(image_sync, "RegistryClient", args, capsys, *fragments, where=registry)


def test_images_and_repository_exclusive(capsys):
    fails({"images": [], "src_repository": "localhost:5000/a", "dest_repository": "localhost:5001/a", "tags": ["1"]}, capsys, "mutually exclusive")


def test_repository_needs_tags_or_pattern(capsys):
    fails({"src_repository": "localhost:5000/a", "dest_repository": "localhost:5001/a"}, capsys, "needs tags or tag_pattern")


def test_repository_needs_dest(capsys):
    fails({"src_repository": "localhost:5000/a", "tags": ["1"]}, capsys, "dest_repository")


def test_tags_and_pattern_exclusive(capsys):
    fails(
        {"src_repository": "localhost:5000/a", "dest_repository": "localhost:5001/a", "tags": ["1"], "tag_pattern": "1"},
        capsys,
        "mutually exclusive",
    )


def test_bad_pattern_named_and_password_hidden(capsys):
    result = fails(
        {"src_repository": "localhost:5000/a", "dest_repository": "localhost:5001/a", "tag_pattern": "[",
         "dest_username": "u", "dest_password": "hunter2-secret"},
        capsys,
        "invalid tag_pattern '['",
    )
    assert "hunter2-secret" not in json.dumps(result)


def test_password_needs_user(capsys):
    fails({"images": [], "src_password": "x"}, capsys, "src_username")


def test_bad_semver_range_named_before_any_registry_is_asked(capsys):
    fails({"src_repository": "localhost:5000/a", "dest_repository": "localhost:5001/a", "tag_semver": "^1.2"}, capsys,
          "invalid tag_semver '^1.2'", "PEP 440")


def test_tag_limit_must_be_positive(capsys):
    fails({"src_repository": "localhost:5000/a", "dest_repository": "localhost:5001/a", "tag_limit": 0}, capsys,
          "tag_limit must be 1 or more, got 0")


def test_tags_and_semver_exclusive(capsys):
    fails({"src_repository": "localhost:5000/a", "dest_repository": "localhost:5001/a", "tags": ["1"], "tag_semver": ">=1"},
          capsys, "mutually exclusive")
