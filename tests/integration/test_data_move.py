"""A registry never moves onto empty storage by accident: registry_container with another data location.

A registry (port +7) holding single-platform images and a multi-platform index (built through the registry API)
gets another ``data_path``: refused in one line naming both locations and ``data_move`` (check mode too), the
registry left as it was. ``data_move: copy`` copies the data (check mode first: says so, touches nothing), onto a
directory and then onto a named volume; ``data_move: adopt_empty`` starts empty on purpose; a location that already
holds the registry's data is taken as it is. Every step is read back with the tests' oracle (tests/support/oracle.py):
the same tags at the same digests, every manifest and blob downloaded and digest-checked.
"""

from __future__ import annotations

import json

from ansible_collections.dockhand.registry.tests.support import registry_api as api
from support.isolation import PREFIX, REGISTRY_IMAGE, port
from support.oracle import Registry
from support.runner import run_module

from .conftest import docker

NAME = PREFIX + "moving"
PORT = port(7)
ADDRESS = "127.0.0.1:%d" % PORT
VOLUME = PREFIX + "moved"
EMPTY_VOLUME = PREFIX + "fresh"


def _container(**location) -> dict:
    return dict(
        {"name": NAME, "image": REGISTRY_IMAGE, "port": PORT, "wait_timeout": 30, "env": {"REGISTRY_STORAGE_DELETE_ENABLED": "true"}},
        **location,
    )


def _data_mount() -> str:
    mounts = json.loads(docker("inspect", "-f", "{{json .Mounts}}", NAME))
    mount = next(m for m in mounts if m["Destination"] == "/var/lib/registry")
    return mount["Name"] if mount["Type"] == "volume" else mount["Source"]


def _whole(oracle: Registry, held: dict) -> None:
    """The registry holds exactly ``held`` ({repository: {tag: digest}}), every tag read back whole."""
    assert oracle.snapshot() == held
    for repository, tags in held.items():
        for tag, digest in tags.items():
            oracle.verify_tag_whole(repository, tag, digest)


def test_a_new_data_location_is_refused_copied_or_adopted(workdir):
    first, second = str(workdir / "first"), str(workdir / "second")
    assert run_module("registry_container", _container(data_path=first))["changed"]
    api.push_images(ADDRESS, PREFIX + "app", 3, marker=PREFIX)
    api.push_index(ADDRESS, PREFIX + "team/multi", "1.0", marker=PREFIX)
    oracle = Registry(ADDRESS)
    held = oracle.snapshot()
    assert len(held) == 2 and len(held[PREFIX + "app"]) == 3

    # Refused, in check mode and for real; the registry is left as it was.
    for check in (True, False):
        refused = run_module("registry_container", _container(data_path=second), check=check)
        assert refused.get("failed") and "\n" not in refused["msg"], refused
        for words in ("data_path %s" % first, "data_path %s" % second, "data_move: copy", "data_move: adopt_empty", "would come back empty"):
            assert words in refused["msg"], refused["msg"]
    assert _data_mount() == first
    _whole(oracle, held)

    # Copied: check mode says so and touches nothing; the real run copies; a re-run changes nothing.
    copy = _container(data_path=second, data_move="copy")
    predicted = run_module("registry_container", copy, check=True)
    action = "copy the registry data from data_path %s to data_path %s" % (first, second)
    assert predicted["changed"] and action in predicted["actions"], predicted
    assert predicted["diff"]["before"]["mounts"] != predicted["diff"]["after"]["mounts"]
    assert _data_mount() == first
    done = run_module("registry_container", copy)
    assert done["changed"] and action in done["actions"] and done["data_copied"]["bytes"] > 0, done
    assert _data_mount() == second
    _whole(oracle, held)
    assert run_module("registry_container", copy)["changed"] is False

    # Onto a named volume, copied the same way.
    to_volume = run_module("registry_container", _container(volume=VOLUME, data_move="copy"))
    assert to_volume["changed"] and "data_copied" in to_volume, to_volume
    assert _data_mount() == VOLUME
    _whole(oracle, held)
    print("copied %s, %s" % (done["data_copied"], to_volume["data_copied"]))

    # Started empty on purpose: the data stays in the volume.
    empty = run_module("registry_container", _container(volume=EMPTY_VOLUME, data_move="adopt_empty"))
    assert empty["changed"] and any("start on the empty volume %s" % EMPTY_VOLUME in a for a in empty["actions"]), empty
    assert oracle.snapshot() == {}

    # Back onto a location that holds the data (the first directory): no option needed.
    back = run_module("registry_container", _container(data_path=first))
    assert back["changed"] and not back.get("failed"), back
    _whole(oracle, held)
