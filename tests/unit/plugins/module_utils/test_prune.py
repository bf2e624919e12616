"""registry_prune's planning and deleting against an in-memory registry (no network)."""

from __future__ import annotations

import datetime
import time

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.catalog import InvalidPattern, TagInfo, read_catalog
from ansible_collections.dockhand.registry.plugins.module_utils.prune import Rule, compile_rules, plan_prune, run_prune
from ansible_collections.dockhand.registry.plugins.module_utils.registry import RegistryDeleteDisabled
from ansible_collections.dockhand.registry.tests.support.unit import MemoryRegistry, memory_client

NOW = datetime.datetime(2026, 11, 30, tzinfo=datetime.timezone.utc)


def twelve(fake: MemoryRegistry) -> None:
    for n in range(11):
        fake.image("app", ["1.%d" % n] + (["latest"] if n == 10 else []), "2026-11-%02dT00:00:00Z" % (n + 1))


# -- planning -------------------------------------------------------------------------------
def rule(**kw) -> Rule:
    return compile_rules([dict({"repository": ".*"}, **kw)])[0]


def infos_of(fake: MemoryRegistry, repo: str = "app") -> list[TagInfo]:
    return read_catalog(memory_client(fake), [repo])["infos"][repo]


def test_keep_three_and_latest_deletes_eight():
    fake = MemoryRegistry()
    twelve(fake)
    plan = plan_prune(infos_of(fake), rule(keep_last=3, keep_tags=["latest"]), NOW)
    gone = sorted(t for tags in plan["delete"].values() for t in tags)
    assert gone == ["1.%d" % n for n in range(8)]
    assert set(plan["keep"]) == {"1.8", "1.9", "1.10", "latest"}


def test_a_digest_shared_with_a_kept_tag_is_never_deleted():
    fake = MemoryRegistry()
    twelve(fake)
    fake.tags["app"]["stable"] = fake.tags["app"]["1.2"]  # an old digest a release tag still points at
    plan = plan_prune(infos_of(fake), rule(keep_last=3, keep_tags=["latest", "stable"]), NOW)
    assert fake.tags["app"]["1.2"] not in plan["delete"]
    assert plan["keep"]["1.2"].startswith("shares digest")


def test_children_of_a_kept_index_are_protected():
    fake = MemoryRegistry()
    amd = fake.image("app", ["amd"], "2026-01-01T00:00:00Z")
    arm = fake.image("app", ["arm"], "2026-01-01T00:00:00Z", seed="arm")
    fake.index("app", ["multi"], [amd, arm])
    held = infos_of(fake)
    multi = next(i for i in held if i.tag == "multi")
    assert multi.platforms == ["linux/amd64", "linux/arm64"]
    assert multi.size == sum(i.size for i in held if i.tag in ("amd", "arm"))
    plan = plan_prune(held, rule(keep_last=0, keep_tags=["multi"]), NOW)
    assert plan["delete"] == {}


def test_older_than_days_guards_young_tags():
    fake = MemoryRegistry()
    fake.image("app", ["old"], "2026-01-01T00:00:00Z")
    fake.image("app", ["young"], "2026-11-29T00:00:00Z")
    plan = plan_prune(infos_of(fake), rule(older_than_days=7), NOW)
    assert [t for tags in plan["delete"].values() for t in tags] == ["old"]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"repository": "app"}], "neither keep_last nor older_than_days"),
        ([{"keep_last": -1}], "keep_last -1"),
        ([{"keep_last": 1, "keep_tags": ["("]}], "keep_tags pattern '('"),
        ([{"repository": "[", "keep_last": 1}], "repository pattern '['"),
    ],
)
def test_bad_rules_are_refused_naming_the_value(rules, message):
    with pytest.raises(InvalidPattern, match=message.replace("(", r"\(").replace("[", r"\[")):
        compile_rules(rules)


# -- run_prune -------------------------------------------------------------------------------
def test_check_mode_deletes_nothing_and_a_rerun_deletes_nothing():
    fake = MemoryRegistry()
    twelve(fake)
    rules = [{"repository": "app", "keep_last": 3, "keep_tags": ["latest"]}]
    check = run_prune(memory_client(fake), rules, check_mode=True, now=NOW)
    assert check["changed"] and len(check["deleted"]) == 8 and fake.deleted == []
    assert check["diff"]["after"]["tags"]["app"] == ["1.8", "1.9", "1.10", "latest"]
    done = run_prune(memory_client(fake), rules, now=NOW)
    assert done["changed"] and sorted(fake.deleted) == sorted(d["digest"] for d in check["deleted"])
    again = run_prune(memory_client(fake), rules, now=NOW)
    assert not again["changed"] and again["deleted"] == []


