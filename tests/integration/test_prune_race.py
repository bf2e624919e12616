"""registry_prune never loses a tag its rules keep, even when another client moves that tag while the prune runs.

Distribution 2.8 deletes manifests by digest only, and a manifest DELETE also removes every tag that points at the
digest at that moment, including a tag another client put there after the prune made its plan. The user's case:
``keep_last: 3, keep_tags: [release]`` on a repository of 300 tags while another client PUTs an old manifest (one the
plan deletes) under ``release``. Before the fix the protected tag was gone afterwards in most runs.

Each run here: the 300 tags and ``release`` put back as they were, ``registry_prune`` run as users run it (the module
through Ansible's module runner), and a thread that PUTs the manifest of a tag the plan deletes under ``release``,
the three timings in turn:

- the user's timing: 0.6-1.9 s after the prune started, onto any tag the plan deletes;
- in the delete phase: once the first planned tag has gone from ``tags/list``, after a random 0-300 ms;
- at the delete itself: onto one of the next manifests in line to be deleted (the prune deletes in digest order),
  so that the move lands between the prune's last read of ``release`` and that manifest's delete.

Read back with the tests' oracle (tests/support/oracle.py, no code shared with the collection): ``release`` resolves
after every run, to the digest it had or the one the racer put there, and the tags the rules keep read back whole.
"""

from __future__ import annotations

import os
import random
import threading
import time

import pytest

from ansible_collections.dockhand.registry.tests.support import registry_api as api
from support.isolation import PREFIX, REGISTRY_IMAGE, port
from support.oracle import Registry
from support.registry import wait_v2
from support.runner import run_module

from .conftest import docker

NAME = PREFIX + "prunerace"
PORT = port(5)
ADDRESS = "127.0.0.1:%d" % PORT
REPO = PREFIX + "race"
TAGS = 300
RUNS = int(os.environ.get("DH_PRUNE_RACE_RUNS", "3"))
RULES = [{"repository": REPO, "keep_last": 3, "keep_tags": ["release"]}]


@pytest.fixture
def registry(workdir):
    docker(
        "run", "-d", "--name", NAME, "-p", "%s:5000" % ADDRESS, "-e", "REGISTRY_STORAGE_DELETE_ENABLED=true",
        "-v", "%s:/var/lib/registry" % (workdir / "data"), REGISTRY_IMAGE,
    )  # fmt: skip
    wait_v2(ADDRESS)
    return Registry(ADDRESS)


def _put(tag: str, manifest) -> None:
    answer = api.SESSION.put(
        "http://%s/v2/%s/manifests/%s" % (ADDRESS, REPO, tag), data=manifest.raw, headers={"Content-Type": manifest.media_type}
    )
    answer.raise_for_status()


def _restore_all(manifests: dict) -> None:
    """Every tag back where the seed put it (the blobs are all still there: no GC runs)."""
    for tag, manifest in manifests.items():
        _put(tag, manifest)


def _racer(oracle: Registry, manifests: dict, mode: int, rng: random.Random, record: dict) -> None:
    """Move ``release`` onto the manifest of a tag the plan deletes, at the moment ``mode`` says."""
    started = time.monotonic()
    planned = {"t%03d" % n for n in range(TAGS - 3)}
    if mode == 0:
        time.sleep(rng.uniform(0.6, 1.9))
        old = rng.choice(sorted(planned))
    else:
        listed = set(oracle.tags(REPO))
        while len(listed) >= TAGS + 1 and time.monotonic() - started < 300:
            time.sleep(0.02)
            listed = set(oracle.tags(REPO))
        if mode == 1:
            time.sleep(rng.uniform(0, 0.3))
            old = rng.choice(sorted(planned))
        else:
            # The next manifests in line (the prune has been deleting in digest order): one whose delete is about to
            # start or under way.
            waiting = sorted(manifests[t].digest for t in planned & listed)
            digest = rng.choice(waiting[4:20] or waiting)
            old = next(t for t in sorted(planned) if manifests[t].digest == digest)
    _put("release", manifests[old])
    record.update(at_s=round(time.monotonic() - started, 2), moved_to=manifests[old].digest, old=old, mode=mode)


