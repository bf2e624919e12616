"""image_sync's copy of an index's children and blobs, judged on the whole result and on every write the destination
saw: the source is read only through source clients and written never; blobs before child manifests before the tag;
blobs the destination holds are not sent again; foreign layers are never fetched; check mode reads no blob."""

from __future__ import annotations

import json

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.registry import Manifest
from ansible_collections.dockhand.registry.plugins.module_utils.sync import SyncError, sync_images
from ansible_collections.dockhand.registry.tests.unit.plugins.module_utils.test_sync import (
    OCI_INDEX,
    OCI_MANIFEST,
    FakeRegistry,
    digest,
    index_of,
)


class SourceOnly(FakeRegistry):
    """A source registry that refuses every write and counts every blob read (with the size it was asked for)."""

    def __init__(self, name: str) -> None:
        super().__init__(name, read_only=True)
        self.reads: list[tuple[str, str, int]] = []

    def open_blob(self, repo: str, blob: str, size: int):
        assert size == len(self.blobs[repo][blob]), "asked for %s bytes of a %d-byte blob" % (size, len(self.blobs[repo][blob]))
        self.reads.append((repo, blob, size))
        return super().open_blob(repo, blob, size)


def sync(src: FakeRegistry, dest: FakeRegistry, **kwargs) -> dict:
    """Source clients come only from the source factory, destination clients only from the destination one."""
    return sync_images({src.registry: src}.__getitem__, {dest.registry: dest}.__getitem__, **kwargs)


@pytest.fixture
def src():
    return SourceOnly("src.example:5000")


@pytest.fixture
def dest():
    return FakeRegistry("dest.example:5000")


def two_platforms(src: FakeRegistry) -> tuple[Manifest, list[dict]]:
    children = [src.add_image("app", None, b"amd64 layer", "amd64"), src.add_image("app", None, b"arm64 layer", "arm64")]
    return index_of(src, "app", "1.0", children), children


ARGS = dict(src_repository="src.example:5000/app", dest_repository="dest.example:5000/copy/app", tags=["1.0"])


def test_check_mode_reads_no_blob_writes_nothing_and_says_what_it_would_do(src, dest):
    index, _children = two_platforms(src)
    result = sync(src, dest, check_mode=True, **ARGS)
    assert result == {
        "changed": True,
        "synced": ["dest.example:5000/copy/app:1.0"],
        "actions": ["would copy src.example:5000/app:1.0 -> dest.example:5000/copy/app:1.0 (%s)" % index.digest],
        "images": [{
            "source": "src.example:5000/app:1.0", "dest": "dest.example:5000/copy/app:1.0", "changed": True, "failed": False,
            "source_digest": index.digest, "digest_before": None, "digest": index.digest, "digest_preserved": True,
            "media_type": OCI_INDEX, "platforms": ["linux/amd64", "linux/arm64"], "action": "would copy",
            "blobs": {"copied": 0, "mounted": 0, "present": 0}, "bytes_copied": 0,
        }],
        "diff": {"before": "dest.example:5000/copy/app:1.0 (absent)\n", "after": "dest.example:5000/copy/app:1.0 %s\n" % index.digest},
    }  # fmt: skip
    assert dest.writes == [] and src.reads == []


def test_a_copy_writes_blobs_then_children_then_the_tag_and_reports_every_byte(src, dest):
    index, children = two_platforms(src)
    result = sync(src, dest, **ARGS)
    item = result["images"][0]
    sizes = sum(len(data) for data in src.blobs["app"].values())
    assert item == {
        "source": "src.example:5000/app:1.0", "dest": "dest.example:5000/copy/app:1.0", "changed": True, "failed": False,
        "source_digest": index.digest, "digest_before": None, "digest": index.digest, "digest_preserved": True,
        "media_type": OCI_INDEX, "platforms": ["linux/amd64", "linux/arm64"], "action": "copied",
        "blobs": {"copied": 4, "mounted": 0, "present": 0}, "bytes_copied": sizes,
    }  # fmt: skip
    assert result["actions"] == ["copied src.example:5000/app:1.0 -> dest.example:5000/copy/app:1.0 (%s)" % index.digest]
    kinds = [write[0] for write in dest.writes]
    assert kinds == ["blob", "blob", "manifest", "blob", "blob", "manifest", "manifest"], dest.writes
    assert [w[2] for w in dest.writes if w[0] == "manifest"] == [children[0]["digest"], children[1]["digest"], "1.0"]
    assert all(write[1] == "copy/app" for write in dest.writes)
    assert dest.manifests["copy/app"]["1.0"].data == index.data
    assert sorted(src.reads) == sorted(("app", blob, len(data)) for blob, data in src.blobs["app"].items())

    again = sync(src, dest, **ARGS)
    assert again["images"][0]["action"] == "present" and again["images"][0]["digest_before"] == index.digest
    assert again["images"][0]["blobs"] == {"copied": 0, "mounted": 0, "present": 0} and not again["changed"]
    assert len(dest.writes) == 7 and len(src.reads) == 4


