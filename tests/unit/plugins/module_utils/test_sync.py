"""image_sync's copy logic (module_utils/sync.py) against in-memory registries."""

from __future__ import annotations

import json

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.common import InvalidOption
from ansible_collections.dockhand.registry.plugins.module_utils.reference import InvalidReference
from ansible_collections.dockhand.registry.plugins.module_utils.registry import BlobStream, Manifest, RegistryError
from ansible_collections.dockhand.registry.plugins.module_utils.sync import SyncError, sync_images
from ansible_collections.dockhand.registry.tests.support.unit import OCI_MANIFEST, FakeBlobResponse, FakeRegistry, digest

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def run(src: FakeRegistry, dest: FakeRegistry, **kwargs) -> dict:
    registries = {src.registry: src, dest.registry: dest}
    return sync_images(registries.__getitem__, registries.__getitem__, **kwargs)


@pytest.fixture
def src():
    return FakeRegistry("src.example:5000")


@pytest.fixture
def dest():
    return FakeRegistry("dest.example:5000")


def index_of(registry: FakeRegistry, repo: str, tag: str, children: list[dict]) -> Manifest:
    return registry.add_manifest(repo, tag, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})


def test_index_copied_verbatim_then_nothing(src, dest):
    children = [src.add_image("app", None, b"amd", "amd64"), src.add_image("app", None, b"arm", "arm64")]
    index = index_of(src, "app", "1.0", children)
    args = dict(src_repository="src.example:5000/app", dest_repository="dest.example:5000/team/app", tags=["1.0"])

    check = run(src, dest, check_mode=True, **args)
    assert check["changed"] and check["synced"] == ["dest.example:5000/team/app:1.0"] and dest.writes == []

    first = run(src, dest, **args)
    item = first["images"][0]
    assert first["changed"] and item["digest"] == index.digest and item["digest_preserved"]
    assert dest.manifests["team/app"]["1.0"].data == index.data  # verbatim bytes
    assert item["blobs"] == {"copied": 4, "mounted": 0, "present": 0}
    assert item["platforms"] == ["linux/amd64", "linux/arm64"]
    assert first["diff"] == {"before": "dest.example:5000/team/app:1.0 (absent)\n", "after": "dest.example:5000/team/app:1.0 %s\n" % index.digest}

    again = run(src, dest, **args)
    assert not again["changed"] and again["images"][0]["action"] == "present" and again["actions"] == []


def test_child_in_another_repository_fails_that_tag_only(src, dest):
    """The decision for an index whose children live elsewhere: fail that tag, naming the child; tag nothing."""
    elsewhere = src.add_image("other", None, b"arm", "arm64")
    index_of(src, "app", "multi", [src.add_image("app", None, b"amd"), elsewhere])
    src.add_image("app", "plain", b"plain")
    with pytest.raises(SyncError) as caught:
        run(src, dest, src_repository="src.example:5000/app", dest_repository="dest.example:5000/app", tags=["multi", "plain"])
    message = str(caught.value)
    assert "1 of 2 tags" in message and elsewhere["digest"] in message and "linux/arm64" in message
    assert "must live in its own repository" in message
    results = caught.value.results
    assert results[0]["failed"] and not results[0]["changed"] and results[1]["changed"]
    assert "multi" not in dest.manifests["app"] and "plain" in dest.manifests["app"]

    # Without the missing platform, the rest copies (under a new index digest).
    done = run(src, dest, images=[{"src": "src.example:5000/app:multi", "dest": "dest.example:5000/app:multi"}], platforms=["linux/amd64"])
    assert done["changed"] and not done["images"][0]["digest_preserved"]


def test_platforms_pattern_and_mount_in_one_registry(src):
    index_of(src, "app", "v1", [src.add_image("app", None, b"amd", "amd64"), src.add_image("app", None, b"arm", "arm64")])
    src.add_image("app", "v2", b"two")
    src.add_image("app", "x", b"x")
    result = run(src, src, src_repository="src.example:5000/app", dest_repository="src.example:5000/copy", tag_pattern="v[0-9]",
                 platforms=["linux/arm64"])
    assert [i["dest"] for i in result["images"]] == ["src.example:5000/copy:v1", "src.example:5000/copy:v2"]
    assert result["images"][0]["platforms"] == ["linux/arm64"] and not result["images"][0]["digest_preserved"]
    assert result["images"][1]["digest_preserved"]  # a single image: platforms do not apply
    assert all(write[0] == "mount" for write in src.writes if write[0] != "manifest")
    assert json.loads(src.manifests["copy"]["v1"].data)["manifests"][0]["platform"]["architecture"] == "arm64"


