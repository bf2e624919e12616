"""The prune keep set (what registry_prune may delete) and its check-mode guard, judged on the whole result: every kept
tag with its reason, the exact boundary of older_than_days, an index's children, the order of tags, the one probe
DELETE a check-mode run may send and nothing else."""

from __future__ import annotations

import datetime

from ansible_collections.dockhand.registry.plugins.module_utils.prune import PROBE_DIGEST, plan_prune, run_prune
from ansible_collections.dockhand.registry.tests.support.unit import MemoryRegistry, memory_client
from ansible_collections.dockhand.registry.tests.unit.plugins.module_utils.test_prune import NOW, infos_of, rule


def recording(fake: MemoryRegistry) -> list[tuple[str, str]]:
    """Every DELETE the registry was sent, as (repository, digest)."""
    sent: list[tuple[str, str]] = []
    answer = fake.request

    def request(method, url, **kwargs):
        if method == "DELETE":
            repo, _sep, digest = url.split("/v2/", 1)[1].rpartition("/manifests/")
            sent.append((repo, digest))
        return answer(method, url, **kwargs)

    fake.request = request  # type: ignore[method-assign]
    return sent


def days_ago(days: float) -> str:
    return (NOW - datetime.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_every_kept_tag_has_its_reason_and_the_result_is_whole():
    fake = MemoryRegistry()
    pair = fake.image("app", ["1.9", "1.10"], days_ago(40))  # two tags of one old digest: "1.9, 1.10" (natural order)
    single = fake.image("app", ["1.11"], days_ago(30))
    fake.image("app", ["1.12"], days_ago(5))
    fake.image("app", ["1.13"], days_ago(2))
    release = fake.image("app", ["1.0", "stable"], days_ago(90))  # an old digest a kept tag points at
    sent = recording(fake)
    result = run_prune(memory_client(fake), [{"repository": "app", "keep_last": 1, "keep_tags": ["stable"], "older_than_days": 10}], now=NOW)
    deleted = sorted([{"repository": "app", "digest": pair, "tags": ["1.9", "1.10"]},
                      {"repository": "app", "digest": single, "tags": ["1.11"]}], key=lambda d: d["digest"])  # fmt: skip
    assert result == {
        "changed": True,
        "actions": ["delete app@%s (tags %s)" % (d["digest"], ", ".join(d["tags"])) for d in deleted],
        "deleted": deleted,
        "kept": {"app": {
            "stable": "matches keep_tags",
            "1.13": "one of the 1 newest",
            "1.12": "younger than 10 days",
            "1.0": "shares digest %s with kept tag stable" % release,
        }},
        "diff": {"before": {"tags": {"app": ["1.0", "1.9", "1.10", "1.11", "1.12", "1.13", "stable"]}},
                 "after": {"tags": {"app": ["1.0", "1.12", "1.13", "stable"]}}},
    }  # fmt: skip
    assert sent[0] == ("app", PROBE_DIGEST) and sorted(sent[1:]) == [("app", d["digest"]) for d in deleted]  # the probe first
    assert sorted(fake.tags["app"]) == ["1.0", "1.12", "1.13", "stable"]


def test_older_than_days_keeps_a_tag_younger_than_the_limit_and_deletes_one_exactly_at_it():
    fake = MemoryRegistry()
    fake.image("app", ["at-limit"], days_ago(10))
    fake.image("app", ["younger"], days_ago(9.99))
    result = run_prune(memory_client(fake), [{"repository": "app", "keep_last": 0, "older_than_days": 10}], check_mode=True, now=NOW)
    assert [d["tags"] for d in result["deleted"]] == [["at-limit"]]
    assert result["kept"] == {"app": {"younger": "younger than 10 days"}}


def test_without_a_given_time_the_clock_decides():
    fake = MemoryRegistry()
    fake.image("app", ["ancient"], "2001-01-01T00:00:00Z")
    fake.image("app", ["future"], "2999-01-01T00:00:00Z")
    result = run_prune(memory_client(fake), [{"repository": "app", "keep_last": 0, "older_than_days": 1}], check_mode=True)
    assert [d["tags"] for d in result["deleted"]] == [["ancient"]] and result["kept"] == {"app": {"future": "younger than 1 days"}}


def test_a_candidate_on_a_child_of_a_kept_index_is_kept_and_says_why():
    fake = MemoryRegistry()
    amd = fake.image("app", ["amd-build"], days_ago(50))
    arm = fake.image("app", [], days_ago(50), seed="arm")
    fake.index("app", ["multi"], [amd, arm])
    result = run_prune(memory_client(fake), [{"repository": "app", "keep_last": 0, "keep_tags": ["multi"]}], check_mode=True, now=NOW)
    assert result["deleted"] == [] and result["changed"] is False
    assert result["kept"]["app"]["amd-build"] == "shares digest %s with kept tag multi" % amd


def test_check_mode_sends_the_probe_only_and_reports_what_would_go():
    fake = MemoryRegistry()
    digest = fake.image("app", ["old"], days_ago(50))
    fake.image("app", ["new"], days_ago(1))
    sent = recording(fake)
    result = run_prune(memory_client(fake), [{"repository": "app", "keep_last": 1}], check_mode=True, now=NOW)
    assert sent == [("app", PROBE_DIGEST)]
    assert fake.tags["app"] == {"old": digest, "new": fake.tags["app"]["new"]}
    assert result["changed"] is True and result["deleted"] == [{"repository": "app", "digest": digest, "tags": ["old"]}]
    assert result["actions"] == ["delete app@%s (tags old)" % digest]
    assert result["diff"] == {"before": {"tags": {"app": ["new", "old"]}}, "after": {"tags": {"app": ["new"]}}}


def test_nothing_to_delete_sends_no_request_at_all():
    fake = MemoryRegistry()
    fake.image("app", ["only"], days_ago(50))
    sent = recording(fake)
    result = run_prune(memory_client(fake), [{"repository": "app", "keep_last": 1}], now=NOW)
    assert sent == [] and result["changed"] is False and result["actions"] == [] and result["deleted"] == []


def test_the_plan_lists_the_tags_newest_first():
    fake = MemoryRegistry()
    fake.image("app", ["old"], days_ago(30))
    fake.image("app", ["new"], days_ago(1))
    fake.image("app", ["mid"], days_ago(10))
    assert plan_prune(infos_of(fake), rule(keep_last=1), NOW)["order"] == ["new", "mid", "old"]
