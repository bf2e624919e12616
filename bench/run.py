# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The publishing benchmark behind ``make bench`` (started by scripts/bench).

For each repetition: load N_max fresh images FROM scratch (one ``docker load``), then
for each N and each method, in a rotating order, start a fresh registry container on
a fresh data directory and time, as wall-clock of the whole command:

* ``dockhand``  - ``ansible-playbook`` running this collection's ``publish`` role:
  first push, then the idempotent re-run;
* ``community`` - ``ansible-playbook`` looping community.docker's ``docker_image_tag``
  and ``docker_image_push`` over the images (the same two runs);
* ``docker``    - a shell loop of ``docker tag`` + ``docker push`` (the same two runs);
* ``floor``     - ``ansible-playbook`` running one ``meta: noop`` task, and ``floor+module``
  one ``ansible.builtin.ping`` task (the cost of one module process).

Every module process runs under ``/usr/bin/time`` (through the interpreter wrapper
``bench/python-rss``), which logs its peak resident set size (ru_maxrss): that is the
memory figure reported, per module.

Environment: BENCH_SIZES (default "20 200"), BENCH_RUNS (3), BENCH_WORKERS (unset:
the role's default), BENCH_COMMUNITY_LARGE_RUNS (BENCH_RUNS: runs of the community.docker loop
at N >= 100), BENCH_OUT (bench/results), BENCH_PORT (5410: ports BENCH_PORT..+2).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import images

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.runner import recaps  # noqa: E402  # one PLAY RECAP parser for tests and benchmarks

PREFIX = "dh-bench"
DATA = Path("/tmp/dh-bench")
SIZES = [int(n) for n in os.environ.get("BENCH_SIZES", "20 200").split()]
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
WORKERS = os.environ.get("BENCH_WORKERS")
# Runs of the (slow) community.docker loop at N >= 100: each takes minutes (default: BENCH_RUNS).
COMMUNITY_LARGE_RUNS = int(os.environ.get("BENCH_COMMUNITY_LARGE_RUNS", str(RUNS)))
OUT = Path(os.environ.get("BENCH_OUT", HERE / "results"))
PORT = int(os.environ.get("BENCH_PORT", "5410"))
METHODS = ["dockhand", "community", "docker"]
PORTS = {method: PORT + index for index, method in enumerate(METHODS)}
PROJECT_PYTHON = os.environ.get("BENCH_PROJECT_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
PLAYBOOK = str(Path(PROJECT_PYTHON).parent / "ansible-playbook")
COMMUNITY = Path(sys.prefix) / "lib" / ("python%d.%d" % sys.version_info[:2]) / "site-packages"
RSS_LOG = DATA / "rss.log"


def log(message: str) -> None:
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), message), flush=True)


def sh(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, text=True, capture_output=True, **kwargs)


# -- fixtures ------------------------------------------------------------------------
def start_registry(method: str, tag: str) -> None:
    name = "%s-reg-%s" % (PREFIX, method)
    data = DATA / ("reg-" + tag)
    sh("docker", "rm", "-f", name, check=False)
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    sh(
        "docker", "run", "-d", "--name", name, "-p", "127.0.0.1:%d:5000" % PORTS[method],
        "-v", "%s:/var/lib/registry" % data, "registry:2",
    )
    import urllib.request

    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/v2/" % PORTS[method], timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("registry %s did not answer" % name)
        time.sleep(0.1)


def stop_registry(method: str, tag: str) -> None:
    sh("docker", "rm", "-f", "%s-reg-%s" % (PREFIX, method), check=False)
    shutil.rmtree(DATA / ("reg-" + tag), ignore_errors=True)


def remove_images() -> None:
    """Remove every image (every tag) whose name holds this benchmark's prefix."""
    listing = sh("docker", "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    mine = [name for name in listing if "/%s-" % PREFIX in name or name.startswith(PREFIX + "-")]
    for start in range(0, len(mine), 100):
        sh("docker", "rmi", "-f", *mine[start : start + 100], check=False)


# -- the measured commands -------------------------------------------------------------
def ansible_env(community: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT / "collections")] + ([str(COMMUNITY)] if community else [])
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=":".join(paths),
        ANSIBLE_INVENTORY=str(HERE / "inventory.yml"),
        ANSIBLE_LOCAL_TEMP=str(DATA / "ansible-local"),
        ANSIBLE_REMOTE_TMP=str(DATA / "ansible-remote"),
        ANSIBLE_PYTHON_INTERPRETER=str(HERE / "python-rss"),
        DH_BENCH_PYTHON=PROJECT_PYTHON,
        DH_BENCH_RSS_LOG=str(RSS_LOG),
        PATH=str(Path(PROJECT_PYTHON).parent) + os.pathsep + env["PATH"],
    )
    return env


