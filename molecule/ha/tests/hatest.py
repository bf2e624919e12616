# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the ha scenario's tests: commands on the nodes over SSH, registry pulls over HTTP, a bounded pull loop.

Traffic goes only to the addresses of the nodes this run created (read from fleet.py's state, refreshed from the
engine because a restarted node may get a new one). Every loop is bounded in count and time.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import urllib3

FLEET_DIR = Path("/tmp/dh-ha/fleet")
SSH = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
SSH += ["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5"]
ACCEPT = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


def fleet() -> dict:
    return json.loads((FLEET_DIR / "fleet.json").read_text())


def address(node: str) -> str:
    """The node's current address on the run's network (asked from the engine: a restart may change it)."""
    state = fleet()
    container = state["hosts"][node]["container"]
    network = state["prefix"] + "net"
    out = subprocess.run(["docker", "inspect", container], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]["NetworkSettings"]["Networks"][network]["IPAddress"]


def on(node: str, command: str, timeout: float = 120, check: bool = True) -> str:
    done = subprocess.run([*SSH, "-i", fleet()["key"], "root@" + address(node), command], capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError("%s on %s failed (%d): %s" % (command, node, done.returncode, done.stderr.strip()[-1000:]))
    return done.stdout


def build_and_push(node: str, port: int, repository: str, tag: str, content: str) -> tuple[str, str]:
    """Build a one-file image FROM scratch on ``node`` and push it to the registry through that node;
    return (manifest digest, image ID)."""
    work = "/tmp/dh-ha-build-%s" % tag
    image = "localhost:%d/%s:%s" % (port, repository, tag)
    on(node, "mkdir -p %s && echo %s > %s/payload && printf 'FROM scratch\\nCOPY payload /\\n' > %s/Dockerfile" % (work, content, work, work))
    on(node, "docker build -q -t %s %s" % (image, work))
    on(node, "docker push %s" % image)
    image_id = on(node, "docker image inspect -f '{{.Id}}' %s" % image).strip()
    digests = json.loads(on(node, "docker image inspect -f '{{json .RepoDigests}}' %s" % image))
    digest = next(d for d in digests if d.startswith("localhost:%d/%s@" % (port, repository))).split("@", 1)[1]
    return digest, image_id


def pull_by_digest(node: str, port: int, repository: str, digest: str) -> str:
    """``docker pull`` by digest through ``node``'s registry task; the local image ID."""
    reference = "localhost:%d/%s@%s" % (port, repository, digest)
    on(node, "docker pull -q %s" % reference)
    return on(node, "docker image inspect -f '{{.Id}}' %s" % reference).strip()


def http_pull(session: requests.Session, base: str, repository: str, digest: str) -> None:
    """A pull over the registry API: the manifest by digest and every blob it names, each checked against its digest.
    Each request on a connection of its own, as the Docker engine's registry client makes them (it disables HTTP
    keep-alive), so a registry that stops closes no idle connection under a request. Raises requests'
    ConnectionError/Timeout when the node does not answer, AssertionError on a wrong answer."""
    timeout = (1, 10)
    close = {"Connection": "close"}
    answer = session.get("%s/v2/%s/manifests/%s" % (base, repository, digest), headers={"Accept": ACCEPT, **close}, timeout=timeout)
    assert answer.status_code == 200, "manifest %s: HTTP %d" % (digest, answer.status_code)
    assert "sha256:" + hashlib.sha256(answer.content).hexdigest() == digest, "manifest digest mismatch"
    manifest = answer.json()
    for blob in [manifest["config"], *manifest["layers"]]:
        got = session.get("%s/v2/%s/blobs/%s" % (base, repository, blob["digest"]), headers=close, timeout=timeout)
        assert got.status_code == 200, "blob %s: HTTP %d" % (blob["digest"], got.status_code)
        assert "sha256:" + hashlib.sha256(got.content).hexdigest() == blob["digest"], "blob digest mismatch"


def refused(exc: Exception) -> bool:
    """The node never accepted the connection (refused, unreachable, connect timeout): what a health-checking load
    balancer routes around. Anything else (a connection reset or closed mid-answer, a read timeout) dropped a pull."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    return isinstance(getattr(reason, "reason", reason), (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError))


@dataclass
class PullLoop:
    """Pulls round-robin through the nodes, as a client behind a load balancer that health-checks /v2/ would: a node
    that does not accept the connection is left out (the pull goes to the next node, counted as ``rerouted``) until
    it answers /v2/ again. A pull fails when a node that answered gives a wrong answer, when a node drops a pull it
    began to serve (counted as ``dropped`` too: never a reroute), or when no node answers. Each pull opens its own
    connections, and is recorded in ``pulls`` as (start, end, node that served it or "", outcome), seconds since start."""

    nodes: list[str]
    port: int
    repository: str
    digest: str
    max_pulls: int = 300
    max_seconds: float = 120
    pause: float = 0.25
    total: int = 0
    failed: int = 0
    rerouted: int = 0
    dropped: int = 0
    pulls: list[tuple[float, float, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    affected_at: list[float] = field(default_factory=list)
    started: float = 0.0
    started_wall: float = 0.0  # time.time() at ``started``: pulls[i][0] + started_wall is a pull's wall-clock start
    ended_by: str = ""
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        session = requests.Session()
        bases = {node: "http://%s:%d" % (address(node), self.port) for node in self.nodes}
        down: dict[str, float] = {}
        self.started = time.monotonic()
        self.started_wall = time.time()
        turn = 0
        while self.total < self.max_pulls and time.monotonic() - self.started < self.max_seconds and not self.stop.is_set():
            for node, since in list(down.items()):
                if time.monotonic() - since > 2:
                    try:
                        if session.get(bases[node] + "/v2/", timeout=(0.5, 2)).status_code in (200, 401):
                            del down[node]
                        else:
                            down[node] = time.monotonic()
                    except requests.RequestException:
                        down[node] = time.monotonic()
            order = [n for n in self.nodes[turn % len(self.nodes) :] + self.nodes[: turn % len(self.nodes)] if n not in down]
            turn += 1
            self.total += 1
            done = False
            began = time.monotonic() - self.started
            served = ""
            for attempt, node in enumerate(order):
                pull_session = requests.Session()
                try:
                    http_pull(pull_session, bases[node], self.repository, self.digest)
                    done = True
                    served = node
                    if attempt:
                        self.rerouted += 1
                        self.affected_at.append(time.monotonic() - self.started)
                    break
                except (requests.ConnectionError, requests.Timeout) as exc:
                    down[node] = time.monotonic()
                    if not refused(exc):
                        self.dropped += 1
                        self.errors.append("%s dropped the pull: %s" % (node, exc))
                        break
                except (AssertionError, requests.RequestException, ValueError, KeyError) as exc:
                    if isinstance(exc, requests.exceptions.ChunkedEncodingError):  # the body cut short
                        self.dropped += 1
                    self.errors.append("%s: %s" % (node, exc))
                    break
                finally:
                    pull_session.close()
            self.pulls.append((began, time.monotonic() - self.started, served, "ok" if done else "failed"))
            if not done:
                self.failed += 1
                self.affected_at.append(time.monotonic() - self.started)
                if len(self.errors) < 20 and not order:
                    self.errors.append("no node answered")
            time.sleep(self.pause)
        self.ended_by = "stop" if self.stop.is_set() else ("count" if self.total >= self.max_pulls else "time")

    def figures(self) -> dict:
        seconds = round(time.monotonic() - self.started, 1)
        return {"total": self.total, "failed": self.failed, "rerouted": self.rerouted, "dropped": self.dropped, "seconds": seconds,
                "ended_by": self.ended_by}  # fmt: skip
