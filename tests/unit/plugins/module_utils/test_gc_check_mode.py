"""run_gc's check-mode truth: with nothing to collect, check mode reports no change and no action; with something to
collect, exactly one would-be action naming the count, and the registry is never switched."""

from __future__ import annotations

import time

from ansible_collections.dockhand.registry.plugins.module_utils.gc import BLOBS, run_gc
from ansible_collections.dockhand.registry.tests.unit.plugins.module_utils.test_gc import DRY, Backend

NOTHING = "0 blobs marked, 0 blobs and 0 manifests eligible for deletion\n"


def test_check_mode_with_nothing_to_collect_is_no_change():
    backend = Backend([(0, NOTHING)])
    result = run_gc(backend, check_mode=True)
    assert result["changed"] is False and result["actions"] == [] and result["blobs_removed"] == 0
    assert backend.calls == ["dry"]


def test_check_mode_with_blobs_to_collect_says_so_once_and_switches_nothing():
    backend = Backend([(0, DRY)])
    result = run_gc(backend, check_mode=True, delete_untagged=True)
    assert result["actions"] == [
        "garbage-collect --delete-untagged the registry container fake while read-only: 1 blobs (0 bytes) would be removed"
    ]
    assert result["changed"] is True and result["removed"] == ["sha256:" + "a" * 64] and result["read_only_seconds"] == 0.0
    assert backend.calls == ["dry"] and backend.read_only is False


class StorageBackend(Backend):
    """A backend whose storage is a directory of this host: the collection removes ``doomed`` from it."""

    def __init__(self, outputs, root, doomed=None, **kwargs):
        super().__init__(outputs, on_gc=lambda: [path.unlink() for path in doomed or []] and time.sleep(0.0123), **kwargs)
        self.root = root
        self.untagged: list[bool] = []

    def garbage_collect(self, dry_run, delete_untagged):
        self.untagged.append(delete_untagged)
        return super().garbage_collect(dry_run, delete_untagged)

    def data_path(self):
        return str(self.root)


def blob(root, digest: str, size: int):
    algorithm, _sep, hexdigest = digest.partition(":")
    path = root / BLOBS / algorithm / hexdigest[:2] / hexdigest / "data"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x" * size)
    return path


def test_the_figures_are_read_from_the_storage_before_and_after(tmp_path):
    doomed = blob(tmp_path, "sha256:" + "a" * 64, 700)
    blob(tmp_path, "sha256:" + "b" * 64, 300)
    (tmp_path / BLOBS / "sha256" / "bb" / ("b" * 64) / "link").write_bytes(b"12345")  # not a blob, bytes all the same
    check = run_gc(StorageBackend([(0, DRY)], tmp_path), check_mode=True)
    assert check["blobs_removed"] == 1 and check["bytes_removed"] == 700
    assert check["before"] == check["after"] == {"blobs": 2, "bytes": 1005}
    assert check["actions"] == ["garbage-collect the registry container fake while read-only: 1 blobs (700 bytes) would be removed"]
    result = run_gc(StorageBackend([(0, DRY), (0, DRY)], tmp_path, doomed=[doomed]))
    assert result["before"] == {"blobs": 2, "bytes": 1005} and result["after"] == {"blobs": 1, "bytes": 305}
    assert result["blobs_removed"] == 1 and result["bytes_removed"] == 700 and result["removed"] == ["sha256:" + "a" * 64]
    assert result["actions"] == ["switch the registry container fake to read-only", "garbage-collect: 1 blobs removed",
                                 "switch the registry container fake back to read-write"]  # fmt: skip
    assert result["manifests_removed"] == 0 and 0.012 <= result["gc_seconds"] <= result["read_only_seconds"] < 1
    for figure in ("read_only_seconds", "gc_seconds"):
        assert isinstance(result[figure], float) and round(result[figure], 3) == result[figure], result[figure]
    assert set(result) == {"changed", "actions", "blobs_removed", "bytes_removed", "removed", "manifests_removed",
                           "read_only_seconds", "gc_seconds", "before", "after"}  # fmt: skip


def test_nothing_to_collect_reports_zeros_and_passes_delete_untagged_on(tmp_path):
    blob(tmp_path, "sha256:" + "a" * 64, 10)
    backend = StorageBackend([(0, NOTHING)], tmp_path)
    result = run_gc(backend, delete_untagged=True)
    assert result == {"changed": False, "actions": [], "blobs_removed": 0, "bytes_removed": 0, "removed": [], "manifests_removed": 0,
                      "read_only_seconds": 0.0, "gc_seconds": 0.0, "before": {"blobs": 1, "bytes": 10},
                      "after": {"blobs": 1, "bytes": 10}}  # fmt: skip
    assert backend.untagged == [True]
    elsewhere = run_gc(Backend([(0, NOTHING)]))
    assert elsewhere["blobs_removed"] == 0 and elsewhere["bytes_removed"] is None


def test_a_collection_that_removed_nothing_says_zero_and_both_runs_get_delete_untagged(tmp_path):
    blob(tmp_path, "sha256:" + "a" * 64, 10)
    backend = StorageBackend([(0, DRY), (0, DRY)], tmp_path)
    result = run_gc(backend, delete_untagged=True)
    assert result["blobs_removed"] == 0 and result["bytes_removed"] == 0
    assert result["actions"][1] == "garbage-collect --delete-untagged: 0 blobs removed"
    assert backend.untagged == [True, True]


def test_the_repair_of_a_registry_left_read_only_is_said_exactly():
    result = run_gc(Backend([(0, NOTHING)], read_only=True), check_mode=True)
    assert result["actions"] == ["make the registry container fake read-write again (left read-only by an interrupted run)"]
    assert result["changed"] is True and result["gc_seconds"] == 0.0 and result["manifests_removed"] == 0


def test_a_storage_elsewhere_reports_the_registry_count_and_no_bytes():
    result = run_gc(Backend([(0, DRY), (0, DRY)]))
    assert result["blobs_removed"] == 1 and result["bytes_removed"] is None and result["before"] is None
