"""run_gc's check-mode truth: with nothing to collect, check mode reports no change and no action; with something to
collect, exactly one would-be action naming the count, and the registry is never switched."""

from __future__ import annotations

from ansible_collections.dockhand.registry.plugins.module_utils.gc import run_gc
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