def test_deletes_disabled_fail_before_anything_goes():
    fake = MemoryRegistry(delete_enabled=False)
    twelve(fake)
    with pytest.raises(RegistryDeleteDisabled, match="REGISTRY_STORAGE_DELETE_ENABLED=true"):
        run_prune(memory_client(fake), [{"keep_last": 3}], now=NOW)
    assert len(fake.tags["app"]) == 12


# -- a kept tag moved while the prune deletes (distribution 2.8 deletes by digest, with every tag on it) --------------
RULES = [{"repository": "app", "keep_last": 3, "keep_tags": ["latest"]}]


def planned(fake: MemoryRegistry) -> list[str]:
    """The digests the rules delete, in the order run_prune deletes them (digest order)."""
    plan = plan_prune(infos_of(fake), rule(keep_last=3, keep_tags=["latest"]), NOW)
    return sorted(plan["delete"])


def client_of(fake: MemoryRegistry, workers: int):
    from ansible_collections.dockhand.registry.plugins.module_utils.registry import RegistryClient

    return RegistryClient("localhost:5500", scheme="http", session=fake, pool_size=workers)  # type: ignore[arg-type]


def test_a_kept_tag_moved_onto_a_planned_digest_before_its_delete_stops_that_delete():
    fake = MemoryRegistry()
    twelve(fake)
    last = planned(fake)[-1]
    moved = []

    def other_client(method, path):
        if method == "DELETE" and not moved and not path.endswith("0" * 64):
            moved.append(True)
            fake.tags["app"]["latest"] = last  # another client tags an old image latest

    fake.before = other_client
    done = run_prune(client_of(fake, 1), RULES, now=NOW)
    assert fake.tags["app"]["latest"] == last and last not in fake.deleted
    assert done["skipped"] == [{"repository": "app", "digest": last, "tags": [t for t, d in fake.tags["app"].items() if d == last and t != "latest"],
                                "reason": "tag latest points at it now"}]
    assert len(done["deleted"]) == 7 and done["restored"] == []


def test_a_kept_tag_taken_by_the_delete_itself_is_put_back_where_it_was():
    """Moved in the instant between the prune's last read and the delete: the delete takes it; the prune puts it
    back at the digest it was last read at (the other client's move is undone, and said)."""
    fake = MemoryRegistry()
    twelve(fake)
    first = planned(fake)[0]
    before = fake.tags["app"]["latest"]

    def other_client(method, path):
        if method == "DELETE" and path.endswith(first) and fake.tags["app"]["latest"] == before:
            fake.tags["app"]["latest"] = first

    fake.before = other_client
    done = run_prune(client_of(fake, 1), RULES, now=NOW)
    assert fake.tags["app"]["latest"] == before
    assert [(r["tag"], r["digest"]) for r in done["restored"]] == [("latest", before)]
    assert "put back at %s, where it was last read" % before in done["restored"][0]["reason"]
    assert any("latest@" + before in w for w in done["warnings"]) and done["changed"]


def test_a_kept_tag_seen_on_a_digest_being_deleted_is_put_back_there_from_the_bytes_read_before():
    """Another worker's read saw the tag on the digest whose delete was already under way: put back exactly there,
    from the manifest bytes the prune read before deleting it (the registry no longer holds the manifest)."""
    fake = MemoryRegistry()
    twelve(fake)
    first = planned(fake)[0]
    body = fake.manifests[first]

    def other_client(method, path):
        if method == "DELETE" and path.endswith(first) and fake.tags["app"]["latest"] != first:
            fake.tags["app"]["latest"] = first
            time.sleep(0.3)  # the other worker reads the tags meanwhile, then this delete goes on (and takes latest)

    fake.before = other_client
    done = run_prune(client_of(fake, 2), RULES, now=NOW)
    assert fake.tags["app"]["latest"] == first and fake.holds("app", first) and fake.manifests[first] == body
    assert [(r["tag"], r["digest"]) for r in done["restored"]] == [("latest", first)]
    assert "which this prune deleted: put back there" in done["restored"][0]["reason"]


def test_a_tag_that_appeared_after_the_plan_stops_the_delete_of_its_digest():
    fake = MemoryRegistry()
    twelve(fake)
    last = planned(fake)[-1]

    def other_client(method, path):
        if method == "DELETE" and "hotfix" not in fake.tags["app"]:
            fake.tags["app"]["hotfix"] = last

    fake.before = other_client
    done = run_prune(client_of(fake, 1), RULES, now=NOW)
    assert fake.tags["app"]["hotfix"] == last and [s["reason"] for s in done["skipped"]] == ["tag hotfix points at it now"]


def test_a_tag_deleted_by_another_client_with_its_manifest_is_left_deleted():
    fake = MemoryRegistry()
    twelve(fake)
    latest = fake.tags["app"]["latest"]

    def other_client(method, path):
        if method == "DELETE" and fake.holds("app", latest) and not path.endswith("0" * 64):
            fake.removed.add(("app", latest))
            del fake.tags["app"]["latest"]

    fake.before = other_client
    done = run_prune(client_of(fake, 1), RULES, now=NOW)
    assert "latest" not in fake.tags["app"] and done["restored"] == []
    assert any("which another client deleted: left as it is" in w for w in done["warnings"])


