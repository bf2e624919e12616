"""run_gc against a scripted backend: the read-only window always closes."""

from __future__ import annotations

import os
import signal

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils import gc
from ansible_collections.dockhand.registry.plugins.module_utils import storage as storage_module
from ansible_collections.dockhand.registry.plugins.module_utils.gc import GcError, GcInterrupted, parse_output, run_gc
from ansible_collections.dockhand.registry.plugins.module_utils.storage import Storage, StorageError
from ansible_collections.dockhand.registry.tests.support.storage_layout import FakeBinary, Layout

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

    def garbage_collect(self, dry_run):
        self.calls.append("dry" if dry_run else "gc")
        if not dry_run and self.on_gc:
            self.on_gc()
        return self.outputs.pop(0)

    def data_path(self):
        return None

    def storage_problem(self):
        return "its engine is not this host's (docker_host)"


def test_nothing_to_collect_opens_no_window():
    backend = Backend([(0, "0 blobs marked, 0 blobs and 0 manifests eligible for deletion\n")])
    result = run_gc(backend)
    assert not result["changed"] and backend.calls == ["dry"] and result["read_only_seconds"] == 0.0


def test_collect_switches_read_only_and_back():
    backend = Backend([(0, DRY), (0, DRY)])
    result = run_gc(backend)
    assert backend.calls == ["dry", "ro", "gc", "rw"] and not backend.read_only
    assert result["changed"] and result["removed"] == ["sha256:" + "a" * 64]
    assert result["actions"][1] == "garbage-collect: 1 blobs removed"
    # the storage is not on this host: the blobs the registry's collection removed, bytes unknown, nothing else
    assert result["bytes_removed"] is None and result["manifests"] == [] and result["before"] is None


def test_delete_untagged_without_the_storage_is_refused_before_anything():
    backend = Backend([(0, DRY), (0, DRY)])
    with pytest.raises(GcError) as failed:
        run_gc(backend, delete_untagged=True)
    message = str(failed.value)
    assert "\n" not in message and backend.calls == []
    assert "registry container fake cannot be read here: its engine is not this host's (docker_host)" in message
    assert message.endswith("Run registry_gc on the registry's host, or without delete_untagged (which keeps every manifest)")


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


# -- with the storage readable here (module_utils/storage.py): the module decides what goes ---------------------
class StorageBackend(Backend):
    """A registry container whose storage is ``layout``; garbage-collect is FakeBinary on it (never --delete-untagged)."""

    def __init__(self, layout, data_path=None, problem=None, on_switch=None):
        super().__init__([])
        self.layout = layout
        self.path = str(layout.root) if data_path is None else data_path
        self.problem = problem
        self.on_switch = on_switch or (lambda read_only: None)

    def set_read_only(self, read_only):
        self.on_switch(read_only)
        super().set_read_only(read_only)

    def garbage_collect(self, dry_run):
        self.calls.append("dry" if dry_run else "gc")
        return FakeBinary(self.layout).run(dry_run)

    def data_path(self):
        return self.path

    def storage_problem(self):
        return self.problem


def pruned_index(layout):
    """app: multi (an index of two untagged platform images), 1; the platform images of an index a prune deleted."""
    children = [layout.image("app", [arch.encode()]) for arch in ("amd64", "arm64")]
    multi = layout.index("app", children, tag="multi")
    layout.image("app", [b"amd64", b"one"], tag="1")
    deleted = [layout.image("app", [arch.encode() + b" old"]) for arch in ("amd64", "arm64")]
    return multi, children, deleted


def snapshot(root):
    return sorted((str(p.relative_to(root)), p.read_bytes() if p.is_file() else b"") for p in root.rglob("*"))


def test_delete_untagged_keeps_an_indexs_platform_images_and_counts_what_it_removed(tmp_path):
    layout = Layout(tmp_path)
    multi, children, deleted = pruned_index(layout)
    seen = []
    backend = StorageBackend(layout, on_switch=lambda ro: seen.append((ro, all(layout.blob_path(d).exists() for d in deleted))))
    untouched = snapshot(tmp_path)
    check = run_gc(backend, check_mode=True, delete_untagged=True)
    assert snapshot(tmp_path) == untouched and backend.calls == ["dry"]
    result = run_gc(backend, delete_untagged=True)
    # the revisions went in the window only: all there when it opened
    assert seen[0] == (True, True) and backend.calls == ["dry", "dry", "ro", "gc", "rw"]
    assert result["manifests"] == sorted("app@" + d for d in deleted) and result["blobs_removed"] == 6 == len(result["removed"])
    assert result["bytes_removed"] == check["bytes_removed"] > 0 and result["removed"] == check["removed"]
    assert result["actions"][1].startswith("remove 2 manifests no tag reaches: app@")
    assert result["actions"][2] == "garbage-collect: 6 blobs (%d bytes) removed" % result["bytes_removed"]
    assert all(layout.blob_path(d).exists() for d in [multi, *children])
    again = run_gc(backend, delete_untagged=True)
    assert not again["changed"] and again["read_only_seconds"] == 0.0 and backend.calls[-1] == "dry"


