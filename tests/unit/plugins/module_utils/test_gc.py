"""run_gc against a scripted backend: the read-only window always closes; check mode changes nothing and says exactly
what would go; the counts are what the run removed, the usage is read from the storage before and after."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils import gc
from ansible_collections.dockhand.registry.plugins.module_utils import storage as storage_module
from ansible_collections.dockhand.registry.plugins.module_utils.gc import GcError, GcInterrupted, collect, parse_output, run_gc
from ansible_collections.dockhand.registry.plugins.module_utils.storage import Storage, StorageError
from ansible_collections.dockhand.registry.tests.support.storage_layout import FakeBinary, Layout

DRY = "1 blobs marked, 1 blobs and 0 manifests eligible for deletion\nblob eligible for deletion: sha256:" + "a" * 64 + "\n"
NOTHING = "0 blobs marked, 0 blobs and 0 manifests eligible for deletion\n"


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
    backend = Backend([(0, NOTHING)])
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
    backend = Backend([(0, NOTHING)], read_only=True)
    result = run_gc(backend)
    assert backend.calls == ["rw", "dry"] and result["changed"]
    assert "left read-only by an interrupted run" in result["actions"][0]
    check = Backend([(0, "")], read_only=True)
    assert run_gc(check, check_mode=True)["changed"] and check.calls == ["dry"] and check.read_only


def test_an_empty_registry_is_nothing_to_collect():
    backend = Backend([(1, "failed to garbage collect: failed to mark: filesystem: Path not found: /docker/registry/v2/repositories")])
    assert not run_gc(backend)["changed"]


def test_a_registry_that_never_stored_a_blob_is_nothing_to_collect():
    """A full disk fails the first push: the storage holds upload sessions and repositories, and no blobs directory."""
    backend = Backend([(1, "failed to garbage collect: error enumerating blobs: filesystem: Path not found: /docker/registry/v2/blobs")])
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
    assert parse_output("") == {"marked": 0, "eligible_blobs": 0, "eligible_manifests": 0, "digests": [], "enumerated": set()}


# -- with the storage readable here (module_utils/storage.py): the module decides what goes ---------------------
class StorageBackend(Backend):
    """A registry container whose storage is ``layout``; garbage-collect is FakeBinary on it (never --delete-untagged)."""

    def __init__(self, layout, data_path=None, problem=None, on_switch=None, on_gc=None, read_only=False):
        super().__init__([], read_only=read_only, on_gc=on_gc)
        self.layout = layout
        self.path = str(layout.root) if data_path is None else data_path
        self.problem = problem
        self.on_switch = on_switch or (lambda read_only: None)

    def set_read_only(self, read_only):
        self.on_switch(read_only)
        super().set_read_only(read_only)

    def garbage_collect(self, dry_run):
        self.calls.append("dry" if dry_run else "gc")
        if not dry_run and self.on_gc:
            self.on_gc()
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


# -- exact results: check mode says what the run then removes, the counts are what went, the usage is read apart -----
REPAIR = "make the registry container fake read-write again (left read-only by an interrupted run)"
TO_RO = "switch the registry container fake to read-only"
TO_RW = "switch the registry container fake back to read-write"


def zeros(bytes_removed=0):
    return {"removed": [], "blobs_removed": 0, "bytes_removed": bytes_removed, "manifests": [], "manifests_removed": 0, "repositories_removed": [],
            "dangling_tags_removed": [], "uploads_removed": 0, "upload_bytes_removed": 0, "read_only_seconds": 0.0, "gc_seconds": 0.0}  # fmt: skip


def doomed(layout):
    """Something of each kind to go: app's pruned platform images (untagged), dangling tags app:gone and app:lost, an
    upload of 100 bytes written two hours ago (one written a minute ago stays), repositories old and older holding one
    untagged image each. Returns the manifests no tag reaches."""
    _multi, _children, deleted = pruned_index(layout)
    for tag in ("gone", "lost"):
        layout.tag("app", tag, "sha256:" + "d" * 64)  # names a manifest app does not hold
    layout.upload("app", "abandoned", 100, age=7200)
    layout.upload("app", "young", 7, age=60)
    return [("app", d) for d in sorted(deleted)] + [(repo, layout.image(repo, [repo.encode() + b" only"])) for repo in ("old", "older")]


def blobs_of(layout, manifests):
    """The manifests' blobs (each manifest, its config and layers), read from the files themselves."""
    found = set()
    for _repo, digest in manifests:
        body = json.loads(layout.blob_path(digest).read_bytes())
        found |= {digest, body["config"]["digest"], *(layer["digest"] for layer in body["layers"])}
    return sorted(found)


