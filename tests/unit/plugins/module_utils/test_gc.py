"""run_gc against a scripted backend: the read-only window always closes."""

from __future__ import annotations

import os
import signal

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.gc import GcError, GcInterrupted, parse_output, run_gc

DRY = "1 blobs marked, 1 blobs and 0 manifests eligible for deletion\nblob eligible for deletion: sha256:" + "a" * 64 + "\n"


class Backend:
    description = "registry container fake"

    def __init__(self, outputs, read_only=False, on_gc=None):
        self.outputs = list(outputs)
        self.warnings = []
        self.read_only = read_only
        self.calls = []
        self.on_gc = on_gc

    def is_read_only(self):
        return self.read_only

    def set_read_only(self, read_only):
        self.calls.append("ro" if read_only else "rw")
        self.read_only = read_only

    def garbage_collect(self, dry_run, delete_untagged):
        self.calls.append("dry" if dry_run else "gc")
        if not dry_run and self.on_gc:
            self.on_gc()
        return self.outputs.pop(0)

    def data_path(self):
        return None


def test_nothing_to_collect_opens_no_window():
    backend = Backend([(0, "0 blobs marked, 0 blobs and 0 manifests eligible for deletion\n")])
    result = run_gc(backend)
    assert not result["changed"] and backend.calls == ["dry"] and result["read_only_seconds"] == 0.0


def test_collect_switches_read_only_and_back():
    backend = Backend([(0, DRY), (0, DRY)])
    result = run_gc(backend, delete_untagged=True)
    assert backend.calls == ["dry", "ro", "gc", "rw"] and not backend.read_only
    assert result["changed"] and result["removed"] == ["sha256:" + "a" * 64]
    assert result["actions"][1].startswith("garbage-collect --delete-untagged")


def test_check_mode_is_a_dry_run_only():
    backend = Backend([(0, DRY)])
    result = run_gc(backend, check_mode=True)
    assert backend.calls == ["dry"] and result["changed"] and result["blobs_removed"] == 1


def test_a_failed_collection_still_ends_read_write():
    backend = Backend([(0, DRY), (1, "level=fatal msg=boom\n")])
    with pytest.raises(GcError, match="boom"):
        run_gc(backend)
    assert backend.calls == ["dry", "ro", "gc", "rw"] and not backend.read_only


def test_sigterm_in_the_window_ends_read_write():
    backend = Backend([(0, DRY), (0, DRY)], on_gc=lambda: os.kill(os.getpid(), signal.SIGTERM))
    with pytest.raises(GcInterrupted):
        run_gc(backend)
    assert backend.calls[-1] == "rw" and not backend.read_only
    assert signal.getsignal(signal.SIGTERM) is not None


def test_a_registry_left_read_only_is_repaired_first():
    backend = Backend([(0, "0 blobs marked, 0 blobs and 0 manifests eligible for deletion\n")], read_only=True)
    result = run_gc(backend)
    assert backend.calls == ["rw", "dry"] and result["changed"]
    assert "left read-only by an interrupted run" in result["actions"][0]
    check = Backend([(0, "")], read_only=True)
    assert run_gc(check, check_mode=True)["changed"] and check.calls == ["dry"] and check.read_only


def test_an_empty_registry_is_nothing_to_collect():
    backend = Backend([(1, "failed to garbage collect: failed to mark: filesystem: Path not found: /docker/registry/v2/repositories")])
    assert not run_gc(backend)["changed"]


# -- gc output -------------------------------------------------------------------------------
def test_parse_gc_output():
    out = ("app: marking manifest sha256:" + "a" * 64 + "\n"
           "3 blobs marked, 2 blobs and 1 manifests eligible for deletion\n"
           "blob eligible for deletion: sha256:" + "b" * 64 + "\n"
           "blob eligible for deletion: sha256:" + "c" * 64 + "\n")
    parsed = parse_output(out)
    assert parsed["marked"] == 3 and parsed["eligible_blobs"] == 2 and parsed["eligible_manifests"] == 1
    assert parsed["digests"] == ["sha256:" + "b" * 64, "sha256:" + "c" * 64]
