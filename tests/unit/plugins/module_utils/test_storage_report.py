"""Storage.report (storage.py), registry_info's storage use: read from a filesystem driver layout built here (blobs,
per repository, uploads)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.dockhand.registry.plugins.module_utils import catalog
from ansible_collections.dockhand.registry.plugins.module_utils.catalog import storage_use
from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError
from ansible_collections.dockhand.registry.plugins.modules import registry_info

V2 = Path("docker", "registry", "v2")


def blob(root: Path, data: bytes) -> str:
    hexdigest = hashlib.sha256(data).hexdigest()
    path = root / V2 / "blobs" / "sha256" / hexdigest[:2] / hexdigest / "data"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return "sha256:" + hexdigest


def link(path: Path, digest: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "link").write_text(digest)


def repository(root: Path, name: str, layers: list[str], manifest: str, tags: list[str]) -> Path:
    repo = root / V2 / "repositories" / name
    for digest in layers:
        link(repo / "_layers" / "sha256" / digest.split(":")[1], digest)
    link(repo / "_manifests" / "revisions" / "sha256" / manifest.split(":")[1], manifest)
    for tag in tags:
        link(repo / "_manifests" / "tags" / tag / "current", manifest)
    return repo


@pytest.fixture
def storage(tmp_path) -> Path:
    shared = blob(tmp_path, b"s" * 1000)
    own = blob(tmp_path, b"o" * 300)
    config = blob(tmp_path, b"c" * 20)
    m1, m2 = blob(tmp_path, b"m1" * 5), blob(tmp_path, b"m2" * 7)
    repository(tmp_path, "team/app", [shared, own, config], m1, ["1.0", "latest"])
    nested = repository(tmp_path, "team/app/sub", [shared], m2, ["x"])
    session = nested / "_uploads" / "0c4e7bbd-uuid"
    session.mkdir(parents=True)
    (session / "data").write_bytes(b"u" * 4096)
    (session / "startedat").write_text("2026-01-01T00:00:00Z")
    return tmp_path


def test_usage_totals_count_every_blob_once_and_repositories_their_own(storage):
    usage = storage_use(str(storage))
    assert usage["blobs"] == 5 and usage["blob_bytes"] == 1000 + 300 + 20 + 10 + 14
    assert usage["uploads"] == 1 and usage["upload_bytes"] == 4096 + len("2026-01-01T00:00:00Z")
    by_name = {r["name"]: r for r in usage["repositories"]}
    assert by_name["team/app"] == {"name": "team/app", "blobs": 4, "blob_bytes": 1330, "manifests": 1, "tags": 2, "uploads": 0, "upload_bytes": 0}
    assert by_name["team/app/sub"]["blob_bytes"] == 1014 and by_name["team/app/sub"]["uploads"] == 1


def test_empty_and_missing_storage(tmp_path):
    assert storage_use(str(tmp_path))["blobs"] == 0
    with pytest.raises(DockhandError, match="is not a directory on this host"):
        storage_use(str(tmp_path / "nothing"))


def test_registry_info_reports_storage_with_data_path(storage, capsys):
    held = {"repositories": []}
    with mock.patch.object(catalog, "read_catalog", return_value=held), mock.patch.object(catalog, "client_from_params") as made, \
            patch_module_args({"registry": "localhost:5000", "data_path": str(storage)}), pytest.raises(SystemExit):
        made.return_value.registry = "localhost:5000"
        registry_info.main()
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{"):])
    assert result["storage"]["driver"] == "filesystem" and result["storage"]["blobs"] == 5
