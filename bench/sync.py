# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry-to-registry benchmark (part of ``make bench``, after bench/run.py): image_sync vs skopeo sync.

For each repetition and each N: a fresh source registry gets N small tags (one own layer each, built through the
registry API by tests/support/registry_api.py), then each method copies them all into its own fresh, empty
destination registry (first copy), and runs again (re-run: nothing to copy). Timed as wall-clock of the whole
command:

* ``image_sync``  - ``ansible-playbook`` running one ``dockhand.registry.image_sync`` task (``tag_pattern: .*``);
* ``module only`` - the same module run alone (``python plugins/modules/image_sync.py args.json``), without the
  ``ansible-playbook`` start-up: the module's own time;
* ``skopeo sync`` - ``skopeo sync --src docker --dest docker`` (Debian's skopeo), repository to registry.

The module's peak RSS comes from the interpreter wrapper bench/python-rss (as in bench/run.py).

Environment: BENCH_SIZES ("20 200"), BENCH_SYNC_RUNS (3), BENCH_SYNC_WORKERS (8), BENCH_SYNC_PORT (5420: ports
..+3), BENCH_SYNC_PREFIX (dh-bench-sync), BENCH_OUT (bench/results), BENCH_PROJECT_PYTHON.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIZES = [int(n) for n in os.environ.get("BENCH_SIZES", "20 200").split()]
RUNS = int(os.environ.get("BENCH_SYNC_RUNS", "3"))
WORKERS = int(os.environ.get("BENCH_SYNC_WORKERS", "8"))
PORT = int(os.environ.get("BENCH_SYNC_PORT", "5420"))
PREFIX = os.environ.get("BENCH_SYNC_PREFIX", "dh-bench-sync")
OUT = Path(os.environ.get("BENCH_OUT", HERE / "results"))
DATA = Path("/tmp") / PREFIX
PROJECT_PYTHON = os.environ.get("BENCH_PROJECT_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
PLAYBOOK = str(Path(PROJECT_PYTHON).parent / "ansible-playbook")
METHODS = ["image_sync", "module only", "skopeo sync"]
PORTS = {"src": PORT, "image_sync": PORT + 1, "module only": PORT + 2, "skopeo sync": PORT + 3}
REPO = "bench/app"


def log(message: str) -> None:
    print("[bench-sync %s] %s" % (time.strftime("%H:%M:%S"), message), flush=True)


def sh(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, text=True, capture_output=True, **kwargs)


def start_registry(role: str) -> str:
    name = "%s-%s" % (PREFIX, role.replace(" ", "-").replace("_", "-"))
    data = DATA / name
    sh("docker", "rm", "-f", name, check=False)
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    sh("docker", "run", "-d", "--name", name, "-p", "127.0.0.1:%d:5000" % PORTS[role], "-v", "%s:/var/lib/registry" % data, "registry:2")
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
        sh("docker", "rm", "-f", "-v", "%s-%s" % (PREFIX, role.replace(" ", "-").replace("_", "-")), check=False)
    shutil.rmtree(DATA, ignore_errors=True)


def env() -> dict[str, str]:
    values = dict(os.environ)
    values.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"),
        ANSIBLE_NOCOLOR="1",
        DH_BENCH_RSS_LOG=str(DATA / "rss.log"),
        DH_BENCH_PYTHON=PROJECT_PYTHON,
        PYTHONPATH=str(ROOT / "collections"),
    )
    return values


def commands(method: str, work: Path) -> list[str]:
    src = "localhost:%d/%s" % (PORTS["src"], REPO)
    dest = "localhost:%d" % PORTS[method]
    args = {"src_repository": src, "dest_repository": "%s/%s" % (dest, REPO), "tag_pattern": ".*", "workers": WORKERS,
            "src_registry_scheme": "http", "dest_registry_scheme": "http"}
    if method == "image_sync":
        playbook = work / "sync.yml"
        playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False,
                                         "tasks": [{"dockhand.registry.image_sync": args}]}]))
        return [PLAYBOOK, "-i", str(HERE / "inventory.yml"), str(playbook), "-e",
                "ansible_python_interpreter=%s" % (HERE / "python-rss")]
    if method == "module only":
        (work / "args.json").write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        return [str(HERE / "python-rss"), str(ROOT / "plugins" / "modules" / "image_sync.py"), str(work / "args.json")]
    return ["skopeo", "sync", "--src", "docker", "--dest", "docker", "--src-tls-verify=false", "--dest-tls-verify=false",
            src, "%s/bench" % dest]


