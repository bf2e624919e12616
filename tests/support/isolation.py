"""One isolation scheme for every test: a name prefix, a port range and a data root, from the environment.

| variable | default | what |
|---|---|---|
| ``DH_PREFIX`` | ``dh-it-`` | prefix of every container, image, volume, network the tests create |
| ``DH_PORT_BASE`` | ``5100`` | first of the ``PORT_COUNT`` ports the tests may use |
| ``DH_DATA_ROOT`` | ``/tmp/dh-it`` | every host directory the tests create sits under it |
| ``DH_REGISTRY_IMAGE`` | ``registry:2`` | the registry image (never removed by a test) |

No test reads these variables itself: it imports ``PREFIX``, ``port(offset)``, ``DATA_ROOT``, ``REGISTRY_IMAGE``.
Port offsets (``port(offset)``), one set per test file so that no two files share a port:

| offsets | test file |
|---|---|
| +0, +1 | the targets (``dh_port``, ``dh_port2``), test_site, test_gc_interrupted (``dh_port``) |
| +2 | test_maintenance_role |
| +3 | test_gc_pull_loop |
| +5 | test_prune_race |
| +6, +8 | test_lifecycle (the registry, the image_sync source) |
| +7 | test_data_move |
| +10..+19 | test_bad_input (+19: a port nothing listens on) |
| +20 | test_resilience |
| +21 | test_container_crash_and_lock |
| +25..+29, +31, +32 | test_image_sync (source, destination, upstream, cache, second upstream, caches a and b) |
| +30 | test_installed_collection |
| +34 | test_gc_index |
| +35..+39 | test_failure_modes (full disk, killed, source, destination, TLS) |
| +40 | test_engine_tls (the private engine's TLS port) |
| +42, +43 | test_remote_engine_readiness (SSH-forwarded engine, registry) |
| +44..+49 | test_registry_configuration (registry, metrics, event receiver, Prometheus, plain registry, lost endpoint) |

The Molecule scenarios run one at a time (scripts/molecule-all) and their inventories hold literal values (their
tests read them), so they cannot take a prefix from the environment. Their names and ports come from this file
all the same: ``MOLECULE`` below is the one table of them, and tests/unit/test_isolation.py holds every scenario's
inventory to it (a new scenario must be added here first). Ports are host ports on this machine; the fleet and ha
scenarios publish only inside their own test hosts' network namespaces, so they take none. No scenario port falls
in the pytest range (``DH_PORT_BASE`` + ``PORT_COUNT``) or in another scenario's.
"""

from __future__ import annotations

import os
from pathlib import Path

PREFIX = os.environ.get("DH_PREFIX", "dh-it-")
PORT_BASE = int(os.environ.get("DH_PORT_BASE", "5100"))
PORT_COUNT = 50
DATA_ROOT = Path(os.environ.get("DH_DATA_ROOT", "/tmp/dh-it"))
REGISTRY_IMAGE = os.environ.get("DH_REGISTRY_IMAGE", "registry:2")
# Every test image carries this label with PREFIX as its value, so that teardown also finds the images a rebuild
# left without a name.
TEST_LABEL = "io.dockhand.test"


def port(offset: int) -> int:
    """Port ``offset`` of the run's range (refuses to leave it)."""
    if not 0 <= offset < PORT_COUNT:
        raise ValueError("port offset %d outside the range of %d ports from %d" % (offset, PORT_COUNT, PORT_BASE))
    return PORT_BASE + offset


def name(suffix: str) -> str:
    """A container, image or volume name of this run."""
    return PREFIX + suffix


def path(*parts: str) -> Path:
    """A host path of this run, under DATA_ROOT."""
    return DATA_ROOT.joinpath(*parts)


def subnet(offset: int) -> str:
    """A bridge address (``10.x.y.1/24``) of this run for a private engine, one per ``offset`` (0-49): the run's
    port range (50 ports from PORT_BASE) picks ``y``, so two runs with different ranges never share a subnet."""
    if not 0 <= offset < 50:
        raise ValueError("subnet offset %d outside 0-49" % offset)
    return "10.%d.%d.1/24" % (200 + offset, PORT_BASE // PORT_COUNT % 256)


def bridge(suffix: str) -> str:
    """A network interface name of this run (at most 15 characters, the kernel's limit)."""
    return (PREFIX + suffix)[:15]


# scenario -> (name prefix of everything it creates, host ports it publishes)
MOLECULE: dict[str, tuple[str, tuple[int, ...]]] = {
    "default": ("mol-default-", (5201,)),
    "check_mode": ("mol-check-", (5202,)),
    "role_include": ("mol-include-", (5203,)),
    "secure": ("dh-sec-", (5500,)),
    "maintenance": ("mol-maint-", (5550,)),
    "fleet": ("dh-fl-", ()),
    "ha": ("dh-ha-", ()),
}
