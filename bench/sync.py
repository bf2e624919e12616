# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry-to-registry benchmark (part of ``make bench``, after bench/run.py): image_sync vs skopeo sync.

Fixture: N images sharing one base layer, each with its own layer and configuration, built in a fresh source
registry through the registry API (tests/support/registry_api.py ``family``), in two layouts:

* ``repos`` - N repositories ``bench/r000``... with one tag each (what a mirror of many images looks like);
* ``tags``  - one repository ``bench/app`` with N tags (the releases of one image).

For each round, layout and N, each method copies all N into its own fresh, empty destination registry (first copy)
and runs again (re-run: nothing to copy); the methods run interleaved, in a rotating order. Timed as wall-clock of
the whole command:

* ``image_sync``  - ``ansible-playbook`` running one ``dockhand.registry.image_sync`` task (``images`` for
  ``repos``, ``tag_pattern: .*`` for ``tags``);
* ``module only`` - the same module run alone (``python plugins/modules/image_sync.py args.json``), without the
  ``ansible-playbook`` start-up: the module's own time;
* ``skopeo sync`` - ``skopeo sync`` (Debian's skopeo): ``--src yaml`` listing the N images for ``repos``,
  ``--src docker <repository>`` for ``tags``;
* ``baseline``    - only with BENCH_SYNC_BASELINE=<another checkout of the collection>: that checkout's module run
  alone, as ``module only`` (before/after in one run).

Every command's registry requests are counted from the access logs of the source and the destination registry
(``docker logs``: one line per request, nothing added in the path), by kind; its CPU seconds are its own (children's
rusage) and each registry container's (cgroup). The load average is recorded at the start and after each round.

Environment: BENCH_SIZES ("20 200"), BENCH_SYNC_LAYOUTS ("repos tags"), BENCH_SYNC_RUNS (3), BENCH_SYNC_WORKERS (8),
BENCH_SYNC_GOGC (200: the registries run as the registry role runs them; 0 = Go's default), BENCH_SYNC_PORT (5420:
ports ..+4), BENCH_SYNC_PREFIX (dh-bench-sync), BENCH_SYNC_BASELINE, BENCH_OUT (bench/results), BENCH_PROJECT_PYTHON.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIZES = [int(n) for n in os.environ.get("BENCH_SIZES", "20 200").split()]
LAYOUTS = os.environ.get("BENCH_SYNC_LAYOUTS", "repos tags").split()
RUNS = int(os.environ.get("BENCH_SYNC_RUNS", "3"))
WORKERS = int(os.environ.get("BENCH_SYNC_WORKERS", "8"))
GOGC = os.environ.get("BENCH_SYNC_GOGC", "200")
PORT = int(os.environ.get("BENCH_SYNC_PORT", "5420"))
PREFIX = os.environ.get("BENCH_SYNC_PREFIX", "dh-bench-sync")
BASELINE = os.environ.get("BENCH_SYNC_BASELINE")
OUT = Path(os.environ.get("BENCH_OUT", HERE / "results"))
DATA = Path("/tmp") / PREFIX
PROJECT_PYTHON = os.environ.get("BENCH_PROJECT_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
PLAYBOOK = str(Path(PROJECT_PYTHON).parent / "ansible-playbook")
METHODS = ["image_sync", "module only", "skopeo sync"] + (["baseline"] if BASELINE else [])
PORTS = {"src": PORT, "image_sync": PORT + 1, "module only": PORT + 2, "skopeo sync": PORT + 3, "baseline": PORT + 4}
NAME = "bench"

# One access-log line of distribution (gorilla's combined format): "METHOD URI HTTP/x" STATUS.
ACCESS_RE = re.compile(r'"(GET|HEAD|PUT|POST|PATCH|DELETE) (\S+) HTTP/[0-9.]+" (\d{3}) ')
KINDS = ["ping", "catalog", "tags list", "manifest GET", "manifest HEAD", "manifest PUT", "blob HEAD", "blob GET", "mount",
         "upload POST", "upload PATCH", "upload PUT", "401", "other"]


def log(message: str) -> None:
    print("[bench-sync %s] %s" % (time.strftime("%H:%M:%S"), message), flush=True)


def sh(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, text=True, capture_output=True, **kwargs)


def container(role: str) -> str:
    return "%s-%s" % (PREFIX, role.replace(" ", "-").replace("_", "-"))


def start_registry(role: str) -> str:
    name = container(role)
    data = DATA / name
    sh("docker", "rm", "-f", name, check=False)
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    gogc = ["-e", "GOGC=%s" % GOGC] if GOGC not in ("", "0") else []
    sh("docker", "run", "-d", "--name", name, "-p", "127.0.0.1:%d:5000" % PORTS[role], "-v", "%s:/var/lib/registry" % data,
       *gogc, "registry:2")
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/v2/" % PORTS[role], timeout=2):
                return name
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def remove_registries() -> None:
    for role in PORTS:
        sh("docker", "rm", "-f", "-v", container(role), check=False)
    shutil.rmtree(DATA, ignore_errors=True)


# -- what a command cost: requests (access logs), CPU (rusage, cgroups) --------------------------------
def access_lines(name: str) -> list[tuple[str, str, int]]:
    done = sh("docker", "logs", name, check=False)
    return [(m.group(1), m.group(2), int(m.group(3))) for m in ACCESS_RE.finditer(done.stdout + "\n" + done.stderr)]


def kind(method: str, uri: str, status: int) -> str:
    if status == 401:
        return "401"
    path = uri.split("?", 1)[0]
    if path in ("/v2/", "/v2"):
        return "ping"
    if path.endswith("/tags/list"):
        return "tags list"
    if path == "/v2/_catalog":
        return "catalog"
    if "/manifests/" in path:
        return "manifest " + method if method in ("GET", "HEAD", "PUT") else "other"
    if "/blobs/uploads/" in path:
        if method == "POST":
            return "mount" if "mount=" in uri else "upload POST"
        return "upload " + method if method in ("PATCH", "PUT") else "other"
    if "/blobs/" in path and method in ("GET", "HEAD"):
        return "blob " + method
    return "other"


def count(lines: list[tuple[str, str, int]]) -> Counter:
    return Counter(kind(*line) for line in lines)


def cgroup_cpu(name: str):
    """A function giving the CPU seconds container ``name`` has used so far (cgroup v1 or v2)."""
    cid = sh("docker", "inspect", "-f", "{{.Id}}", name).stdout.strip()
    for path in ("/sys/fs/cgroup/cpuacct/docker/%s/cpuacct.usage" % cid, "/sys/fs/cgroup/system.slice/docker-%s.scope/cpu.stat" % cid,
                 "/sys/fs/cgroup/docker/%s/cpu.stat" % cid):
        if os.path.exists(path):
            if path.endswith("cpuacct.usage"):
                return lambda p=path: int(Path(p).read_text()) / 1e9
            return lambda p=path: int(Path(p).read_text().split("usage_usec", 1)[1].split()[0]) / 1e6
    return lambda: float("nan")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- the methods -------------------------------------------------------------------------------------
def env(code: Path = ROOT) -> dict[str, str]:
    values = dict(os.environ)
    values.update(
        ANSIBLE_CONFIG=str(code / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(code / "collections"),
        ANSIBLE_NOCOLOR="1",
        DH_BENCH_RSS_LOG=str(DATA / "rss.log"),
        DH_BENCH_PYTHON=PROJECT_PYTHON,
        PYTHONPATH=str(code / "collections"),
    )
    return values


def commands(method: str, layout: str, refs: list[str], work: Path) -> tuple[list[str], dict[str, str]]:
    src = "localhost:%d" % PORTS["src"]
    dest = "localhost:%d" % PORTS[method]
    args: dict = {"workers": WORKERS, "src_registry_scheme": "http", "dest_registry_scheme": "http"}
    if layout == "repos":
        args["images"] = [{"src": "%s/%s" % (src, ref), "dest": "%s/%s" % (dest, ref)} for ref in refs]
    else:
        args.update(src_repository="%s/%s" % (src, NAME + "/app"), dest_repository="%s/%s" % (dest, NAME + "/app"), tag_pattern=".*")
    if method == "image_sync":
        playbook = work / "sync.yml"
        playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False,
                                         "tasks": [{"dockhand.registry.image_sync": args}]}]))
        return [PLAYBOOK, "-i", str(HERE / "inventory.yml"), str(playbook), "-e",
                "ansible_python_interpreter=%s" % (HERE / "python-rss")], env()
    if method in ("module only", "baseline"):
        code = Path(BASELINE) if method == "baseline" else ROOT
        (work / "args.json").write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        return [str(HERE / "python-rss"), str(code / "plugins" / "modules" / "image_sync.py"), str(work / "args.json")], env(code)
    tls = ["--src-tls-verify=false", "--dest-tls-verify=false"]
    if layout == "repos":
        images: dict[str, list[str]] = {}
        for ref in refs:
            repository, tag = ref.rsplit(":", 1)
            images.setdefault(repository, []).append(tag)
        (work / "skopeo.yml").write_text(json.dumps({src: {"tls-verify": False, "images": images}}))
        return ["skopeo", "sync", "--src", "yaml", "--dest", "docker", *tls, str(work / "skopeo.yml"), dest], env()
    return ["skopeo", "sync", "--src", "docker", "--dest", "docker", *tls, "%s/%s/app" % (src, NAME), "%s/%s" % (dest, NAME)], env()