def size_of(layout, digests):
    return sum(layout.blob_path(d).stat().st_size for d in digests)


def usage(layout):
    """The storage's usage counted from the files (not by storage.py)."""
    sessions = [p for p in layout.v2.glob("repositories/**/_uploads/*") if p.is_dir()]
    upload_bytes = sum(f.stat().st_size for session in sessions for f in session.rglob("*") if f.is_file())
    return {"blobs": len(layout.blobs()), "bytes": size_of(layout, layout.blobs()), "uploads": len(sessions), "upload_bytes": upload_bytes}


def test_check_mode_changes_nothing_and_says_exactly_what_the_run_then_removes(tmp_path):
    layout = Layout(tmp_path)
    manifests = doomed(layout)
    blobs = blobs_of(layout, manifests)
    size = size_of(layout, blobs)
    before, held, untouched = usage(layout), layout.blobs(), snapshot(tmp_path)
    assert before["uploads"] == 2 and before["upload_bytes"] == 100 + 7 + 2 * 21 and len(blobs) == 12
    backend = StorageBackend(layout)
    check = run_gc(backend, check_mode=True, delete_untagged=True)
    assert snapshot(tmp_path) == untouched and backend.calls == ["dry"] and not backend.read_only
    said = [
        "remove 4 manifests no tag reaches: " + ", ".join("%s@%s" % m for m in manifests),
        "remove 2 dangling tags (their manifest is gone): app:gone, app:lost",
        "remove 1 abandoned upload sessions (121 bytes)",
        "remove 2 repositories left with nothing: old, older",
    ]
    gone = {"removed": blobs, "blobs_removed": 12, "bytes_removed": size, "manifests": ["%s@%s" % m for m in manifests],
            "manifests_removed": 4, "repositories_removed": ["old", "older"], "dangling_tags_removed": ["app:gone", "app:lost"], "uploads_removed": 1,
            "upload_bytes_removed": 121}  # fmt: skip
    assert check == {"changed": True, "actions": ["would " + a for a in said] + ["garbage-collect: 12 blobs (%d bytes) would be removed" % size],
                     **gone, "read_only_seconds": 0.0, "gc_seconds": 0.0, "before": before, "after": before}  # fmt: skip
    result = run_gc(backend, delete_untagged=True)
    assert backend.calls == ["dry", "dry", "ro", "gc", "rw"] and not backend.read_only
    after = {"blobs": before["blobs"] - 12, "bytes": before["bytes"] - size, "uploads": 1, "upload_bytes": 28}
    assert {k: v for k, v in result.items() if not k.endswith("_seconds")} == {
        "changed": True, "actions": [TO_RO, *said, "garbage-collect: 12 blobs (%d bytes) removed" % size, TO_RW], **gone, "before": before,
        "after": after}  # fmt: skip
    assert usage(layout) == after and layout.blobs() == held - set(blobs)
    assert not layout.repo("old").exists() and not layout.repo("older").exists()
    assert sorted(p.name for p in (layout.repo("app") / "_manifests" / "tags").iterdir()) == ["1", "multi"]
    assert sorted(p.name for p in (layout.repo("app") / "_uploads").iterdir()) == ["young"]


def test_more_than_five_manifests_are_shown_five_and_an_ellipsis(tmp_path):
    layout = Layout(tmp_path)
    layout.image("app", [b"tagged"], tag="1")
    untagged = sorted(layout.image("app", [b"untagged %d" % n]) for n in range(6))
    shown = ", ".join("app@" + d for d in untagged[:5])
    assert run_gc(StorageBackend(layout), check_mode=True, delete_untagged=True)["actions"][0] == "would remove 6 manifests no tag reaches: %s, ..." % shown
    layout.blob_path(untagged[5]).unlink()  # its revision no longer counts: five, all shown
    assert run_gc(StorageBackend(layout), check_mode=True, delete_untagged=True)["actions"][0] == "would remove 5 manifests no tag reaches: " + shown


