"""Pull loops that prove "no pull fails" with a plain ``docker pull`` that downloads its layers every time.

Each loop pulls one image by digest, then removes it (by image ID: every tag and digest of it, and so its layers),
so the next pull downloads every layer again instead of finding them on the machine. Every pull is recorded with its
start and end (wall clock), its exit code, the layers it downloaded ("Pull complete") and the retries the engine did
on its own ("Retrying in N seconds": dockerd retries a layer whose connection dropped; that is a dropped connection,
reported as a failure, never hidden). The switches the loops must survive are read afterwards from the engine's event
stream (``docker events``: a container's kill/die/stop until the next start of a container of that name), and every
switch must be overlapped by at least one pull.

    python tests/support/pulls.py run --stop-file F [--container NAME] [--max-seconds S] <repo@digest>...
        runs one loop per reference until F exists (or S seconds), prints the summary as JSON (see ``summary``).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

RETRY = re.compile(r"Retrying in \d+ seconds?")


@dataclass
class Pull:
    loop: int
    reference: str
    start: float
    end: float
    rc: int
    downloaded: int  # layers downloaded and extracted ("Pull complete")
    present: int  # layers found on the machine ("Already exists"): this pull did not download them
    retries: int  # "Retrying in" lines: a layer download the engine had to start again
    tail: str

    @property
    def failed(self) -> bool:
        return self.rc != 0 or self.retries > 0

    def overlaps(self, down: float, up: float) -> bool:
        return self.start <= up and self.end >= down


def _docker(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def forget(reference: str) -> None:
    """Remove the image ``reference`` names from the engine, every tag and digest of it (so its layers go too)."""
    found = _docker("image", "inspect", "-f", "{{.Id}}", reference)
    if found.returncode == 0:
        _docker("rmi", "-f", found.stdout.strip())


def pull_once(loop: int, reference: str) -> Pull:
    started = time.time()
    done = _docker("pull", reference)
    ended = time.time()
    output = done.stdout + done.stderr
    return Pull(
        loop=loop, reference=reference, start=started, end=ended, rc=done.returncode,
        downloaded=output.count(": Pull complete"), present=output.count(": Already exists"),
        retries=len(RETRY.findall(output)), tail=output.strip()[-300:],
    )  # fmt: skip


@dataclass
class PullLoops:
    """One loop per reference (``repo@digest``), each pulling and removing its image until ``stop`` is set, or for
    ``max_seconds`` at most."""

    references: list[str]
    max_seconds: float = 120.0
    pulls: list[Pull] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    started: float = 0.0
    ended: float = 0.0
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self, loop: int, reference: str) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self.stop.is_set() and time.monotonic() < deadline:
            pull = pull_once(loop, reference)
            with self._lock:
                self.pulls.append(pull)
            forget(reference)

    def start(self) -> PullLoops:
        for reference in self.references:
            forget(reference)
        self.started = time.time()
        self._threads = [threading.Thread(target=self._run, args=(n, ref), daemon=True) for n, ref in enumerate(self.references)]
        for thread in self._threads:
            thread.start()
        return self

    def finish(self) -> PullLoops:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=self.max_seconds + 120)
        self.ended = time.time()
        return self

    def summary(self, container: str | None = None) -> dict:
        """The loops' figures: pulls, failed (non-zero exit or engine retries), retries, pulls that downloaded no
        layer, and with ``container``, its switches during the loops (``[down, up]`` wall-clock seconds) and those no
        pull overlapped."""
        switches = container_switches(container, self.started, self.ended) if container else []
        return {
            "pulls": len(self.pulls),
            "failed": [asdict(p) for p in self.pulls if p.failed][:10],
            "failed_count": sum(1 for p in self.pulls if p.failed),
            "retries": sum(p.retries for p in self.pulls),
            "without_download": sum(1 for p in self.pulls if p.rc == 0 and (p.downloaded == 0 or p.present)),
            "layers_downloaded": sum(p.downloaded for p in self.pulls),
            "seconds": round(self.ended - self.started, 2),
            "switches": switches,
            "switches_without_pull": [s for s in switches if not any(p.overlaps(*s) for p in self.pulls)],
            "pulls_during_switches": sum(1 for p in self.pulls if any(p.overlaps(*s) for s in switches)),
        }


def container_switches(name: str, since: float, until: float) -> list[list[float]]:
    """``[down, up]`` for each time a container named ``name`` went down (kill, die or stop) and a container of that
    name started again, from the engine's events between ``since`` and ``until`` (wall clock)."""
    events = _docker(
        "events", "--since", "%.3f" % (since - 1), "--until", "%.3f" % (until + 1), "--filter", "type=container",
        "--filter", "container=" + name, "--format", "{{json .}}", check=True,
    ).stdout  # fmt: skip
    switches: list[list[float]] = []
    down: float | None = None
    for line in events.splitlines():
        event = json.loads(line)
        if (event.get("Actor", {}).get("Attributes", {}) or {}).get("name") != name:
            continue
        when = event["timeNano"] / 1e9
        action = event.get("Action") or event.get("status")
        if action in ("kill", "die", "stop") and down is None:
            down = when
        elif action == "start" and down is not None:
            switches.append([round(down, 3), round(when, 3)])
            down = None
    if down is not None:
        switches.append([round(down, 3), round(until, 3)])
    return switches


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pulls.py")
    parser.add_argument("command", choices=("run",))
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--container")
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("references", nargs="+")
    args = parser.parse_args(argv)
    loops = PullLoops(args.references, max_seconds=args.max_seconds).start()
    deadline = time.monotonic() + args.max_seconds
    while not Path(args.stop_file).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    print(json.dumps(loops.finish().summary(args.container), sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
