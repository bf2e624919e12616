"""registry_gc on a registry Swarm service: three Debian hosts over SSH (tests/support/fleet.py), shared storage.

site.yml forms the swarm and runs the registry service (registry_mode: service, one task per node, host-mode port,
stop-first updates) on a directory every node mounts at the same path (NFS or CephFS in production). Images are
pushed through n1, two tags deleted (manifest DELETE), then:

- check mode: the would-be removals, the service spec and the storage untouched;
- registry_gc on n1: changed, blobs and bytes reclaimed; every replica read-only during the collection, proven from
  the engines' own records (each task container's start/finish time on each node, against the moment the blobs left
  the shared storage, seen from this machine); pushes (blob upload POST) through the nodes during the window get
  the registry's read-only answer; a pull loop through the nodes runs throughout and no pull fails: the switches
  are the service's own rolling update (one task at a time, stop-first with host-mode ports), so one node at most
  is down at any moment and the loop (a client that tries the next node, as a health-checking load balancer does)
  reroutes (only a refused connection is rerouted: a pull a node dropped after it began is a failure); every
  pull downloads the blobs; each node's two switches (from the engines' records) were overlapped by a pull;
  reroutes and each node's outage spans are printed; site.yml's -vvv output holds neither join token nor the
  registry's HTTP secret, in any encoding;
- in the same GC (delete_untagged): a multi-platform image (an OCI index whose platform images have no tag) kept by
  registry_prune while an older one goes: the older index's platform images go, the kept one reads whole, byte for
  byte, through every node (skopeo and sha256 of the raw bytes).
- afterwards read-write on every node, the service spec (its UpdateConfig too) exactly as registry_service made it (site.yml with
  registry_gc_on_run: changed=0 on every host);
- a run killed in the window (SIGKILL of the module process on n1) leaves the service read-only; the next
  registry_gc run repairs it first (and collects).
- registry_gc_schedule: the systemd timer on the manager only; its service runs the same GC on the node's Python.

Slow (three nodes boot, the registry image is built on each): run with DH_FLEET_TESTS=1. The registry listens on
port 5000 in the nodes' own network namespaces (no port of this machine).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests

from ansible_collections.dockhand.registry.tests.support import registry_api as api
from support import fleet
from support.isolation import DATA_ROOT, PREFIX
from support.runner import ROOT, VENV_BIN, ansible_env, recaps, run_module, run_playbook
from support.secrets import find

pytestmark = pytest.mark.skipif(os.environ.get("DH_FLEET_TESTS") != "1", reason="needs DH_FLEET_TESTS=1 (boots three fleet nodes)")

sys.path.insert(0, str(ROOT / "molecule" / "ha" / "tests"))
import hatest  # noqa: E402  (the ha scenario's SSH, push and pull-loop helpers)

NODES = ["n1", "n2", "n3"]
PORT = 5000
SERVICE = "gcsvc-registry"
REPO = "gc/app"
FLEET_PREFIX = PREFIX + "svc-"
FLEET_DIR = DATA_ROOT / "svc-fleet"
SHARED = DATA_ROOT / "svc-shared"
DATA = SHARED / "data"
BLOBS = DATA / "docker" / "registry" / "v2" / "blobs"
RO_ENV = "REGISTRY_STORAGE_MAINTENANCE_READONLY"
RESULT = DATA_ROOT / "svc-gc-result.json"


def inventory_vars() -> dict:
    return {
        "dockhand_hosts": "registry_hosts",
        "registry_mode": "service",
        "registry_service_name": SERVICE,
        "registry_image": "gcsvc-registry:2",
        "registry_image_pull": False,
        "registry_image_build_dir": "/var/lib/gcsvc/registry-image",
        "registry_port": PORT,
        "registry_address": "localhost:%d" % PORT,
        "registry_data_path": str(DATA),
        "registry_http_secret_path": "/etc/gcsvc/http-secret",
        "registry_delete_enabled": True,
        "registry_env": {"REGISTRY_LOG_LEVEL": "info"},
        "publish_registry": "localhost:%d" % PORT,
        "publish_images": [],
        "publish_builds": [],
    }


@pytest.fixture(scope="module")
def cluster():
    SHARED.mkdir(parents=True, exist_ok=True)
    hosts = {"all": {"children": {"registry_hosts": {"hosts": {n: {} for n in NODES}}}, "vars": inventory_vars()}}
    (DATA_ROOT / "svc-hosts.yml").write_text(json.dumps(hosts))
    previous = hatest.FLEET_DIR
    hatest.FLEET_DIR = FLEET_DIR
    try:
        fleet.up(FLEET_PREFIX, FLEET_DIR, [("n1", "bookworm", True), ("n2", "bookworm", True), ("n3", "trixie", True)], shared=[str(SHARED)])
        done = site({}, verbose=True)
        assert done.returncode == 0, done.stdout[-3000:]
        # The swarm's join tokens and the registry's HTTP secret never show in the -vvv output, in any form.
        secrets = {"worker join token": hatest.on("n1", "docker swarm join-token -q worker").strip(),
                   "manager join token": hatest.on("n1", "docker swarm join-token -q manager").strip(),
                   "registry http secret": hatest.on("n1", "cat /etc/gcsvc/http-secret").strip()}  # fmt: skip
        assert all(secrets.values()) and find(secrets, done.stdout + done.stderr) == []
        yield
    finally:
        hatest.FLEET_DIR = previous
        fleet.down(FLEET_PREFIX, FLEET_DIR)
        subprocess.run(["rm", "-rf", str(SHARED)], check=False)


def site(extra: dict, timeout: int = 900, verbose: bool = False) -> subprocess.CompletedProcess:
    args = ("-i", str(FLEET_DIR / "inventory.yml")) + (("-vvv",) if verbose else ())
    return run_playbook(ROOT / "site.yml", extra, inventory=DATA_ROOT / "svc-hosts.yml", args=args, timeout=timeout)


def gc_playbook() -> Path:
    play = {
        "name": "registry_gc on the service",
        "hosts": "n1",
        "gather_facts": False,
        "tasks": [
            {"name": "GC", "dockhand.registry.registry_gc": {"service": SERVICE, "delete_untagged": True, "wait_timeout": 120}, "register": "gc"},
            {"name": "Keep the result", "ansible.builtin.copy": {"content": "{{ gc | to_json }}", "dest": str(RESULT), "mode": "0600"},
             "delegate_to": "localhost", "check_mode": False},
        ],
    }
    path = DATA_ROOT / "svc-gc.yml"
    path.write_text(json.dumps([play]))
    return path


def run_gc(check: bool = False) -> dict:
    args = ("-i", str(FLEET_DIR / "inventory.yml"), "--diff") + (("--check",) if check else ())
    RESULT.unlink(missing_ok=True)
    done = run_playbook(gc_playbook(), {}, inventory=DATA_ROOT / "svc-hosts.yml", args=args)
    assert done.returncode == 0, done.stdout[-3000:]
    return json.loads(RESULT.read_text())


def service_spec() -> dict:
    return json.loads(hatest.on("n1", "docker service inspect %s" % SERVICE))[0]


def blob_files() -> int:
    return sum(1 for _dir, _dirs, files in os.walk(BLOBS) for name in files if name == "data")


def push_and_delete(tags: list[str], delete: list[str], salt: str) -> str:
    """Push one image per tag through n1; delete ``delete`` by digest; return the digest of the last tag."""
    digests = {tag: hatest.build_and_push("n1", PORT, REPO, tag, "%s %s" % (salt, tag))[0] for tag in tags}
    base = "http://%s:%d" % (hatest.address("n1"), PORT)
    for tag in delete:
        answer = requests.delete("%s/v2/%s/manifests/%s" % (base, REPO, digests[tag]), timeout=10)
        assert answer.status_code == 202, answer.text
    return digests[tags[-1]]


def upload_status(node: str) -> tuple[int, str]:
    try:
        answer = requests.post("http://%s:%d/v2/%s/blobs/uploads/" % (hatest.address(node), PORT, REPO), timeout=(1, 5))
        return answer.status_code, answer.text.strip()[:200]
    except requests.RequestException as exc:
        return 0, type(exc).__name__


def when(stamp: str) -> float:
    """Docker's RFC 3339 nanosecond time stamp → Unix time."""
    head, _dot, rest = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "." + (rest + "000000")[:6] + "+00:00").timestamp()