def timed(command: list[str], environment: dict[str, str], registries: list[str]) -> dict:
    """Run ``command``: wall seconds, its CPU, each registry's CPU, the requests each registry answered, peak RSS."""
    rss = DATA / "rss.log"
    rss.unlink(missing_ok=True)
    before_lines = {name: len(access_lines(name)) for name in registries}
    readers = {name: cgroup_cpu(name) for name in registries}
    reg_before = {name: read() for name, read in readers.items()}
    cpu_before = children_cpu()
    started = time.monotonic()
    done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    cpu = children_cpu() - cpu_before
    if done.returncode != 0:
        raise SystemExit("bench-sync: %s failed (rc %d):\n%s" % (command[0], done.returncode, (done.stdout + done.stderr)[-3000:]))
    time.sleep(0.3)  # the last access-log lines reach the engine's log
    requests: Counter = Counter()
    for name in registries:
        requests.update(count(access_lines(name)[before_lines[name]:]))
    peak = None
    if rss.exists():
        peaks = [int(line.split()[0]) for line in rss.read_text().splitlines() if line.strip()]
        peak = max(peaks) if peaks else None
    return {"seconds": round(elapsed, 3), "cpu": round(cpu, 3), "requests": dict(requests), "rss_kib": peak,
            "registry_cpu": {("src" if i == 0 else "dest"): round(readers[n]() - reg_before[n], 3) for i, n in enumerate(registries)}}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    DATA.mkdir(parents=True, exist_ok=True)
    work = DATA / "work"
    cells: list[dict] = []
    load = [("start", os.getloadavg())]
    started = time.time()
    try:
        for rep in range(1, RUNS + 1):
            for layout in LAYOUTS:
                for n in SIZES:
                    shutil.rmtree(work, ignore_errors=True)
                    work.mkdir(parents=True)
                    src = start_registry("src")
                    marker = uuid.uuid4().hex[:8]
                    refs = sh(PROJECT_PYTHON, str(ROOT / "tests" / "support" / "registry_api.py"), "family",
                              "localhost:%d" % PORTS["src"], NAME if layout == "repos" else NAME + "/app", str(n), layout,
                              marker).stdout.split()
                    order = METHODS[rep % len(METHODS):] + METHODS[: rep % len(METHODS)]
                    for method in order:
                        dest = start_registry(method)
                        command, environment = commands(method, layout, refs, work)
                        first = timed(command, environment, [src, dest])
                        again = timed(command, environment, [src, dest])
                        cells.append({"method": method, "layout": layout, "n": n, "rep": rep, "first": first, "rerun": again,
                                      "load": os.getloadavg()})
                        log("%-11s %-5s N=%-3d rep %d: first %.2f s (%d requests), re-run %.2f s (%d requests)" % (
                            method, layout, n, rep, first["seconds"], sum(first["requests"].values()), again["seconds"],
                            sum(again["requests"].values())))
                        sh("docker", "rm", "-f", "-v", dest, check=False)
            load.append(("round %d" % rep, os.getloadavg()))
    finally:
        remove_registries()
    summary = summarise(cells)
    summary.update(load=load, elapsed_seconds=round(time.time() - started), workers=WORKERS, gogc=GOGC,
                   skopeo=sh("skopeo", "--version").stdout.strip(), cpus=os.cpu_count())
    (OUT / "sync-summary.json").write_text(json.dumps({"summary": summary, "cells": cells}, indent=1))
    text = report(summary)
    (OUT / "sync-report.md").write_text(text)
    plot(summary, OUT / "benchmarks-sync.png")
    print(text)