def test_blobs_the_destination_holds_are_not_sent_again_and_a_shared_layer_goes_once(src, dest):
    shared = b"layer both images share"
    first = src.add_manifest("app", "a", {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": src.add_blob("app", b"config a"),
                                          "layers": [src.add_blob("app", shared)]})  # fmt: skip
    src.add_manifest("app", "b", {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": src.add_blob("app", b"config b"),
                                  "layers": [src.add_blob("app", shared)]})  # fmt: skip
    dest.add_blob("copy/app", b"config a")
    result = sync(src, dest, src_repository="src.example:5000/app", dest_repository="dest.example:5000/copy/app", tags=["a", "b"], workers=1)
    assert [i["blobs"] for i in result["images"]] == [{"copied": 1, "mounted": 0, "present": 1}, {"copied": 1, "mounted": 0, "present": 1}]
    assert [i["bytes_copied"] for i in result["images"]] == [len(shared), len(b"config b")]
    assert sorted(blob for _repo, blob, _size in src.reads) == sorted([digest(shared), digest(b"config b")])
    assert dest.manifests["copy/app"]["a"].data == first.data


def test_a_repository_of_the_same_registry_mounts_and_the_next_one_mounts_from_the_first_copy():
    registry = FakeRegistry("one.example:5000")
    registry.add_image("app", "1", b"layer")
    both = {registry.registry: registry}.__getitem__
    first = sync_images(both, both, images=[{"src": "one.example:5000/app:1", "dest": "one.example:5000/copy:1"}])
    assert first["images"][0]["blobs"] == {"copied": 0, "mounted": 2, "present": 0}
    assert first["images"][0]["bytes_copied"] == 0
    assert [w[0] for w in registry.writes] == ["mount", "mount", "manifest"]


def test_foreign_layers_are_never_fetched_nor_sent(src, dest):
    foreign = {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "digest": digest(b"windows base"),
               "size": 12, "urls": ["https://example.invalid/base"]}  # fmt: skip
    body = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": src.add_blob("app", b"config"),
            "layers": [foreign, src.add_blob("app", b"own layer")]}  # fmt: skip
    src.add_manifest("app", "win", body)
    result = sync(src, dest, images=[{"src": "src.example:5000/app:win", "dest": "dest.example:5000/app:win"}])
    assert result["images"][0]["blobs"] == {"copied": 2, "mounted": 0, "present": 0}
    assert digest(b"windows base") not in [blob for _repo, blob, _size in src.reads]
    assert [w[0] for w in dest.writes] == ["blob", "blob", "manifest"]