def timed(label: str, command: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``command``; its wall-clock seconds, the changed count, and module peak RSS."""
    RSS_LOG.write_text("")
    started = time.perf_counter()
    done = subprocess.run(command, env=env, text=True, capture_output=True, check=False)
    seconds = time.perf_counter() - started
    (OUT / "logs").mkdir(parents=True, exist_ok=True)
    (OUT / "logs" / (label + ".log")).write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit("%s failed (exit %d), see %s" % (label, done.returncode, OUT / "logs" / (label + ".log")))
    changed = recaps(done.stdout).get("localhost", {}).get("changed")
    rss: dict[str, int] = {}
    for line in RSS_LOG.read_text().splitlines():
        kbytes, _sep, cmd = line.partition(" ")
        module = next((part.rsplit("AnsiballZ_", 1)[1][:-3] for part in cmd.split() if "AnsiballZ_" in part), "?")
        rss[module] = max(rss.get(module, 0), int(kbytes))
    log("%-34s %7.2f s  changed=%s  module peak RSS %s" % (label, seconds, changed, rss or "-"))
    return {"seconds": seconds, "changed": changed, "rss_kb": rss}


def write_playbooks(work: Path, names: list[str]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    (work / "noop.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: Nothing\n      ansible.builtin.meta: noop\n"
    )
    (work / "ping.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: One module run\n      ansible.builtin.ping:\n"
    )
    (work / "dockhand.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: dockhand.registry.publish\n"
    )
    (work / "community.yml").write_text(
        """- hosts: localhost
  gather_facts: false
  tasks:
    - name: Tag the images for the registry
      community.docker.docker_image_tag:
        name: "{{ item }}"
        tag: "1"
        repository: ["{{ bench_registry }}/{{ item }}:1"]
      loop: "{{ bench_images }}"
    - name: Push the images
      community.docker.docker_image_push:
        name: "{{ bench_registry }}/{{ item }}"
        tag: "1"
      loop: "{{ bench_images }}"
"""
    )
    (work / "docker.sh").write_text(
        "#!/bin/sh\nset -e\nregistry=$1; shift\nfor name; do\n"
        '  docker tag "$name:1" "$registry/$name:1"\n  docker push -q "$registry/$name:1" >/dev/null\ndone\n'
    )


def run_method(method: str, n: int, rep: int, work: Path, names: list[str]) -> dict:
    tag = "%s-%d-%d" % (method, n, rep)
    registry = "localhost:%d" % PORTS[method]
    subset = names[:n]
    if method == "dockhand":
        extra = {
            "publish_registry": registry,
            "publish_builds": [],
            "publish_images": [{"name": name, "tag": "1"} for name in subset],
        }
        if WORKERS:
            extra["publish_workers"] = int(WORKERS)
        command = [PLAYBOOK, str(work / "dockhand.yml"), "-e", "@" + str(work / ("vars-%d.json" % n))]
        (work / ("vars-%d.json" % n)).write_text(json.dumps(extra))
        env = ansible_env()
    elif method == "community":
        (work / ("cvars-%d.json" % n)).write_text(json.dumps({"bench_registry": registry, "bench_images": subset}))
        command = [PLAYBOOK, str(work / "community.yml"), "-e", "@" + str(work / ("cvars-%d.json" % n))]
        env = ansible_env(community=True)
    else:
        command = ["sh", str(work / "docker.sh"), registry, *subset]
        env = None
    start_registry(method, tag)
    try:
        first = timed("%s-N%d-first-r%d" % (method, n, rep), command, env)
        again = timed("%s-N%d-rerun-r%d" % (method, n, rep), command, env)
    finally:
        stop_registry(method, tag)
    return {"first": first, "rerun": again}


# -- report ----------------------------------------------------------------------------
def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    engine = sh("docker", "version", "--format", "{{.Server.Version}}", check=False).stdout.strip()
    core = sh(PLAYBOOK, "--version", check=False).stdout.splitlines()[0]
    return {
        "cpu": "%s, %d cores" % (cpu, os.cpu_count() or 0),
        "memory": "%.1f GiB" % (int(mem) / 1048576),
        "os": "%s %s" % (platform.system(), platform.release()),
        "python": platform.python_version(),
        "ansible": core,
        "engine": "Docker Engine %s" % engine,
        "community.docker": json.loads((COMMUNITY / "ansible_collections/community/docker/MANIFEST.json").read_text())[
            "collection_info"
        ]["version"],
    }


def summarise(raw: dict, info: dict) -> dict:
    figures: dict[str, dict] = {}
    for key in ("floor", "floor+module"):
        figures[key] = {"seconds": median([r["seconds"] for r in raw[key]]), "runs": len(raw[key])}
    for method in METHODS:
        for n in SIZES:
            for phase in ("first", "rerun"):
                runs = [r[phase] for r in raw["cells"] if r["method"] == method and r["n"] == n]
                rss = [max(r["rss_kb"].values()) for r in runs if r["rss_kb"]]
                figures["%s/%d/%s" % (method, n, phase)] = {
                    "seconds": median([r["seconds"] for r in runs]),
                    "all": [round(r["seconds"], 2) for r in runs],
                    "changed": [r["changed"] for r in runs],
                    "rss_kb": max(rss) if rss else None,
                    "rss_by_module": {k: max(r["rss_kb"].get(k, 0) for r in runs) for r in runs for k in r["rss_kb"]},
                    "runs": len(runs),
                }
    return {"machine": info, "figures": figures}


def report(summary: dict) -> str:
    f = summary["figures"]
    floor, floor1 = f["floor"]["seconds"], f["floor+module"]["seconds"]
    lines = [
        "| N | method | runs | first push (s) | idempotent re-run (s) | re-run: faster than community.docker"
        " | re-run / floor | module peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in SIZES:
        cd = f["community/%d/rerun" % n]["seconds"]
        cd_first = f["community/%d/first" % n]["seconds"]
        for method in METHODS:
            first, rerun = f["%s/%d/first" % (method, n)], f["%s/%d/rerun" % (method, n)]
            rss = first["rss_kb"] or rerun["rss_kb"]
            lines.append(
                "| %d | %s | %d | %.2f (%.1fx faster) | %.2f | %.1fx | %.1fx |  %s |"
                % (
                    n,
                    method,
                    first["runs"],
                    first["seconds"],
                    cd_first / first["seconds"],
                    rerun["seconds"],
                    cd / rerun["seconds"],
                    rerun["seconds"] / floor,
                    "%.0f" % (max(first["rss_kb"] or 0, rerun["rss_kb"] or 0) / 1024) if rss else "-",
                )
            )
    lines.append("")
    lines.append("floor (ansible-playbook, one `meta: noop` task): %.2f s; floor + one module run (one"
                 " `ansible.builtin.ping` task): %.2f s" % (floor, floor1))
    lines.append("")
    targets = []
    if 20 in SIZES:
        ours, cd = f["dockhand/20/rerun"]["seconds"], f["community/20/rerun"]["seconds"]
        targets.append(("N=20 re-run >= 8x faster than community.docker", "%.1fx" % (cd / ours), cd / ours >= 8))
        targets.append(
            ("N=20 re-run <= 1.5 x (floor + one module run)", "%.2fx" % (ours / floor1), ours <= 1.5 * floor1)
        )
        ours, cd = f["dockhand/20/first"]["seconds"], f["community/20/first"]["seconds"]
        targets.append(("N=20 first push >= 3x faster than community.docker", "%.1fx" % (cd / ours), cd / ours >= 3))
    if 200 in SIZES:
        ours = f["dockhand/200/rerun"]["seconds"]
        targets.append(("N=200 re-run < 4 s", "%.2f s" % ours, ours < 4))
    lines += ["| target | measured | met |", "|---|---|---|"]
    lines += ["| %s | %s | %s |" % (name, value, "met" if ok else "NOT met") for name, value, ok in targets]
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    f = summary["figures"]
    figure, axes = plt.subplots(figsize=(8, 5))
    styles = {"dockhand": "tab:blue", "community": "tab:red", "docker": "tab:green"}
    labels = {"dockhand": "dockhand.registry publish role", "community": "community.docker tag+push loop",
              "docker": "docker tag+push shell loop"}
    for method in METHODS:
        for phase, style in (("first", "-o"), ("rerun", "--s")):
            axes.plot(SIZES, [f["%s/%d/%s" % (method, n, phase)]["seconds"] for n in SIZES], style,
                      color=styles[method], label="%s, %s" % (labels[method], "first push" if phase == "first"
                                                              else "idempotent re-run"))
    axes.axhline(f["floor"]["seconds"], color="grey", linestyle=":", label="floor: ansible-playbook, one no-op task")
    axes.axhline(f["floor+module"]["seconds"], color="black", linestyle=":", label="floor + one module run")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(SIZES)
    axes.set_xticklabels([str(n) for n in SIZES])
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.set_xlabel("images published (N)")
    axes.set_ylabel("wall-clock seconds (median of %d runs)" % RUNS)
    axes.set_title("Publishing N small images to a local registry")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    if not shutil.which("docker"):
        raise SystemExit("bench: no docker client")
    OUT.mkdir(parents=True, exist_ok=True)
    DATA.mkdir(parents=True, exist_ok=True)
    for tmp in ("ansible-local", "ansible-remote"):
        (DATA / tmp).mkdir(exist_ok=True)
    work = DATA / "work"
    raw: dict = {"floor": [], "floor+module": [], "cells": [], "load": []}
    started = time.time()
    raw["load"].append(("start", os.getloadavg()))
    large = [n for n in SIZES if n >= 100]

    def save() -> None:
        raw["elapsed"] = time.time() - started
        (OUT / "raw.json").write_text(json.dumps(raw, indent=1))

    def fresh_images(label: str, rep: int, count: int) -> list[str]:
        nonce = "%s-%s" % (uuid.uuid4().hex[:8], label)
        names = ["%s-%s-i%03d" % (PREFIX, label, index) for index in range(count)]
        write_playbooks(work, names)
        log("%s: loading %d fresh images" % (label, len(names)))
        images.load([name + ":1" for name in names], nonce)
        return names

    try:
        for rep in range(1, RUNS + 1):
            names = fresh_images("r%d" % rep, rep, max(SIZES))
            raw["floor"].append(timed("floor-r%d" % rep, [PLAYBOOK, str(work / "noop.yml")], ansible_env()))
            raw["floor+module"].append(
                timed("floor+module-r%d" % rep, [PLAYBOOK, str(work / "ping.yml")], ansible_env())
            )
            order = METHODS[rep % len(METHODS) :] + METHODS[: rep % len(METHODS)]
            for n in SIZES:
                for method in order:
                    if method == "community" and n in large:
                        continue  # measured last, below: it takes minutes
                    cell = run_method(method, n, rep, work, names)
                    raw["cells"].append({"method": method, "n": n, "rep": rep, **cell})
                    save()
            raw["load"].append(("rep %d" % rep, os.getloadavg()))
            remove_images()
        for rep in range(1, COMMUNITY_LARGE_RUNS + 1):
            for n in large:
                names = fresh_images("c%d" % rep, rep, n)
                cell = run_method("community", n, rep, work, names)
                raw["cells"].append({"method": "community", "n": n, "rep": rep, **cell})
                save()
                remove_images()
            raw["load"].append(("community large %d" % rep, os.getloadavg()))
    finally:
        for method in METHODS:
            sh("docker", "rm", "-f", "%s-reg-%s" % (PREFIX, method), check=False)
        remove_images()
        save()
    finish(raw)


def finish(raw: dict) -> None:
    summary = summarise(raw, machine())
    summary["load"] = raw["load"]
    summary["elapsed_seconds"] = round(raw.get("elapsed", 0))
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1))
    text = report(summary)
    (OUT / "report.md").write_text(text)
    plot(summary, OUT / "benchmarks.png")
    print(text)
    log("done in %.0f s; load averages %s; results in %s" % (raw.get("elapsed", 0), raw["load"], OUT))


if __name__ == "__main__":
    if sys.argv[1:] == ["--report"]:  # the report again, from BENCH_OUT/raw.json (also after an interrupted run)
        finish(json.loads((OUT / "raw.json").read_text()))
    else:
        main()
