# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""registry_prune on a repository of N tags (default 300, rules keep_last 3 + keep_tags [release]): how long does
it take, and how many requests does it send?

A fresh registry container (registry:2 with deletes on, GOGC=200 as the registry role runs it) gets N images
written through the registry API (one small layer, configuration and manifest of their own each) and a ``release``
tag. Each run puts the N tags back (their blobs stay: no garbage collection runs), then calls ``run_prune`` of
module_utils/prune.py in a child process (the module's own logic, without Ansible's start), with ``workers`` as
the module's default. Several checkouts can be measured side by side, interleaved run by run: give their
``collections`` directories in BENCH_PRUNE_TREES (default: this checkout). To compare with an older version:

    git archive <commit> | tar -x -C /tmp/old && ln -s /tmp/old /tmp/old-collections/ansible_collections/dockhand/registry
    BENCH_PRUNE_TREES="/tmp/old-collections collections" .venv/bin/python bench/prune.py

Each line: wall seconds (median, min, max), the registry container's CPU seconds, and the requests the registry
answered during the prune (counted in its access log), by method; the load average before and after.

Environment: BENCH_PRUNE_TAGS (300), BENCH_PRUNE_RUNS (5), BENCH_PRUNE_PORT (5549), BENCH_PRUNE_DIR
(/tmp/dh-bench-prune), BENCH_PRUNE_NAME (dh-bench-prune), BENCH_PRUNE_IMAGE (registry:2), BENCH_PRUNE_TREES.
"""

from __future__ import annotations

import collections
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from registry_info import docker, registry_cpu_reader  # noqa: E402

from support import registry_api as api  # noqa: E402

TAGS = int(os.environ.get("BENCH_PRUNE_TAGS", "300"))
RUNS = int(os.environ.get("BENCH_PRUNE_RUNS", "5"))
PORT = int(os.environ.get("BENCH_PRUNE_PORT", "5549"))
DIR = Path(os.environ.get("BENCH_PRUNE_DIR", "/tmp/dh-bench-prune"))
NAME = os.environ.get("BENCH_PRUNE_NAME", "dh-bench-prune")
IMAGE = os.environ.get("BENCH_PRUNE_IMAGE", "registry:2")
TREES = os.environ.get("BENCH_PRUNE_TREES", str(ROOT / "collections")).split()
ADDRESS = "127.0.0.1:%d" % PORT
REPO = "bench/prune"
RULES = [{"repository": REPO, "keep_last": 3, "keep_tags": ["release"]}]

CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.dockhand.registry.plugins.module_utils.args import REGISTRY_API_ARGSPEC
from ansible_collections.dockhand.registry.plugins.module_utils.prune import run_prune
from ansible_collections.dockhand.registry.plugins.module_utils.registry import RegistryClient
client = RegistryClient(sys.argv[2], scheme="http", pool_size=REGISTRY_API_ARGSPEC["workers"]["default"])
started = time.monotonic()
result = run_prune(client, json.loads(sys.argv[3]))
print(json.dumps({"seconds": time.monotonic() - started, "deleted": len(result["deleted"])}))
"""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def requests_between(since: str, until: str) -> collections.Counter:
    """The requests the registry logged between two RFC 3339 times, by method."""
    logs = subprocess.run(["docker", "logs", "--since", since, "--until", until, NAME], capture_output=True, text=True, check=False)
    counted: collections.Counter = collections.Counter()
    for line in (logs.stdout + logs.stderr).splitlines():
        if 'msg="response completed' in line:
            method = line.split("http.request.method=", 1)[1].split()[0]
            counted[method] += 1
    return counted


def main() -> None:
    subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)
    shutil.rmtree(DIR, ignore_errors=True)
    DIR.mkdir(parents=True)
    docker("run", "-d", "--name", NAME, "-e", "GOGC=200", "-e", "REGISTRY_STORAGE_DELETE_ENABLED=true",
           "-p", "%s:5000" % ADDRESS, "-v", "%s:/var/lib/registry" % DIR, IMAGE)  # fmt: skip
    try:
        for _attempt in range(100):
            try:
                if api.SESSION.get("http://%s/v2/" % ADDRESS, timeout=1).status_code == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        started = time.monotonic()
        api.push_images(ADDRESS, REPO, TAGS, marker="bench")
        api.push_image(ADDRESS, REPO, "release", [api.tar_layer("file", "release\n")])
        manifests = {}
        for tag in api.SESSION.get("http://%s/v2/%s/tags/list" % (ADDRESS, REPO)).json()["tags"]:
            answer = api.SESSION.get("http://%s/v2/%s/manifests/%s" % (ADDRESS, REPO, tag), headers={"Accept": api.OCI_MANIFEST})
            manifests[tag] = (answer.content, answer.headers["Content-Type"])
        print(json.dumps({"fill_seconds": round(time.monotonic() - started, 2), "tags": len(manifests)}), flush=True)
        registry_cpu = registry_cpu_reader(NAME)
        measured: dict[str, dict[str, list]] = {tree: collections.defaultdict(list) for tree in TREES}
        load_before = os.getloadavg()[0]
        for _run in range(RUNS):
            for tree in TREES:
                for tag, (data, media_type) in manifests.items():
                    api.SESSION.put("http://%s/v2/%s/manifests/%s" % (ADDRESS, REPO, tag), data=data,
                                    headers={"Content-Type": media_type}).raise_for_status()  # fmt: skip
                since = _now()
                cpu_before = registry_cpu()
                done = subprocess.run([sys.executable, "-c", CHILD, tree, ADDRESS, json.dumps(RULES)], capture_output=True, text=True, check=True)
                child = json.loads(done.stdout.strip().splitlines()[-1])
                assert child["deleted"] == TAGS - 3, child
                measured[tree]["seconds"].append(child["seconds"])
                measured[tree]["registry_cpu"].append(registry_cpu() - cpu_before)
                until = _now()
                time.sleep(0.5)  # the last lines of the registry's log
                measured[tree]["requests"].append(requests_between(since, until))
        for tree, values in measured.items():
            total = [sum(c.values()) for c in values["requests"]]
            methods = {m: statistics.median(c.get(m, 0) for c in values["requests"]) for m in sorted(set().union(*values["requests"]))}
            print(json.dumps({"tree": tree, "tags": TAGS, "runs": RUNS, "median_s": round(statistics.median(values["seconds"]), 2),
                              "min_s": round(min(values["seconds"]), 2), "max_s": round(max(values["seconds"]), 2),
                              "registry_cpu_s": round(statistics.median(values["registry_cpu"]), 2),
                              "requests": statistics.median(total), "by_method": methods,
                              "load": [round(load_before, 2), round(os.getloadavg()[0], 2)]}), flush=True)
    finally:
        subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)


if __name__ == "__main__":
    main()
