"""The publish_plan filter (controller side: runs in ansible-test's controller unit context)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dockhand.registry.plugins.filter.publish_plan import publish_plan


def test_publish_plan_gives_each_push_name_its_source():
    plan = publish_plan(
        [{"name": "alpha", "tag": "1.0"}, {"name": "alpha", "tag": "stable", "source": "alpha:1.0"},
         {"name": "beta", "repository": "team/beta"}],
        "localhost:5000",
    )
    assert plan["sources"] == {
        "localhost:5000/alpha:1.0": "alpha:1.0",
        "localhost:5000/alpha:stable": "alpha:1.0",
        "localhost:5000/team/beta:latest": "beta:latest",
    }


def test_publish_plan_tag_items_and_push_names():
    plan = publish_plan([{"name": "demo", "tag": "1.0"}, {"name": "demo", "tag": "1.0"}], "localhost:5000")
    assert plan["tag_items"] == [{"source": "demo:1.0", "targets": ["localhost:5000/demo:1.0"]}]
    assert plan["push_names"] == ["localhost:5000/demo:1.0"]


@pytest.mark.parametrize(
    "images, registry, bad",
    [
        ([{"name": "demo", "tag": "-x"}], "localhost:5000", "-x"),
        ([{"name": "Demo"}], "localhost:5000", "Demo"),
        ([{"name": "demo"}], "http://localhost:5000", "http://localhost:5000"),
        ([{"name": "demo", "colour": "red"}], "localhost:5000", "colour"),
    ],
)
def test_publish_plan_names_the_bad_value(images, registry, bad):
    with pytest.raises(AnsibleFilterError, match=None) as err:
        publish_plan(images, registry)
    assert bad in str(err.value)