def timed(command: list[str]) -> tuple[float, int | None]:
    rss = DATA / "rss.log"
    rss.unlink(missing_ok=True)
    started = time.monotonic()
    done = subprocess.run(command, env=env(), capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit("bench-sync: %s failed (rc %d):\n%s" % (command[0], done.returncode, (done.stdout + done.stderr)[-3000:]))
    peak = None
    if rss.exists():
        peaks = [int(line.split()[0]) for line in rss.read_text().splitlines() if line.strip()]
        peak = max(peaks) if peaks else None
    return elapsed, peak


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    DATA.mkdir(parents=True, exist_ok=True)
    work = DATA / "work"
    cells: list[dict] = []
    load = [("start", os.getloadavg())]
    started = time.time()
    try:
        for rep in range(1, RUNS + 1):
            for n in SIZES:
                shutil.rmtree(work, ignore_errors=True)
                work.mkdir(parents=True)
                start_registry("src")
                marker = uuid.uuid4().hex[:8]
                sh(PROJECT_PYTHON, str(ROOT / "tests" / "support" / "registry_api.py"), "images",
                   "localhost:%d" % PORTS["src"], REPO, str(n), marker)
                order = METHODS[rep % len(METHODS):] + METHODS[: rep % len(METHODS)]
                for method in order:
                    start_registry(method)
                    first, first_rss = timed(commands(method, work))
                    again, again_rss = timed(commands(method, work))
                    cell = {"method": method, "n": n, "rep": rep, "first": round(first, 3), "rerun": round(again, 3),
                            "rss_kib": max([r for r in (first_rss, again_rss) if r] or [0]) or None, "load": os.getloadavg()}
                    log("%s N=%d rep %d: first %.2f s, re-run %.2f s" % (method, n, rep, first, again))
                    cells.append(cell)
            load.append(("rep %d" % rep, os.getloadavg()))
    finally:
        remove_registries()
    summary = summarise(cells)
    summary.update(load=load, elapsed_seconds=round(time.time() - started), workers=WORKERS,
                   skopeo=sh("skopeo", "--version").stdout.strip())
    (OUT / "sync-summary.json").write_text(json.dumps({"summary": summary, "cells": cells}, indent=1))
    text = report(summary)
    (OUT / "sync-report.md").write_text(text)
    plot(summary, OUT / "benchmarks-sync.png")
    print(text)


def summarise(cells: list[dict]) -> dict:
    table: dict = {}
    for method in METHODS:
        for n in SIZES:
            mine = [c for c in cells if c["method"] == method and c["n"] == n]
            if mine:
                table.setdefault(method, {})[str(n)] = {
                    "first": round(statistics.median(c["first"] for c in mine), 2),
                    "rerun": round(statistics.median(c["rerun"] for c in mine), 2),
                    "rss_mib": round(max(c["rss_kib"] or 0 for c in mine) / 1024, 1) or None,
                    "runs": len(mine),
                }
    return {"table": table}


def report(summary: dict) -> str:
    table = summary["table"]
    lines = ["| method | N | first copy (s) | re-run (s) | module peak RSS (MiB) | runs |", "|---|---:|---:|---:|---:|---:|"]
    for method in METHODS:
        for n in SIZES:
            cell = table.get(method, {}).get(str(n))
            if cell:
                lines.append("| %s | %d | %.2f | %.2f | %s | %d |" % (method, n, cell["first"], cell["rerun"], cell["rss_mib"] or "-", cell["runs"]))
    skopeo = table.get("skopeo sync", {})
    ours = table.get("image_sync", {})
    for n in SIZES:
        if str(n) in skopeo and str(n) in ours:
            lines.append("")
            lines.append("N=%d: first copy, skopeo sync's time / image_sync's = %.2f (target at N=200: >= 2.5); "
                         "re-run, image_sync's time / skopeo sync's = %.2f (target at N=200: <= 1)" % (
                             n, skopeo[str(n)]["first"] / ours[str(n)]["first"], ours[str(n)]["rerun"] / skopeo[str(n)]["rerun"]))
    lines.append("")
    lines.append("load averages: %s; %s; workers %d" % (summary.get("load"), summary.get("skopeo"), summary.get("workers", 0)))
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        log("no matplotlib: no plot")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    colours = {"image_sync": "tab:blue", "module only": "tab:cyan", "skopeo sync": "tab:red"}
    for method, cells in summary["table"].items():
        sizes = sorted(int(n) for n in cells)
        axes.plot(sizes, [cells[str(n)]["first"] for n in sizes], "-o", color=colours[method], label="%s, first copy" % method)
        axes.plot(sizes, [cells[str(n)]["rerun"] for n in sizes], "--s", color=colours[method], label="%s, re-run" % method)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("tags (N)")
    axes.set_ylabel("seconds (whole command)")
    axes.set_title("registry to registry: image_sync vs skopeo sync")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    if sys.argv[1:] == ["--report"]:
        data = json.loads((OUT / "sync-summary.json").read_text())
        print(report(data["summary"]))
        plot(data["summary"], OUT / "benchmarks-sync.png")
    else:
        main()