def summarise(cells: list[dict]) -> dict:
    table: dict = {}
    for method in METHODS:
        for layout in LAYOUTS:
            for n in SIZES:
                mine = [c for c in cells if c["method"] == method and c["layout"] == layout and c["n"] == n]
                if not mine:
                    continue
                cell: dict = {"runs": len(mine)}
                for phase in ("first", "rerun"):
                    runs = [c[phase] for c in mine]
                    cell[phase] = round(statistics.median(r["seconds"] for r in runs), 2)
                    cell[phase + "_all"] = [r["seconds"] for r in runs]
                    cell[phase + "_cpu"] = round(statistics.median(r["cpu"] for r in runs), 2)
                    cell[phase + "_src_cpu"] = round(statistics.median(r["registry_cpu"]["src"] for r in runs), 2)
                    cell[phase + "_dest_cpu"] = round(statistics.median(r["registry_cpu"]["dest"] for r in runs), 2)
                    # Request counts are the same every run (the median guards against a retried request).
                    cell[phase + "_requests"] = {k: statistics.median(r["requests"].get(k, 0) for r in runs) for k in KINDS}
                # Each round's ratio to skopeo sync's run of the same round (the two ran minutes apart at most: under a
                # changing load, more telling than the ratio of the medians).
                theirs = {c["rep"]: c for c in cells if c["method"] == "skopeo sync" and c["layout"] == layout and c["n"] == n}
                pairs = [(c, theirs[c["rep"]]) for c in mine if c["rep"] in theirs]
                if pairs:
                    cell["first_ratio"] = round(statistics.median(s["first"]["seconds"] / c["first"]["seconds"] for c, s in pairs), 2)
                    cell["rerun_ratio"] = round(statistics.median(c["rerun"]["seconds"] / s["rerun"]["seconds"] for c, s in pairs), 2)
                rss = [r["rss_kib"] for c in mine for r in (c["first"], c["rerun"]) if r["rss_kib"]]
                cell["rss_mib"] = round(max(rss) / 1024, 1) if rss else None
                table.setdefault(method, {}).setdefault(layout, {})[str(n)] = cell
    return {"table": table}


