"""registry_info's reader against an in-memory registry (no network): tag order, patterns."""

from __future__ import annotations

from ansible_collections.dockhand.registry.plugins.module_utils.catalog import (
    TagInfo,
    compile_patterns,
    natural_key,
    newest_first,
    read_catalog,
)
from ansible_collections.dockhand.registry.tests.support.unit import MemoryRegistry, memory_client


# -- ordering -----------------------------------------------------------------------------
def test_natural_key_orders_versions():
    names = ["1.10", "1.9", "latest", "1.9-rc1", "1.0", "2"]
    assert sorted(names, key=natural_key) == ["1.0", "1.9", "1.9-rc1", "1.10", "2", "latest"]


def test_equal_created_times_order_by_version_highest_first():
    same = "2026-01-01T00:00:00Z"
    infos = [TagInfo("a", t, digest=t, created=same) for t in ["1.9", "1.10", "1.2"]]
    infos.append(TagInfo("a", "0.1", digest="x", created="2026-02-01T00:00:00Z"))
    assert [i.tag for i in newest_first(infos)] == ["0.1", "1.10", "1.9", "1.2"]
    assert [i.tag for i in newest_first(list(reversed(infos)))] == ["0.1", "1.10", "1.9", "1.2"]


def test_patterns_match_the_whole_name():
    assert [p.pattern for p in compile_patterns(["a.*"], "x")] == ["a.*"]
    fake = MemoryRegistry()
    fake.image("app", ["1"], "2026-01-01T00:00:00Z")
    fake.image("apple", ["1"], "2026-01-01T00:00:00Z")
    assert [r["name"] for r in read_catalog(memory_client(fake), ["app"])["repositories"]] == ["app"]
