"""The ha scenario: a registry Swarm service on three hosts over SSH.

The per-node tests run through testinfra on every node; the others drive the cluster from this machine and print
the figures of the run (pull loop totals, node-loss timings) on lines starting with ``FIGURES``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import requests
from hafrontend import finish, holders, process_ids, start_client_loops, task_window, wait_marked
from hatest import PullLoop, address, build_and_push, on, pull_by_digest

from support.runner import recaps, run_playbook

ROOT = Path(__file__).resolve().parents[3]
SCENARIO = ROOT / "molecule" / "ha"
NODES = ["n1", "n2", "n3"]
STATE: dict = {}


# -- every node (testinfra over SSH) ---------------------------------------------------------------------------------
def test_node_is_an_active_swarm_manager(host):
    info = json.loads(host.check_output("docker info --format '{{json .Swarm}}'"))
    assert info["LocalNodeState"] == "active"
    assert info["ControlAvailable"] is True


def test_node_runs_one_registry_task_on_its_port(host, mol_vars):
    names = host.check_output("docker ps --filter label=com.docker.swarm.service.name=%s --format '{{.Names}}'" % mol_vars["registry_service_name"])
    assert len(names.split()) == 1, names
    assert host.socket("tcp://0.0.0.0:%d" % mol_vars["registry_port"]).is_listening


def test_node_sees_the_shared_storage(host, mol_vars):
    assert host.file(mol_vars["registry_data_path"]).is_directory


def test_http_secret_is_a_swarm_secret_never_in_the_spec(host, mol_vars):
    spec = json.loads(host.check_output("docker service inspect %s" % mol_vars["registry_service_name"]))[0]["Spec"]
    container = spec["TaskTemplate"]["ContainerSpec"]
    assert not [e for e in container.get("Env", []) if e.startswith("REGISTRY_HTTP_SECRET")]
    assert [s["SecretName"] for s in container["Secrets"]] and all(
        s["SecretName"].startswith(mol_vars["registry_service_name"] + "-config-") for s in container["Secrets"]
    )
    assert spec["UpdateConfig"]["FailureAction"] == "rollback"
    assert spec["UpdateConfig"]["Parallelism"] == 1
    assert spec["EndpointSpec"]["Ports"][0]["PublishMode"] == "host"
    secret_file = host.file(mol_vars["registry_http_secret_path"])
    if host.backend.get_hostname() == "n1":
        assert secret_file.mode == 0o600
    else:
        assert not secret_file.exists


# -- the cluster, from this machine ------------------------------------------------------------------------------------
def test_push_through_n1_pull_by_digest_through_n2_and_n3(mol_vars):
    port = mol_vars["registry_port"]
    images = {}
    for tag, content in (("1.0", "alpha 1.0"), ("1.1", "alpha 1.1")):
        images[tag] = build_and_push("n1", port, "ha/alpha", tag, content)
    for digest, image_id in images.values():
        for node in ("n2", "n3"):
            assert pull_by_digest(node, port, "ha/alpha", digest) == image_id
    STATE["digest"] = images["1.0"][0]


def test_blob_upload_started_on_one_node_finishes_on_another(mol_vars):
    """The replicas share http.secret: the upload state n1 signed is accepted by n2 (PATCH) and n3 (PUT)."""
    port = mol_vars["registry_port"]
    data = os.urandom(4096)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    bases = {node: "http://%s:%d" % (address(node), port) for node in NODES}
    started = requests.post(bases["n1"] + "/v2/ha/upload/blobs/uploads/", timeout=10)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    path = location[location.index("/v2/") :] if "://" in location else location
    patched = requests.patch(bases["n2"] + path, data=data, headers={"Content-Type": "application/octet-stream"}, timeout=10)
    assert patched.status_code == 202, patched.text
    location = patched.headers["Location"]
    path = location[location.index("/v2/") :] if "://" in location else location
    finished = requests.put(bases["n3"] + path + ("&" if "?" in path else "?") + "digest=" + digest, timeout=10)
    assert finished.status_code == 201, finished.text
    for node in NODES:
        assert requests.head("%s/v2/ha/upload/blobs/%s" % (bases[node], digest), timeout=10).status_code == 200


def _converge(extra: dict) -> subprocess.CompletedProcess:
    return run_playbook(SCENARIO / "converge.yml", extra, inventory=SCENARIO / "inventory" / "hosts.yml",
                        args=("-i", "/tmp/dh-ha/fleet/inventory.yml", "-i", "/tmp/dh-ha/fleet/frontend.yml"))


def _changed(output: str) -> int:
    return sum(counters["changed"] for counters in recaps(output).values())


def test_rolling_update_under_a_pull_loop_has_no_failed_pull(mol_vars):
    """Change an env value: the swarm replaces the tasks one at a time while a bounded pull loop runs. A frontend
    setting changes too (HAProxy and keepalived reload), while the client pulls and pushes through the virtual IP."""
    env = dict(mol_vars["registry_env"], REGISTRY_LOG_LEVEL="debug")
    loop = PullLoop(NODES, mol_vars["registry_port"], "ha/alpha", STATE["digest"], max_pulls=600, max_seconds=240)
    puller = threading.Thread(target=loop.run)
    frontend_before = (holders(), {node: process_ids(node) for node in NODES})
    phase = start_client_loops("rolling update", mol_vars)
    puller.start()
    time.sleep(2)
    started = time.monotonic()
    since = time.time()
    converge = _converge({"registry_env": env, "frontend_check_fall": 3})
    update_seconds = time.monotonic() - started
    time.sleep(2)
    loop.stop.set()
    puller.join(timeout=30)
    phase.window = task_window("n1", mol_vars["registry_service_name"], since)
    finish(phase)
    print("FIGURES rolling update: %s, converge %.0f s" % (loop.figures(), update_seconds))
    assert converge.returncode == 0, converge.stdout[-3000:]
    phase.check()
    # Reloaded, not restarted (same main processes), and the address stayed where it was.
    assert (holders(), {node: process_ids(node) for node in NODES}) == frontend_before
    # The loop covered the whole update (it was stopped after the converge, not by its bounds).
    assert loop.ended_by == "stop", loop.figures()
    assert loop.failed == 0, loop.errors[:5]
    assert loop.total > 0
    spec = json.loads(on("n1", "docker service inspect %s" % mol_vars["registry_service_name"]))[0]["Spec"]
    assert "REGISTRY_LOG_LEVEL=debug" in spec["TaskTemplate"]["ContainerSpec"]["Env"]
    again = _converge({"registry_env": env, "frontend_check_fall": 3})
    assert again.returncode == 0, again.stdout[-3000:]
    assert _changed(again.stdout) == 0, again.stdout[-3000:]


def test_node_failure_other_nodes_serve_and_the_node_catches_up(mol_vars):
    port = mol_vars["registry_port"]
    container = json.loads(Path("/tmp/dh-ha/fleet/fleet.json").read_text())["hosts"]["n3"]["container"]
    loop = PullLoop(NODES, port, "ha/alpha", STATE["digest"], max_pulls=300, max_seconds=20)
    puller = threading.Thread(target=loop.run)
    (holder,) = holders()
    assert holder != "n3", "n3 holds the virtual IP: this phase is about another node"
    phase = start_client_loops("another node stopped", mol_vars)
    puller.start()
    time.sleep(2)
    stopped_at = time.monotonic() - loop.started
    stop_epoch = time.time()
    subprocess.run(["docker", "stop", "-t", "20", container], check=True, capture_output=True, timeout=60)
    down_at = time.monotonic() - loop.started  # n3 is down from here to the end of the loop (started again below)
    phase.window = (stop_epoch, wait_marked(holder, "n3", "DOWN"))
    puller.join(timeout=60)
    finish(phase)
    affected = [t - stopped_at for t in loop.affected_at if t >= stopped_at]
    print("FIGURES node loss: %s, last affected pull %.1f s after the stop" % (loop.figures(), max(affected) if affected else 0.0))
    assert loop.failed == 0, loop.errors[:5]
    # Pulls went on while n3 was down, served by the other nodes (and none by n3).
    while_down = [p for p in loop.pulls if p[0] >= down_at]
    assert while_down and all(p[3] == "ok" and p[2] in ("n1", "n2") for p in while_down), (down_at, loop.pulls[-5:])
    try:
        # A new push through a surviving node, pulled through the other survivor.
        digest, image_id = build_and_push("n1", port, "ha/alpha", "2.0", "alpha 2.0")
        assert pull_by_digest("n2", port, "ha/alpha", digest) == image_id
    finally:
        subprocess.run(["docker", "start", container], check=True, capture_output=True, timeout=60)
    # Back: its engine rejoins, the swarm places the missing task on it again, and it serves the new image.
    deadline = time.monotonic() + 180
    back = None
    while time.monotonic() < deadline:
        try:
            if requests.get("http://%s:%d/v2/" % (address("n3"), port), timeout=2).status_code == 200:
                back = time.monotonic()
                break
        except requests.RequestException:
            pass
        time.sleep(1)
    assert back is not None, "n3 does not answer /v2/ 180 s after its start"
    print("FIGURES node back: answered /v2/ %.0f s after docker start" % (back - deadline + 180))
    assert pull_by_digest("n3", port, "ha/alpha", digest) == image_id
    phase.check()
