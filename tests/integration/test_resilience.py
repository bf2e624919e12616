"""Resilience: the registry deployed by site.yml survives crashes and restarts, and loses nothing.

Everything runs on a PRIVATE Docker engine (own socket, data root, exec root and bridge) that the tests
start and may restart, so the machine's engine is never touched; the modules reach it through DOCKER_HOST.
The tests run in file order and share one deployment:

1. site.yml deploys the registry and publishes images: changed, then not changed;
2. the registry process is killed with SIGKILL from the host: back on /v2/ within 10 s, every digest served;
3. the engine restarts: the registry is back by its restart policy, every digest served, site.yml not changed;
4. the container is removed by hand: site.yml recreates it on the same data, every digest identical;
5. the registry is stopped during a push: that run fails naming the image, the next completes it, the one
   after changes nothing;
6. two site.yml runs at once: both succeed or one fails with a clear message; garbage-collect --dry-run
   reports no error and every digest is pullable.

Each test prints its figures (seconds to recover, digests and blobs verified); timings on a shared, loaded
machine are inflated.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path

import docker
import pytest

from support import ROOT
from support.engine import SHARED_DOCKER_HOST, PrivateEngine, ensure_registry_image
from support.isolation import bridge, path, port, subnet
from support.registry import tag_digests, verify_pullable, wait_v2
from support.runner import assert_clear, failure_messages, recap, run_playbook, start_playbook

from .reliability_support import REL, garbage_collect_dry_run

WORK = path("rel", "resilience")
NAME = f"{REL}-res"
PORT = port(20)
ADDRESS = "localhost:%d" % PORT
SITE = ROOT / "site.yml"
BIG_MB = int(os.environ.get("DH_REL_BIG_MB", "32"))
FIGURES = ROOT / "tests" / "output" / "resilience-figures.txt"


def context(name: str, size: int, seed: int) -> dict[str, str]:
    """A build context (FROM scratch, one file of ``size`` pseudo-random bytes) for image ``name``."""
    path = WORK / "contexts" / name.replace(":", "_")
    path.mkdir(parents=True, exist_ok=True)
    (path / "Dockerfile").write_text("FROM scratch\nCOPY payload /payload\n")
    (path / "payload").write_bytes(random.Random(seed).randbytes(size))
    return {"name": name, "src": str(path)}


def site_vars(images: list[tuple[str, str]], builds: list[dict[str, str]]) -> dict:
    return {
        "registry_container_name": NAME,
        "registry_port": PORT,
        "registry_data_path": str(WORK / "data"),
        "registry_image_build_dir": str(WORK / "registry-image"),
        "registry_restart_policy": "always",
        "publish_registry": ADDRESS,
        "publish_build_dir": str(WORK / "build"),
        "publish_builds": builds,
        "publish_images": [{"name": name, "tag": tag} for name, tag in images],
    }


BASE_IMAGES = [(f"{REL}-app", "1"), (f"{REL}-app", "2"), (f"{REL}-tool", "1")]


def base_builds() -> list[dict[str, str]]:
    return [context(f"{REL}-app:1", 200_000, 1), context(f"{REL}-app:2", 300_000, 2),
            context(f"{REL}-tool:1", 100_000, 3)]


def figure(capsys, text: str) -> None:
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    with FIGURES.open("a") as handle:
        handle.write(text + "\n")
    with capsys.disabled():
        print("\n  [resilience] " + text)


def site(engine: PrivateEngine, variables: dict) -> dict[str, int]:
    proc = run_playbook(SITE, variables, engine.docker_host)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return recap(proc.stdout)


@pytest.fixture(scope="module")
def engine():
    reason = PrivateEngine.available()
    if reason:
        pytest.skip(reason)
    private = PrivateEngine(WORK / "engine", run_dir=Path("/run") / REL, bridge=bridge("rel0"), subnet=subnet(0))
    private.destroy()  # leftovers of an interrupted run
    shutil.rmtree(WORK, ignore_errors=True)
    FIGURES.unlink(missing_ok=True)
    private.start()
    try:
        shared = docker.APIClient(base_url=SHARED_DOCKER_HOST, version="auto")
        if shared.images(name="registry:2"):
            private.load_from(shared, "registry:2")
        else:
            ensure_registry_image(private.docker_host, WORK / "registry-image-build")
        yield private
    finally:
        private.destroy()
        shutil.rmtree(WORK, ignore_errors=True)


@pytest.fixture(scope="module")
def state():
    """What the tests learn in order: the digests the registry must keep serving."""
    return {}


def test_deploy_and_publish(engine, state, capsys):
    variables = site_vars(BASE_IMAGES, base_builds())
    first = site(engine, variables)
    assert first["changed"] > 0 and first["failed"] == 0
    second = site(engine, variables)
    assert second["changed"] == 0, "second site.yml run changed %d tasks" % second["changed"]
    state["digests"] = tag_digests(ADDRESS)
    assert sorted(state["digests"]) == [f"{REL}-app:1", f"{REL}-app:2", f"{REL}-tool:1"]
    state["vars"] = variables
    figure(capsys, "deploy: site.yml changed=%d then changed=0; %d tags published"
           % (first["changed"], len(state["digests"])))


def test_sigkill_registry_process(engine, state, capsys):
    api = engine.api()
    before = api.inspect_container(NAME)
    pid = before["State"]["Pid"]
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    while api.inspect_container(NAME)["State"]["Pid"] in (pid, 0) and time.monotonic() - killed < 10:
        time.sleep(0.02)
    seconds = time.monotonic() - killed + wait_v2(ADDRESS, timeout=max(0.1, 10 - (time.monotonic() - killed)))
    after = api.inspect_container(NAME)
    assert after["Id"] == before["Id"] and after["RestartCount"] == before["RestartCount"] + 1
    assert seconds < 10
    blobs = verify_pullable(ADDRESS, state["digests"])
    figure(capsys, "SIGKILL of the registry (pid %d): /v2/ answered again after %.2f s (restart policy always);"
           " %d digests and %d blobs verified" % (pid, seconds, len(state["digests"]), blobs))


def test_engine_restart(engine, state, capsys):
    started = time.monotonic()
    api_seconds = engine.restart()
    seconds = time.monotonic() - started + wait_v2(ADDRESS, timeout=60)
    assert engine.api().inspect_container(NAME)["State"]["Running"]
    blobs = verify_pullable(ADDRESS, state["digests"])
    assert tag_digests(ADDRESS) == state["digests"]
    again = site(engine, state["vars"])
    assert again["changed"] == 0, "site.yml after the engine restart changed %d tasks" % again["changed"]
    figure(
        capsys,
        "engine restart: API back in %.2f s, registry /v2/ %.2f s after the stop began;"
        " %d digests and %d blobs verified; site.yml then changed=0" % (api_seconds, seconds, len(state["digests"]), blobs),
    )


def test_container_removed_by_hand(engine, state, capsys):
    api = engine.api()
    old_id = api.inspect_container(NAME)["Id"]
    api.remove_container(NAME, force=True)
    started = time.monotonic()
    rerun = site(engine, state["vars"])
    seconds = time.monotonic() - started
    assert rerun["changed"] >= 1
    new = api.inspect_container(NAME)
    assert new["Id"] != old_id
    assert [m["Source"] for m in new["Mounts"] if m["Destination"] == "/var/lib/registry"] == [str(WORK / "data")]
    assert tag_digests(ADDRESS) == state["digests"], "digests differ after the recreate"
    blobs = verify_pullable(ADDRESS, state["digests"])
    after = site(engine, state["vars"])
    assert after["changed"] == 0
    figure(capsys, "container removed by hand: site.yml recreated it on the same data in %.1f s (changed=%d),"
           " %d digests identical, %d blobs verified; next run changed=0"
           % (seconds, rerun["changed"], len(state["digests"]), blobs))


def test_push_interrupted_by_registry_stop(engine, state, capsys):
    api = engine.api()
    images = [*BASE_IMAGES, (f"{REL}-big", "1")]
    variables = site_vars(images, [*base_builds(), context(f"{REL}-big:1", BIG_MB << 20, 4)])
    uploads = WORK / "data" / "docker" / "registry" / "v2" / "repositories" / f"{REL}-big" / "_uploads"
    log = WORK / "interrupted.log"
    run = start_playbook(SITE, variables, engine.docker_host, log)
    deadline = time.monotonic() + 300
    while not (uploads.is_dir() and any(uploads.iterdir())):
        assert run.poll() is None, "the run ended before the push began:\n" + log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"the push of {REL}-big never began"
        time.sleep(0.01)
    api.stop(NAME, timeout=0)
    stopped_at = time.monotonic()
    code = run.wait(timeout=600)
    failed_after = time.monotonic() - stopped_at
    output = log.read_text()
    assert code != 0, "the push completed before the registry was stopped (raise DH_REL_BIG_MB):\n" + output[-3000:]
    failure = [msg for msg in failure_messages(output) if f"{REL}-big" in msg]
    assert failure, "the failed run does not name the image:\n" + output[-3000:]
    assert_clear(failure[0], output)
    assert f"{REL}-big:1" not in state["digests"]
    started = time.monotonic()
    rerun = site(engine, variables)
    seconds = time.monotonic() - started
    assert rerun["changed"] >= 2  # the registry started again, the big image pushed
    digests = tag_digests(ADDRESS)
    assert f"{REL}-big:1" in digests
    assert {k: v for k, v in digests.items() if k != f"{REL}-big:1"} == state["digests"]
    blobs = verify_pullable(ADDRESS, digests)
    after = site(engine, variables)
    assert after["changed"] == 0
    garbage_collect_dry_run(api, NAME)
    state["digests"] = digests
    state["vars"] = variables
    figure(capsys, "push interrupted (%d MiB layer, registry stopped mid-upload): the run failed %.1f s later"
           " (the engine retries the upload first) with %r; next run completed it in %.1f s (changed=%d), %d digests"
           " and %d blobs verified; run after changed=0; garbage-collect --dry-run clean"
           % (BIG_MB, failed_after, failure[0][:300], seconds, rerun["changed"], len(digests), blobs))


def test_two_site_runs_at_once(engine, state, capsys):
    api = engine.api()
    api.remove_container(NAME, force=True)  # both runs must create it, and push the new images
    images = [*BASE_IMAGES, (f"{REL}-big", "1"), (f"{REL}-new", "1"), (f"{REL}-new", "2")]
    builds = [*base_builds(), context(f"{REL}-big:1", BIG_MB << 20, 4), context(f"{REL}-new:1", 150000, 5), context(f"{REL}-new:2", 250000, 6)]
    variables = site_vars(images, builds)
    started = time.monotonic()
    runs = [start_playbook(SITE, variables, engine.docker_host, WORK / ("concurrent-%d.log" % i)) for i in (1, 2)]
    codes = [run.wait(timeout=900) for run in runs]
    seconds = time.monotonic() - started
    outcomes = []
    for i, code in enumerate(codes, 1):
        output = (WORK / ("concurrent-%d.log" % i)).read_text()
        if code == 0:
            outcomes.append("run %d ok (changed=%d)" % (i, recap(output)["changed"]))
            continue
        messages = failure_messages(output)
        assert messages, "run %d failed without a message:\n%s" % (i, output[-3000:])
        assert_clear(messages[0], output)
        outcomes.append("run %d failed: %s" % (i, messages[0]))
    assert 0 in codes, "both concurrent runs failed: %s" % outcomes
    gc = garbage_collect_dry_run(api, NAME)
    digests = tag_digests(ADDRESS)
    assert sorted(digests) == sorted("%s:%s" % image for image in images)
    assert {k: v for k, v in digests.items() if k in state["digests"]} == state["digests"]
    blobs = verify_pullable(ADDRESS, digests)
    after = site(engine, variables)
    assert after["changed"] == 0
    marked = sum(1 for line in gc.splitlines() if "marking" in line)
    figure(capsys, "two site.yml runs at once (%.1f s): %s; garbage-collect --dry-run: no error (%d marked);"
           " %d digests and %d blobs verified; next run changed=0"
           % (seconds, "; ".join(outcomes), marked, len(digests), blobs))