def task_containers() -> list[dict]:
    """Every container (running or stopped) of the service on every node: read-only?, started, finished."""
    rows = []
    for node in NODES:
        ids = hatest.on(node, "docker ps -aq --filter label=com.docker.swarm.service.name=%s" % SERVICE).split()
        for item in json.loads(hatest.on(node, "docker inspect %s" % " ".join(ids))) if ids else []:
            finished = item["State"]["FinishedAt"]
            rows.append({
                "node": node,
                "read_only": any(e.startswith(RO_ENV + "=") for e in item["Config"]["Env"] or []),
                "started": when(item["State"]["StartedAt"]),
                "finished": None if item["State"]["Running"] or finished.startswith("0001") else when(finished),
            })  # fmt: skip
    return rows


def outages(moments: list[float]) -> str:
    """Failed pulls grouped into spans (a new span after 1 s without one): "3.1-4.9 s, 8.0-9.7 s" of the loop."""
    spans: list[list[float]] = []
    for moment in sorted(moments):
        if spans and moment - spans[-1][1] <= 1:
            spans[-1][1] = moment
        else:
            spans.append([moment, moment])
    return ", ".join("%.1f-%.1f s" % (a, b) for a, b in spans) or "never"


def raw(node: str, reference: str) -> bytes:
    done = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "docker://%s:%d/%s" % (hatest.address(node), PORT, reference)],
                          capture_output=True, check=False, timeout=60)  # fmt: skip
    assert done.returncode == 0, (node, reference, done.stderr.decode()[-500:])
    return done.stdout