def test_the_counts_are_what_is_gone_after_the_run_and_the_bytes_what_the_plan_foresaw(tmp_path):
    layout = Layout(tmp_path)
    _multi, _children, deleted = pruned_index(layout)
    planned = blobs_of(layout, [("app", d) for d in deleted])
    sizes = {d: layout.blob_path(d).stat().st_size for d in planned}
    layer = layout.blob(b"amd64 old")
    stray = []
    # in the window a blob nobody references appears (the binary sweeps it too); as the registry is read-write again,
    # a push brings one planned layer back before the counts are read: it is not counted as removed
    backend = StorageBackend(layout, on_gc=lambda: stray.append(layout.blob(b"stray")),
                             on_switch=lambda read_only: None if read_only else layout.blob(b"amd64 old"))  # fmt: skip
    result = run_gc(backend, delete_untagged=True)
    removed = sorted({*planned, *stray} - {layer})
    assert result["removed"] == removed and result["blobs_removed"] == 6
    assert result["bytes_removed"] == sum(sizes.values()) - sizes[layer] and layer in planned
    assert result["warnings"] == [
        "garbage-collect removed 1 blobs the plan did not foresee (their bytes are not counted), e.g. %s" % stray[0]
    ]
    assert result["actions"][2] == "garbage-collect: 6 blobs (%d bytes) removed" % result["bytes_removed"]


def test_nothing_to_collect_reports_zeros_and_the_usage(tmp_path):
    layout = Layout(tmp_path)
    layout.image("app", [b"a"], tag="1")
    layout.upload("app", "young", 7, age=60)
    held = usage(layout)
    assert held["blobs"] == 3 and held["uploads"] == 1 and held["upload_bytes"] == 28
    for check_mode in (True, False):
        backend = StorageBackend(layout)
        assert run_gc(backend, check_mode=check_mode, delete_untagged=True) == {"changed": False, "actions": [], **zeros(), "before": held, "after": held}
        assert backend.calls == ["dry"]
    # the storage elsewhere: the same zeros, bytes and usage unknown
    for check_mode in (True, False):
        assert run_gc(Backend([(0, NOTHING)]), check_mode=check_mode) == {"changed": False, "actions": [], **zeros(None), "before": None, "after": None}


def test_a_storage_elsewhere_reports_the_registrys_count_and_no_bytes():
    check = run_gc(Backend([(0, DRY)]), check_mode=True)
    counted = {**zeros(None), "removed": ["sha256:" + "a" * 64], "blobs_removed": 1, "before": None, "after": None}
    assert check == {"changed": True, "actions": ["garbage-collect: 1 blobs would be removed"], **counted}
    result = run_gc(Backend([(0, DRY), (0, DRY)]))
    assert {k: v for k, v in result.items() if not k.endswith("_seconds")} == {
        "changed": True, "actions": [TO_RO, "garbage-collect: 1 blobs removed", TO_RW], **{k: v for k, v in counted.items() if not k.endswith("_seconds")}
    }  # fmt: skip


def test_the_repair_of_a_registry_left_read_only_is_said_exactly(tmp_path):
    check = Backend([(0, NOTHING)], read_only=True)
    assert run_gc(check, check_mode=True) == {"changed": True, "actions": [REPAIR], **zeros(None), "before": None, "after": None}
    assert check.calls == ["dry"] and check.read_only
    layout = Layout(tmp_path)
    manifests = doomed(layout)
    backend = StorageBackend(layout, read_only=True)
    would = run_gc(backend, check_mode=True, delete_untagged=True)["actions"]
    assert would[0] == REPAIR and len(would) == 6 and would[1].startswith("would remove 4 manifests") and backend.calls == ["dry"]
    result = run_gc(backend, delete_untagged=True)
    assert result["actions"][:3] == [REPAIR, TO_RO, "remove 4 manifests no tag reaches: " + ", ".join("%s@%s" % m for m in manifests)]
    assert result["actions"][-1] == TO_RW and len(result["actions"]) == 8
    assert backend.calls == ["dry", "rw", "dry", "ro", "gc", "rw"] and not backend.read_only


