"""What a test run holds, read independently of the collection: the engine through the ``docker`` command line, every
registry container of the run through the oracle (support.oracle), and the files of the test's directory.

    python tests/support/state.py <prefix> [<directory>]

prints one JSON object: ``images`` (``name:tag`` -> image ID and repo digest, for the images named with or labelled
for the prefix), ``containers`` (name -> ID, image, state, env, restart policy, ports, mounts, for those named with
the prefix), ``registries`` (``127.0.0.1:<port>`` of each running registry container of the run -> ``{repo: {tag:
digest}}``, or ``"auth"`` when it wants credentials), ``files`` (path under the directory -> sha256). Two reads are
equal exactly when nothing the run can see changed: what check mode is judged by (targets/_common/check_then_run.yml).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: make ``support`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.oracle import OracleError, Registry

LABEL = "io.dockhand.test"


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def images(prefix: str) -> dict[str, list[str]]:
    """``repository:tag`` (``<none>`` ones by ID) -> [image ID, digest] of the images named with or labelled for the
    prefix (one listing: nothing to race with other users of the engine)."""
    labelled = set(_docker("images", "-a", "-q", "--no-trunc", "--filter", "label=%s=%s" % (LABEL, prefix)).split())
    found: dict[str, list[str]] = {}
    listed = _docker("images", "-a", "--digests", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Digest}}")
    for line in listed.splitlines():
        name, image_id, digest = line.split()
        if image_id in labelled or prefix in name:
            found[name if name != "<none>:<none>" else "<none>@" + image_id] = [image_id, digest]
    return found


def containers(prefix: str) -> dict[str, dict]:
    ids = _docker("ps", "-aq", "--no-trunc", "--filter", "name=^/" + prefix).split()
    found: dict[str, dict] = {}
    for item in json.loads(_docker("container", "inspect", *ids)) if ids else []:
        found[item["Name"].lstrip("/")] = {
            "id": item["Id"],
            "image": item["Image"],
            "running": item["State"]["Running"],
            "started": item["State"]["StartedAt"],
            "env": sorted(item["Config"].get("Env") or []),
            "labels": item["Config"].get("Labels") or {},
            "restart": item["HostConfig"].get("RestartPolicy"),
            "ports": item["HostConfig"].get("PortBindings"),
            "mounts": sorted("%s:%s:%s" % (m.get("Source") or m.get("Name"), m["Destination"], m.get("RW")) for m in item.get("Mounts") or []),
        }
    return found


def registries(found_containers: dict[str, dict]) -> dict[str, object]:
    """The content of every running container of the run that publishes the registry's port 5000/tcp on loopback."""
    held: dict[str, object] = {}
    for item in found_containers.values():
        for binding in ((item["ports"] or {}).get("5000/tcp") or []) if item["running"] else []:
            address = "127.0.0.1:%s" % binding["HostPort"]
            registry = Registry(address, timeout=10)
            try:
                status = registry.ping()
                held[address] = registry.snapshot() if status == 200 else "HTTP %d" % status
            except (OracleError, OSError) as exc:
                held[address] = "unreadable: %s" % str(exc).split(":", maxsplit=1)[0]
    return held


def files(directory: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for root, _dirs, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            digest = hashlib.sha256()
            with open(path, "rb") as stream:
                for piece in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(piece)
            found[os.path.relpath(path, directory)] = digest.hexdigest()
    return found


def state(prefix: str, directory: str | None = None) -> dict:
    found = containers(prefix)
    return {
        "images": images(prefix),
        "containers": found,
        "registries": registries(found),
        "files": files(directory) if directory else {},
    }


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        sys.stderr.write("usage: state.py <prefix> [<directory>]\n")
        return 2
    print(json.dumps(state(*argv), sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
