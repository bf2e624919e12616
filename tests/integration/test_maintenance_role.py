"""The registry role's day-2 variables through site.yml: retention, GC on the run, and the scheduled GC
(cron here: this machine runs no systemd; the systemd timer path needs a fleet node).

Three tags are pushed first (as CI would); site.yml with keep_last 1 deletes two and collects their
blobs (changed), the second run changes nothing; the cron file runs the same GC from the copied
module_utils, and its command works by itself.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from support import ROOT
from support.effective import effective
from support.isolation import PREFIX, REGISTRY_IMAGE, TEST_LABEL, port
from support.registry import client
from support.runner import recap, run_playbook

from .conftest import docker


def test_site_retention_gc_and_cron(workdir):
    name = PREFIX + "mnt"
    registry = "127.0.0.1:%d" % port(2)
    repo = PREFIX + "mnt-app"
    cron_file = Path("/etc/cron.d/dockhand-registry-gc-" + name)
    extra = {
        "dockhand_hosts": "localhost",
        "registry_container_name": name,
        "registry_image": REGISTRY_IMAGE,
        "registry_port": port(2),
        "registry_data_path": str(workdir / "data"),
        "registry_wait_timeout": 30,
        "publish_registry": registry,
        "publish_images": [],
        "registry_retention_rules": [{"repository": repo, "keep_last": 1}],
        "registry_gc_on_run": True,
        "registry_gc_schedule": True,
        "registry_gc_lib_dir": str(workdir / "gc-lib"),
    }
    try:
        first = dict(extra, registry_retention_rules=[], registry_gc_on_run=False, registry_gc_schedule=False)
        done = run_playbook(ROOT / "site.yml", first)
        assert done.returncode == 0, done.stdout[-3000:]
        for version in ("1", "2", "3"):
            context = workdir / ("ctx" + version)
            context.mkdir()
            (context / "Dockerfile").write_text("FROM scratch\nLABEL %s=%s\nCOPY m /m\n" % (TEST_LABEL, PREFIX))
            (context / "m").write_bytes(os.urandom(30000))
            docker("build", "-q", "-t", "%s/%s:%s" % (registry, repo, version), str(context))
            docker("push", "-q", "%s/%s:%s" % (registry, repo, version))

        runs = []
        for _run in range(2):
            done = run_playbook(ROOT / "site.yml", extra)
            output = done.stdout + done.stderr
            if done.returncode != 0:
                pytest.fail("site.yml failed (rc %d):\n%s" % (done.returncode, output[-4000:]), pytrace=False)
            runs.append(recap(output))
        assert runs[0]["changed"] > 0 and runs[1]["changed"] == 0, runs
        # Deletes on (storage.delete.enabled: the configuration file, once the environment).
        assert effective(json.loads(docker("container", "inspect", name))[0])["storage.delete.enabled"] == "true"
        tags = client(registry).tags(repo)
        assert tags == ["3"]

        # The schedule: a cron file (no systemd here) running the same GC, logging through logger.
        line = [entry for entry in cron_file.read_text().splitlines() if entry and not entry.startswith("#")][-1]
        fields = line.split(None, 6)
        assert fields[:5] == ["30", "3", "*", "*", "0"] and fields[5] == "root"
        command = fields[6]
        assert command.endswith("2>&1 | logger -t dockhand-registry-gc")
        argv = shlex.split(command.split(" 2>&1")[0])
        assert argv[:2] == ["/usr/bin/python3", str(workdir / "gc-lib" / "dockhand_registry_gc.py")]
        # Run by itself (the system Python, no Ansible needed): nothing left to collect, one JSON line.
        ran = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        result = json.loads(ran.stdout.strip().splitlines()[-1])
        assert result["changed"] is False and result["blobs_removed"] == 0
    finally:
        cron_file.unlink(missing_ok=True)
