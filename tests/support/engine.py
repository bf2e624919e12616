"""Engines for the tests: the registry-image bootstrap, and a private dockerd a test may restart or reach over TLS.

A private engine has its own socket, data root, exec root, pidfile and bridge (all named from the run's isolation
scheme), so the shared engine is never touched. With ``tls_port`` it also listens on ``tcp://127.0.0.1:<port>``
with TLS and client certificates (``--tlsverify``), from a CA made for the run (:func:`make_tls_files`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import docker

from support.runner import run_playbook

SHARED_DOCKER_HOST = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def ensure_registry_image(docker_host: str, workdir: Path, image: str = "registry:2") -> None:
    """Make ``image`` present in the engine at ``docker_host``: built by the registry role's own build tasks (from
    the distribution's docker-registry package) when missing. There is no registry to pull from."""
    api = docker.APIClient(base_url=docker_host, version="auto")
    if api.images(name=image):
        return
    workdir.mkdir(parents=True, exist_ok=True)
    playbook = workdir / "registry-image.yml"
    play = {
        "name": "Build the registry image",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Build it with the registry role",
                "ansible.builtin.include_role": {"name": "dockhand.registry.registry", "tasks_from": "build_image.yml"},
                "vars": {"registry_image": image, "registry_image_build_dir": str(workdir / "context")},
            }
        ],
    }
    playbook.write_text(json.dumps([play]))
    proc = run_playbook(playbook, {}, docker_host=docker_host)
    assert proc.returncode == 0, "cannot build the registry image %s:\n%s" % (image, proc.stdout[-3000:])


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_tls_files(directory: Path, server_names: tuple[str, ...] = ("127.0.0.1", "localhost")) -> dict[str, Path]:
    """A CA, a server certificate (for ``server_names``) and a client certificate, as the docker CLI names them
    (``ca.pem``, ``cert.pem``/``key.pem`` for the client; ``server-cert.pem``/``server-key.pem``); their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {name: directory / ("%s.pem" % name) for name in ("ca", "ca-key", "server-cert", "server-key", "cert", "key")}
    days = "2"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", days,
             "-subj", "/CN=dockhand test engine CA", "-keyout", str(files["ca-key"]), "-out", str(files["ca"]),
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    sans = ",".join(("IP:%s" if name.replace(".", "").isdigit() else "DNS:%s") % name for name in server_names)
    for who, cn, usage in (("server", server_names[0], "serverAuth"), ("client", "dockhand test client", "clientAuth")):
        key = files["server-key" if who == "server" else "key"]
        cert = files["server-cert" if who == "server" else "cert"]
        csr = directory / ("%s.csr" % who)
        extensions = directory / ("%s.ext" % who)
        lines = ["extendedKeyUsage=%s" % usage, "keyUsage=critical,digitalSignature"]
        if who == "server":
            lines.append("subjectAltName=%s" % sans)
        extensions.write_text("\n".join(lines) + "\n")
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=%s" % cn,
                 "-keyout", str(key), "-out", str(csr))  # fmt: skip
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(files["ca"]), "-CAkey", str(files["ca-key"]),
                 "-CAcreateserial", "-days", days, "-extfile", str(extensions), "-out", str(cert))  # fmt: skip
    for path in files.values():
        path.chmod(0o600 if "key" in path.name else 0o644)
    return files


class PrivateEngine:
    """A second dockerd, with its own socket, data, exec root, pidfile and bridge, that a test may restart."""

    def __init__(
        self,
        base: Path,
        run_dir: Path = Path("/run/dh-rel"),
        bridge: str = "dh-rel0",
        subnet: str = "172.31.250.1/24",
        tls_port: int | None = None,
    ) -> None:
        self.base = base
        self.run_dir = run_dir
        self.socket = self.run_dir / "docker.sock"
        self.docker_host = "unix://%s" % self.socket
        self.bridge = bridge
        self.subnet = subnet
        self.tls_port = tls_port
        self.tls_files = make_tls_files(base / "tls") if tls_port else {}
        self.tcp_host = "tcp://127.0.0.1:%d" % tls_port if tls_port else None
        self.proc: subprocess.Popen | None = None
        self.log = base / "dockerd.log"

    @staticmethod
    def available() -> str | None:
        """Why a private engine cannot run here, or None."""
        if os.geteuid() != 0:
            return "a private dockerd needs root"
        for tool in ("dockerd", "ip", "openssl"):
            if not shutil.which(tool):
                return "%s is not installed" % tool
        return None

    def _args(self) -> list[str]:
        args = [
            "dockerd",
            "--host", self.docker_host,
            "--data-root", str(self.base / "data-root"),
            "--exec-root", str(self.run_dir / "exec"),
            "--pidfile", str(self.run_dir / "docker.pid"),
            "--bridge", self.bridge,
            "--iptables=false",
            "--ip-masq=false",
        ]  # fmt: skip
        if self.tcp_host:
            files = self.tls_files
            args += [
                "--host", self.tcp_host, "--tlsverify", "--tlscacert", str(files["ca"]),
                "--tlscert", str(files["server-cert"]), "--tlskey", str(files["server-key"]),
            ]  # fmt: skip
        return args

    def start(self, timeout: float = 60) -> float:
        """Start dockerd; return the seconds until its API answered."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.base.mkdir(parents=True, exist_ok=True)
        if subprocess.run(["ip", "link", "show", self.bridge], capture_output=True, check=False).returncode != 0:
            subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True)
            subprocess.run(["ip", "addr", "add", self.subnet, "dev", self.bridge], check=True)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)
        started = time.monotonic()
        self.proc = subprocess.Popen(self._args(), stdout=self.log.open("a"), stderr=subprocess.STDOUT, start_new_session=True)
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
