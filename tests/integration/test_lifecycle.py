"""Nothing kept is lost: a seeded, randomized lifecycle of a real registry, checked after every step.

A registry made by registry_container (port +6, deletes on, data on the test's directory) and a source registry for
image_sync (port +8) go through ``DH_LIFECYCLE_OPS`` operations (default 200; ``make soak`` runs 5,000) drawn from
``DH_LIFECYCLE_SEED`` (default: a new seed each run, printed): pushes, moved and shared tags, indexes, image_sync,
image_publish with the engine, registry_prune with random rules, registry_gc with and without delete_untagged,
pushes racing a prune or a GC window, dangling tags, registry_info. tests/support/lifecycle.py says what each
operation is, how the collection is run, and what the oracle checks after every step. On failure the seed, the
step and the operations so far are printed: ``DH_LIFECYCLE_SEED=<seed> DH_LIFECYCLE_OPS=<step>`` replays it
(with ``DH_LIFECYCLE_DEBUG=1`` the registry's log and every step go to DH_DATA_ROOT as well).
"""

from __future__ import annotations

import os
import random
import subprocess
import time

import pytest

from support.isolation import PREFIX, REGISTRY_IMAGE, TEST_LABEL, port
from support.lifecycle import Lifecycle
from support.registry import wait_v2
from support.runner import run_module

from .conftest import docker

NAME = PREFIX + "lifecycle"
TARGET = "127.0.0.1:%d" % port(6)
SOURCE = "127.0.0.1:%d" % port(8)
SOURCE_NAME = PREFIX + "lifecycle-source"
OPERATIONS = int(os.environ.get("DH_LIFECYCLE_OPS", "200"))


@pytest.fixture
def lifecycle(workdir):
    """The registry under test (made by registry_container, deletes on) and the image_sync source."""

    def make(seed: int) -> Lifecycle:
        created = run_module(
            "registry_container",
            {"name": NAME, "image": REGISTRY_IMAGE, "port": port(6), "data_path": str(workdir / "data"), "wait_timeout": 60,
             "env": {"REGISTRY_STORAGE_DELETE_ENABLED": "true"}},
        )  # fmt: skip
        assert created.get("changed"), created
        docker("run", "-d", "--name", SOURCE_NAME, "-p", "%s:5000" % SOURCE, "-v", "%s:/var/lib/registry" % (workdir / "source"), REGISTRY_IMAGE)
        wait_v2(SOURCE)
        run = Lifecycle(seed, TARGET, SOURCE, NAME, workdir / "data", workdir, PREFIX, TEST_LABEL)
        run.seed_source()
        return run

    return make


def test_an_index_whose_platform_images_have_no_tag_survives_a_gc_with_delete_untagged(lifecycle):
    """The shortest sequence the property test failed on (seed 1, step 43, before registry_gc computed what the tags
    reach itself): an index whose platform images have no tag of their own, then a GC with delete_untagged."""
    run = lifecycle(1)
    run.log.append(run.op_index())
    run.check()
    # And something for the GC to collect, so that it opens its read-only window: an image deleted by digest.
    (repository,) = run.model.tags
    gone = run.new_image(run.pusher, repository)
    run.pusher.put(repository, "gone", gone).raise_for_status()
    assert run.pusher.session.delete("%s/v2/%s/manifests/%s" % (run.pusher.base, repository, gone.digest)).status_code == 202
    run.log.append(run.op_gc(untagged=True, race=False))  # the GC's own checks: the index read whole, its blobs on disk
    assert run.full_check() == 1 and run.figures["gc_blobs_removed"] > 0, (run.log, run.figures)


def test_nothing_kept_is_lost(workdir, lifecycle):
    seed = int(os.environ.get("DH_LIFECYCLE_SEED") or random.SystemRandom().randrange(1, 10**6))
    run = lifecycle(seed)
    started = time.monotonic()
    number = 0
    try:
        for number in range(1, OPERATIONS + 1):
            run.step(number)
            if number % 500 == 0:  # a soak's progress
                print("lifecycle seed %d: %d operations in %.0f s" % (seed, number, time.monotonic() - started), flush=True)
        whole = run.full_check()
    except BaseException:
        if os.environ.get("DH_LIFECYCLE_DEBUG"):
            # The registry's own log of this container (a GC recreates it: since the last GC) and every step so far.
            logs = subprocess.run(["docker", "logs", NAME], capture_output=True, text=True, check=False)
            (workdir.parent / "lifecycle-registry.log").write_text(logs.stdout + logs.stderr)
            (workdir.parent / "lifecycle-steps.log").write_text("\n".join(run.log))
        print("\nlifecycle FAILED at step %d of seed %d; replay: DH_LIFECYCLE_SEED=%d DH_LIFECYCLE_OPS=%d" % (number, seed, seed, number))
        print("\n".join(run.log[-60:]))
        raise
    seconds = time.monotonic() - started
    print(
        "\nlifecycle seed %d: %d operations in %.0f s (%s); %d tags read back whole at the end; figures %s"
        % (seed, OPERATIONS, seconds, ", ".join("%s %d (%.0f s)" % (k, n, run.seconds.get(k, 0)) for k, n in sorted(run.counts.items())),
           whole, run.figures)
    )
