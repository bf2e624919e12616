"""Helpers of the reliability tests (test_bad_input.py, test_resilience.py).

They drive the collection the way users do (modules run as Ansible runs them, roles through
``ansible-playbook``), talk to the registry over HTTP to verify what it serves, and can run a
private Docker engine, so that a test may restart "the daemon" without touching the shared one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
import requests

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / "collections"
MODULES = ROOT / "plugins" / "modules"
SHARED_DOCKER_HOST = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
ACCEPT = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)


def env_for(docker_host: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DOCKER_HOST=docker_host,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PYTHONPATH=str(COLLECTIONS),
    )
    return env


# -- running modules and roles --------------------------------------------------------------
def run_module(name: str, args: dict[str, Any], docker_host: str = SHARED_DOCKER_HOST, check: bool = False) -> dict:
    """Run module ``name`` once, as Ansible does (its args in a JSON file); return its result."""
    payload = dict(args, _ansible_check_mode=check, _ansible_diff=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": payload}, handle)
    try:
        proc = subprocess.run(
            [os.environ.get("PYTHON", "python"), str(MODULES / ("%s.py" % name)), handle.name],
            env=env_for(docker_host), capture_output=True, text=True, timeout=600, check=False,
        )
    finally:
        os.unlink(handle.name)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        # Not JSON: a crash (traceback). Report it as a failure the assertions will show.
        return {"failed": True, "crashed": True, "msg": proc.stdout + proc.stderr}


def run_playbook(
    playbook: str | Path, extra_vars: dict[str, Any], docker_host: str, timeout: int = 600
) -> subprocess.CompletedProcess:
    """``ansible-playbook playbook -e @vars``; the completed process (rc, stdout)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(extra_vars, handle)
    try:
        return subprocess.run(
            ["ansible-playbook", str(playbook), "-e", "@" + handle.name],
            cwd=ROOT, env=env_for(docker_host), capture_output=True, text=True, timeout=timeout, check=False,
        )
    finally:
        os.unlink(handle.name)


def start_playbook(playbook: str | Path, extra_vars: dict[str, Any], docker_host: str, log: Path) -> subprocess.Popen:
    """Start ``ansible-playbook`` in the background (output to ``log``)."""
    vars_file = log.with_suffix(".vars.json")
    vars_file.write_text(json.dumps(extra_vars))
    return subprocess.Popen(
        ["ansible-playbook", str(playbook), "-e", "@%s" % vars_file],
        cwd=ROOT, env=env_for(docker_host), stdout=log.open("w"), stderr=subprocess.STDOUT,
    )


def recap(output: str) -> dict[str, int]:
    """The PLAY RECAP counters of localhost (ok, changed, failed, ...)."""
    for line in output.splitlines():
        if line.startswith("localhost") and "changed=" in line:
            return {k: int(v) for k, v in (item.split("=") for item in line.split(":", 1)[1].split())}
    raise AssertionError("no PLAY RECAP in the output:\n" + output[-3000:])


def run_role_failure(role: str, role_vars: dict[str, Any], docker_host: str, workdir: Path) -> dict:
    """Include ``role`` with ``role_vars``; return the failed task's result (``{}`` if nothing failed)."""
    out = workdir / ("%s-failure.json" % role)
    out.unlink(missing_ok=True)
    playbook = workdir / ("%s-failure.yml" % role)
    playbook.write_text(
        json.dumps(
            [
                {
                    "name": "Run the role and keep the error",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "block": [
                                {
                                    "name": "Run the role",
                                    "ansible.builtin.include_role": {"name": "dockhand.registry.%s" % role},
                                    "vars": role_vars,
                                }
                            ],
                            "rescue": [
                                {
                                    "name": "Keep the error",
                                    "ansible.builtin.copy": {
                                        "content": "{{ ansible_failed_result | to_json }}",
                                        "dest": str(out),
                                        "mode": "0644",
                                    },
                                }
                            ],
                        }
                    ],
                }
            ]
        )
    )
    proc = run_playbook(playbook, {}, docker_host)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()) if out.exists() else {}