def test_a_layer_with_urls_that_is_not_foreign_is_copied(src, dest):
    layer = dict(src.add_blob("app", b"mirrored layer"), urls=["https://example.invalid/layer"])
    del layer["mediaType"]  # no media type at all: not a foreign layer either
    src.add_manifest("app", "t", {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": src.add_blob("app", b"c"), "layers": [layer]})
    result = sync(src, dest, images=[{"src": "src.example:5000/app:t", "dest": "dest.example:5000/app:t"}])
    assert result["images"][0]["blobs"] == {"copied": 2, "mounted": 0, "present": 0}


def test_chosen_platforms_make_a_stable_subset_index(src, dest):
    index, children = two_platforms(src)
    result = sync(src, dest, platforms=["linux/arm64"], **ARGS)
    body = json.loads(index.data)
    body["manifests"] = [children[1]]
    expected = json.dumps(body, indent=3).encode()  # the same bytes from every run and version: a stable digest
    item = result["images"][0]
    assert item["digest"] == digest(expected) and not item["digest_preserved"] and item["source_digest"] == index.digest
    assert item["media_type"] == OCI_INDEX and item["platforms"] == ["linux/arm64"]
    assert dest.manifests["copy/app"]["1.0"] == Manifest(expected, OCI_INDEX, digest(expected))
    assert item["blobs"] == {"copied": 2, "mounted": 0, "present": 0}


def test_messages_name_the_platforms_and_the_unsupported_type(src, dest):
    two_platforms(src)
    with pytest.raises(SyncError) as caught:
        sync(src, dest, platforms=["linux/s390x", "windows/amd64/v2"], **ARGS)
    assert caught.value.results[0]["msg"] == (
        "src.example:5000/app:1.0: none of the platforms linux/s390x, windows/amd64/v2 is in the index (it has linux/amd64, linux/arm64)"
    )
    src.manifests["app"]["old"] = Manifest(b'{"schemaVersion": 1}', "application/vnd.docker.distribution.manifest.v1+prettyjws", "sha256:x")
    with pytest.raises(SyncError) as caught:
        sync(src, dest, images=[{"src": "src.example:5000/app:old", "dest": "dest.example:5000/app:old"}])
    assert caught.value.results[0]["msg"] == (
        "src.example:5000/app:old: manifest type 'application/vnd.docker.distribution.manifest.v1+prettyjws' is not supported"
        " (schema 2 and OCI only)"
    )
    assert dest.writes == []


def test_a_destination_that_stores_another_digest_fails_the_tag(src, dest):
    src.add_image("app", "t", b"layer")

    def lying_put(repo, ref, manifest):
        FakeRegistry.put_manifest(dest, repo, ref, manifest)
        return "sha256:" + "0" * 64

    dest.put_manifest = lying_put
    with pytest.raises(SyncError) as caught:
        sync(src, dest, images=[{"src": "src.example:5000/app:t", "dest": "dest.example:5000/app:t"}])
    result = caught.value.results[0]
    assert result["msg"] == "dest.example:5000/app:t: the destination stored digest sha256:%s, not %s" % ("0" * 64, result["digest"])
    assert result["failed"] and not result["changed"]


def test_a_bad_manifest_fails_the_tag_in_one_line(src, dest):
    src.manifests["app"] = {"t": Manifest(b'{"schemaVersion": 2}', OCI_MANIFEST, "sha256:y")}
    with pytest.raises(SyncError) as caught:
        sync(src, dest, images=[{"src": "src.example:5000/app:t", "dest": "dest.example:5000/app:t"}])
    assert caught.value.results[0]["msg"] == "src.example:5000/app:t: bad manifest ('config')"
    assert caught.value.results[0]["changed"] is False


def test_listed_destination_tags_still_get_a_head_and_an_absent_one_none(src, dest):
    for number in range(3):
        src.add_image("app", "t%d" % number, b"layer %d" % number)
    sync(src, dest, src_repository="src.example:5000/app", dest_repository="dest.example:5000/app", tags=["t0"])
    asked: list[str] = []
    original = dest.manifest_digest
    dest.manifest_digest = lambda repo, ref: asked.append(ref) or original(repo, ref)
    result = sync(src, dest, src_repository="src.example:5000/app", dest_repository="dest.example:5000/app", tags=["t0", "t1", "t2"])
    assert [i["action"] for i in result["images"]] == ["present", "copied", "copied"]
    assert [i["digest_before"] for i in result["images"]] == [result["images"][0]["digest"], None, None]
    assert asked == ["t0"]  # three tags into one repository: one listing, a HEAD only for the tag it lists


def test_every_blob_the_destination_holds_is_counted_and_no_mount_is_asked_across_registries(src, dest):
    src.add_image("app", "t", b"layer")
    for data in src.blobs["app"].values():
        dest.add_blob("app", data)
    asked: list[tuple] = []
    original = dest.start_upload
    dest.start_upload = lambda repo, mount=None, mount_from=None: asked.append((repo, mount, mount_from)) or original(repo, mount, mount_from)
    result = sync(src, dest, images=[{"src": "src.example:5000/app:t", "dest": "dest.example:5000/app:t"}])
    assert result["images"][0]["blobs"] == {"copied": 0, "mounted": 0, "present": 2} and asked == []
    src.add_image("app", "u", b"other layer")
    sync(src, dest, images=[{"src": "src.example:5000/app:u", "dest": "dest.example:5000/app:u"}])
    assert asked == [("app", None, None), ("app", None, None)]  # another registry: an upload, never a mount


def test_a_blob_copied_into_one_repository_is_mounted_into_the_next(src, dest):
    src.add_image("app", "t", b"layer")
    result = sync(src, dest, workers=1, images=[{"src": "src.example:5000/app:t", "dest": "dest.example:5000/one:t"},
                                                {"src": "src.example:5000/app:t", "dest": "dest.example:5000/two:t"}])  # fmt: skip
    assert [i["blobs"] for i in result["images"]] == [{"copied": 2, "mounted": 0, "present": 0}, {"copied": 0, "mounted": 2, "present": 0}]
    assert len(src.reads) == 2


def test_a_child_the_destination_already_holds_is_not_written_again(src, dest):
    shared = src.add_image("app", None, b"shared amd64", "amd64")
    index_of(src, "app", "1", [shared, src.add_image("app", None, b"arm one", "arm64")])
    index_of(src, "app", "2", [shared, src.add_image("app", None, b"arm two", "arm64")])
    sync(src, dest, images=[{"src": "src.example:5000/app:1", "dest": "dest.example:5000/app:1"}])
    before = len(dest.writes)
    sync(src, dest, images=[{"src": "src.example:5000/app:2", "dest": "dest.example:5000/app:2"}])
    manifests = [w[2] for w in dest.writes[before:] if w[0] == "manifest"]
    assert shared["digest"] not in manifests and len(manifests) == 2, manifests


def test_two_tags_of_one_image_copy_each_blob_once_and_ask_the_destination_once(src, dest):
    body = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": src.add_blob("app", b"config"), "layers": [src.add_blob("app", b"layer")]}
    src.add_manifest("app", "a", body)
    src.add_manifest("app", "b", body)
    asked: list[str] = []
    original = dest.has_blob
    dest.has_blob = lambda repo, blob: asked.append(blob) or original(repo, blob)
    result = sync(src, dest, src_repository="src.example:5000/app", dest_repository="dest.example:5000/app", tags=["a", "b"], workers=1)
    assert [i["blobs"] for i in result["images"]] == [{"copied": 2, "mounted": 0, "present": 0}, {"copied": 0, "mounted": 0, "present": 2}]
    assert len(asked) == 2 and len(src.reads) == 2  # the second tag's blobs: known copied in this run, no HEAD
