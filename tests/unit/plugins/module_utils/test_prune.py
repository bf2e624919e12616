"""registry_prune's planning and deleting against an in-memory registry (no network)."""

from __future__ import annotations

import datetime

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