def test_shared_layer_is_copied_once(src, dest):
    for tag in ("a", "b", "c"):
        body = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": src.add_blob("app", b"config " + tag.encode()),
                "layers": [src.add_blob("app", b"shared layer")]}
        src.add_manifest("app", tag, body)
    result = run(src, dest, src_repository="src.example:5000/app", dest_repository="dest.example:5000/app", tags=["a", "b", "c"], workers=3)
    assert result["changed"]
    assert len([w for w in dest.writes if w[0] == "blob"]) == 4  # three configs, one shared layer


def test_cache_destination_fails_with_one_line(src):
    src.add_image("app", "1", b"one")
    cache = FakeRegistry("cache.example:5000", read_only=True)
    with pytest.raises(SyncError) as caught:
        run(src, cache, images=[{"src": "src.example:5000/app:1", "dest": "cache.example:5000/app:1"}])
    assert "pull-through cache" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"src_repository": "src.example:5000/app", "dest_repository": "dest.example:5000/app", "tag_pattern": "("}, "invalid tag_pattern '('"),
        ({"src_repository": "src.example:5000/app", "dest_repository": "dest.example:5000/app", "tags": ["bad tag"]}, "invalid tag 'bad tag'"),
        ({"src_repository": "app", "dest_repository": "dest.example:5000/app", "tags": ["1"]}, "name the registry"),
        ({"images": [{"src": "src.example:5000/app:1"}]}, "give src and dest"),
        ({"images": [{"src": "src.example:5000/app@sha256:" + "a" * 64, "dest": "dest.example:5000/app:1"}]}, "not a digest"),
        ({"images": [{"src": "src.example:5000/app:1", "dest": "dest.example:5000/app:1"}], "platforms": ["linux"]}, "invalid platform 'linux'"),
    ],
)
def test_bad_input_fails_before_any_write(src, dest, kwargs, expected):
    src.add_image("app", "1", b"one")
    with pytest.raises(InvalidReference, match=expected.replace("(", r"\(").replace(")", r"\)")):
        run(src, dest, **kwargs)
    assert dest.writes == []


@pytest.mark.parametrize("workers", [0, 65])
def test_workers_out_of_range_fail_before_any_write(src, dest, workers):
    src.add_image("app", "1", b"one")
    with pytest.raises(InvalidOption, match="workers must be between 1 and 64, got %d" % workers):
        run(src, dest, images=[], workers=workers)
    assert dest.writes == []


def test_blob_stream_reads_in_bounded_pieces():
    stream = BlobStream(FakeBlobResponse(b"x" * 1000), 1000)
    assert len(stream) == 1000
    assert len(stream.read(10**9)) == 1000 and stream.read(10) == b"" and stream.sent == 1000


def test_the_fake_refuses_what_distribution_refuses(dest):
    """The in-memory registry is no more lenient than distribution: an index whose children are missing, an image
    whose blobs are missing, a digest reference that is not the bytes' digest, an upload that is not its digest."""
    child = {"mediaType": OCI_MANIFEST, "digest": digest(b"absent"), "size": 6}
    index = Manifest(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child]}).encode(), OCI_INDEX, "x")
    with pytest.raises(RegistryError, match=r"child manifest .* is unknown"):
        dest.put_manifest("app", "t", index)
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(b"layer"), "size": 5}
    body = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": dest.add_blob("app", b"{}"), "layers": [layer]}
    image = Manifest(json.dumps(body).encode(), OCI_MANIFEST, "x")
    with pytest.raises(RegistryError, match=r"blob .* is unknown"):
        dest.put_manifest("app", "t", image)
    dest.add_blob("app", b"layer")
    with pytest.raises(RegistryError, match="DIGEST_INVALID"):
        dest.put_manifest("app", digest(b"other bytes"), image)
    assert dest.put_manifest("app", "t", image) == digest(image.data)  # the bytes' digest, not the client's claim
    with pytest.raises(RegistryError, match="DIGEST_INVALID"):
        dest.upload_blob("app", "upload:app", digest(b"claimed"), BlobStream(FakeBlobResponse(b"sent"), 4))
    assert dest.writes == [("manifest", "app", "t")]


