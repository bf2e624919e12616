"""The built collection works once installed: `ansible-galaxy collection build`, install the tarball into an empty
collections path, then run `ansible-playbook dockhand.registry.site` from an unrelated directory (no ansible.cfg, no
checkout on any path) against localhost, twice: the second run changes nothing.

Real engine, real registry container (named and ported from this test's own range); the container and its data
directory are removed afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import ROOT
from support.isolation import name, path, port
from support.registry import wait_v2
from support.runner import recap

BIN = Path(sys.executable).parent
NAME = name("eco-registry")
PORT = port(30)
DATA = path("eco-data")


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


def _clean_env(tmp: Path) -> dict[str, str]:
    """An environment that knows nothing of the checkout: no ansible.cfg, only the temporary collections path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    empty_cfg = tmp / "ansible.cfg"
    empty_cfg.write_text("[defaults]\n")
    env["ANSIBLE_CONFIG"] = str(empty_cfg)
    env["ANSIBLE_COLLECTIONS_PATH"] = str(tmp / "collections")
    env["ANSIBLE_HOME"] = str(tmp / "ansible-home")
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("installed")
    env = _clean_env(tmp)
    build = subprocess.run(
        ["ansible-galaxy", "collection", "build", "--output-path", str(tmp / "dist"), str(ROOT)],
        cwd=tmp, env=env, capture_output=True, text=True, check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    tarball = next((tmp / "dist").glob("dockhand-registry-*.tar.gz"))
    install = subprocess.run(
        ["ansible-galaxy", "collection", "install", "-p", str(tmp / "collections"), str(tarball)],
        cwd=tmp, env=env, capture_output=True, text=True, check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    assert (tmp / "collections/ansible_collections/dockhand/registry/MANIFEST.json").is_file()
    return tmp, env


@pytest.fixture
def registry_cleanup():
    def clean() -> None:
        _docker("rm", "-f", NAME)
        shutil.rmtree(DATA, ignore_errors=True)

    clean()
    yield
    clean()


def _site(tmp: Path, env: dict[str, str]) -> dict[str, int]:
    workdir = tmp / "elsewhere"  # an unrelated directory: nothing of the checkout around it
    workdir.mkdir(exist_ok=True)
    inventory = workdir / "hosts.yml"
    inventory.write_text(
        json.dumps({"all": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        }}}})
    )
    extra = {
        "registry_container_name": NAME,
        "registry_port": PORT,
        "registry_data_path": str(DATA),
        "publish_registry": f"localhost:{PORT}",
        "publish_images": [],
    }
    run = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), "-e", json.dumps(extra), "dockhand.registry.site"],
        cwd=workdir, env=env, capture_output=True, text=True, check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return recap(run.stdout)


def test_site_from_installed_tarball(installed, registry_cleanup):
    tmp, env = installed
    first = _site(tmp, env)
    assert first["failed"] == 0 and first["unreachable"] == 0
    assert first["changed"] >= 1  # the registry container was created
    state = json.loads(_docker("inspect", NAME).stdout)[0]
    assert state["State"]["Running"]
    assert state["HostConfig"]["PortBindings"]["5000/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(PORT)}]
    wait_v2("127.0.0.1:%d" % PORT, timeout=10)

    second = _site(tmp, env)
    assert second["changed"] == 0 and second["failed"] == 0