def prune_multi_platform(salt: str) -> tuple[str, list[str]]:
    """Two multi-platform images of gc/multi through n1 (OCI indexes whose platform images have no tag), registry_prune
    keeping the newest; the kept index's digest and the platform manifests of the other one (left without a tag)."""
    through_n1 = "%s:%d" % (hatest.address("n1"), PORT)
    old = api.push_index(through_n1, "gc/multi", "1.0", salt + " old")
    kept = api.push_index(through_n1, "gc/multi", "2.0", salt + " new")
    old_children = [c["digest"] for c in json.loads(raw("n1", "gc/multi@" + old))["manifests"]]
    pruned = run_module("registry_prune", {"registry": through_n1, "registry_scheme": "http", "rules": [{"repository": "gc/multi", "keep_last": 1}]})
    assert pruned["changed"] and [d["tags"] for d in pruned["deleted"]] == [["1.0"]], pruned
    return kept, old_children


def read_whole_through_every_node(digest: str) -> None:
    """gc/multi:2.0 through each node: the index and each platform manifest byte for byte (sha256 of the raw bytes),
    and ``skopeo copy --all`` of everything through n3."""
    for node in NODES:
        index = raw(node, "gc/multi:2.0")
        assert "sha256:" + hashlib.sha256(index).hexdigest() == digest, node
        for child in json.loads(index)["manifests"]:
            assert "sha256:" + hashlib.sha256(raw(node, "gc/multi@" + child["digest"])).hexdigest() == child["digest"], (node, child)
    copy = DATA_ROOT / "svc-multi-copy"
    subprocess.run(["rm", "-rf", str(copy)], check=False)
    copied = subprocess.run(["skopeo", "copy", "--all", "--quiet", "--src-tls-verify=false", "docker://%s:%d/gc/multi:2.0" % (hatest.address("n3"), PORT),
                             "dir:%s" % copy], capture_output=True, check=False, timeout=120)  # fmt: skip
    subprocess.run(["rm", "-rf", str(copy)], check=False)
    assert copied.returncode == 0, copied.stderr.decode()[-500:]