def test_a_kept_tag_moved_during_the_prune_survives(registry, workdir):
    api.push_images(ADDRESS, REPO, TAGS, marker=PREFIX)
    api.push_image(ADDRESS, REPO, "release", [api.tar_layer("file", "release of %s\n" % REPO)])
    manifests = {tag: registry.manifest(REPO, tag) for tag in registry.tags(REPO)}
    release = manifests["release"].digest
    rng = random.Random(int(os.environ.get("DH_PRUNE_RACE_SEED", "19")))
    outcomes = []
    for run in range(RUNS):
        _restore_all(manifests)
        record: dict = {}
        racer = threading.Thread(target=_racer, args=(registry, manifests, run % 3, rng, record))
        started = time.monotonic()
        racer.start()
        result = run_module("registry_prune", {"registry": ADDRESS, "rules": RULES})
        racer.join()
        seconds = round(time.monotonic() - started, 1)
        assert not result.get("failed"), "%s (racer: %s)" % (result.get("msg"), record)
        now = registry.head_manifest(REPO, "release")
        outcomes.append(
            dict(record, run=run, seconds=seconds, survived=now is not None,
                 at=("racer's" if now == record["moved_to"] else "previous" if now == release else now),
                 restored=[r["tag"] for r in result.get("restored", [])], deleted=len(result["deleted"]),
                 skipped=[s["reason"] for s in result.get("skipped", [])])
        )  # fmt: skip
        print("race run %d: %s" % (run, outcomes[-1]))
    print("release survived %d of %d runs" % (sum(o["survived"] for o in outcomes), len(outcomes)))
    assert all(o["survived"] for o in outcomes), outcomes
    assert all(o["at"] in ("racer's", "previous") for o in outcomes), outcomes
    # After the last run: the kept tags read back whole; every other tag of the plan is gone, except the one whose
    # digest release now shares (kept with it).
    held = registry.snapshot()[REPO]
    for tag in ("release", "t297", "t298", "t299"):
        registry.verify_tag_whole(REPO, tag, held[tag])
    assert set(held) - {"release", "t297", "t298", "t299"} <= {t for t, m in manifests.items() if m.digest == held["release"]}


def test_a_prune_while_a_tag_is_rewritten_leaves_no_dangling_tag(registry):
    """Distribution 2.8 answers HTTP 500 ("invalid checksum digest format") to a request that reads a tag link another
    client is writing at that instant: a manifest read, or a delete (which reads every tag of the repository) after it
    has removed the manifest, leaving its tags dangling. Here another client rewrites ``release`` without pause while
    the prune runs: the prune succeeds, says so, and leaves no tag whose manifest is gone."""
    api.push_images(ADDRESS, REPO, 100, marker=PREFIX + "hammer")
    api.push_image(ADDRESS, REPO, "release", [api.tar_layer("file", "release of %s\n" % REPO)])
    release = registry.manifest(REPO, "release")
    stop = threading.Event()
    writes = []

    def rewrite() -> None:
        while not stop.is_set():
            writes.append(api.SESSION.put(
                "http://%s/v2/%s/manifests/release" % (ADDRESS, REPO), data=release.raw, headers={"Content-Type": release.media_type}
            ).status_code)  # fmt: skip

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        result = run_module("registry_prune", {"registry": ADDRESS, "rules": RULES})
    finally:
        stop.set()
        writer.join()
    assert not result.get("failed"), result.get("msg")
    print("prune while release was rewritten %d times: %d deleted, warnings %s" % (len(writes), len(result["deleted"]), result.get("warnings")))
    listed = registry.tags(REPO)
    assert sorted(listed) == sorted(["release", "t097", "t098", "t099"]), listed
    assert all(registry.head_manifest(REPO, tag) for tag in listed)  # no dangling tag
    registry.verify_tag_whole(REPO, "release", release.digest)
