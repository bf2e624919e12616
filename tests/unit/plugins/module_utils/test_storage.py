"""What a tag reaches, computed from a registry's filesystem storage (module_utils/storage.py), on layouts written by
hand: indexes of indexes, nested repositories, layers shared across repositories, referrers, dangling tags, uploads."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils import storage as st
from ansible_collections.dockhand.registry.tests.support.storage_layout import DOCKER_LIST, FakeBinary, Layout


@pytest.fixture
def layout(tmp_path):
    return Layout(tmp_path)


def plan(layout, delete_untagged=True, older=3600.0):
    return st.Storage(str(layout.root)).plan(delete_untagged, older)


def test_an_index_of_indexes_reaches_every_platform_image_and_nothing_untagged_stays(layout):
    amd64 = layout.image("app", [b"amd64 layer"])
    arm64 = layout.image("app", [b"arm64 layer"])
    s390x = layout.image("app", [b"s390x layer"])
    inner = layout.index("app", [arm64, s390x], media_type=DOCKER_LIST)
    top = layout.index("app", [amd64, inner], tag="multi")
    single = layout.image("app", [b"single layer", b"arm64 layer"], tag="1")
    old = layout.image("app", [b"old layer", b"amd64 layer"])  # a tag moved away from it
    gone = plan(layout)
    assert gone.manifests == [("app", old)] and gone.broken == []
    # old's manifest, its config and its own layer; the layer it shares with amd64 stays
    old_config = json.loads(layout.blob_path(old).read_bytes())["config"]["digest"]
    assert sorted(gone.blobs) == sorted([old, old_config, layout.blob(b"old layer")])
    assert not {amd64, arm64, s390x, inner, top, single} & set(gone.blobs)
    # without delete_untagged: every manifest stays, so do its blobs
    assert plan(layout, delete_untagged=False).manifests == [] and plan(layout, delete_untagged=False).blobs == []


def test_nested_repositories_are_separate_and_an_empty_one_goes_alone(layout, tmp_path):
    layout.image("a", [b"a"], tag="1")
    layout.image("a/b", [b"b"])  # untagged only
    layout.image("a/b/c", [b"c"], tag="1")
    storage = st.Storage(str(tmp_path))
    assert [r.name for r in storage.repositories()] == ["a", "a/b", "a/b/c"]
    gone = storage.plan(True, 3600)
    assert gone.repositories == ["a/b"] and [m[0] for m in gone.manifests] == ["a/b"]
    storage.apply(gone)
    # a/b's own directories went; its nested repository a/b/c is where it was
    assert [r.name for r in storage.repositories()] == ["a", "a/b/c"]
    assert not (layout.repo("a/b") / "_manifests").exists() and (layout.repo("a/b/c") / "_manifests").is_dir()
    # a repository with nothing under it goes with its empty parents
    layout.image("x/y/z", [b"z"])
    storage.apply(storage.plan(True, 3600))
    assert not (layout.v2 / "repositories" / "x").exists()


def test_a_manifest_tagged_in_another_repository_is_untagged_here_but_its_blobs_stay(layout):
    shared = layout.image("team/one", [b"common base"], tag="stable")
    # the same image pushed to team/two by digest only (a revision of its own, no tag there)
    layout.manifest("team/two", json.loads(layout.blob_path(shared).read_bytes()))
    layout.image("team/two", [b"two"], tag="latest")
    gone = plan(layout)
    assert gone.manifests == [("team/two", shared)]
    assert gone.blobs == []  # the manifest and its blobs are still referenced from team/one
    assert not gone.empty() and gone.dangling == gone.uploads == gone.repositories == []  # the revision alone goes


def test_layers_shared_across_repositories_stay_with_any_kept_reference(layout):
    layout.image("x", [b"base", b"x only"], tag="1")
    dropped = layout.image("y", [b"base", b"y only"])
    layout.image("y", [b"y2"], tag="2")
    gone = plan(layout)
    base = layout.blob(b"base")
    y_only = layout.blob(b"y only")
    assert gone.manifests == [("y", dropped)] and base not in gone.blobs and y_only in gone.blobs and dropped in gone.blobs


def test_referrers_of_a_kept_manifest_stay(layout):
    image = layout.image("app", [b"app"], tag="1")
    signature = layout.image("app", [b"signature"], subject=image)
    on_signature = layout.image("app", [b"attestation of the signature"], subject=signature)
    orphan = layout.image("app", [b"of nothing"], subject="sha256:" + "0" * 64)
    assert plan(layout).manifests == [("app", orphan)]
    assert signature not in plan(layout).blobs and on_signature not in plan(layout).blobs


def test_dangling_tags_go_and_their_index_links(layout, tmp_path):
    kept = layout.image("app", [b"kept"], tag="1")
    lost = layout.image("app", [b"lost"], tag="2")
    layout.tag("app", "1", lost)  # tag 1 moved to lost, then lost's revision removed (a prune killed half-way)
    layout.tag("app", "1", kept)
    layout.tag("app", "3", lost)
    shutil.rmtree(layout.repo("app") / "_manifests" / "revisions" / "sha256" / lost.split(":")[1])
    (layout.repo("app") / "_manifests" / "tags" / "4" / "current").mkdir(parents=True)  # no link at all
    storage = st.Storage(str(tmp_path))
    gone = storage.plan(False, 3600)
    assert gone.dangling == [("app", "2"), ("app", "3"), ("app", "4")] and gone.manifests == [] and lost in gone.blobs
    storage.apply(gone)
    assert sorted(p.name for p in (layout.repo("app") / "_manifests" / "tags").iterdir()) == ["1"]
    # an untagged manifest removed: its revision and every tag's index entry naming it
    untagged = layout.image("app", [b"untagged"])
    layout.tag("app", "1", untagged)
    layout.tag("app", "1", kept)
    storage.apply(storage.plan(True, 3600))
    assert not (layout.repo("app") / "_manifests" / "tags" / "1" / "index" / "sha256" / untagged.split(":")[1]).exists()
    assert not (layout.repo("app") / "_manifests" / "revisions" / "sha256" / untagged.split(":")[1]).exists()
    assert (layout.repo("app") / "_manifests" / "tags" / "1" / "index" / "sha256" / kept.split(":")[1] / "link").exists()


def test_a_child_the_repository_lost_is_reported_not_fatal(layout):
    child = layout.image("app", [b"child"])
    layout.index("app", [child], tag="multi")
    shutil.rmtree(layout.repo("app") / "_manifests" / "revisions" / "sha256" / child.split(":")[1])
    gone = plan(layout)
    assert gone.manifests == [] and gone.broken == ["app:multi names manifest %s, which app no longer holds" % child]


def test_uploads_older_than_the_threshold_go_every_one_with_zero(layout, tmp_path):
    layout.image("app", [b"a"], tag="1")
    old = layout.upload("app", "old", 3000, age=7200)
    layout.upload("app", "young", 10, age=60)
    layout.upload("only/uploads", "u", 5, age=60)
    storage = st.Storage(str(tmp_path))
    gone = storage.plan(False, 3600)
    assert [(u.repository, u.uuid) for u in gone.uploads] == [("app", "old")] and gone.uploads[0].bytes == 3000 + 1 + 20
    assert gone.repositories == []  # only/uploads still holds a session written a minute ago
    every = storage.plan(False, 0)
    assert len(every.uploads) == 3 and every.repositories == ["only/uploads"]
    storage.apply(gone)
    assert not old.exists() and (layout.repo("app") / "_uploads" / "young").is_dir()
    assert storage.usage() == {"blobs": 3, "bytes": storage.usage()["bytes"], "uploads": 2, "upload_bytes": 10 + 5 + 2 * 21}


def test_the_binarys_output_and_the_listing_agree_on_the_same_storage(layout, tmp_path):
    layout.image("a", [b"a"], tag="1")
    layout.image("a/b", [b"b"])
    storage = st.Storage(str(tmp_path))
    code, output = FakeBinary(layout).run(dry_run=True)
    assert code == 0 and st.enumerated(output) == storage.listing()
    listed = storage.listing()
    assert st.same_storage(listed, st.enumerated(output), listed) is None
    # a push between the two readings: seen in the second only, not in the binary's
    pushed = listed | {("a", "sha256:" + "1" * 64)}
    assert st.same_storage(listed, st.enumerated(output), pushed) is None
    # another storage: the registry holds what this path does not, and the other way round
    other = {("c", ""), ("c", "sha256:" + "2" * 64)}
    problem = st.same_storage(other, st.enumerated(output), other)
    assert problem.startswith("the registry holds 4 repositories or manifests this path does not (e.g. a); this path holds 2")


def test_the_registry_log_lines_are_not_repositories():
    output = 'time="2024" level=info msg="booting"\napp/x\napp/x: marking manifest sha256:' + "a" * 64 + " \n\n1 blobs marked, 0 blobs\n"
    assert st.enumerated(output) == {("app/x", ""), ("app/x", "sha256:" + "a" * 64)}


def test_the_storage_driver_and_root_from_the_environment():
    assert st.driver_from_env({}) is None and st.driver_from_env({"REGISTRY_STORAGE": "filesystem"}) is None
    assert st.driver_from_env({"REGISTRY_STORAGE": "s3"}) == "s3 (REGISTRY_STORAGE=s3)"
    assert st.driver_from_env({"REGISTRY_STORAGE_S3_REGION": "eu"}) == "s3 (REGISTRY_STORAGE_S3_REGION)"
    assert st.driver_from_env({"REGISTRY_STORAGE_DELETE_ENABLED": "true", "REGISTRY_STORAGE_MAINTENANCE_READONLY": "{}"}) is None
    assert st.root_directory({}) == "/var/lib/registry" and st.root_directory({"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/data/"}) == "/data"
    mounts = [{"Destination": "/var/lib/registry", "Source": "/srv/reg"}, {"Destination": "/etc/docker/registry", "Source": "/etc/r"}]
    assert st.host_path(mounts, "/var/lib/registry") == "/srv/reg"
    assert st.host_path(mounts, "/var/lib/registry/sub") == "/srv/reg/sub"
    assert st.host_path(mounts, "/data") is None and st.host_path([], "/var/lib/registry") is None
    # a driver named by its own variable (REGISTRY_STORAGE_S3='{bucket: b, region: r}' configures it whole)
    assert st.driver_from_env({"REGISTRY_STORAGE_S3": "{bucket: b, region: r}"}) == "s3 (REGISTRY_STORAGE_S3)"
    assert st.root_directory({"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/srv/X/"}) == "/srv/X"
    assert st.root_directory({"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/"}) == "/"
    # the deepest mount holding the root, its destination matched whole (trailing slash or not, whatever its last letter)
    nested = [{"Destination": "/mnt", "Source": "/h"}, {"Destination": "/mnt/X/", "Source": "/x"}]
    assert st.host_path(nested, "/mnt/X") == "/x" and st.host_path(nested, "/mnt/X/sub") == "/x/sub"
    assert st.host_path(nested, "/mnt/Xsub") == "/h/Xsub" and st.host_path(nested[:1], "/mnt/X/Y") == "/h/X/Y"
    assert st.host_path([{"Destination": "/", "Source": "/h"}], "/var/lib/registry") == "/h/var/lib/registry"
    assert st.host_path([{"Source": "/h"}, {"Destination": "/var/lib/registry"}], "/var/lib/registry") is None
    # a tmpfs mount (no source) before the volume holding the data
    tmpfs = {"Type": "tmpfs", "Source": "", "Destination": "/tmp"}
    assert st.host_path([tmpfs, {"Destination": "/var/lib/registry", "Source": "/srv/reg"}], "/var/lib/registry") == "/srv/reg"


def test_an_empty_or_missing_storage_plans_nothing(tmp_path):
    storage = st.Storage(str(tmp_path / "nothing"))
    assert storage.plan(True, 0).empty() and storage.listing() == set() and storage.usage()["blobs"] == 0


def test_a_manifest_that_cannot_be_read_stops_the_plan(layout, tmp_path):
    child = layout.image("app", [b"child"])
    index = layout.index("app", [child], tag="multi")
    layout.blob_path(index).write_bytes(b"{not json")
    with pytest.raises(st.StorageError, match=r"^manifest sha256:[0-9a-f]{64} \(.*/data\) is not a manifest: "):
        plan(layout)
    layout.blob_path(index).write_bytes(b'{"manifests": "\xff"}')  # not UTF-8: not a manifest either
    with pytest.raises(st.StorageError, match=r"^manifest sha256:[0-9a-f]{64} \(.*/data\) is not a manifest: 'utf-8' codec"):
        st.Storage(str(layout.root)).plan(True, 3600)
    layout.blob_path(index).write_bytes(b"[1]")
    with pytest.raises(st.StorageError, match=r"^manifest sha256:[0-9a-f]{64} \(.*/data\) is not a manifest: a JSON list, not an object$"):
        plan(layout)


def test_a_tag_or_link_that_cannot_be_read_stops_the_plan_instead_of_counting_as_gone(layout, tmp_path, monkeypatch):
    # As root nothing is unreadable: the errors come from a stand-in. A tag list or a link that cannot be read must
    # not look like "no tags" (every manifest would be untagged) or like a dangling tag.
    layout.image("app", [b"a"], tag="1")
    listdir = os.listdir

    def no_tags(path):
        if str(path).endswith(os.path.join("_manifests", "tags")):
            raise PermissionError(13, "Permission denied", path)
        return listdir(path)

    monkeypatch.setattr(os, "listdir", no_tags)
    with pytest.raises(st.StorageError, match=r"^cannot read .*_manifests/tags: Permission denied$"):
        plan(layout)
    monkeypatch.undo()
    link = layout.repo("app") / "_manifests" / "tags" / "1" / "current" / "link"
    link.unlink()
    link.mkdir()  # reading it fails with EISDIR
    with pytest.raises(st.StorageError, match=r"^cannot read .*/current/link: Is a directory$"):
        plan(layout)


# -- what each reading of the storage takes for held, gone or unreadable ----------------------------------------------
def test_a_revision_whose_manifest_blob_is_gone_is_not_held_and_its_tag_dangles(layout, tmp_path):
    tagged = layout.image("app", [b"tagged"], tag="1")
    untagged = layout.image("app", [b"untagged"])
    layout.blob_path(tagged).unlink()
    storage = st.Storage(str(tmp_path))
    assert storage.listing() == {("app", ""), ("app", untagged)}
    gone = storage.plan(True, 3600)
    assert gone.dangling == [("app", "1")] and gone.manifests == [("app", untagged)] and gone.repositories == ["app"]
    assert not gone.empty()


def test_a_revision_whose_directory_is_not_a_digest_is_not_held(layout, tmp_path):
    layout.image("app", [b"a"], tag="1")
    layout.link(layout.repo("app") / "_manifests" / "revisions" / "sha256" / "not.a.digest", "sha256:not.a.digest")
    blob = layout.v2 / "blobs" / "sha256" / "no" / "not.a.digest"
    blob.mkdir(parents=True)
    (blob / "data").write_bytes(b"{}")
    assert ("app", "sha256:not.a.digest") not in st.Storage(str(tmp_path)).listing()


def test_a_link_that_is_not_text_is_no_digest_never_a_crash(layout, tmp_path):
    kept = layout.image("app", [b"a"], tag="1")
    layout.tag("app", "2", kept)
    (layout.repo("app") / "_manifests" / "tags" / "2" / "current" / "link").write_bytes(b"sha256:\xff\xfe" + kept.encode())
    gone = plan(layout, delete_untagged=False)
    assert gone.dangling == [("app", "2")] and gone.manifests == []


def test_a_manifest_that_vanishes_while_the_plan_is_made_references_nothing(layout, tmp_path, monkeypatch):
    # A blob gone between the scan and the reading of the manifests (another collection ran): no crash, the manifest
    # counts as one gone before (its tag's index reaches nothing further, it marks nothing).
    child = layout.image("app", [b"child"])
    index = layout.index("app", [child], tag="multi")
    referrer = layout.image("app", [b"referrer"], subject=index)
    storage = st.Storage(str(tmp_path))
    scanned = storage.repositories

    def then_vanish():
        found = scanned()
        for digest in (index, referrer):
            layout.blob_path(digest).unlink()
        return found

    monkeypatch.setattr(storage, "repositories", then_vanish)
    gone = storage.plan(True, 3600)
    assert gone.manifests == sorted([("app", child), ("app", referrer)]) and gone.broken == []
    assert storage.manifest(index) is None and storage.manifest(index) is None
    assert child in gone.blobs and index not in gone.blobs


def test_a_directory_that_cannot_be_read_stops_the_scan(layout, tmp_path, monkeypatch):
    layout.image("team/app", [b"a"], tag="1")
    scandir = os.scandir
    blocked = str(layout.repo("team"))

    def refuse(path="."):
        if os.fspath(path) == blocked:
            raise PermissionError(13, "Permission denied", path)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)
    with pytest.raises(st.StorageError, match=r"^cannot read %s: Permission denied$" % re.escape(blocked)):
        plan(layout)


def test_a_blob_whose_stat_fails_is_an_error_naming_it(layout, tmp_path, monkeypatch):
    image = layout.image("app", [b"a"], tag="1")
    stat = os.stat
    blocked = str(layout.blob_path(image))

    def refuse(path, *args, **kwargs):
        if os.fspath(path) == blocked:
            raise PermissionError(13, "Permission denied", path)
        return stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", refuse)
    with pytest.raises(st.StorageError, match=r"^cannot read %s: Permission denied$" % re.escape(blocked)):
        plan(layout)


def test_files_gone_while_counted_are_skipped_the_rest_counted(layout, tmp_path, monkeypatch):
    for n in range(3):
        layout.blob(b"blob %d" % n)
    session = layout.upload("app", "u", 10)
    roots = [str(layout.v2 / "blobs"), str(session)]
    lstat = os.lstat
    failed = {}

    def vanish_first(path, *args, **kwargs):
        # the first file looked at in the blob store and in the session is gone as it is read
        name = os.fspath(path)
        root = next((r for r in roots if name.startswith(r + os.sep)), None)
        if root and root not in failed and os.path.isfile(name):
            failed[root] = name
            raise FileNotFoundError(2, "No such file or directory", name)
        return lstat(path, *args, **kwargs)

    storage = st.Storage(str(tmp_path))
    monkeypatch.setattr(os, "lstat", vanish_first)
    blobs = storage.blobs()
    uploads = storage.repositories()[0].uploads
    monkeypatch.undo()
    assert len(blobs) == 2 and all(size == 6 for size in blobs.values())
    assert uploads[0].bytes == 10 + 20 + 1 - os.path.getsize(failed[str(session)])


def test_blobs_of_every_algorithm_are_counted_under_their_own(layout, tmp_path):
    sha256 = layout.blob(b"a")
    other = layout.v2 / "blobs" / "sha512" / "ab" / ("ab" + "0" * 126)
    other.mkdir(parents=True)
    (other / "data").write_bytes(b"12345")
    assert st.Storage(str(tmp_path)).blobs() == {sha256: 1, "sha512:ab" + "0" * 126: 5}


def test_only_a_repository_with_manifests_is_listed(layout, tmp_path):
    image = layout.image("app", [b"a"], tag="1")
    layout.upload("uploads/only", "u", 5)
    layout.layer("layers/only", b"pushed, no manifest yet")
    storage = st.Storage(str(tmp_path))
    assert [r.name for r in storage.repositories()] == ["app", "layers/only", "uploads/only"]
    code, output = FakeBinary(layout).run(dry_run=True)
    assert code == 0 and storage.listing() == st.enumerated(output) == {("app", ""), ("app", image)}


def test_a_tag_named_like_a_storage_directory_is_no_repository(layout, tmp_path):
    image = layout.image("app", [b"a"], tag="_layers")
    layout.tag("app", "_uploads", image)
    layout.tag("app", "_manifests", image)
    assert [r.name for r in st.Storage(str(tmp_path)).repositories()] == ["app"]
    assert plan(layout).empty()


def test_a_repository_of_tags_only_or_layers_only_goes(layout, tmp_path):
    layout.tag("tags/only", "1", "sha256:" + "1" * 64)
    layout.layer("layers/only", b"pushed, no manifest yet")
    gone = plan(layout)
    assert gone.dangling == [("tags/only", "1")] and gone.repositories == ["layers/only", "tags/only"]


def test_every_repository_left_with_nothing_goes_whole(layout, tmp_path):
    layout.image("a/b", [b"b"])  # untagged only, a/b/c nested in it stays
    layout.image("a/b/c", [b"c"], tag="1")
    layout.upload("only/uploads", "u", 5, age=60)
    layout.image("z", [b"z"])
    storage = st.Storage(str(tmp_path))
    gone = storage.plan(True, 0)
    assert gone.repositories == ["a/b", "only/uploads", "z"]
    storage.apply(gone)
    assert [r.name for r in storage.repositories()] == ["a/b/c"]
    assert sorted(p.name for p in (layout.v2 / "repositories").iterdir()) == ["a"] and sorted(p.name for p in layout.repo("a/b").iterdir()) == ["c"]


def test_dangling_tags_of_every_repository_go(layout):
    for repo in ("one", "two"):
        layout.image(repo, [repo.encode()], tag="1")
        layout.tag(repo, "lost", "sha256:" + "2" * 64)
    assert plan(layout).dangling == [("one", "lost"), ("two", "lost")]


def test_uploads_go_strictly_older_than_the_threshold_and_every_one_with_zero(layout, tmp_path):
    layout.image("app", [b"a"], tag="1")
    session = layout.upload("app", "u", 1)
    for directory, _dirs, files in os.walk(session):
        for name in [*files, "."]:
            os.utime(os.path.join(directory, name), (1_000_000, 1_000_000))
    storage = st.Storage(str(tmp_path))
    assert storage.plan(False, 60, now=1_000_060).uploads == []
    assert [u.uuid for u in storage.plan(False, 60, now=1_000_061).uploads] == ["u"]
    assert storage.plan(False, 1, now=1_000_000).uploads == []
    # 0: every one, even one written "now" or later (another host's clock)
    assert [u.uuid for u in storage.plan(False, 0, now=999_000).uploads] == ["u"]


def test_a_symlink_in_the_storage_is_removed_never_followed(layout, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("users' data")
    layout.image("old", [b"o"])  # untagged only: the repository goes
    (layout.repo("old") / "_uploads").symlink_to(outside, target_is_directory=True)
    storage = st.Storage(str(tmp_path))
    gone = storage.plan(True, 0)
    assert gone.repositories == ["old"]
    storage.apply(gone)
    assert not layout.repo("old").exists() and (outside / "keep").read_text() == "users' data"


def test_a_removal_that_fails_is_an_error_naming_the_path(layout, tmp_path, monkeypatch):
    layout.image("app", [b"a"], tag="1")
    layout.tag("app", "lost", "sha256:" + "2" * 64)
    storage = st.Storage(str(tmp_path))
    gone = storage.plan(False, 3600)

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(st.shutil, "rmtree", refuse)
    tag = layout.repo("app") / "_manifests" / "tags" / "lost"
    with pytest.raises(st.StorageError, match=r"^cannot remove %s: Permission denied$" % re.escape(str(tag))):
        storage.apply(gone)


def test_what_each_kind_of_manifest_references():
    layers = [{"digest": "sha256:" + c * 64} for c in "12"]
    image = {"config": {"digest": "sha256:" + "c" * 64}, "layers": layers, "subject": {"digest": "sha256:" + "s" * 64}}
    assert st.parse_manifest(json.dumps(image).encode()) == st.Manifest(["sha256:" + c * 64 for c in "c12"], [], "sha256:" + "s" * 64)
    # an index (a Docker manifest list too): its manifests, entries without a digest skipped
    index = {"manifests": [{"digest": "sha256:" + "a" * 64}, "sha256:" + "b" * 64, {"size": 1}, {"digest": 7}], "subject": "not an object"}
    assert st.parse_manifest(json.dumps(index).encode()) == st.Manifest(["sha256:" + "a" * 64], ["sha256:" + "a" * 64], None)
    # schema 1: its layers' blobSums
    schema1 = {"schemaVersion": 1, "fsLayers": [{"blobSum": "sha256:" + "1" * 64}, {"blobSum": 1}, "x"], "layers": layers}
    assert st.parse_manifest(json.dumps(schema1).encode()) == st.Manifest(["sha256:" + "1" * 64], [], None)
    assert st.parse_manifest(b'{"fsLayers": 7}') == st.Manifest([], [], None)
    with pytest.raises(ValueError, match=r"^a JSON str, not an object$"):
        st.parse_manifest(b'"text"')


def test_a_referrers_lost_child_is_reported_through_its_subject(layout):
    image = layout.image("app", [b"app"], tag="1")
    lost = layout.image("app", [b"lost"])
    attached = layout.manifest("app", {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                       "manifests": [{"digest": lost}], "subject": {"digest": image}})  # fmt: skip
    shutil.rmtree(layout.repo("app") / "_manifests" / "revisions" / "sha256" / lost.split(":")[1])
    gone = plan(layout)
    assert gone.manifests == [] and gone.broken == ["app@%s names manifest %s, which app no longer holds" % (image, lost)]
    assert attached not in gone.blobs


def test_the_storage_the_registry_reads_is_judged_one_difference_at_a_time():
    a = ("a", "sha256:" + "1" * 64)
    listed = {("a", ""), a}
    # removed between the two readings: neither unseen nor unknown
    assert st.same_storage(listed, listed, {("a", "")}) is None
    assert st.same_storage(listed, {("a", "")}, {("a", "")}) is None
    assert st.same_storage(listed, listed | {("b", "")}, listed) == "the registry holds 1 repositories or manifests this path does not (e.g. b)"
    assert st.same_storage(listed, {("a", "")}, listed) == "this path holds 1 the registry does not (e.g. a@%s)" % a[1]