class Watch:
    """From this machine, while a GC runs: the moment blobs leave the shared storage, and blob upload answers
    through every node (bounded: 300 s)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.dropped_at: float | None = None
        self.uploads: list[tuple[float, str, int, str]] = []
        self.start_blobs = blob_files()
        self.threads = [threading.Thread(target=self._storage), threading.Thread(target=self._uploads)]

    def _storage(self) -> None:
        deadline = time.monotonic() + 300
        while not self.stop.is_set() and time.monotonic() < deadline and self.dropped_at is None:
            if blob_files() < self.start_blobs:
                self.dropped_at = time.time()
            time.sleep(0.02)

    def _uploads(self) -> None:
        deadline = time.monotonic() + 300
        while not self.stop.is_set() and time.monotonic() < deadline:
            for node in NODES:
                self.uploads.append((time.time(), node, *upload_status(node)))
            time.sleep(0.1)

    def __enter__(self) -> Watch:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def test_gc_of_a_service_every_replica_read_only_together(cluster):
    digest = push_and_delete(["1", "2", "3", "4"], ["1", "2"], salt=os.urandom(8).hex())
    # And a multi-platform image kept by the prune, another one deleted: its platform images are left without a tag.
    kept_index, old_children = prune_multi_platform(os.urandom(8).hex())
    before_spec = service_spec()
    blobs = blob_files()

    # Check mode: a dry run in n1's task; nothing switched, nothing removed.
    check = run_gc(check=True)
    assert check["changed"] and check["blobs_removed"] >= 4 and check["bytes_removed"] > 0, check
    assert service_spec()["Version"] == before_spec["Version"] and blob_files() == blobs

    loop = hatest.PullLoop(NODES, PORT, REPO, digest, max_pulls=2000, max_seconds=240, pause=0.1)
    puller = threading.Thread(target=loop.run)
    puller.start()
    time.sleep(1)
    with Watch() as watch:
        started = time.time()
        result = run_gc()
        ended = time.time()
        time.sleep(1)
    loop.stop.set()
    puller.join(timeout=60)

    print("FIGURES service GC: blobs %s, bytes %s, read-only %.2f s (GC %.2f s), module %.1f s; pull loop %s, pulls rerouted or failed at %s"
          % (result["blobs_removed"], result["bytes_removed"], result["read_only_seconds"], result["gc_seconds"], ended - started, loop.figures(),
             outages(loop.affected_at)))  # fmt: skip
    assert result["changed"] and result["blobs_removed"] == check["blobs_removed"] and result["bytes_removed"] > 0, result
    assert result["after"]["blobs"] == blobs - result["blobs_removed"] == blob_files()
    assert result["actions"][0] == "switch the registry service %s to read-only" % SERVICE
    # delete_untagged on the service: the deleted index's platform images went (computed from the shared storage as
    # n1 mounts it), the kept index reads whole through every node.
    assert sorted(result["manifests"]) == sorted("gc/multi@" + d for d in old_children) == sorted(check["manifests"]), result
    read_whole_through_every_node(kept_index)

    # Every replica read-only during the collection. The collection ran inside [dropped_at - gc_seconds - margin,
    # dropped_at] (gc_seconds counts from the end of the switch to the end of the exec; the blobs go near its end):
    # no read-write container ran at any moment of that span, and a read-only one ran on every node when the blobs
    # went (each had started before the switch ended, or the module would not have started the collection).
    assert watch.dropped_at is not None
    gc_from, gc_to = watch.dropped_at - result["gc_seconds"] - 0.5, watch.dropped_at
    rows = task_containers()
    shown = [dict(r, started=round(r["started"] - gc_to, 2), finished=r["finished"] and round(r["finished"] - gc_to, 2)) for r in rows]
    deleting = gc_to - 0.05
    live = [r for r in rows if r["started"] <= deleting and (r["finished"] is None or r["finished"] >= gc_to)]
    overlapping_rw = [r for r in rows if not r["read_only"] and r["started"] < gc_to and (r["finished"] is None or r["finished"] > gc_from)]
    assert sorted(r["node"] for r in live if r["read_only"]) == NODES, (result["gc_seconds"], shown)
    assert overlapping_rw == [], (result["gc_seconds"], shown)

    # Pushes during the window: the registry's read-only answer on every node; none accepted in it.
    window = [u for u in watch.uploads if started <= u[0] <= ended]
    refused = [u for u in window if u[2] == 405]
    # Each node's outages from the upload probes (every 0.1 s per node): a span per task replacement, never two
    # nodes at once.
    per_node = {node: outages([u[0] - started for u in watch.uploads if u[1] == node and u[2] == 0]) for node in NODES}
    print("FIGURES node outages (s after the module started): %s" % per_node)
    print("FIGURES uploads in the window: %d tried, %d refused read-only, %d not answered (%s after the module started); e.g. %s"
          % (len(window), len(refused), len([u for u in window if u[2] == 0]), outages([u[0] - started for u in window if u[2] == 0]),
             refused[0][3] if refused else "-"))  # fmt: skip
    assert sorted({u[1] for u in refused}) == NODES
    accepted = [u for u in window if u[2] == 202 and gc_from <= u[0] <= gc_to]
    assert accepted == []

    # Pulls: a wrong answer is never acceptable, and no pull fails (rerouted ones, to the next node, are allowed).
    assert not [e for e in loop.errors if e != "no node answered"], loop.errors[:5]
    assert loop.failed == 0, (loop.figures(), outages(loop.affected_at), per_node)
    assert loop.ended_by == "stop" and loop.total > 0
    # Each switch of each node (a task container finished, the next one started: the engines' own records) in the
    # GC's span was overlapped by a pull, and both switches went through every node.
    switches = []
    for node in NODES:
        mine = sorted((r for r in rows if r["node"] == node), key=lambda r: r["started"])
        switches += [(node, old["finished"], new["started"]) for old, new in itertools.pairwise(mine)
                     if old["finished"] is not None and started - 1 <= old["finished"] and new["started"] <= ended + 1]  # fmt: skip
    pulls = [(loop.started_wall + a, loop.started_wall + b) for a, b, _node, outcome in loop.pulls if outcome == "ok"]
    uncovered = [s for s in switches if not any(a <= s[2] and b >= s[1] for a, b in pulls)]
    print("FIGURES switches (node, down, up s after the module started): %s"
          % [(n, round(d - started, 2), round(u - started, 2)) for n, d, u in switches])  # fmt: skip
    assert sorted(n for n, _d, _u in switches) == sorted(NODES * 2), switches
    assert uncovered == [], uncovered

    # Afterwards: read-write on every node, the service spec as registry_service made it (changed=0 from site.yml).
    statuses = {node: upload_status(node) for node in NODES}
    assert all(status[0] == 202 for status in statuses.values()), (statuses, hatest.on("n1", "docker service ps --no-trunc %s" % SERVICE))
    after_spec = service_spec()["Spec"]
    assert after_spec["UpdateConfig"] == before_spec["Spec"]["UpdateConfig"] and after_spec["Labels"] == before_spec["Spec"]["Labels"]
    assert after_spec["TaskTemplate"]["ContainerSpec"]["Env"] == before_spec["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
    again = site({"registry_gc_on_run": True})
    assert again.returncode == 0, again.stdout[-3000:]
    assert sum(c["changed"] for c in recaps(again.stdout).values()) == 0, again.stdout[-3000:]
    assert not run_gc()["changed"]


def test_a_run_killed_in_the_window_is_repaired_by_the_next_run(cluster):
    push_and_delete(["5", "6"], ["5"], salt=os.urandom(8).hex())
    blobs = blob_files()
    log = DATA_ROOT / "svc-killed.log"
    command = [str(VENV_BIN / "ansible-playbook"), "-i", str(DATA_ROOT / "svc-hosts.yml"), "-i", str(FLEET_DIR / "inventory.yml"), str(gc_playbook())]
    # Without pipelining the module runs on n1 as a file (AnsiballZ_registry_gc.py) that can be found and killed
    # there: killing ansible-playbook here alone would leave the module running to its end on n1.
    with log.open("w") as out:
        run = subprocess.Popen(
            command, cwd=ROOT, env=ansible_env(ANSIBLE_PIPELINING="0"), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and run.poll() is None:
            env = service_spec()["Spec"]["TaskTemplate"]["ContainerSpec"].get("Env") or []
            if any(e.startswith(RO_ENV + "=") for e in env):
                break
            time.sleep(0.2)
        assert run.poll() is None, log.read_text()[-2000:]
        killed = hatest.on("n1", "for p in $(pgrep -f [A]nsiballZ_registry_gc); do kill -9 $p && echo $p; done")
        os.killpg(run.pid, signal.SIGKILL)
        assert killed.split(), "no module process found on n1"
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
    left = service_spec()["Spec"]
    assert any(e.startswith(RO_ENV + "=") for e in left["TaskTemplate"]["ContainerSpec"]["Env"]), left
    assert left["UpdateConfig"]["Parallelism"] == 1  # the service's own rolling update, untouched

    # registry_gc repairs first (a role run would too: registry_service puts its own spec back).
    repaired = run_gc()
    print("FIGURES repair run: %s" % {k: repaired[k] for k in ("actions", "blobs_removed", "bytes_removed", "read_only_seconds")})
    assert repaired["changed"] and "left read-only by an interrupted run" in repaired["actions"][0], repaired
    spec = service_spec()["Spec"]
    assert not any(e.startswith(RO_ENV + "=") for e in spec["TaskTemplate"]["ContainerSpec"]["Env"]), spec
    assert spec["UpdateConfig"]["Parallelism"] == 1
    assert blob_files() < blobs
    statuses = {node: upload_status(node) for node in NODES}
    assert all(status[0] == 202 for status in statuses.values()), (statuses, hatest.on("n1", "docker service ps --no-trunc %s" % SERVICE))
    again = site({"registry_gc_on_run": True})
    assert sum(c["changed"] for c in recaps(again.stdout).values()) == 0, again.stdout[-3000:]


def test_scheduled_gc_of_the_service_runs_on_the_manager(cluster):
    """registry_gc_schedule in service mode: the timer on the manager (n1) only, running the same rolling GC on the
    node's system Python (Debian's python3-docker, no Ansible)."""
    push_and_delete(["7", "8"], ["7"], salt=os.urandom(8).hex())
    blobs = blob_files()
    done = site({"registry_gc_schedule": True})
    assert done.returncode == 0, done.stdout[-3000:]
    unit = "dockhand-registry-gc-%s" % SERVICE
    assert unit + ".timer" in hatest.on("n1", "systemctl list-timers --all")
    assert all(unit not in hatest.on(node, "systemctl list-timers --all") for node in ("n2", "n3"))
    hatest.on("n1", "systemctl start %s.service" % unit, timeout=300)
    journal = hatest.on("n1", "journalctl -u %s.service --no-pager -o cat" % unit)
    result = json.loads([line for line in journal.splitlines() if line.startswith("{")][-1])
    print("FIGURES scheduled service GC: %s" % {k: result.get(k) for k in ("blobs_removed", "bytes_removed", "read_only_seconds", "msg")})
    assert result["changed"] and result["blobs_removed"] >= 3 and blob_files() < blobs, result
    spec = service_spec()["Spec"]
    assert not any(e.startswith(RO_ENV + "=") for e in spec["TaskTemplate"]["ContainerSpec"]["Env"]) and spec["UpdateConfig"]["Parallelism"] == 1
    again = site({"registry_gc_schedule": True})
    assert again.returncode == 0 and sum(c["changed"] for c in recaps(again.stdout).values()) == 0, again.stdout[-3000:]
