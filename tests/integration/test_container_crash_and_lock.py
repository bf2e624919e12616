"""registry_container survives a run killed mid-recreate, and two runs at once, against the real engine and a real
registry.

- crash_leftover_kept: what a run killed mid-recreate leaves (the good container stopped as
  ``<name>-dockhand-old``, a half-made ``<name>`` that never started): the next run keeps the good copy, removes
  the half-made one, and the registry serves the same data.
- lock_two_runs_one_recreate: two module runs asking for the same change at once: one recreates, the other
  waits for the lock and then finds nothing to do; no leftover, no failure.

Names: DH_PREFIX, port +21 of the run's range, data under DH_DATA_ROOT (tests/integration/README.md).
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest

from support.engine import SHARED_DOCKER_HOST, ensure_registry_image
from support.isolation import DATA_ROOT, PREFIX, REGISTRY_IMAGE, port
from support.registry import wait_v2
from support.runner import run_module

PORT = port(21)
ROOT = DATA_ROOT / "crash-concurrency"
NAME = PREFIX + "crash-reg"
IMAGE = REGISTRY_IMAGE


@pytest.fixture
def api():
    ensure_registry_image(SHARED_DOCKER_HOST, ROOT.parent / "registry-image", IMAGE)
    client = docker.APIClient(base_url=SHARED_DOCKER_HOST, version="auto")
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    yield client
    for name in (NAME, NAME + "-dockhand-old"):
        try:
            client.remove_container(name, force=True)
        except docker.errors.NotFound:
            pass
    shutil.rmtree(ROOT, ignore_errors=True)


def args(**overrides) -> dict:
    values = {"name": NAME, "image": IMAGE, "port": PORT, "data_path": str(ROOT / "data"), "wait_timeout": 30}
    values.update(overrides)
    return values


def test_crash_leftover_kept_when_the_new_container_is_broken(api):
    first = run_module("registry_container", args())
    assert first.get("changed") and not first.get("failed"), first
    good = api.inspect_container(NAME)
    # What a run killed between "create the new one" and "it answers" leaves behind.
    api.stop(good["Id"])
    api.rename(good["Id"], NAME + "-dockhand-old")
    half = api.create_container(
        IMAGE, name=NAME, environment={"REGISTRY_HTTP_ADDR": "no-such-host:99999"},
        host_config=api.create_host_config(binds={str(ROOT / "data"): {"bind": "/var/lib/registry", "mode": "rw"}}),
    )
    result = run_module("registry_container", args())
    assert not result.get("failed"), result
    assert result["actions"][0].startswith("remove container %s left by an interrupted recreate" % NAME), result
    now = api.inspect_container(NAME)
    assert now["Id"] == good["Id"], "the good copy was not kept"
    assert now["State"]["Running"]
    assert not api.containers(all=True, filters={"id": half["Id"]})
    assert not api.containers(all=True, filters={"name": NAME + "-dockhand-old"})
    wait_v2("127.0.0.1:%d" % PORT, timeout=30)
    again = run_module("registry_container", args())
    assert again.get("changed") is False, again


def test_lock_two_runs_one_recreate(api):
    first = run_module("registry_container", args())
    assert first.get("changed") and not first.get("failed"), first
    wanted = args(env={"REGISTRY_STORAGE_DELETE_ENABLED": "true"})
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: run_module("registry_container", wanted), range(2)))
    assert not any(r.get("failed") for r in results), results
    assert sorted(bool(r.get("changed")) for r in results) == [False, True], results
    assert not api.containers(all=True, filters={"name": NAME + "-dockhand-old"})
    env = api.inspect_container(NAME)["Config"]["Env"]
    assert "REGISTRY_STORAGE_DELETE_ENABLED=true" in env
    wait_v2("127.0.0.1:%d" % PORT, timeout=30)
