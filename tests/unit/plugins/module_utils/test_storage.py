"""What a tag reaches, computed from a registry's filesystem storage (module_utils/storage.py), on layouts written by
hand: indexes of indexes, nested repositories, layers shared across repositories, referrers, dangling tags, uploads."""

from __future__ import annotations

import json
import os
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


def test_an_empty_or_missing_storage_plans_nothing(tmp_path):
    storage = st.Storage(str(tmp_path / "nothing"))
    assert storage.plan(True, 0).empty() and storage.listing() == set() and storage.usage()["blobs"] == 0


def test_a_manifest_that_cannot_be_read_stops_the_plan(layout, tmp_path):
    child = layout.image("app", [b"child"])
    index = layout.index("app", [child], tag="multi")
    layout.blob_path(index).write_bytes(b"{not json")
    with pytest.raises(st.StorageError, match=r"manifest sha256:[0-9a-f]{64} \(.*/data\) is not a manifest"):
        plan(layout)
    layout.blob_path(index).write_bytes(b"[1]")
    with pytest.raises(st.StorageError, match="a JSON list, not an object"):
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
    with pytest.raises(st.StorageError, match=r"cannot read .*_manifests/tags: Permission denied"):
        plan(layout)
    monkeypatch.undo()
    link = layout.repo("app") / "_manifests" / "tags" / "1" / "current" / "link"
    link.unlink()
    link.mkdir()  # reading it fails with EISDIR
    with pytest.raises(st.StorageError, match=r"cannot read .*/current/link: Is a directory"):
        plan(layout)
