"""The registry role's scheduled jobs on a real Debian 12 server with systemd (one fleet node for the module:
tests/support/fleet.py), over SSH.

The scheduled GC: the registry role with retention (keep 1) and registry_gc_schedule installs
dockhand-registry-gc-<name>.service and .timer; three images pushed on the node, a third role run deletes two tags and
sets the timer's calendar a few seconds ahead; the timer fires and its service runs the read-only GC on the node's
system Python (Debian's python3-docker 5.0.3, no Ansible), its JSON line lands in the journal, the registry is
read-write afterwards, and two pull loops on the node through the GC see no failure. Its effect is read by the tests'
oracle (standard library only) run on the node's own Python: the deleted images' layers and configs are gone, the kept
tag is whole.

The scheduled replication: a second registry on the node replicates from an upstream registry (also on the node)
holding releases, pre-releases and other tags, with a version range, and from an upstream that is down, every 15
seconds (a systemd timer); the state file says what each run copied and that the down source failed; a new release
pushed upstream is copied by the next run; registry_info reads the state back; the role in check mode shows what the
next run would copy. Content is compared with the upstream's by the oracle (tests/support/oracle.py, from this machine).
Slow (a node boots, the registry image is copied into it): run with DH_FLEET_TESTS=1.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time

import pytest

from ansible_collections.dockhand.registry.tests.support import registry_api as api
from support import ROOT
from support.effective import effective
from support.fleet import registry_node
from support.isolation import PREFIX, REGISTRY_IMAGE, path
from support.oracle import Registry, assert_same_tag
from support.runner import VENV_BIN, ansible_env, role_playbook, run_playbook

pytestmark = pytest.mark.skipif(os.environ.get("DH_FLEET_TESTS") != "1", reason="needs DH_FLEET_TESTS=1 (boots a fleet node)")

REGISTRY_VARS = {
    "registry_image_pull": False,
    "registry_container_name": "opsreg",
    "registry_data_path": "/var/lib/dockhand/registry",
    "registry_retention_rules": [{"keep_last": 1}],
    "registry_gc_schedule": True,
}


def node(container: str, script: str) -> str:
    done = subprocess.run(["docker", "exec", container, "bash", "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def oracle(container: str, *args: str) -> object:
    """The tests' oracle (standard library only) run on the node's own Python against its registry (on loopback)."""
    out = node(container, "python3 /root/oracle.py %s localhost:5000 %s" % (args[0], " ".join(args[1:])))
    return out.strip() if args[0] == "digest" else json.loads(out)


@pytest.fixture(scope="module")
def systemd_node():
    """One Debian 12 node with systemd and its own engine, for every test of this file (they write their playbooks
    into ``node_dir``: the ``workdir`` fixture's teardown would remove the node with every container of the prefix)."""
    state = path("systemd-node")
    shutil.rmtree(state, ignore_errors=True)
    with registry_node(PREFIX + "fl-", state / "fleet", REGISTRY_IMAGE) as fleet_node:
        yield fleet_node
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def node_dir(request, systemd_node):
    directory = path("systemd-node", request.node.name)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_systemd_timer_runs_the_read_only_gc(node_dir, systemd_node):
    fleet_node = systemd_node
    container = fleet_node.container
    playbook = role_playbook(node_dir / "gc.yml", "n1", "registry", dict(REGISTRY_VARS, registry_image=REGISTRY_IMAGE))
    for _run in range(2):
        done = run_playbook(playbook, {}, inventory=fleet_node.inventory)
        assert done.returncode == 0, done.stdout[-3000:]
    node(container, "set -e; for v in 1 2 3; do mkdir -p /tmp/c$v; printf 'FROM scratch\\nCOPY m /m\\n' > /tmp/c$v/Dockerfile;"
                    " head -c 30000 /dev/urandom > /tmp/c$v/m; docker build -q -t localhost:5000/app:$v /tmp/c$v >/dev/null;"
                    " docker push -q localhost:5000/app:$v >/dev/null; done")
    subprocess.run(["docker", "cp", str(ROOT / "tests" / "support" / "oracle.py"), container + ":/root/oracle.py"], check=True)
    digests = {tag: oracle(container, "digest", "app:" + tag) for tag in "123"}
    layers = {tag: set(oracle(container, "reachable", "app:" + tag)["blobs"]) for tag in "123"}
    # The timer fires a few seconds after this run (node clock), not by a manual start of its service.
    fire_at = node(container, "date -d '+60 seconds' '+%Y-%m-%d %H:%M:%S'").strip()
    third = role_playbook(node_dir / "gc3.yml", "n1", "registry",
                          dict(REGISTRY_VARS, registry_image=REGISTRY_IMAGE, registry_gc_on_calendar=fire_at))  # fmt: skip
    done = run_playbook(third, {}, inventory=fleet_node.inventory)
    assert done.returncode == 0, done.stdout[-3000:]
    assert json.loads(node(container, "curl -s localhost:5000/v2/app/tags/list"))["tags"] == ["3"]
    assert "dockhand-registry-gc-opsreg.timer" in node(container, "systemctl list-timers --all")
    # Two pull loops on the node through the whole GC (both swaps of the read-only switch): none may fail.
    node(container, "rm -f /tmp/stop-pulls /tmp/pulls-*; for l in 1 2; do (ok=0; bad=0;"
                    " while [ ! -e /tmp/stop-pulls ]; do if docker pull -q localhost:5000/app:3 >/dev/null 2>>/tmp/pull-errors;"
                    " then ok=$((ok+1)); else bad=$((bad+1)); fi; done; echo $ok $bad > /tmp/pulls-$l) >/dev/null 2>&1 & done")
    node(container, "for i in $(seq 300); do journalctl -u dockhand-registry-gc-opsreg.service --no-pager -o cat | grep -q '^{'"
                    " && break; sleep 0.5; done; sleep 1; touch /tmp/stop-pulls")
    fired = node(container, "systemctl show -p LastTriggerUSec dockhand-registry-gc-opsreg.timer").strip()
    assert fired and "n/a" not in fired, "the timer never fired: %s" % fired
    counts = node(container, "for i in $(seq 100); do [ -e /tmp/pulls-1 ] && [ -e /tmp/pulls-2 ] && break; sleep 0.2; done;"
                             " cat /tmp/pulls-1 /tmp/pulls-2; cat /tmp/pull-errors 2>/dev/null || true")
    lines = counts.splitlines()
    pulled = sum(int(line.split()[0]) for line in lines[:2])
    failed = sum(int(line.split()[1]) for line in lines[:2])
    print("pull loop on the node during the GC: %d ok, %d failed %s" % (pulled, failed, lines[2:][:3]))
    journal = node(container, "journalctl -u dockhand-registry-gc-opsreg.service --no-pager -o cat")
    line = [entry for entry in journal.splitlines() if entry.startswith("{")][-1]
    result = json.loads(line)
    print("systemd GC:", {k: result[k] for k in ("blobs_removed", "bytes_removed", "read_only_seconds")})
    assert result["changed"] and result["blobs_removed"] >= 4 and result["bytes_removed"] >= 60000
    assert "warnings" not in result, result["warnings"]
    assert pulled > 0 and failed == 0, counts
    env = node(container, "docker inspect --format '{{json .Config.Env}}' opsreg")
    inspected = json.loads(node(container, "docker inspect opsreg"))[0]
    settings = effective(inspected, lambda path: node(container, "cat %s" % shlex.quote(path)))
    assert "MAINTENANCE" not in env and settings["storage.delete.enabled"] == "true"
    assert "storage.maintenance.readonly.enabled" not in settings
    # The effect, read by the oracle: only app:3 is left, whole; the deleted images' own layers are gone.
    assert oracle(container, "state") == {"catalog": ["app"], "digests": {"app:3": digests["3"]}}
    assert oracle(container, "verify", "app:3")["app:3"]["digest"] == digests["3"]
    gone = sorted((layers["1"] | layers["2"]) - layers["3"])
    assert gone and set(oracle(container, "blobs", "app", *gone).values()) == {None}, gone


RELEASES = ["1.0.0", "1.2.0", "1.2.5", "1.3.0-rc1", "v1.4.1", "2.0.0", "latest", "1.2-alpine", "nightly"]
IN_RANGE = ["1.2.0", "1.2.5", "v1.4.1", "2.0.0"]
PERIOD = 15  # seconds between two replication runs (the timer's OnCalendar below)
MIRROR_VARS = {
    "registry_image_pull": False,
    "registry_container_name": "mirror",
    "registry_port": 5003,
    "registry_bind_address": "0.0.0.0",  # the oracle reads it from this machine
    "registry_data_path": "/var/lib/dockhand/mirror",
    "registry_replication": [
        {"name": "upstream", "registry": "localhost:5001", "registry_scheme": "http", "repositories": ["team/app"],
         "tag_semver": ">=1.2,<3", "dest_prefix": "mirror"},
        {"name": "down", "registry": "localhost:5002", "registry_scheme": "http", "repositories": ["team/app"], "tag_pattern": ".*"},
    ],
    "registry_replication_on_calendar": "*:*:0/%d" % PERIOD,
}
STATE = "/var/lib/dockhand/replication/mirror.json"


def push_release(address: str, tag: str) -> str:
    return api.push_image(address, "team/app", tag, [api.tar_layer("base", "base\n"), api.tar_layer("file", "release %s\n" % tag)])["digest"]


def next_state(container: str, after: str, timeout: float) -> dict:
    """The state file of the first replication run that started at or after ``after`` (UTC, as the state writes it)."""
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(["docker", "exec", container, "cat", STATE], capture_output=True, text=True, check=False)
        if done.returncode == 0:
            state = json.loads(done.stdout)
            if state["started"] >= after:
                return state
        assert time.monotonic() < deadline, "no replication run started after %s within %ss" % (after, timeout)
        time.sleep(1)


def test_systemd_timer_replicates_a_version_range_and_records_each_source(node_dir, systemd_node):
    container = systemd_node.container
    node(container, "docker run -d --name upstream -p 5001:5000 %s >/dev/null" % REGISTRY_IMAGE
                    + " && for i in $(seq 50); do curl -sf localhost:5001/v2/ >/dev/null && break; sleep 0.2; done")
    upstream = "%s:5001" % systemd_node.address
    for tag in RELEASES:
        push_release(upstream, tag)
    playbook = role_playbook(node_dir / "mirror.yml", "n1", "registry", dict(MIRROR_VARS, registry_image=REGISTRY_IMAGE))
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    done = run_playbook(playbook, {}, inventory=systemd_node.inventory)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "dockhand-registry-replication-mirror.timer" in node(container, "systemctl list-timers --all")

    state = next_state(container, started, 4 * PERIOD)
    up, down = state["sources"]
    assert not state["ok"] and up["ok"] and not down["ok"], state
    assert sorted(ref.split("@")[0].rsplit(":", 1)[1] for ref in up["copied"]) == sorted(IN_RANGE), up
    assert up["repositories"]["team/app"] == {"listed": 9, "not_matching_pattern": 0, "not_versions": 3, "outside_range": 2, "chosen": 4}
    assert down["error"] == "registry localhost:5002 is unreachable: Connection refused" and down["last_success"] is None, down
    source = Registry(upstream, scheme="http")
    mirror = Registry("%s:5003" % systemd_node.address, scheme="http")
    assert sorted(mirror.tags("mirror/team/app")) == sorted(IN_RANGE)
    for tag in IN_RANGE:
        assert_same_tag(source, mirror, "team/app", tag, "mirror/team/app")
    journal = node(container, "journalctl -u dockhand-registry-replication-mirror.service --no-pager -o cat")
    line = json.loads([entry for entry in journal.splitlines() if entry.startswith("{")][-1])
    assert line["failed"] and [s["name"] for s in line["sources"]] == ["upstream", "down"], line

    # A new release upstream (and a pre-release, left out): the next run copies it.
    pushed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    digest = push_release(upstream, "1.5.0")
    push_release(upstream, "1.6.0-rc1")
    state = next_state(container, pushed, 3 * PERIOD)
    up = state["sources"][0]
    print("replication run after the push: started %s (pushed %s), %s s" % (state["started"], pushed, state["duration_seconds"]))
    assert up["copied"] == ["127.0.0.1:5003/mirror/team/app:1.5.0@%s" % digest] and up["tags_present"] == 4, up
    assert up["last_success"] == up["finished"] and state["sources"][1]["last_success"] is None
    assert_same_tag(source, mirror, "team/app", "1.5.0", "mirror/team/app")

    # registry_info on the node reads the state back by itself (a registry on that host).
    info = subprocess.run(
        [str(VENV_BIN / "ansible"), "n1", "-o", "-i", str(systemd_node.inventory), "-m", "dockhand.registry.registry_info",
         "-a", "registry=localhost:5003 registry_scheme=http details=false"],
        capture_output=True, text=True, check=False, env=ansible_env(),
    )  # fmt: skip
    assert info.returncode == 0, info.stdout + info.stderr
    result = json.loads(info.stdout.split(" => ", 1)[1])
    assert result["replication"]["sources"][0]["name"] == "upstream" and not result["replication"]["ok"], result
    assert result["replication"]["age_seconds"] >= 0

    # Check mode: the timer stopped, a release pushed; the role says what the next run would copy, and copies nothing.
    node(container, "systemctl stop dockhand-registry-replication-mirror.timer")
    digest = push_release(upstream, "1.7.0")
    check = run_playbook(playbook, {}, inventory=systemd_node.inventory, args=("--check",),
                         env=ansible_env(ANSIBLE_CALLBACK_RESULT_FORMAT="json"))  # fmt: skip
    assert check.returncode == 0, check.stdout[-3000:]
    shown = check.stdout.split("Show what the next replication would copy", 1)[1]
    assert '"would copy 127.0.0.1:5003/mirror/team/app:1.7.0@%s"' % digest in shown, shown[:3000]
    assert '"replication failed for 1 of 2 sources: down: registry localhost:5002 is unreachable' in shown, shown[:3000]
    assert "1.7.0" not in mirror.tags("mirror/team/app")