def test_pushes_around_the_window_change_the_usage_not_the_counts(tmp_path):
    layout = Layout(tmp_path)
    pruned_index(layout)
    backend = StorageBackend(layout, on_switch=lambda ro: None if ro else [layout.image("new", [b"pushed %d" % n], tag=str(n)) for n in range(3)])
    result = run_gc(backend, delete_untagged=True)
    # 6 removed; 3 images (9 blobs) pushed as the registry went read-write again: usage after = before - 6 + 9
    assert result["blobs_removed"] == 6 and result["bytes_removed"] > 0
    assert result["after"]["blobs"] == result["before"]["blobs"] - 6 + 9


def test_a_storage_the_registry_does_not_read_is_refused_for_delete_untagged(tmp_path):
    layout = Layout(tmp_path / "real")
    pruned_index(layout)
    elsewhere = tmp_path / "stale"
    Layout(elsewhere).image("stale", [b"s"], tag="1")
    backend = StorageBackend(layout, data_path=str(elsewhere))
    with pytest.raises(GcError) as failed:
        run_gc(backend, delete_untagged=True)
    message = str(failed.value)
    assert "\n" not in message and "its storage is not %s as this host sees it: the registry holds 7" % elsewhere in message
    assert backend.calls == ["dry"] and not backend.read_only
    # without delete_untagged: the registry's own collection, a warning, nothing removed from the path read here
    plain = run_gc(backend)
    assert plain["warnings"][0].startswith("registry container fake: its storage is not") and plain["before"] is None
    assert plain["manifests"] == [] and not plain["changed"]


def test_another_storage_driver_is_refused_for_delete_untagged(tmp_path):
    backend = StorageBackend(Layout(tmp_path), problem="it stores with the s3 driver (REGISTRY_STORAGE=s3)")
    with pytest.raises(GcError, match=r"cannot be read here: it stores with the s3 driver \(REGISTRY_STORAGE=s3\)\. Run registry_gc"):
        run_gc(backend, delete_untagged=True)
    assert backend.calls == []


def test_a_failure_removing_from_the_storage_ends_read_write(tmp_path, monkeypatch):
    layout = Layout(tmp_path)
    pruned_index(layout)
    backend = StorageBackend(layout)

    def refuse(self, plan):
        raise StorageError("cannot remove x: Permission denied")

    monkeypatch.setattr(Storage, "apply", refuse)
    with pytest.raises(GcError, match="registry container fake: cannot remove x: Permission denied"):
        run_gc(backend, delete_untagged=True)
    assert backend.calls == ["dry", "ro", "rw"] and not backend.read_only


def test_uploads_alone_open_the_window(tmp_path):
    layout = Layout(tmp_path)
    layout.image("app", [b"a"], tag="1")
    layout.upload("app", "u1", 4096, age=7200)
    result = run_gc(StorageBackend(layout))
    assert result["changed"] and result["uploads_removed"] == 1 and result["upload_bytes_removed"] == 4096 + 21
    assert result["blobs_removed"] == 0 and result["after"]["uploads"] == 0


def test_a_storage_this_user_cannot_write_is_refused_for_delete_untagged(tmp_path, monkeypatch):
    layout = Layout(tmp_path)
    pruned_index(layout)
    monkeypatch.setattr(gc.os, "access", lambda path, mode: False)
    backend = StorageBackend(layout)
    with pytest.raises(GcError, match=r"cannot be read here: this user cannot write .*repositories \(run the module as root: become\)"):
        run_gc(backend, delete_untagged=True)
    assert backend.calls == []
    # without delete_untagged: the registry's own collection, as where the storage is elsewhere
    assert run_gc(backend)["before"] is None


def test_a_manifest_that_cannot_be_read_fails_before_anything_is_switched_or_removed(tmp_path, monkeypatch):
    layout = Layout(tmp_path)
    multi, _children, _deleted = pruned_index(layout)
    untouched = snapshot(tmp_path)
    blocked = str(layout.blob_path(multi))

    def no_access(path, *args, **kwargs):
        if str(path) == blocked:
            raise PermissionError(13, "Permission denied")
        return open(path, *args, **kwargs)

    # the registry (root in its container) reads it, this user does not: nothing is known to be unreached
    monkeypatch.setattr(storage_module, "open", no_access, raising=False)
    backend = StorageBackend(layout)
    with pytest.raises(GcError, match=r"^registry container fake: cannot read manifest sha256:\w+ \(.*\): Permission denied$"):
        run_gc(backend, delete_untagged=True)
    assert backend.calls == ["dry"] and snapshot(tmp_path) == untouched
    # a manifest the registry cannot parse either: its own dry run fails first
    monkeypatch.undo()
    layout.blob_path(multi).write_bytes(b"{broken")
    with pytest.raises(GcError, match=r"^registry garbage-collect failed \(exit 1\): failed to garbage collect: failed to mark"):
        run_gc(backend, delete_untagged=True)
