"""Pulls during a GC: zero failures, through both swaps of the read-only switch.

The GC switches the registry container to read-only and back, each a swap (stop, create, start): distribution
reads its configuration only at start. While a swap runs, new connections to the port are held (hold.py) and the
old registry drains what is in flight, so no pull is refused. Four ``docker pull`` loops run through the whole GC
(and a pull of a 20 MB layer starts right before it); the test counts every pull and every failure. Every pull of the
loops downloads its layer (each loop pulls its own image by digest and removes it after each pull: support.pulls), a
retry the engine did on its own counts as a failure, and each switch (read from the engine's events) must have been
overlapped by a pull.

Then the case of a run killed in the middle of a swap: its hold rule is left in the host's ``raw`` table. The
next registry_container run lets connections through again (changed, and said), the run after is unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import pytest

from support.isolation import PREFIX, REGISTRY_IMAGE, TEST_LABEL, port
from support.pulls import PullLoops
from support.registry import client
from support.runner import run_module

from .conftest import docker

NAME = PREFIX + "gcloop"
PORT = port(3)
ADDRESS = "127.0.0.1:%d" % PORT
LOOPS = 4

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("iptables") is None, reason="the connection hold needs root and iptables"
)


def _container_args(workdir) -> dict:
    return {
        "name": NAME,
        "image": REGISTRY_IMAGE,
        "port": PORT,
        "data_path": str(workdir / "data"),
        "wait_timeout": 30,
        "env": {"REGISTRY_STORAGE_DELETE_ENABLED": "true"},
    }


def _image(workdir, tag: str, size: int, repository: str = PREFIX + "gcloop") -> str:
    ref = "%s/%s:%s" % (ADDRESS, repository, tag)
    context = workdir / ("ctx-%s-%s" % (repository, tag))
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nLABEL %s=%s\nCOPY m /m\n" % (TEST_LABEL, PREFIX))
    (context / "m").write_bytes(os.urandom(size))
    docker("build", "-q", "-t", ref, str(context))
    docker("push", "-q", ref)
    return ref


def _pull_loop(ref: str, stop: threading.Event, results: list) -> None:
    while not stop.is_set():
        started = time.monotonic()
        done = subprocess.run(["docker", "pull", "-q", ref], capture_output=True, text=True, check=False)
        results.append((done.returncode, round(time.monotonic() - started, 2), done.stderr.strip()[-200:]))


def test_no_pull_fails_during_gc(workdir):
    created = run_module("registry_container", _container_args(workdir))
    assert created.get("changed"), created
    assert created["container"]["env"]["REGISTRY_HTTP_DRAINTIMEOUT"] == "10s"
    _image(workdir, "gone", 50000)
    small = _image(workdir, "small", 20000)
    big = _image(workdir, "big", 20 * 1024 * 1024)
    deleted = run_module("registry_prune", {"registry": ADDRESS, "rules": [{"keep_last": 0, "keep_tags": ["small", "big"]}]})
    assert deleted.get("changed"), deleted
    docker("rmi", big)
    # One image per loop (its own 2 MB layer), pulled by digest and removed after every pull: each pull downloads.
    loop_refs = []
    for number in range(LOOPS):
        ref = _image(workdir, "1", 2 << 20, "%sgcpull%d" % (PREFIX, number))
        loop_refs.append("%s@%s" % (ref.rsplit(":", 1)[0], client(ADDRESS).digest("%sgcpull%d" % (PREFIX, number), "1")))
    held = client(ADDRESS).snapshot()

    stop = threading.Event()
    results: list = []
    threads = [threading.Thread(target=_pull_loop, args=(small, stop, results)) for _loop in range(LOOPS)]
    for thread in threads:
        thread.start()
    downloads = PullLoops(loop_refs, max_seconds=180).start()
    time.sleep(1)
    big_pull = subprocess.Popen(["docker", "pull", "-q", big], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    gc = run_module("registry_gc", {"name": NAME, "wait_timeout": 30})
    time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join()
    figures = downloads.finish().summary(NAME)
    big_output = big_pull.communicate(timeout=120)[0]

    failures = [r for r in results if r[0] != 0]
    slowest = max(r[1] for r in results)
    print("GC %s: read-only %s s, %s blobs; pulls %d, failed %d, slowest %.2f s; warnings %s"
          % (gc.get("changed"), gc.get("read_only_seconds"), gc.get("blobs_removed"), len(results), len(failures),
             slowest, gc.get("warnings")))
    print("FIGURES pulls that download: %s" % {k: v for k, v in figures.items() if k != "failed"})
    assert gc.get("changed") and gc["blobs_removed"] >= 1, gc
    assert "warnings" not in gc, gc["warnings"]
    assert len(results) >= 2 * LOOPS
    assert failures == []
    assert big_pull.returncode == 0, big_output
    assert sorted(client(ADDRESS).tags(PREFIX + "gcloop")) == ["big", "small"]
    # The pulls that download: none failed or was retried by the engine, each downloaded its layer, and each of the
    # GC's two switches (container down until the next one started, from the engine's events) had a pull in flight.
    assert figures["failed_count"] == 0 and figures["retries"] == 0, figures["failed"]
    assert figures["pulls"] >= 2 * LOOPS and figures["without_download"] == 0, figures
    assert len(figures["switches"]) == 2, figures["switches"]
    assert figures["switches_without_pull"] == [], figures
    # Nothing a tag reaches was collected: every tag still whole (manifests byte for byte, blobs digest-checked).
    registry = client(ADDRESS)
    assert registry.snapshot() == held
    for repository, tags in held.items():
        for tag, digest in tags.items():
            registry.verify_tag_whole(repository, tag, digest)
    # The registry is read-write again: a push works.
    docker("tag", small, small.rsplit(":", 1)[0] + ":after")
    docker("push", "-q", small.rsplit(":", 1)[0] + ":after")


def _held(chain: str) -> list[str]:
    rules = subprocess.run(["iptables", "-w", "-t", "raw", "-S", chain], capture_output=True, text=True, check=True)
    return [line for line in rules.stdout.splitlines() if "dockhand-hold %s %d" % (NAME, PORT) in line]


def test_hold_left_by_a_killed_run_is_cleared_by_the_next_run(workdir):
    from ansible_collections.dockhand.registry.plugins.module_utils.hold import ConnectionHold

    args = _container_args(workdir)
    assert run_module("registry_container", args).get("changed")
    # What a run killed in the middle of a swap leaves: the hold, never released.
    killed = ConnectionHold(PORT, "127.0.0.1", NAME, 300)
    killed.__enter__()
    try:
        assert killed.active, killed.problem
        assert len(_held("PREROUTING")) == 1 and len(_held("OUTPUT")) == 1
        probe = subprocess.run(["curl", "-sS", "--connect-timeout", "2", "http://%s/v2/" % ADDRESS],
                               capture_output=True, text=True, check=False)
        assert probe.returncode == 28, probe  # connect timed out: new connections are held

        check = run_module("registry_container", args, check=True)
        assert check.get("changed"), check
        assert check["actions"] == [
            "let new connections to port %d through again (held by an interrupted run: iptables raw PREROUTING,"
            " iptables raw OUTPUT)" % PORT
        ]
        assert len(_held("OUTPUT")) == 1  # check mode changed nothing
        repaired = run_module("registry_container", args)
        assert repaired.get("changed") and repaired["actions"] == check["actions"], repaired
        assert _held("PREROUTING") == [] and _held("OUTPUT") == []
        probe = subprocess.run(["curl", "-sS", "--connect-timeout", "2", "http://%s/v2/" % ADDRESS],
                               capture_output=True, text=True, check=False)
        assert probe.returncode == 0, probe
        assert run_module("registry_container", args).get("changed") is False
    finally:
        killed.added.clear()
        ConnectionHold(PORT, "127.0.0.1", NAME, 0).clear_leftovers()