def report(summary: dict) -> str:
    table = summary["table"]
    methods = [m for m in ("image_sync", "module only", "skopeo sync", "baseline") if m in table]  # also for --report
    lines = ["| layout | N | method | first copy (s) | re-run (s) | first: skopeo's time / this (rounds) |"
             " re-run: this / skopeo's (rounds) |"
             " command CPU per tag (ms), first / re-run | registries' CPU per tag (ms), first: source / destination |"
             " peak RSS (MiB) |",
             "|---|---:|---|---:|---:|---:|---:|---|---|---:|"]
    for layout in LAYOUTS:
        for n in SIZES:
            skopeo = table.get("skopeo sync", {}).get(layout, {}).get(str(n))
            for method in methods:
                cell = table.get(method, {}).get(layout, {}).get(str(n))
                if not cell:
                    continue
                first_ratio = "%.2f (%s)" % (skopeo["first"] / cell["first"], cell.get("first_ratio", "-")) if skopeo else "-"
                rerun_ratio = "%.2f (%s)" % (cell["rerun"] / skopeo["rerun"], cell.get("rerun_ratio", "-")) if skopeo else "-"
                lines.append("| %s | %d | %s | %.2f | %.2f | %s | %s | %.1f / %.1f | %.1f / %.1f | %s |" % (
                    layout, n, method, cell["first"], cell["rerun"], first_ratio, rerun_ratio,
                    1000 * cell["first_cpu"] / n, 1000 * cell["rerun_cpu"] / n,
                    1000 * cell["first_src_cpu"] / n, 1000 * cell["first_dest_cpu"] / n, cell["rss_mib"] or "-"))
    lines += ["", "Requests per tag (both registries), first copy / re-run:", ""]
    for layout in LAYOUTS:
        n = max(SIZES)
        header = "| %s, N=%d | %s |" % (layout, n, " | ".join(m for m in methods if table.get(m, {}).get(layout, {}).get(str(n))))
        present = [m for m in methods if table.get(m, {}).get(layout, {}).get(str(n))]
        lines += [header, "|---|" + "---:|" * len(present)]
        for k in [*KINDS, "total"]:
            row = []
            for method in present:
                cell = table[method][layout][str(n)]
                first = sum(cell["first_requests"].values()) if k == "total" else cell["first_requests"].get(k, 0)
                again = sum(cell["rerun_requests"].values()) if k == "total" else cell["rerun_requests"].get(k, 0)
                row.append("%.2f / %.2f" % (first / n, again / n) if first or again else "-")
            if k == "total" or any(r != "-" for r in row):
                lines.append("| %s | %s |" % ("**total**" if k == "total" else k, " | ".join(row)))
        lines.append("")
    loads = ["%s %s" % (label, ", ".join("%.1f" % v for v in values)) for label, values in summary.get("load", [])]
    lines.append("load averages (1, 5, 15 min): %s" % "; ".join(loads))
    lines.append("%s; workers %d; registries with GOGC=%s; %s cores; %d s in all" % (
        summary.get("skopeo"), summary.get("workers", 0), summary.get("gogc"), summary.get("cpus"), summary.get("elapsed_seconds", 0)))
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        log("no matplotlib: no plot")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, all_axes = plt.subplots(1, len(LAYOUTS), figsize=(6 * len(LAYOUTS), 4.2), squeeze=False)
    colours = {"image_sync": "tab:blue", "module only": "tab:cyan", "skopeo sync": "tab:red", "baseline": "tab:grey"}
    for axes, layout in zip(all_axes[0], LAYOUTS):
        for method, layouts in summary["table"].items():
            cells = layouts.get(layout, {})
            sizes = sorted(int(n) for n in cells)
            axes.plot(sizes, [cells[str(n)]["first"] for n in sizes], "-o", color=colours[method], label="%s, first copy" % method)
            axes.plot(sizes, [cells[str(n)]["rerun"] for n in sizes], "--s", color=colours[method], label="%s, re-run" % method)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("images (N), layout %s" % layout)
        axes.set_ylabel("seconds (whole command)")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=7)
    figure.suptitle("registry to registry: image_sync vs skopeo sync")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    if sys.argv[1:] == ["--report"]:
        data = json.loads((OUT / "sync-summary.json").read_text())
        print(report(data["summary"]))
        plot(data["summary"], OUT / "benchmarks-sync.png")
    else:
        main()
