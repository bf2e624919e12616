"""The scheduled GC on a real Debian 12 server with systemd (a fleet node: tests/support/fleet.py), over SSH.

The registry role with retention (keep 1) and registry_gc_schedule installs dockhand-registry-gc-<name>.service
and .timer; three images pushed on the node, a third role run deletes two tags and sets the timer's calendar a few
seconds ahead; the timer fires and its service runs the read-only GC on the node's system Python (Debian's
python3-docker 5.0.3, no Ansible), its JSON line lands in the journal, the registry is read-write afterwards, and two
pull loops on the node through the GC see no failure. Its effect is read by the tests' oracle (standard library only)
run on the node's own Python: the deleted images' layers and configs are gone, the kept tag is whole.
Slow (a node boots, the registry image is copied into it): run with DH_FLEET_TESTS=1.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess

import pytest

from support import ROOT
from support.effective import effective
from support.fleet import registry_node
from support.isolation import PREFIX, REGISTRY_IMAGE
from support.runner import role_playbook, run_playbook

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


def test_systemd_timer_runs_the_read_only_gc(workdir):
    with registry_node(PREFIX + "fl-", workdir / "fleet", REGISTRY_IMAGE) as fleet_node:
        container = fleet_node.container
        playbook = role_playbook(workdir / "gc.yml", "n1", "registry", dict(REGISTRY_VARS, registry_image=REGISTRY_IMAGE))
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
        third = role_playbook(workdir / "gc3.yml", "n1", "registry",
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