# -- images -----------------------------------------------------------------------------------
def build_image(api: docker.APIClient, tag: str, payload: bytes) -> str:
    """Build ``tag`` FROM scratch with one file holding ``payload``; return the image ID."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("Dockerfile", b"FROM scratch\nCOPY payload /payload\n"), ("payload", payload)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    for chunk in api.build(fileobj=buffer, custom_context=True, tag=tag, rm=True, decode=True):
        if "error" in chunk:
            raise AssertionError("build of %s failed: %s" % (tag, chunk["error"]))
    return api.inspect_image(tag)["Id"]


# -- the registry, over HTTP ------------------------------------------------------------------
def wait_v2(address: str, timeout: float = 30.0) -> float:
    """Seconds until ``GET /v2/`` answers 200 (raises after ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if requests.get("http://%s/v2/" % address, timeout=1).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise AssertionError("registry %s did not answer /v2/ within %ss" % (address, timeout))


def tag_digests(address: str) -> dict[str, str]:
    """``{"repo:tag": manifest digest}`` for everything the registry lists."""
    found: dict[str, str] = {}
    repos = requests.get("http://%s/v2/_catalog?n=1000" % address, timeout=10).json().get("repositories") or []
    for repo in repos:
        tags = requests.get("http://%s/v2/%s/tags/list" % (address, repo), timeout=10).json().get("tags") or []
        for tag in tags:
            head = requests.head(
                "http://%s/v2/%s/manifests/%s" % (address, repo, tag), headers={"Accept": ACCEPT}, timeout=10
            )
            assert head.status_code == 200, "%s:%s answers %d" % (repo, tag, head.status_code)
            found["%s:%s" % (repo, tag)] = head.headers["Docker-Content-Digest"]
    return found


def verify_pullable(address: str, expected: dict[str, str]) -> int:
    """Check that every ``repo:tag`` still has its digest and that the manifest and each blob it
    names are served with the right content; return the number of blobs verified."""
    blobs = 0
    for name, digest in expected.items():
        repo, _sep, tag = name.rpartition(":")
        head = requests.head(
            "http://%s/v2/%s/manifests/%s" % (address, repo, tag), headers={"Accept": ACCEPT}, timeout=10
        )
        assert head.status_code == 200, "%s answers %d" % (name, head.status_code)
        assert head.headers["Docker-Content-Digest"] == digest, "%s moved to another digest" % name
        manifest = requests.get(
            "http://%s/v2/%s/manifests/%s" % (address, repo, digest), headers={"Accept": ACCEPT}, timeout=10
        )
        assert manifest.status_code == 200, "%s@%s answers %d" % (repo, digest, manifest.status_code)
        assert "sha256:" + hashlib.sha256(manifest.content).hexdigest() == digest, "%s manifest corrupt" % name
        body = manifest.json()
        for blob in [body["config"]] + body["layers"]:
            answer = requests.get("http://%s/v2/%s/blobs/%s" % (address, repo, blob["digest"]), timeout=60)
            assert answer.status_code == 200, "blob %s of %s answers %d" % (blob["digest"], name, answer.status_code)
            assert "sha256:" + hashlib.sha256(answer.content).hexdigest() == blob["digest"], "blob corrupt"
            blobs += 1
    return blobs


def garbage_collect_dry_run(api: docker.APIClient, container: str) -> str:
    """``registry garbage-collect --dry-run`` inside the container; its output (raises on errors)."""
    exec_id = api.exec_create(
        container, ["/bin/registry", "garbage-collect", "--dry-run", "/etc/docker/registry/config.yml"]
    )
    output = api.exec_start(exec_id).decode("utf-8", "replace")
    code = api.exec_inspect(exec_id)["ExitCode"]
    assert code == 0, "garbage-collect --dry-run exited %d: %s" % (code, output[-2000:])
    assert "error" not in output.lower(), output[-2000:]
    return output


# -- a private Docker engine ------------------------------------------------------------------
class PrivateEngine:
    """A second dockerd, with its own socket, data, exec root and bridge, that a test may restart."""

    def __init__(self, base: Path, bridge: str = "dh-rel0", subnet: str = "172.31.250.1/24") -> None:
        self.base = base
        self.run_dir = Path("/run/dh-rel")
        self.socket = self.run_dir / "docker.sock"
        self.docker_host = "unix://%s" % self.socket
        self.bridge = bridge
        self.subnet = subnet
        self.proc: subprocess.Popen | None = None
        self.log = base / "dockerd.log"

    @staticmethod
    def available() -> str | None:
        """Why a private engine cannot run here, or None."""
        if os.geteuid() != 0:
            return "a private dockerd needs root"
        for tool in ("dockerd", "ip"):
            if not shutil.which(tool):
                return "%s is not installed" % tool
        return None

    def _args(self) -> list[str]:
        return [
            "dockerd",
            "--host", self.docker_host,
            "--data-root", str(self.base / "data-root"),
            "--exec-root", str(self.run_dir / "exec"),
            "--pidfile", str(self.run_dir / "docker.pid"),
            "--bridge", self.bridge,
            "--iptables=false",
            "--ip-masq=false",
        ]

    def start(self, timeout: float = 60) -> float:
        """Start dockerd; return the seconds until its API answered."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.base.mkdir(parents=True, exist_ok=True)
        if subprocess.run(["ip", "link", "show", self.bridge], capture_output=True, check=False).returncode != 0:
            subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True)
            subprocess.run(["ip", "addr", "add", self.subnet, "dev", self.bridge], check=True)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)
        started = time.monotonic()
        self.proc = subprocess.Popen(
            self._args(), stdout=self.log.open("a"), stderr=subprocess.STDOUT, start_new_session=True
        )
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError("private dockerd exited: " + self.log.read_text()[-2000:])
            try:
                docker.APIClient(base_url=self.docker_host, version="auto", timeout=5).ping()
                return time.monotonic() - started
            except Exception:
                time.sleep(0.2)
        raise RuntimeError("private dockerd did not answer within %ss" % timeout)

    def stop(self, timeout: float = 60) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> float:
        self.stop()
        return self.start()

    def api(self) -> docker.APIClient:
        return docker.APIClient(base_url=self.docker_host, version="auto", timeout=120)

    def load_from(self, shared: docker.APIClient, image: str) -> None:
        """Copy ``image`` from the shared engine into this one (docker save | docker load)."""
        data = b"".join(shared.get_image(image))
        for chunk in self.api().load_image(data):
            if "error" in chunk:
                raise RuntimeError("load of %s failed: %s" % (image, chunk["error"]))

    def destroy(self) -> None:
        """Stop dockerd (and with it its containers); remove its data and bridge."""
        if self.proc and self.proc.poll() is None:
            try:
                api = self.api()
                for container in api.containers(all=True):
                    api.remove_container(container["Id"], force=True)
            except Exception:
                pass
        self.stop()
        subprocess.run(["umount", "-R", str(self.base / "data-root")], capture_output=True, check=False)
        shutil.rmtree(self.base / "data-root", ignore_errors=True)
        shutil.rmtree(self.run_dir / "exec", ignore_errors=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)


def ensure_registry_image(docker_host: str, workdir: Path, image: str = "registry:2") -> None:
    """Make ``image`` present in the engine at ``docker_host``: built by the registry role's own
    build tasks (from the distribution's docker-registry package) when missing. No registry to pull from."""
    api = docker.APIClient(base_url=docker_host, version="auto")
    if api.images(name=image):
        return
    workdir.mkdir(parents=True, exist_ok=True)
    playbook = workdir / "registry-image.yml"
    playbook.write_text(
        json.dumps(
            [
                {
                    "name": "Build the registry image",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Build it with the registry role",
                            "ansible.builtin.include_role": {
                                "name": "dockhand.registry.registry",
                                "tasks_from": "build_image.yml",
                            },
                            "vars": {"registry_image": image, "registry_image_build_dir": str(workdir / "context")},
                        }
                    ],
                }
            ]
        )
    )
    proc = run_playbook(playbook, {}, docker_host)
    assert proc.returncode == 0, proc.stdout[-3000:]


def failure_messages(output: str) -> list[str]:
    """The ``msg`` of each failed task in ``ansible-playbook`` output (the YAML callback may wrap them)."""
    messages: list[str] = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith(("fatal:", "failed:")):
            continue
        for j in range(i + 1, len(lines)):
            stripped = lines[j].strip()
            if not lines[j].startswith(" "):
                break
            if stripped.startswith("msg:"):
                indent = len(lines[j]) - len(lines[j].lstrip())
                parts = [stripped[4:].strip()]
                for follow in lines[j + 1:]:
                    if not follow.strip() or len(follow) - len(follow.lstrip()) <= indent:
                        break
                    parts.append(follow.strip())
                text = " ".join(parts)
                if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
                    text = text[1:-1].replace("''", "'")
                messages.append(text)
                break
    return messages
