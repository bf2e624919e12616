# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""registry_info on a registry holding N tags (default 1,000): how long does the listing take?

A fresh registry container (registry:2, data in a fresh directory) gets N distinct images written
straight through the registry API (one shared layer blob; per image its own configuration blob with its
own created time, and its own manifest), spread over a few repositories. Then, each R times:

* ``library``  - ``read_catalog()`` of module_utils/catalog.py in this process (catalog, tags, every manifest
  and every configuration: digests, sizes, created times), as many requests at a time as the modules' default
  ``workers``, on one pooled session;
* ``module``   - ``ansible -m dockhand.registry.registry_info`` against the registry, the whole command
  (Ansible start, module transfer and run);
* ``serial``   - the same library call with one request at a time (pool of 1), for comparison;
* ``nocreated`` - the library call without created times (``created: false``: no configuration is read).
* ``module-nocreated`` - the module run with ``created=false`` (digests and sizes only).

Each line also says how much CPU the registry container used (its cgroup) and the load average before and
after: the client and the registry share the machine's cores, so wall time depends on the load; CPU seconds do not.

Environment: BENCH_INFO_TAGS (1000), BENCH_INFO_REPOS (4), BENCH_INFO_RUNS (5), BENCH_INFO_PORT (5548),
BENCH_INFO_DIR (/tmp/dh-bench-info), BENCH_INFO_NAME (dh-bench-info, the container), BENCH_INFO_IMAGE (registry:2),
BENCH_INFO_METHODS ("library serial module"), BENCH_INFO_WORKERS (the modules' default), BENCH_INFO_KEEP (1: keep
the filled registry afterwards and reuse it on the next run), BENCH_INFO_GOGC (200, the registry role's
registry_go_gc_percent; 0 = Go's default). Prints one JSON line per method: wall seconds, the
client's CPU seconds (this process for the library methods, the ansible command's processes for ``module``), the
registry container's CPU seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.dockhand.registry.plugins.module_utils.args import REGISTRY_API_ARGSPEC  # noqa: E402
from ansible_collections.dockhand.registry.plugins.module_utils.catalog import read_catalog  # noqa: E402
from ansible_collections.dockhand.registry.plugins.module_utils.registry import RegistryClient  # noqa: E402

TAGS = int(os.environ.get("BENCH_INFO_TAGS", "1000"))
REPOS = int(os.environ.get("BENCH_INFO_REPOS", "4"))
RUNS = int(os.environ.get("BENCH_INFO_RUNS", "5"))
PORT = int(os.environ.get("BENCH_INFO_PORT", "5548"))
DIR = Path(os.environ.get("BENCH_INFO_DIR", "/tmp/dh-bench-info"))
IMAGE = os.environ.get("BENCH_INFO_IMAGE", "registry:2")
NAME = os.environ.get("BENCH_INFO_NAME", "dh-bench-info")
METHODS = os.environ.get("BENCH_INFO_METHODS", "library serial module").split()
WORKERS = int(os.environ.get("BENCH_INFO_WORKERS", str(REGISTRY_API_ARGSPEC["workers"]["default"])))
KEEP = os.environ.get("BENCH_INFO_KEEP") == "1"
# The registry as the registry role runs it: GOGC=registry_go_gc_percent (200); "0" runs it with Go's default.
GOGC = os.environ.get("BENCH_INFO_GOGC", "200")
BASE = "http://127.0.0.1:%d" % PORT
V2 = "application/vnd.docker.distribution.manifest.v2+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def upload(session: requests.Session, repo: str, data: bytes) -> str:
    digest = sha(data)
    if session.head("%s/v2/%s/blobs/%s" % (BASE, repo, digest)).status_code == 200:
        return digest
    start = session.post("%s/v2/%s/blobs/uploads/" % (BASE, repo))
    start.raise_for_status()
    location = start.headers["Location"]
    location = location if location.startswith("http") else BASE + location
    done = session.put(location, params={"digest": digest}, data=data,
                       headers={"Content-Type": "application/octet-stream"})
    done.raise_for_status()
    return digest


def fill() -> None:
    session = requests.Session()
    layer = b"dockhand bench layer\n" * 100

    def one(index: int) -> None:
        repo = "bench/repo%d" % (index % REPOS)
        layer_digest = upload(session, repo, layer)
        config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:%02d:%02dZ" % (index // 60 % 60, index % 60),
                             "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}, "index": index}).encode()
        config_digest = upload(session, repo, config)
        manifest = json.dumps({"schemaVersion": 2, "mediaType": V2,
                               "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config), "digest": config_digest},
                               "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer), "digest": layer_digest}]})
        put = session.put("%s/v2/%s/manifests/t%d" % (BASE, repo, index), data=manifest, headers={"Content-Type": V2})
        put.raise_for_status()
    for repo in range(REPOS):  # the shared layer once per repository, before the parallel writes
        upload(session, "bench/repo%d" % repo, layer)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(TAGS)))


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout


def registry_cpu_reader(name: str = NAME):
    """A function giving the CPU seconds the container ``name`` has used so far (cgroup v1 or v2), or None."""
    cid = docker("inspect", "-f", "{{.Id}}", name).strip()
    for path in ("/sys/fs/cgroup/cpuacct/docker/%s/cpuacct.usage" % cid, "/sys/fs/cgroup/system.slice/docker-%s.scope/cpu.stat" % cid,
                 "/sys/fs/cgroup/docker/%s/cpu.stat" % cid):
        if os.path.exists(path):
            if path.endswith("cpuacct.usage"):
                return lambda: int(Path(path).read_text()) / 1e9
            return lambda: int(Path(path).read_text().split("usage_usec", 1)[1].split()[0]) / 1e6
    return lambda: float("nan")


def own_cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _container_gogc() -> str:
    """GOGC of the running bench registry ("0" when unset)."""
    env = json.loads(docker("inspect", "-f", "{{json .Config.Env}}", NAME) or "[]")
    return next((e.split("=", 1)[1] for e in env if e.startswith("GOGC=")), "0")


def main() -> None:
    reuse = False
    if KEEP:
        try:
            reuse = len(requests.get(BASE + "/v2/_catalog", timeout=2).json()["repositories"]) == REPOS
        except (requests.RequestException, ValueError, KeyError):
            reuse = False
    gogc = ["-e", "GOGC=" + GOGC] if GOGC != "0" else []
    if reuse and _container_gogc() != GOGC:
        # The filled storage is kept; only the registry process starts again with the GC target asked for.
        subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)
        docker("run", "-d", "--name", NAME, *gogc, "-p", "127.0.0.1:%d:5000" % PORT, "-v", "%s:/var/lib/registry" % DIR, IMAGE)
    if not reuse:
        subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)
        shutil.rmtree(DIR, ignore_errors=True)
        DIR.mkdir(parents=True)
        docker("run", "-d", "--name", NAME, *gogc, "-p", "127.0.0.1:%d:5000" % PORT, "-v", "%s:/var/lib/registry" % DIR, IMAGE)
    try:
        for _attempt in range(100):
            try:
                if requests.get(BASE + "/v2/", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        started = time.monotonic()
        if not reuse:
            fill()
        print(json.dumps({"fill_seconds": round(time.monotonic() - started, 2), "tags": TAGS, "repositories": REPOS}))
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"))
        ansible = str(ROOT / ".venv" / "bin" / "ansible")
        registry_cpu = registry_cpu_reader()
        for method in METHODS:
            times = []
            cpu = []
            reg_cpu = []
            load_before = os.getloadavg()[0]
            for _run in range(RUNS):
                who = resource.RUSAGE_CHILDREN if method.startswith("module") else resource.RUSAGE_SELF
                cpu_before, reg_before = own_cpu(who), registry_cpu()
                started = time.monotonic()
                if method.startswith("module"):
                    arguments = "registry=127.0.0.1:%d registry_scheme=http" % PORT + (" created=false" if method == "module-nocreated" else "")
                    command = [ansible, "localhost", "-i", str(ROOT / "inventory" / "localhost.yml"), "-m", "dockhand.registry.registry_info",
                               "-a", arguments, "-o"]
                    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
                    assert done.returncode == 0, done.stdout[-2000:]
                    listed = done.stdout.count('"digest"')
                else:
                    client = RegistryClient("127.0.0.1:%d" % PORT, scheme="http", pool_size=1 if method == "serial" else WORKERS)
                    created = method != "nocreated"
                    held = read_catalog(client, created=created)
                    listed = sum(len(r["tags"]) for r in held["repositories"])
                    assert all(t["size"] and t["digest"] and bool(t["created"]) == created for r in held["repositories"] for t in r["tags"])
                times.append(time.monotonic() - started)
                cpu.append(own_cpu(who) - cpu_before)
                reg_cpu.append(registry_cpu() - reg_before)
            assert listed >= TAGS, "%s listed %d" % (method, listed)
            print(json.dumps({"method": method, "tags": listed, "median_s": round(statistics.median(times), 3),
                              "min_s": round(min(times), 3), "max_s": round(max(times), 3), "runs": RUNS,
                              "workers": 1 if method == "serial" else WORKERS,
                              "own_cpu_s": round(statistics.median(cpu), 3), "registry_cpu_s": round(statistics.median(reg_cpu), 3), "gogc": GOGC,
                              "load": [round(load_before, 2), round(os.getloadavg()[0], 2)]}), flush=True)
    finally:
        if not KEEP:
            subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)
            shutil.rmtree(DIR, ignore_errors=True)


if __name__ == "__main__":
    main()
