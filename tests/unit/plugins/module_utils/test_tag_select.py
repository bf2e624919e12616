"""Which tags a copy takes: tag_pattern, tag_semver (packaging's PEP 440 specifiers) and tag_limit (module_utils/tag_select.py)."""

from __future__ import annotations

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.reference import InvalidReference
from ansible_collections.dockhand.registry.plugins.module_utils.tag_select import TagSelector

TAGS = ["1.0.0", "1.2.0", "v1.2.5", "1.3", "1.10.1", "2.0.0", "2.0.0-rc1", "1.4.0rc2", "latest", "1.2-alpine", "nightly", "1.9"]


def test_semver_range_takes_releases_in_range_in_version_order():
    selector = TagSelector.build(tag_semver=">=1.2,<2")
    assert selector.select(TAGS) == ["1.2.0", "v1.2.5", "1.3", "1.9", "1.10.1"]  # 1.10 after 1.9: versions, not strings
    assert selector.counts == {"listed": 12, "not_matching_pattern": 0, "not_versions": 3, "outside_range": 4, "chosen": 5}


def test_pre_releases_only_when_the_range_names_one():
    assert TagSelector.build(tag_semver=">=2.0.0rc1").select(TAGS) == ["2.0.0-rc1", "2.0.0"]
    assert TagSelector.build(tag_semver=">=2").select(TAGS) == ["2.0.0"]


def test_limit_keeps_the_newest_in_version_order():
    selector = TagSelector.build(tag_semver="<2", tag_limit=2)
    assert selector.select(TAGS) == ["1.9", "1.10.1"]
    assert selector.counts["over_limit"] == 4 and selector.counts["chosen"] == 2
    # Alone: the newest N of every version (pre-releases are versions too)
    assert TagSelector.build(tag_limit=3).select(TAGS) == ["1.10.1", "2.0.0-rc1", "2.0.0"]


def test_pattern_and_range_both_apply():
    selector = TagSelector.build(tag_pattern=r"v?1\.2.*", tag_semver="~=1.2.0")
    assert selector.select(TAGS) == ["1.2.0", "v1.2.5"]
    assert selector.counts["not_matching_pattern"] == 9 and selector.counts["not_versions"] == 1


def test_pattern_alone_keeps_string_order_and_no_version_parsing():
    selector = TagSelector.build(tag_pattern="1\\..*")
    assert selector.select(["1.9", "1.10", "1.2-alpine"]) == ["1.10", "1.2-alpine", "1.9"]
    assert "not_versions" not in selector.counts


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tag_semver": "^1.2"}, "invalid tag_semver '^1.2': give version specifiers separated by commas"),
        ({"tag_semver": "1.x"}, "invalid tag_semver '1.x'"),
        ({"tag_limit": 0}, "tag_limit must be 1 or more, got 0"),
        ({"tag_limit": -3}, "tag_limit must be 1 or more, got -3"),
        ({"tag_pattern": "t(0"}, "invalid tag_pattern 't(0'"),
    ],
)
def test_bad_values_fail_in_one_line_naming_them(kwargs, message):
    with pytest.raises(InvalidReference) as caught:
        TagSelector.build(**kwargs)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
