"""Test hosts: real Debian servers as containers (systemd as PID 1, sshd, optionally their own Docker engine).

The recipe is ../shared/FLEET.md's. Node images are built once per machine from Debian packages (mmdebstrap, no
registry) and reused; every node of a run is reached over SSH with a key made for that run. A run removes exactly
what it created: the containers, their volumes and the network carrying its prefix (images stay, labelled as cache).

    python3 tests/support/fleet.py image bookworm [--docker]
    python3 tests/support/fleet.py up --prefix dh-fleet- --dir /tmp/dh-fleet \
        --node reg=bookworm --node pub=trixie --node cli=bookworm:docker [--shared /srv/shared]
    python3 tests/support/fleet.py down --prefix dh-fleet- [--dir /tmp/dh-fleet]

`up` writes DIR/inventory.yml (hosts with ansible_host, user root, the run's key, the node's python) and
DIR/id_ed25519. Standard library only: it runs before any virtual environment exists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

IMAGE_REPO = "dockhand-fleet-node"
CACHE_LABEL = "io.dockhand.cache=fleet-node"
FLEET_LABEL = "io.dockhand.fleet"
BASE_PACKAGES = "systemd-sysv,dbus,python3,openssh-server,iproute2,procps,ca-certificates,curl,sudo,gnupg"
# A node with an engine already installed (saves the apt download when a test does not need the install itself).
DOCKER_PACKAGES = {
    "bookworm": "docker.io,python3-docker,python3-requests,python3-packaging",
    "trixie": "docker.io,docker-cli,python3-docker,python3-requests,python3-packaging",
}
# The flags ../shared/FLEET.md found to work here (--privileged is refused).
RUN_FLAGS = [
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined",
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--stop-signal", "SIGRTMIN+3",
]  # fmt: skip
SSH_OPTIONS = [
    "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5",
]  # fmt: skip


class FleetError(RuntimeError):
    pass


def run(*args: str, check: bool = True, capture: bool = True, timeout: float | None = None) -> str:
    done = subprocess.run(list(args), capture_output=capture, text=True, check=False, timeout=timeout)
    if check and done.returncode != 0:
        raise FleetError("%s failed (%s): %s" % (" ".join(args[:3]), done.returncode, (done.stderr or "").strip()[-2000:]))
    return done.stdout or ""


def docker(*args: str, check: bool = True) -> str:
    return run("docker", *args, check=check)


def image_name(dist: str, with_docker: bool = False) -> str:
    return "%s:%s%s" % (IMAGE_REPO, dist, "-docker" if with_docker else "")


def image_present(name: str) -> bool:
    return bool(docker("image", "ls", "-q", name, check=False).strip())


def ensure_image(dist: str, with_docker: bool = False) -> str:
    """The node image for a Debian suite, built once from Debian packages (about 30-90 s) and reused."""
    name = image_name(dist, with_docker)
    if image_present(name):
        return name
    if shutil.which("mmdebstrap") is None:
        run("apt-get", "install", "-y", "-q", "mmdebstrap", capture=False)
    packages = BASE_PACKAGES + ("," + DOCKER_PACKAGES[dist] if with_docker else "")
    with tempfile.TemporaryDirectory(prefix="dh-fleet-image-") as tmp:
        rootfs = os.path.join(tmp, "rootfs.tar")
        hooks = [
            'chroot "$1" systemctl enable ssh',
            'rm -f "$1"/etc/machine-id && touch "$1"/etc/machine-id',
            'mkdir -p "$1"/root/.ssh && chmod 700 "$1"/root/.ssh',
        ]
        command = ["mmdebstrap", "--variant=apt", "--include=" + packages]
        for hook in hooks:
            command.append("--customize-hook=" + hook)
        command += [dist, rootfs]
        run(*command, capture=False, timeout=900)
        docker("import", "-c", 'CMD ["/sbin/init"]', "-c", "LABEL " + CACHE_LABEL, rootfs, name)
    return name


def _node_ip(container: str, network: str) -> str:
    data = json.loads(docker("inspect", container))[0]
    return data["NetworkSettings"]["Networks"][network]["IPAddress"]


def ssh(key: Path, address: str, command: str, check: bool = True, timeout: float = 60) -> str:
    return run("ssh", *SSH_OPTIONS, "-i", str(key), "root@" + address, command, check=check, timeout=timeout)


def wait_ssh(key: Path, address: str, timeout: float = 120) -> None:
    """Wait until sshd answers and systemd has finished booting (running, or degraded as trixie's is here)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = ssh(key, address, "systemctl is-system-running --wait", check=False, timeout=60).strip()
            if state in ("running", "degraded"):
                return
        except subprocess.TimeoutExpired:
            state = "timeout"
        if time.monotonic() > deadline:
            raise FleetError("node %s is not up over SSH after %ss (systemd: %s)" % (address, timeout, state or "no answer"))
        time.sleep(1)


def up(prefix: str, state_dir: Path, nodes: list[tuple[str, str, bool]], shared: list[str] | None = None) -> Path:
    """Start the nodes (name, suite, with_docker) on one network; write state_dir/inventory.yml and return its path."""
    state_dir.mkdir(parents=True, exist_ok=True)
    key = state_dir / "id_ed25519"
    if not key.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", prefix + "fleet", "-f", str(key))
    network = prefix + "net"
    if not docker("network", "ls", "-q", "--filter", "name=^%s$" % network, check=False).strip():
        docker("network", "create", "--label", "%s=%s" % (FLEET_LABEL, prefix), network)
    images = {(dist, with_docker): ensure_image(dist, with_docker) for _name, dist, with_docker in nodes}
    hosts = {}
    for name, dist, with_docker in nodes:
        container = prefix + name
        if not docker("ps", "-aq", "--filter", "name=^/%s$" % container, check=False).strip():
            command = ["run", "-d", "--name", container, "--hostname", name, "--network", network]
            command += ["--label", "%s=%s" % (FLEET_LABEL, prefix), *RUN_FLAGS]
            command += ["-v", "%s:/var/lib/docker" % (container + "-docker")]
            command += ["-v", "%s:/root/.ssh/authorized_keys:ro" % (str(key) + ".pub")]
            for path in shared or []:
                command += ["-v", "%s:%s" % (path, path)]
            command.append(images[(dist, with_docker)])
            docker(*command)
        hosts[name] = {"address": _node_ip(container, network), "container": container, "dist": dist}
    for host in hosts.values():
        wait_ssh(key, host["address"])
    inventory = state_dir / "inventory.yml"
    inventory.write_text(render_inventory(hosts, key))
    (state_dir / "fleet.json").write_text(json.dumps({"prefix": prefix, "key": str(key), "hosts": hosts}, indent=2))
    return inventory


def render_inventory(hosts: dict[str, dict[str, str]], key: Path) -> str:
    lines = ["---", "# Made by tests/support/fleet.py: test hosts reached over SSH.", "all:", "  vars:"]
    lines += [
        "    ansible_user: root",
        "    ansible_ssh_private_key_file: %s" % key,
        "    ansible_ssh_common_args: %s" % json.dumps(" ".join(SSH_OPTIONS[:-2])),
        "    ansible_python_interpreter: /usr/bin/python3",
        "  hosts:",
    ]
    for name, host in hosts.items():
        lines += ["    %s:" % name, "      ansible_host: %s" % host["address"], "      fleet_container: %s" % host["container"]]
        lines.append("      fleet_dist: %s" % host["dist"])
    return "\n".join(lines) + "\n"


def down(prefix: str, state_dir: Path | None = None) -> None:
    """Remove exactly what `up` made with this prefix: containers, their engine volumes, the network."""
    label = "label=%s=%s" % (FLEET_LABEL, prefix)
    containers = docker("ps", "-aq", "--filter", label, check=False).split()
    names = [docker("inspect", "-f", "{{.Name}}", c, check=False).strip().lstrip("/") for c in containers]
    if containers:
        docker("rm", "-f", "-v", *containers, check=False)
    for name in names:
        if name:
            docker("volume", "rm", "-f", name + "-docker", check=False)
    for network in docker("network", "ls", "-q", "--filter", label, check=False).split():
        docker("network", "rm", network, check=False)
    if state_dir is not None:
        shutil.rmtree(state_dir, ignore_errors=True)


@dataclass
class Node:
    """One test host of a run: its container, address, the run's key and the inventory `up` wrote."""

    container: str
    address: str
    key: Path
    inventory: Path

    def ssh(self, command: str, check: bool = False, timeout: float = 600) -> str:
        return ssh(self.key, self.address, command, check=check, timeout=timeout).strip()


@contextlib.contextmanager
def registry_node(prefix: str, state_dir: Path, image: str, dist: str = "bookworm") -> Iterator[Node]:
    """One node ``n1`` with its own engine, holding the registry ``image`` (copied from this machine's engine:
    there is no registry to pull from); removed afterwards, whatever happens."""
    try:
        inventory = up(prefix, state_dir, [("n1", dist, True)])
        hosts = json.loads((state_dir / "fleet.json").read_text())["hosts"]
        node = Node(prefix + "n1", hosts["n1"]["address"], state_dir / "id_ed25519", inventory)
        subprocess.run(
            "docker save %s | docker exec -i %s docker load" % (image, node.container),
            shell=True, check=True, capture_output=True, timeout=600,
        )  # fmt: skip
        yield node
    finally:
        down(prefix, state_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    image = sub.add_parser("image", help="build a node image once (reused afterwards)")
    image.add_argument("dist", choices=sorted(DOCKER_PACKAGES))
    image.add_argument("--docker", action="store_true", help="with docker.io and the Python SDK preinstalled")
    start = sub.add_parser("up", help="start nodes and write DIR/inventory.yml")
    start.add_argument("--prefix", required=True)
    start.add_argument("--dir", required=True, type=Path)
    start.add_argument("--node", action="append", required=True, help="NAME=SUITE or NAME=SUITE:docker")
    start.add_argument("--shared", action="append", help="a host directory mounted at the same path in every node")
    stop = sub.add_parser("down", help="remove the nodes, volumes and network of a prefix")
    stop.add_argument("--prefix", required=True)
    stop.add_argument("--dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "image":
            print(ensure_image(args.dist, args.docker))
        elif args.command == "up":
            nodes = []
            for item in args.node:
                name, _sep, dist = item.partition("=")
                dist, _sep, extra = dist.partition(":")
                nodes.append((name, dist, extra == "docker"))
            print(up(args.prefix, args.dir, nodes, args.shared))
        else:
            down(args.prefix, args.dir)
    except FleetError as exc:
        print("fleet: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
