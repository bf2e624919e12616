"""Integration tests: the real Docker engine and real registry containers.

Every name the tests create starts with ``DH_PREFIX`` (default ``dh-it-``), every
port comes from ``DH_PORT_BASE`` (default 5100, 50 ports), every host directory
sits under ``DH_DATA_ROOT`` (default /tmp/dh-it). Teardown removes all of them, on
failure too, and never touches anything else on the engine.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from support.engine import SHARED_DOCKER_HOST, ensure_registry_image
from support.isolation import DATA_ROOT, PREFIX, REGISTRY_IMAGE, TEST_LABEL, port


def docker(*args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError("docker %s failed: %s" % (" ".join(args), done.stderr.strip()))
    return done.stdout


def cleanup() -> None:
    """Remove the containers, images and volumes named with PREFIX (and only those)."""
    containers = docker("ps", "-aq", "--filter", "name=^/" + PREFIX, check=False).split()
    if containers:
        docker("rm", "-f", "-v", *containers, check=False)
    images = [
        line.split()[0]
        for line in docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", check=False).splitlines()
        if line.split()[0].rsplit(":", 1)[0].split("/")[-1].startswith(PREFIX)
        or "/" + PREFIX in line.split()[0]
    ]
    if images:
        docker("rmi", "-f", *images, check=False)
    labelled = docker("images", "-aq", "--filter", "label=%s=%s" % (TEST_LABEL, PREFIX), check=False).split()
    if labelled:
        docker("rmi", "-f", *sorted(set(labelled)), check=False)
    volumes = [v for v in docker("volume", "ls", "-q", check=False).split() if v.startswith(PREFIX)]
    if volumes:
        docker("volume", "rm", "-f", *volumes, check=False)


def remove_tree(path: Path) -> None:
    """Remove a host directory of a test (the registry writes into it as root: run the suite as root)."""
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def engine_ready():
    if shutil.which("docker") is None:
        pytest.fail("the docker client is not installed: run `make engine` first")
    docker("version")
    cleanup()
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    # A fresh machine: build it the way the registry role does (no registry to pull from).
    ensure_registry_image(SHARED_DOCKER_HOST, DATA_ROOT / "registry-image", REGISTRY_IMAGE)
    remove_tree(DATA_ROOT / "registry-image")
    yield
    cleanup()
    shutil.rmtree(DATA_ROOT / "ansible-tmp", ignore_errors=True)


@pytest.fixture
def workdir(request):
    """A fresh host directory for one test, removed afterwards with everything the test named."""
    path = DATA_ROOT / ("%s-%s" % (request.node.name.replace("[", "-").replace("]", ""), uuid.uuid4().hex[:6]))
    path.mkdir(parents=True)
    yield path
    cleanup()
    remove_tree(path)


@pytest.fixture
def dh_vars(workdir):
    """The variables every target playbook gets."""
    return {
        "dh_prefix": PREFIX,
        "dh_port": port(0),
        "dh_port2": port(1),
        "dh_dir": str(workdir),
        "dh_marker": uuid.uuid4().hex,
        "dh_registry_image": REGISTRY_IMAGE,
    }