def test_the_seconds_are_the_read_only_window_and_the_collection_in_it(tmp_path, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(gc, "time", type("Clock", (), {"monotonic": staticmethod(lambda: now[0])}))

    def later(seconds):
        now[0] += seconds

    layout = Layout(tmp_path)
    pruned_index(layout)
    backend = StorageBackend(layout, on_switch=lambda read_only: later(5.0 if read_only else 7.0), on_gc=lambda: later(2.0104))
    result = run_gc(backend, delete_untagged=True)
    # the switches take 12 s, the collection between them 2.0104 s: milliseconds
    assert result["gc_seconds"] == 2.01 and result["read_only_seconds"] == 14.01


class Engine:
    """This host's engine holding one registry container, reg (``config`` its Config, its storage ``layout`` on a bind
    mount): every ``docker exec`` recorded, garbage-collect run as FakeBinary on the layout."""

    local = True

    def __init__(self, config, layout=None):
        self.config = config
        self.layout = layout
        self.execs = []

    def container(self, name):
        mounts = [{"Type": "bind", "Source": str(self.layout.root), "Destination": "/var/lib/registry"}] if self.layout else []
        return {"Config": self.config, "Mounts": mounts} if name == "reg" else None

    def exec_run(self, container, command):
        self.execs.append((container, command))
        return FakeBinary(self.layout).run("--dry-run" in command) if self.layout else (0, NOTHING)


@pytest.mark.parametrize(
    "config, binary, path",
    [
        ({"Entrypoint": ["/bin/registry"], "Cmd": ["serve", "/etc/docker/registry/config.yml"]}, "/bin/registry", "/etc/docker/registry/config.yml"),
        ({"Entrypoint": ["/entrypoint.sh"], "Cmd": ["/etc/dockhand/registry.yml"]}, "registry", "/etc/dockhand/registry.yml"),
    ],
    ids=["dockhand-image", "docker-hub-image"],
)
def test_the_registrys_own_collection_never_deletes_untagged(config, binary, path):
    engine = Engine(config)
    backend = gc.ContainerBackend(engine, "reg")
    backend.garbage_collect(True)
    backend.garbage_collect(False)
    # distribution 2.8's --delete-untagged would drop the platform images of every index: what goes is decided here
    assert engine.execs == [("reg", [binary, "garbage-collect", "--dry-run", path]), ("reg", [binary, "garbage-collect", path])]


def test_an_empty_blob_counts_no_bytes(tmp_path):
    layout = Layout(tmp_path)
    layout.image("app", [b"a"], tag="1")
    empty = layout.blob(b"")
    check = run_gc(StorageBackend(layout), check_mode=True, delete_untagged=True)
    assert check["removed"] == [empty] and check["bytes_removed"] == 0
    assert check["actions"] == ["garbage-collect: 1 blobs (0 bytes) would be removed"]


def test_a_registry_that_never_stored_a_repository_is_collected_not_refused(tmp_path):
    # no repositories directory yet: whether this user may write is asked of the data path itself
    backend = StorageBackend(Layout(tmp_path))
    empty = {"blobs": 0, "bytes": 0, "uploads": 0, "upload_bytes": 0}
    assert run_gc(backend, delete_untagged=True) == {"changed": False, "actions": [], **zeros(), "before": empty, "after": empty}
    assert backend.calls == ["dry"]


def test_a_backend_without_a_data_path_is_refused_for_delete_untagged(tmp_path):
    backend = StorageBackend(Layout(tmp_path))
    backend.path = None
    with pytest.raises(GcError) as failed:
        run_gc(backend, delete_untagged=True)
    assert "registry container fake cannot be read here: no data path. Run registry_gc on the registry's host" in str(failed.value)
    assert backend.calls == []


@pytest.mark.parametrize(
    "output, said",
    [("", "no output"), ("\n  \n", "no output"), ("level=info msg=start\n" + "x" * 400 + "\n\n", "x" * 300)],
    ids=["nothing", "blank-lines", "a-long-last-line"],
)
def test_a_failed_collection_says_its_last_line_cut_to_300_characters(output, said):
    with pytest.raises(GcError) as failed:
        run_gc(Backend([(2, output)]))
    assert str(failed.value) == "registry garbage-collect failed (exit 2): " + said


def test_collect_runs_on_the_container_with_the_modules_options_and_their_defaults(tmp_path, monkeypatch):
    layout = Layout(tmp_path)
    doomed(layout)
    engine = Engine({"Entrypoint": ["/bin/registry"], "Cmd": ["serve", "/etc/docker/registry/config.yml"], "Env": ["A=1"]}, layout)
    switches = []
    monkeypatch.setattr(gc.ContainerBackend, "set_read_only", lambda self, read_only: switches.append(read_only))
    check = collect(lambda: engine, "reg", None, 60, check_mode=True, delete_untagged=True, uploads_older_than_minutes=0)
    assert check["manifests_removed"] == 4 and check["uploads_removed"] == 2 and switches == []
    assert check["diff"] == {"before": check["before"], "after": check["before"]} and check["before"]["blobs"] > 0
    # the defaults: not check mode, every manifest kept, uploads written more than 60 minutes ago removed
    result = collect(lambda: engine, "reg", None, 60)
    assert switches == [True, False] and result["manifests"] == [] and result["repositories_removed"] == []
    assert result["dangling_tags_removed"] == ["app:gone", "app:lost"] and result["uploads_removed"] == 1
    assert result["diff"] == {"before": result["before"], "after": result["after"]} and result["after"]["uploads"] == 1
    assert [command for _name, command in engine.execs] == [
        ["/bin/registry", "garbage-collect", "--dry-run", "/etc/docker/registry/config.yml"]] * 2 + [
        ["/bin/registry", "garbage-collect", "/etc/docker/registry/config.yml"]]  # fmt: skip


def test_uploads_older_than_minutes_is_the_age_in_minutes_and_never_negative(tmp_path):
    layout = Layout(tmp_path)
    layout.image("app", [b"a"], tag="1")
    layout.upload("app", "older", 1, age=100 * 60 + 50)
    layout.upload("app", "newer", 1, age=100 * 60 - 50)
    assert run_gc(StorageBackend(layout), check_mode=True, uploads_older_than_minutes=100)["actions"] == [
        "would remove 1 abandoned upload sessions (22 bytes)", "garbage-collect: 0 blobs (0 bytes) would be removed"
    ]
    assert run_gc(StorageBackend(layout), check_mode=True, uploads_older_than_minutes=0)["uploads_removed"] == 2
    with pytest.raises(GcError) as failed:
        run_gc(StorageBackend(layout), uploads_older_than_minutes=-1)
    assert str(failed.value) == "uploads_older_than_minutes -1 must be 0 or more"


@pytest.mark.parametrize(
    "method, failing_call",
    [("usage", 0), ("listing", 0), ("listing", 1), ("plan", 1), ("usage", 1)],
    ids=["usage-before", "listing-before-the-dry-run", "listing-after-it", "plan-in-the-window", "usage-after"],
)
def test_every_storage_error_is_one_line_naming_the_registry_and_ends_read_write(tmp_path, monkeypatch, method, failing_call):
    layout = Layout(tmp_path)
    pruned_index(layout)
    original = getattr(Storage, method)
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(method)
        if len(calls) - 1 == failing_call:
            raise StorageError("cannot read x: Permission denied")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Storage, method, failing)
    backend = StorageBackend(layout)
    with pytest.raises(GcError) as failed:
        run_gc(backend, delete_untagged=True)
    assert str(failed.value) == "registry container fake: cannot read x: Permission denied" and not backend.read_only


def test_a_path_holding_more_than_the_registry_is_not_its_storage(tmp_path):
    real = Layout(tmp_path / "real")
    real.image("app", [b"a"], tag="1")
    shutil.copytree(real.root, tmp_path / "copy")
    Layout(tmp_path / "copy").image("extra", [b"e"], tag="1")
    backend = StorageBackend(real, data_path=str(tmp_path / "copy"))
    with pytest.raises(GcError) as failed:
        run_gc(backend, delete_untagged=True)
    assert "its storage is not %s as this host sees it: this path holds 2 the registry does not (e.g. extra). Run" % (tmp_path / "copy") in str(failed.value)
    assert backend.calls == ["dry"]