def test_deletes_share_their_reads_of_the_kept_tags():
    """Each delete waits for a read of the kept tags that started after its turn came; workers in parallel share
    those reads, so their number does not grow with the number of deletes."""
    from ansible_collections.dockhand.registry.plugins.module_utils.prune import TagWatch

    fake = MemoryRegistry()
    twelve(fake)

    def slow_list(method, path):
        if path.endswith("tags/list"):
            time.sleep(0.05)

    fake.before = slow_list
    client = client_of(fake, 16)
    watch = TagWatch(client, "app", list(fake.tags["app"]), {"latest": fake.tags["app"]["latest"]}, set())
    asked: list[float] = []

    def one(_n):
        asked.append(time.monotonic())
        return watch.fresh()

    answers = client.map(one, range(16))
    assert all(a == {"latest": fake.tags["app"]["latest"]} for a in answers)
    assert watch.reads <= 3, watch.reads


def test_a_delete_the_registry_fails_half_way_leaves_no_dangling_tag():
    """Distribution 2.8 removes the manifest, then its tags; a failure in between (HTTP 500 when another client
    writes a tag link at that moment) leaves the tags dangling: they are removed, and the result says so."""
    fake = MemoryRegistry()
    twelve(fake)
    broken = planned(fake)[2]
    fake.half_deletes.add(broken)
    tags = [t for t, d in fake.tags["app"].items() if d == broken]
    done = run_prune(client_of(fake, 4), RULES, now=NOW)
    assert not set(tags) & set(fake.tags["app"]) and len(done["deleted"]) == 8
    assert any("failed after the registry had removed the manifest" in w and "app:%s" % tags[0] in w for w in done["warnings"])
    assert sorted(fake.tags["app"]) == sorted(["1.8", "1.9", "1.10", "latest"])


# -- dangling tags ---------------------------------------------------------------------------
def dangle(fake: MemoryRegistry, tag: str) -> str:
    digest = fake.tags["app"][tag]
    fake.removed.add(("app", digest))
    return digest


def test_dangling_tags_are_reported_and_removed():
    fake = MemoryRegistry()
    twelve(fake)
    dangle(fake, "1.9")
    listed = read_catalog(memory_client(fake), ["app"])
    assert listed["dangling"] == {"app": ["1.9"]} and listed["repositories"][0]["dangling"] == ["1.9"]
    assert "1.9" not in [t["tag"] for t in listed["repositories"][0]["tags"]]
    rules = [{"repository": "app", "keep_last": 20}]
    check = run_prune(memory_client(fake), rules, check_mode=True, now=NOW)
    assert check["changed"] and check["dangling_removed"] == ["app:1.9"] and "1.9" in fake.tags["app"]
    assert check["actions"] == ["remove dangling tag app:1.9 (its manifest is gone)"]
    done = run_prune(memory_client(fake), rules, now=NOW)
    assert done["changed"] and done["dangling_removed"] == ["app:1.9"] and "1.9" not in fake.tags["app"]
    assert done["deleted"] == [] and any("1 dangling tag" in w for w in done["warnings"])
    assert done["diff"]["before"]["tags"]["app"] != done["diff"]["after"]["tags"]["app"]
    again = run_prune(memory_client(fake), rules, now=NOW)
    assert not again["changed"] and again["dangling_removed"] == [] and "warnings" not in again
    # Only the placeholder of this run was deleted: every other tag is where it was.
    assert len(fake.tags["app"]) == 11


def test_a_tag_deleted_while_it_is_read_is_not_dangling():
    fake = MemoryRegistry()
    twelve(fake)

    def delete_while_read(method, path):
        if method == "GET" and path.endswith("manifests/1.3") and "1.3" in fake.tags["app"]:
            fake.removed.add(("app", fake.tags["app"].pop("1.3")))

    fake.before = delete_while_read
    assert read_catalog(memory_client(fake), ["app"])["dangling"] == {}


def test_registry_info_warns_about_dangling_tags():
    from unittest import mock

    from ansible_collections.dockhand.registry.plugins.module_utils import catalog

    fake = MemoryRegistry()
    twelve(fake)
    dangle(fake, "1.2")
    params = {"repositories": [], "tags": [], "details": True, "created": True}
    with mock.patch.object(catalog, "client_from_params", return_value=memory_client(fake)):
        info = catalog.catalog_info(params)
    assert info["dangling"] == ["app:1.2"] and info["counts"]["tags"] == 11
    assert info["warnings"] == [
        "1 dangling tag (listed, but the manifest is gone; a pull fails with manifest unknown): app:1.2;"
        " registry_prune (or registry_gc) removes them"
    ]
