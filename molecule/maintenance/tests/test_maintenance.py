"""The maintenance scenario: what retention, GC and the schedule left on the host, checked from the outside."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from support.effective import effective


def test_retention_kept_two_newest_and_latest(registry):
    assert sorted(registry.tags("mol/app")) == ["3", "4", "latest"]
    assert registry.digest("mol/app", "latest") == registry.digest("mol/app", "4")


def test_deletes_enabled_and_read_write(container):
    env = container["Config"]["Env"]
    # storage.delete.enabled: in the registry's configuration file (the environment holds only overrides).
    assert effective(container)["storage.delete.enabled"] == "true"
    assert not any(e.startswith("REGISTRY_STORAGE_MAINTENANCE_READONLY=") for e in env)
    assert container["State"]["Running"] is True


def test_gc_removed_the_deleted_images_blobs(mol_vars):
    # Two images left (3 and 4): a layer, a configuration and a manifest each (12 blobs before retention + GC).
    blobs = Path(mol_vars["registry_data_path"]) / "docker" / "registry" / "v2" / "blobs"
    data = list(blobs.rglob("data"))
    assert len(data) == 6, sorted(str(p) for p in data)


def test_scheduled_gc(host, mol_vars):
    name = mol_vars["registry_container_name"]
    runner = os.path.join(mol_vars["registry_gc_lib_dir"], "dockhand_registry_gc.py")
    if host.file("/run/systemd/system").is_directory:
        timer = host.file("/etc/systemd/system/dockhand-registry-gc-%s.timer" % name)
        assert timer.exists and "OnCalendar=" in timer.content_string
        assert host.service("dockhand-registry-gc-%s.timer" % name).is_enabled
        return
    cron = host.file("/etc/cron.d/dockhand-registry-gc-" + name)
    assert cron.exists
    line = [x for x in cron.content_string.splitlines() if x and not x.startswith("#")][-1]
    command = line.split(None, 6)[6]
    assert command.endswith("| logger -t dockhand-registry-gc")
    argv = shlex.split(command.split(" 2>&1")[0])
    assert argv[:2] == ["/usr/bin/python3", runner]
    ran = host.run(" ".join(shlex.quote(a) for a in argv))
    assert ran.rc == 0, ran.stdout + ran.stderr
    assert '"changed": false' in ran.stdout
