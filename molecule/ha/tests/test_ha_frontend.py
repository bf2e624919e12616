"""The ha scenario's frontend: HAProxy + keepalived on the three registry nodes, one virtual IP, a client (c1).

Runs after test_ha.py (the rolling update and the loss of another node are measured there, with the same client
loops). Here: each node's frontend, input refused before anything changes, check mode, a garbage collection in
service mode, and last the loss of the node that holds the address; each disruption under the client's plain
``docker pull`` and ``docker push`` loops through the address. Prints ``FIGURES`` lines.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import hafrontend as fe
import requests
from hatest import address, on

from support.runner import VENV_BIN, ansible_env, failure_messages, recaps, run_playbook

ROOT = Path(__file__).resolve().parents[3]
SCENARIO = ROOT / "molecule" / "ha"
INVENTORIES = ("-i", "/tmp/dh-ha/fleet/inventory.yml", "-i", "/tmp/dh-ha/fleet/frontend.yml")
GC_RESULT = Path("/tmp/dh-ha/gc-result.json")
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def _playbook(playbook: Path, extra: dict, *args: str) -> subprocess.CompletedProcess:
    return run_playbook(playbook, extra, inventory=SCENARIO / "inventory" / "hosts.yml", args=(*INVENTORIES, *args))


def _write_playbook(name: str, plays: list[dict]) -> Path:
    path = Path("/tmp/dh-ha") / name
    path.write_text(json.dumps(plays))
    return path


# -- every node (testinfra over SSH) ---------------------------------------------------------------------------------
def test_node_runs_haproxy_and_keepalived_and_sees_every_registry_node(host, mol_vars):
    for unit in ("haproxy", "keepalived", "dockhand-registry-drain"):
        service = host.service(unit)
        assert service.is_running and service.is_enabled, unit
    assert host.socket("tcp://0.0.0.0:%d" % mol_vars["frontend_port"]).is_listening
    # The exporter and the statistics listen on loopback only.
    assert host.socket("tcp://127.0.0.1:8404").is_listening
    assert not host.socket("tcp://0.0.0.0:8404").is_listening
    metrics = host.check_output("curl -fsS http://127.0.0.1:8404/metrics")
    up = [line for line in metrics.splitlines() if line.startswith('haproxy_server_status{proxy="registry"') and 'state="UP"' in line]
    assert sorted(line.split('server="')[1].split('"')[0] for line in up if line.endswith(" 1")) == ["n1", "n2", "n3"], up
    config = host.file("/etc/haproxy/haproxy.cfg").content_string
    assert "on-marked-down shutdown-sessions" in config and "option redispatch 1" in config


# -- the cluster, from this machine ------------------------------------------------------------------------------------
def test_one_node_holds_the_address_and_clients_use_it(mol_vars):
    assert len(fe.holders()) == 1, fe.holders()
    daemon = json.loads(on(fe.CLIENT, "cat /etc/docker/daemon.json"))
    assert fe.address(mol_vars) in daemon["insecure-registries"]
    answer = requests.get("http://%s/v2/" % fe.address(mol_vars), timeout=10)
    assert answer.status_code == 200
    # Each node's Debian packages, for the record (Debian 12 and 13 differ).
    for node in fe.NODES:
        versions = on(node, "dpkg-query -W -f '${Package} ${Version}\\n' haproxy keepalived").split("\n")
        print("FIGURES frontend packages on %s (%s): %s" % (node, fe.fleet()["hosts"][node]["dist"], ", ".join(v for v in versions if v)))


def test_bad_input_is_refused_in_one_line_before_anything_changes(mol_vars):
    """Four bad inputs, run side by side: each fails in the first play, in one line, with nothing changed."""
    one_frontend = Path("/tmp/dh-ha/one-frontend.yml")
    one_frontend.write_text(json.dumps({"all": {"children": {"frontend_hosts": {"hosts": {"n1": {}}}}}}))
    cases = {
        "outside the subnet": ({"frontend_vip": "192.0.2.10"}, (), "frontend_vip 192.0.2.10 is outside the subnets of n1"),
        "already answering": ({"frontend_vip": address(fe.CLIENT)}, (), "frontend_vip %s already answers" % address(fe.CLIENT)),
        "one frontend host": ({}, ("-i", str(one_frontend)), "needs at least two frontend hosts (VRRP peers), got 1: n1"),
        "port clash": ({"frontend_port": mol_vars["registry_port"]}, (), "frontend_port 5800 clashes with registry_port 5800 on n1"),
    }
    converge = SCENARIO / "converge.yml"
    started = time.monotonic()
    with_vars = {name: json.dumps(extra) for name, (extra, _args, _msg) in cases.items()}
    runs = {
        name: subprocess.Popen(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(SCENARIO / "inventory" / "hosts.yml"), *INVENTORIES, *args,
             str(converge), "-e", with_vars[name]],
            cwd=ROOT, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for name, (_extra, args, _msg) in cases.items()
    }  # fmt: skip
    outputs = {name: run.communicate(timeout=300)[0] for name, run in runs.items()}
    print("FIGURES frontend bad input: %d runs side by side in %.0f s" % (len(cases), time.monotonic() - started))
    for name, (_extra, _args, message) in cases.items():
        output = outputs[name]
        assert runs[name].returncode != 0, (name, output[-3000:])
        messages = failure_messages(output)
        assert any(message in m and "\n" not in m for m in messages), (name, messages, output[-3000:])
        assert "PLAY [Docker engines]" not in output, (name, "the run went past the checks")
        assert all(counters["changed"] == 0 for counters in recaps(output).values()), (name, recaps(output))


def test_check_mode_shows_a_frontend_change_and_changes_nothing(mol_vars):
    """The nodes run frontend_check_fall 3 (the rolling update's change); the inventory says 2: check mode with diff
    reports the change in both files and leaves them and the processes as they are."""
    files = ("/etc/haproxy/haproxy.cfg", "/etc/keepalived/keepalived.conf")
    before = {node: (on(node, "sha256sum %s" % " ".join(files)), fe.process_ids(node)) for node in fe.NODES}
    holder = fe.holders()
    playbook = _write_playbook("frontend-check.json", [{
        "name": "The frontend role alone", "hosts": "registry_hosts", "gather_facts": False,
        "roles": [{"role": "dockhand.registry.frontend"}],
    }])  # fmt: skip
    done = _playbook(playbook, {}, "--check", "--diff")
    assert done.returncode == 0, done.stdout[-3000:]
    assert all(counters["changed"] >= 2 for counters in recaps(done.stdout).values()), recaps(done.stdout)
    assert "-    default-server inter 1000ms fall 3" in done.stdout and "+    default-server inter 1000ms fall 2" in done.stdout
    assert "-    fall 3" in done.stdout and "+    fall 2" in done.stdout
    assert {node: (on(node, "sha256sum %s" % " ".join(files)), fe.process_ids(node)) for node in fe.NODES} == before
    assert fe.holders() == holder


def test_garbage_collection_in_service_mode(mol_vars):
    """registry_gc with service: every replica read-only in one rolling update, the collection, read-write again
    (another rolling update). Pulls never fail; a push may be refused only in that window, by the registry.
    The garbage: a blob uploaded through the address that no manifest names."""
    (holder,) = fe.holders()
    orphan = os.urandom(4096)
    base = "http://%s" % fe.address(mol_vars)
    started = requests.post(base + "/v2/ha/orphan/blobs/uploads/", timeout=10)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    location = location if "://" in location else base + location
    put = requests.put(location + ("&" if "?" in location else "?") + "digest=sha256:" + hashlib.sha256(orphan).hexdigest(),
                       data=orphan, headers={"Content-Type": "application/octet-stream"}, timeout=10)
    assert put.status_code == 201, put.text
    playbook = _write_playbook("frontend-gc.json", [{
        "name": "registry_gc on the service", "hosts": holder, "gather_facts": False,
        "tasks": [
            {"name": "GC", "register": "gc",
             "dockhand.registry.registry_gc": {"service": mol_vars["registry_service_name"], "wait_timeout": 120}},
            {"name": "Keep the result", "ansible.builtin.copy": {"content": "{{ gc | to_json }}", "dest": str(GC_RESULT), "mode": "0644"},
             "delegate_to": "localhost"},
        ],
    }])  # fmt: skip
    with fe.client_loops("gc in service mode", mol_vars) as phase:
        since = time.time()
        done = _playbook(playbook, {})
        phase.window = phase.read_only = (since, time.time())
    assert done.returncode == 0, done.stdout[-3000:]
    result = json.loads(GC_RESULT.read_text())
    phase.notes.update(blobs_removed=result["blobs_removed"], read_only_s=result["read_only_seconds"])
    phase.check()
    assert result["changed"] and result["read_only_seconds"] > 0 and result["blobs_removed"] >= 1, result
    # What the pull loop pulls is still whole.
    manifest = requests.get("http://%s/v2/%s/manifests/1" % (fe.address(mol_vars), fe.LOOP_REPOSITORY), headers={"Accept": MANIFEST}, timeout=10)
    digest = hashlib.sha256(manifest.content).hexdigest()
    reference = "%s/%s@sha256:%s" % (fe.address(mol_vars), fe.LOOP_REPOSITORY, digest)
    assert on(fe.CLIENT, "docker pull -q %s" % reference).strip()
    on(fe.CLIENT, "docker rmi %s" % reference)  # the next phase's pulls must download the layer again


def test_losing_the_node_that_holds_the_address(mol_vars):
    """docker stop of the holder (an orderly shutdown: keepalived stops before HAProxy, and first holds new
    connections back while the open ones finish): the address moves, and no pull or push of the client fails or has a
    transfer started again. The node comes back without taking the address back."""
    (old,) = fe.holders()
    with fe.client_loops("address holder stopped", mol_vars) as phase:
        stopped = time.time()
        subprocess.run(["docker", "stop", "-t", "20", fe.container(old)], check=True, capture_output=True, timeout=60)
        new, _seen = fe.wait_for_new_holder(old, stopped)
        moved = fe.keepalived_state_since(new, "MASTER", stopped)
        marked = fe.wait_marked(new, old, "DOWN")
        phase.window = (stopped, max(moved, marked))
        phase.notes.update(holder=old, new_holder=new, failover_s=round(moved - stopped, 2), marked_down_s=round(marked - stopped, 1))
    in_window = phase.overlapping(phase.pulls)
    phase.notes["longest_pull_in_window_s"] = round(max((r["end"] - r["start"] for r in in_window), default=0.0), 2)
    try:
        phase.check()
    finally:
        started = time.time()
        subprocess.run(["docker", "start", fe.container(old)], check=True, capture_output=True, timeout=60)
    # Back: its keepalived hears the new holder and stays a backup (nopreempt), though its priority is higher.
    backup = fe.keepalived_state_since(old, "BACKUP", started)
    # Its keepalived held the address until the connections open through it had finished (the journal of the stop).
    handover = [line for line in on(old, "journalctl -u keepalived --no-pager -o cat --since @%d --until @%d" % (int(stopped), int(started) + 1),
                                    check=False).splitlines() if "frontend-handover:" in line]  # fmt: skip
    print("FIGURES frontend %s handover: %s" % (old, handover))
    assert handover and " 0 open connection(s) left" in handover[-1], handover
    time.sleep(4)  # past the take-over delay (three advertisements) of the returned node
    print("FIGURES frontend %s back: keepalived a backup %.0f s after docker start" % (old, backup - started))
    assert fe.holders() == [new], "the address moved to %s (it must stay on %s)" % (fe.holders(), new)
