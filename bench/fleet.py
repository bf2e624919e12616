# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""site.yml on 1 and on 3 hosts (same work per host): first converge and idempotent re-run, over SSH.

Each host is a Debian 12 test server (tests/support/fleet.py, engine preinstalled) that runs its own registry
(built from the Debian package, plain HTTP on its own address, so its engine gets insecure-registries through a
daemon.json merge and reload) and publishes two images built on it. The 3-host run does three times the work of
the 1-host run, in parallel (Ansible's forks); the question is how close its time stays to the 1-host time.

    python3 bench/fleet.py [--runs 1] [--prefix dh-fl-b-] [--dir /tmp/dh-fl/bench]

Prints one line per run and a JSON summary; results go in docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT / "tests"))

import fleet  # noqa: E402

from support.runner import recaps  # noqa: E402


def site(inventory: Path, extra: Path) -> tuple[float, dict[str, int]]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"))
    start = time.monotonic()
    done = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), "-e", "@%s" % extra, str(ROOT / "site.yml")],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit("site.yml failed:\n" + done.stdout[-4000:] + done.stderr[-2000:])
    changed = {host: counters["changed"] for host, counters in recaps(done.stdout).items()}
    return seconds, changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--prefix", default="dh-fl-b-")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/dh-fl/bench"))
    args = parser.parse_args()
    contexts = args.dir / "contexts"
    for name in ("alpha", "beta"):
        (contexts / name).mkdir(parents=True, exist_ok=True)
        (contexts / name / "Dockerfile").write_text("FROM scratch\nCOPY payload.txt /payload.txt\n")
        (contexts / name / "payload.txt").write_text("bench %s\n" % name)
    extra = args.dir / "vars.yml"
    extra.write_text(
        json.dumps(
            {
                # Every host: its own registry, reached by its own name (plain HTTP beyond loopback).
                "registry_address": "{{ fleet_container }}:5000",
                "registry_image": "dh-fl-b-registry:2",
                "registry_image_pull": False,
                "registry_bind_address": "0.0.0.0",
                # Plain HTTP beyond loopback is spoken only when asked for.
                "publish_registry_scheme": "http",
                "publish_builds": [{"name": "bench-%s:1.0" % n, "src": str(contexts / n)} for n in ("alpha", "beta")],
                "publish_images": [{"name": "bench-%s" % n, "tag": "1.0", "repository": "bench/%s" % n} for n in ("alpha", "beta")],
            }
        )
    )
    results: dict[str, list[dict]] = {}
    for count in (1, 3):
        for run in range(args.runs):
            fleet.down(args.prefix)
            state = args.dir / ("n%d" % count)
            nodes = [("n%d" % i, "bookworm", True) for i in range(1, count + 1)]
            try:
                inventory = fleet.up(args.prefix, state, nodes)
                first, first_changed = site(inventory, extra)
                again, again_changed = site(inventory, extra)
            finally:
                fleet.down(args.prefix, state)
            row = {"hosts": count, "run": run + 1, "first": round(first, 1), "first_changed": first_changed,
                   "rerun": round(again, 1), "rerun_changed": again_changed}
            print(json.dumps(row), flush=True)
            results.setdefault(str(count), []).append(row)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
