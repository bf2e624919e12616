"""The maintenance scenario: what retention, GC and the schedule left on the host, checked from the outside."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
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
    # Two images of mol/app left (3 and 4): a layer, a configuration and a manifest each (12 blobs before retention
    # + GC); and mol/multi 2.0: its index, two platform manifests, their configurations and layers (1.0's seven went).
    blobs = Path(mol_vars["registry_data_path"]) / "docker" / "registry" / "v2" / "blobs"
    data = list(blobs.rglob("data"))
    assert len(data) == 6 + 7, sorted(str(p) for p in data)


def _raw(reference: str) -> bytes:
    done = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "docker://" + reference], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()[-500:]
    return done.stdout


def test_the_kept_multi_platform_image_reads_whole(registry, mol_vars, tmp_path):
    """Retention and the GC (delete_untagged) kept 2.0 whole: its index and the platform images no tag names, byte for
    byte (skopeo and sha256 of the raw bytes, nothing of the collection)."""
    digests = json.loads((Path(mol_vars["mol_root"]) / "multi-digests.json").read_text())
    assert sorted(registry.tags("mol/multi")) == ["2.0"]
    image = "%s/mol/multi" % mol_vars["publish_registry"]
    index = _raw(image + ":2.0")
    assert "sha256:" + hashlib.sha256(index).hexdigest() == digests["2.0"]
    children = json.loads(index)["manifests"]
    assert len(children) == 2
    for child in children:
        assert "sha256:" + hashlib.sha256(_raw("%s@%s" % (image, child["digest"]))).hexdigest() == child["digest"]
    copied = subprocess.run(["skopeo", "copy", "--all", "--quiet", "--src-tls-verify=false", "docker://%s:2.0" % image, "dir:%s" % (tmp_path / "copy")],
                            capture_output=True, check=False)  # fmt: skip
    assert copied.returncode == 0, copied.stderr.decode()[-500:]
    for path in (tmp_path / "copy").iterdir():  # every file skopeo wrote is named by (and hashes to) its digest
        if path.name not in ("manifest.json", "version"):
            hexdigest = path.name.split(".")[0]
            assert hashlib.sha256(path.read_bytes()).hexdigest() == hexdigest, path.name
    assert len([p for p in (tmp_path / "copy").iterdir() if p.name.endswith(".manifest.json")]) == 2
    # 1.0 went with its platform images
    gone = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "docker://%s@%s" % (image, digests["1.0"])], capture_output=True, check=False)
    assert gone.returncode != 0 and b"manifest unknown" in gone.stderr


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
