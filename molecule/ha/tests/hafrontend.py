# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the ha scenario's frontend tests: the client's plain ``docker pull``/``docker push`` loops through the
virtual IP, who holds that address, what HAProxy sees, and the figures of each phase.

A phase runs its disruption inside ``with client_loops(name) as phase:`` and sets ``phase.window`` (epoch seconds,
the span the disruption lasted); on leaving, the loops are stopped and read back. ``pull_failure`` and
``push_failure`` are the one place that decides what counts as a failed operation. The nodes are containers of this
machine, so their clocks are this machine's: times compare across them.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml
from hatest import FLEET_DIR, SSH, fleet, on
from hatest import address as node_address

CLIENT = "c1"
NODES = ["n1", "n2", "n3"]
LOOP_REPOSITORY = "ha/loop"
PUSH_REPOSITORY = "ha/pushed"
LOOP_SCRIPT = Path(__file__).resolve().parent / "clientloop.py"
REMOTE_SCRIPT = "/var/tmp/dh-ha-clientloop.py"
# What the registry answers a push with while it is read-only (storage.maintenance.readonly): 405, Method not allowed.
READ_ONLY_REFUSAL = re.compile(r"405|method not allowed|read.only|unsupported", re.IGNORECASE)
# A transfer the engine had to start again: the connection broke in the middle of it.
RETRIED = re.compile(r"retrying", re.IGNORECASE)
STATE: dict = {}


def vip() -> str:
    return yaml.safe_load((FLEET_DIR / "frontend.yml").read_text())["all"]["vars"]["frontend_vip"]


def address(mol_vars: dict) -> str:
    """registry_address as site.yml derives it: the virtual IP and the frontend's port."""
    return "%s:%d" % (vip(), mol_vars["frontend_port"])


def container(node: str) -> str:
    return fleet()["hosts"][node]["container"]


