"""Integration tests: the real Docker engine and real registry containers.

Every name the tests create starts with ``DH_PREFIX`` (default ``dh-it-``), every
port comes from ``DH_PORT_BASE`` (default 5100, 50 ports), every host directory
sits under ``DH_DATA_ROOT`` (default /tmp/dh-it). Teardown removes all of them, on
failure too, and never touches anything else on the engine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PREFIX = os.environ.get("DH_PREFIX", "dh-it-")
PORT_BASE = int(os.environ.get("DH_PORT_BASE", "5100"))
DATA_ROOT = Path(os.environ.get("DH_DATA_ROOT", "/tmp/dh-it"))
REGISTRY_IMAGE = os.environ.get("DH_REGISTRY_IMAGE", "registry:2")
# Every test image carries this label with PREFIX as its value, so that teardown also finds
# the images a rebuild left without a name.
TEST_LABEL = "io.dockhand.test"


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


def env() -> dict[str, str]:
    values = dict(os.environ)
    venv_bin = ROOT / ".venv" / "bin"
    values.update(
        PATH="%s:%s" % (venv_bin, values.get("PATH", "")),
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_PIPELINING="1",
        ANSIBLE_LOCAL_TEMP=str(DATA_ROOT / "ansible-tmp"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return values


def ansible_playbook(playbook: Path | str, extra_vars: dict, *args: str, timeout: int = 300):
    command = [
        str(ROOT / ".venv" / "bin" / "ansible-playbook"),
        "-i",
        str(ROOT / "inventory" / "localhost.yml"),
        str(playbook),
        "-e",
        json.dumps(extra_vars),
        *args,
    ]
    return subprocess.run(command, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session", autouse=True)
def engine_ready():
    if shutil.which("docker") is None:
        pytest.fail("the docker client is not installed: run `make engine` first")
    docker("version")
    cleanup()
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    if not docker("images", "-q", REGISTRY_IMAGE, check=False).strip():
        # A fresh machine: build it the way the registry role does (no registry to pull from).
        build_dir = DATA_ROOT / "registry-image"
        done = ansible_playbook(
            Path(__file__).parent / "targets" / "_common" / "registry_image.yml",
            {"dh_registry_image": REGISTRY_IMAGE, "dh_dir": str(build_dir)},
        )
        remove_tree(build_dir)
        if done.returncode != 0:
            pytest.fail("cannot build the registry image %s:\n%s" % (REGISTRY_IMAGE, done.stdout[-3000:]))
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
        "dh_port": PORT_BASE,
        "dh_port2": PORT_BASE + 1,
        "dh_dir": str(workdir),
        "dh_marker": uuid.uuid4().hex,
        "dh_registry_image": REGISTRY_IMAGE,
    }
