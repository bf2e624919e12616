"""registry_replication's argument handling: one-line errors before any registry is asked, passwords never shown."""

from __future__ import annotations

import json

from ansible_collections.dockhand.registry.plugins.module_utils import replication
from ansible_collections.dockhand.registry.plugins.modules import registry_replication
from ansible_collections.dockhand.registry.tests.support.unit import module_fails

SOURCE = {"registry": "upstream.example:5000", "repositories": ["team/app"], "tag_semver": ">=1"}


def fails(args, capsys, *fragments) -> dict:
    return module_fails(registry_replication, "RegistryClient", dict({"registry": "localhost:5000"}, **args), capsys, *fragments,
                        where=replication)


def test_a_source_needs_registry_and_repositories(capsys):
    fails({"sources": [{"repositories": ["a"]}]}, capsys, "registry")
    fails({"sources": [{"registry": "upstream.example:5000"}]}, capsys, "repositories")


def test_bad_range_named_and_password_hidden(capsys):
    result = fails({"sources": [dict(SOURCE, tag_semver="^1", username="u", password="hunter2-secret")]}, capsys,
                   "replication source 1 (upstream.example:5000)", "invalid tag_semver '^1'")
    assert "hunter2-secret" not in json.dumps(result)


def test_credentials_file_readable_by_others_refused(capsys, tmp_path):
    secret = tmp_path / "login.json"
    secret.write_text('{"username": "u", "password": "p"}')
    secret.chmod(0o640)
    fails({"sources": [dict(SOURCE, credentials_file=str(secret))]}, capsys, "is readable by others (mode 0640): make it 0600")


def test_workers_bound(capsys):
    fails({"sources": [SOURCE], "workers": 65}, capsys, "workers must be between 1 and 64, got 65")