def family(src: FakeRegistry, refs: list[tuple[str, str]], first: int = 0) -> None:
    """Images sharing one base layer, each with its own layer and configuration."""
    for number, (repo, tag) in enumerate(refs, first):
        body = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": src.add_blob(repo, b"config %d" % number),
                "layers": [src.add_blob(repo, b"base layer"), src.add_blob(repo, b"own layer %d" % number)]}
        src.add_manifest(repo, tag, body)


def test_new_repositories_get_no_question_the_run_knows_the_answer_to(src, dest):
    """Five new repositories sharing a base layer: the catalog once, each repository's tags once (404: new), no HEAD of a
    tag or a blob; the base layer uploaded once and mounted in the four others straight away."""
    refs = [("r%d" % n, "1.0") for n in range(5)]
    family(src, refs)
    base = digest(b"base layer")
    images = [{"src": "src.example:5000/%s:%s" % ref, "dest": "dest.example:5000/%s:%s" % ref} for ref in refs]
    first = run(src, dest, images=images, workers=3)
    assert first["changed"] and all(i["digest_preserved"] for i in first["images"])
    assert dest.calls.count(("catalog", "")) == 1
    assert not [c for c in dest.calls if c[0] in ("head", "blob head")], dest.calls
    assert sorted(c for c in dest.calls if c[0] == "tags") == [("tags", "r%d" % n) for n in range(5)]
    assert len([w for w in dest.writes if w[0] == "blob" and w[2] == base]) == 1
    assert len([w for w in dest.writes if w[0] == "mount" and w[2] == base]) == 4
    assert sum(i["blobs"]["mounted"] for i in first["images"]) == 4 and sum(i["blobs"]["copied"] for i in first["images"]) == 11
    for repo, tag in refs:
        assert dest.manifests[repo][tag].data == src.manifests[repo][tag].data

    # Again: the repositories are in the catalog now, one HEAD per tag, nothing written.
    dest.calls.clear()
    dest.writes.clear()
    again = run(src, dest, images=images, workers=3)
    assert not again["changed"] and dest.writes == []
    assert sorted(c for c in dest.calls if c[0] == "head") == [("head", repo, tag) for repo, tag in refs]
    assert not [c for c in dest.calls if c[0] in ("blob head", "tags")], dest.calls


def test_tags_of_one_new_repository_listed_once_and_its_blobs_not_asked_for(src, dest):
    refs = [("app", "t%d" % n) for n in range(4)]
    family(src, refs)
    first = run(src, dest, src_repository="src.example:5000/app", dest_repository="dest.example:5000/app", tag_pattern="t.*", workers=4)
    assert first["changed"] and len(first["synced"]) == 4
    assert dest.calls == [("tags", "app")]  # no catalog for one repository, no HEAD at all
    assert len([w for w in dest.writes if w[0] == "blob"]) == 9  # four configs, four own layers, the base once

    dest.calls.clear()
    dest.writes.clear()
    family(src, [("app", "t9")], first=9)
    second = run(src, dest, src_repository="src.example:5000/app", dest_repository="dest.example:5000/app", tag_pattern="t.*", workers=4)
    assert second["synced"] == ["dest.example:5000/app:t9"]
    # The repository exists: the listed tags answer for the four present ones (one HEAD each to compare digests) and
    # the new tag's blobs are asked for once each (the base is present: not uploaded again).
    assert sorted(c[2] for c in dest.calls if c[0] == "head") == ["t0", "t1", "t2", "t3"]
    assert len([c for c in dest.calls if c[0] == "blob head"]) == 3
    assert [w[0] for w in dest.writes] == ["blob", "blob", "manifest"]


def test_an_existing_repository_is_asked_before_anything_is_written(src, dest):
    """Fewer than three tags for a repository the destination has: HEAD the tag, HEAD each blob (present: kept)."""
    family(src, [("app", "1"), ("app", "2")])
    run(src, dest, images=[{"src": "src.example:5000/app:1", "dest": "dest.example:5000/app:1"}])
    dest.calls.clear()
    dest.writes.clear()
    run(src, dest, images=[{"src": "src.example:5000/app:2", "dest": "dest.example:5000/app:2"}])
    assert [c[0] for c in dest.calls] == ["head", "blob head", "blob head", "blob head"]
    assert [w[0] for w in dest.writes] == ["blob", "blob", "manifest"]  # config and own layer; the base was there