def holds_vip(node: str) -> bool:
    done = subprocess.run(["docker", "exec", container(node), "ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=False)
    return done.returncode == 0 and (" %s/" % vip()) in done.stdout


def holders(nodes: tuple[str, ...] = tuple(NODES)) -> list[str]:
    return [node for node in nodes if holds_vip(node)]


def wait_for_new_holder(old: str, since: float, timeout: float = 30) -> tuple[str, float]:
    """The node that holds the address once ``old`` does not, and when that was seen (epoch seconds)."""
    deadline = time.monotonic() + timeout
    others = [node for node in NODES if node != old]
    while time.monotonic() < deadline:
        found = holders(tuple(others))
        if found:
            return found[0], time.time()
        time.sleep(0.05)
    raise AssertionError("no other node holds %s %.0f s after %s was stopped" % (vip(), time.time() - since, old))


def keepalived_state_since(node: str, state: str, since: float, timeout: float = 120) -> float:
    """Wait until keepalived on ``node`` logs entering ``state`` (BACKUP, MASTER) after ``since``; when."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = on(node, "journalctl -u keepalived --no-pager -o short-unix --since @%d" % int(since), check=False, timeout=20)
        times = [float(line.split(" ", 1)[0]) for line in text.splitlines() if "Entering %s STATE" % state in line]
        if [t for t in times if t >= since]:
            return min(t for t in times if t >= since)
        time.sleep(1)
    raise AssertionError("keepalived on %s did not enter %s within %.0f s" % (node, state, timeout))


def haproxy_servers(node: str) -> dict[str, str]:
    """HAProxy's view on ``node``: each registry node's status (UP, DOWN, ...), from its statistics (private bind)."""
    csv = on(node, "curl -fsS 'http://127.0.0.1:8404/stats;csv'")
    rows = [row.split(",") for row in csv.splitlines() if row.startswith("registry,")]
    return {row[1]: row[17] for row in rows if row[1] not in ("FRONTEND", "BACKEND")}


def wait_marked(node: str, server: str, status: str, timeout: float = 60) -> float:
    """Wait until HAProxy on ``node`` reports ``server`` as ``status``; when (epoch seconds)."""
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        seen = haproxy_servers(node)
        if seen.get(server, "").startswith(status):
            return time.time()
        time.sleep(0.2)
    raise AssertionError("HAProxy on %s: %s is not %s after %.0f s (%s)" % (node, server, status, timeout, seen))


def process_ids(node: str) -> dict[str, str]:
    """The main PIDs of HAProxy and keepalived (a reload keeps them; a restart does not)."""
    return {unit: on(node, "systemctl show -p MainPID --value %s" % unit).strip() for unit in ("haproxy", "keepalived")}


def prepare_client(mol_vars: dict) -> str:
    """Put the loop script on the client and push the image the pull loop pulls (one layer of 1 MiB of random bytes)
    through the virtual IP; its reference."""
    if "reference" not in STATE:
        subprocess.run([*SSH, "-i", fleet()["key"], "root@" + node_address(CLIENT), "cat > %s" % REMOTE_SCRIPT],
                       input=LOOP_SCRIPT.read_text(), text=True, check=True, timeout=60)
        reference = "%s/%s:1" % (address(mol_vars), LOOP_REPOSITORY)
        on(CLIENT, "head -c 1048576 /dev/urandom > /tmp/payload && tar -C /tmp -cf /tmp/loop.tar payload"
                   " && docker import /tmp/loop.tar %s && docker push %s && docker rmi %s" % (reference, reference, reference))
        STATE["reference"] = reference
    return STATE["reference"]


@dataclass
class Phase:
    """One disruption and what the client's loops saw around it."""

    name: str
    window: tuple[float, float] = (0.0, 0.0)
    read_only: tuple[float, float] | None = None  # when pushes may be refused (and must say so)
    pulls: list[dict] = field(default_factory=list)
    pushes: list[dict] = field(default_factory=list)
    retried_in_log: list[tuple[float, str]] = field(default_factory=list)
    ended_by: dict[str, str] = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    since: float = 0.0

    def overlapping(self, records: list[dict]) -> list[dict]:
        return [r for r in records if _overlaps(r, self.window)]

    def failed_pulls(self) -> list[str]:
        return [reason for reason in map(pull_failure, self.pulls) if reason]

    def failed_pushes(self) -> list[str]:
        return [reason for reason in (push_failure(r, self.read_only) for r in self.pushes) if reason]

    def engine_retries(self) -> list[str]:
        """The transfers the client's engine started again for another reason than the read-only registry's refusal."""
        return [line for at, line in self.retried_in_log if not refused_while_read_only(line, at, at, self.read_only)]

    def refused_pushes(self) -> int:
        return sum(1 for r in self.pushes if r["rc"] != 0 and not push_failure(r, self.read_only))

    def figures(self) -> dict:
        start, end = self.window
        return {
            "pulls": len(self.pulls), "failed": len(self.failed_pulls()), "pulls_overlapping": len(self.overlapping(self.pulls)),
            "pushes": len(self.pushes), "pushes_failed": len(self.failed_pushes()), "pushes_refused_read_only": self.refused_pushes(),
            "engine_retries": len(self.engine_retries()),
            "engine_retries_excused": len(self.retried_in_log) - len(self.engine_retries()),
            "window_s": round(end - start, 1), **self.notes,
        }  # fmt: skip

    def check(self) -> None:
        """Zero failed pulls, zero failed pushes (a refusal of the read-only registry excepted), and pulls that
        overlapped the disruption."""
        print("FIGURES frontend %s: %s" % (self.name, self.figures()))
        assert self.window[1] > self.window[0], "%s: no disruption window recorded" % self.name
        assert all(reason == "stop" for reason in self.ended_by.values()), "a loop ended by its bounds: %s" % self.ended_by
        assert self.pulls, "%s: no pull" % self.name
        fetched = [r for r in self.pulls if r["rc"] == 0 and "Pull complete" in r["output"] and "Downloaded newer image" in r["output"]]
        assert len(fetched) == len([r for r in self.pulls if r["rc"] == 0]), "%s: a pull did not download the layer" % self.name
        assert not self.failed_pulls(), "%s: failed pulls: %s" % (self.name, self.failed_pulls()[:3])
        assert not self.failed_pushes(), "%s: failed pushes: %s" % (self.name, self.failed_pushes()[:3])
        assert not self.engine_retries(), "%s: the client's engine retried: %s" % (self.name, self.engine_retries()[:3])
        assert self.overlapping(self.pulls), "%s: no pull overlapped the disruption %s" % (self.name, self.window)


def pull_failure(record: dict) -> str | None:
    """Why a pull failed, or None: a non-zero exit, or a layer the engine had to download again (a connection that
    broke in the middle of a pull)."""
    if record["rc"] != 0:
        return "exit %d: %s" % (record["rc"], record["output"].strip().splitlines()[-1:])
    if RETRIED.search(record["output"]):
        return "retried: %s" % [line for line in record["output"].splitlines() if RETRIED.search(line)][:1]
    return None


def refused_while_read_only(text: str, start: float, end: float, read_only: tuple[float, float] | None) -> bool:
    """``text`` is the read-only registry's refusal, during the read-only window."""
    in_window = read_only is not None and start < read_only[1] and end > read_only[0]
    return in_window and bool(READ_ONLY_REFUSAL.search(text))


def _overlaps(record: dict, window: tuple[float, float] | None) -> bool:
    return window is not None and record["start"] < window[1] and record["end"] > window[0]


def push_failure(record: dict, read_only: tuple[float, float] | None) -> str | None:
    """Why a push failed, or None. A push may fail only while the registry is read-only, and only with the
    registry's own refusal; a layer the engine uploaded again is a failure unless the read-only registry refused it
    (the engine's log says why it retried: ``Phase.engine_retries``)."""
    if record.get("not_pushed"):
        return "%s: %s" % (record["not_pushed"], record["output"].strip().splitlines()[-1:])
    if record["rc"] != 0 and not refused_while_read_only(record["output"], record["start"], record["end"], read_only):
        return "exit %d: %s" % (record["rc"], record["output"].strip().splitlines()[-1:])
    if record["rc"] == 0 and RETRIED.search(record["output"]) and not _overlaps(record, read_only):
        return "retried: %s" % [line for line in record["output"].splitlines() if RETRIED.search(line)][:1]
    return None


def _read_log(path: str) -> tuple[list[dict], str]:
    lines = [json.loads(line) for line in on(CLIENT, "cat %s 2>/dev/null || true" % path).splitlines() if line.strip()]
    done = next((line["done"] for line in lines if "done" in line), "")
    return [line for line in lines if "n" in line], done


def engine_retries(since: float, until: float) -> list[tuple[float, str]]:
    """The client engine's log lines about a transfer it started again (``Download failed, retrying: <why>``,
    ``Upload failed, retrying: ...``), between ``since`` and ``until``: (epoch seconds, line)."""
    text = on(CLIENT, "journalctl -u docker --no-pager -o short-unix --since @%d --until @%d" % (int(since), int(until) + 1))
    found = []
    for line in text.splitlines():
        stamp, _sep, rest = line.partition(" ")
        if "failed, retrying" in rest.lower():
            found.append((float(stamp), rest))
    return found


def start_client_loops(name: str, mol_vars: dict, max_seconds: float = 300) -> Phase:
    """Start a pull loop and a push loop on the client through the virtual IP; ``finish`` stops and reads them."""
    for files in STATE.pop("running", []):  # a phase that failed before finishing: stop its loops first
        on(CLIENT, "touch %s" % files["stop"])
    reference = prepare_client(mol_vars)
    phase = Phase(name)
    tag = re.sub(r"\W+", "-", name)
    phase.files = {kind: "/tmp/dh-ha-%s-%s.jsonl" % (kind, tag) for kind in ("pull", "push")}
    phase.files["stop"] = "/tmp/dh-ha-stop-%s" % tag
    targets = {"pull": reference, "push": "%s/%s" % (address(mol_vars), PUSH_REPOSITORY)}
    on(CLIENT, "rm -f %s" % " ".join(phase.files.values()))
    for kind in ("pull", "push"):
        on(CLIENT, "nohup python3 %s %s %s %s %s 2000 %d >/dev/null 2>&1 &"
           % (REMOTE_SCRIPT, kind, targets[kind], phase.files[kind], phase.files["stop"], max_seconds))
    phase.since = time.time()
    STATE.setdefault("running", []).append(phase.files)
    time.sleep(2)
    return phase


def finish(phase: Phase) -> Phase:
    """Let the loops run 2 s more, stop them, and read what they did (and the client engine's log)."""
    time.sleep(2)
    on(CLIENT, "touch %s" % phase.files["stop"])
    STATE["running"] = [files for files in STATE.get("running", []) if files is not phase.files]
    deadline = time.monotonic() + 120
    while True:
        phase.pulls, phase.ended_by["pull"] = _read_log(phase.files["pull"])
        phase.pushes, phase.ended_by["push"] = _read_log(phase.files["push"])
        if all(phase.ended_by.values()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    phase.retried_in_log = engine_retries(phase.since, time.time())
    return phase


@contextlib.contextmanager
def client_loops(name: str, mol_vars: dict) -> Iterator[Phase]:
    """``start_client_loops`` ... ``finish`` around the body."""
    phase = start_client_loops(name, mol_vars)
    try:
        yield phase
    finally:
        finish(phase)


def task_window(manager: str, service: str, since: float) -> tuple[float, float]:
    """From the first task the swarm stopped after ``since`` to the last task it started (epoch seconds)."""
    ids = on(manager, "docker service ps -q --no-trunc %s" % service).split()
    tasks = json.loads(on(manager, "docker inspect %s" % " ".join(ids)))
    stopped = [_epoch(t["Status"]["Timestamp"]) for t in tasks if t["DesiredState"] == "shutdown"]
    started = [_epoch(t["Status"]["Timestamp"]) for t in tasks if t["DesiredState"] == "running" and t["Status"]["State"] == "running"]
    stopped = [t for t in stopped if t >= since]
    started = [t for t in started if t >= since]
    assert stopped and started, "no task of %s was replaced after %s" % (service, since)
    # A stopped task's timestamp is when it had stopped: it stopped listening a moment before (drained, then exited).
    return min(stopped) - 1, max(started)


def _epoch(stamp: str) -> float:
    """RFC 3339 with nanoseconds (the engine's) as epoch seconds."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z", stamp)
    assert match, stamp
    base = datetime.strptime(match.group(1) + "+0000", "%Y-%m-%dT%H:%M:%S%z").timestamp()
    return base + float(match.group(2) or 0)
