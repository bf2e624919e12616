"""The registry's configuration file, seen from the outside, on one registry the role deploys with metrics,
notifications and a registry_config of its own:

- the file (mode 0600, mounted read-only) holds what the variables set and registry_config on top; the environment
  holds no registry setting; a second run changes nothing;
- a real Prometheus (Debian's prometheus package) scrapes it through the role's file_sd target file: the request
  counters rise by at least the requests this test made, and a stopped registry shows ``up == 0`` (and the example
  alert rules load and go pending);
- a real HTTP receiver gets the push event with the repository, tag and digest, and the Authorization header;
- a receiver that is down, or one that accepts and never answers, does not slow pushes (measured against a plain
  registry, push by push);
- every refusal of a bad configuration is one line, and the running registry is untouched (same container, same start,
  same file, no trial container left);
- registry_info reports the storage use, compared with the files and the manifests themselves.

Ports: DH_PORT_BASE +44 registry, +45 metrics, +46 receiver, +47 Prometheus, +48 a plain registry, +49 the endpoint
that is down, then hangs. Names: DH_PREFIX + cfg, cfg-plain. Directory: DH_DATA_ROOT/cfg.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from support import ROOT
from support.effective import effective
from support.isolation import DATA_ROOT, PREFIX, REGISTRY_IMAGE, TEST_LABEL, port
from support.prometheus import Prometheus
from support.registry import wait_v2
from support.runner import recap, role_playbook, run_module, run_playbook
from support.secrets import find

NAME = PREFIX + "cfg"
PLAIN = PREFIX + "cfg-plain"
REGISTRY, METRICS, RECEIVER, PROMETHEUS, PLAIN_PORT, LOST = (port(n) for n in range(44, 50))
WORK = DATA_ROOT / "cfg"
TOKEN = "Bearer tok-%s" % uuid.uuid4().hex
HTTP_SECRET = "hs-%s" % uuid.uuid4().hex
MANIFEST_TYPES = "application/vnd.docker.distribution.manifest.v2+json"


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout


class Receiver(ThreadingHTTPServer):
    """Collects what the registry POSTs: (headers, envelope) per request."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        self.received: list[tuple[dict, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.received.append((dict(self.headers), json.loads(body or b"{}")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(address, Handler)

    def events(self) -> list[dict]:
        return [event for _headers, envelope in self.received for event in envelope.get("events", [])]


def role_vars(gateway: str, **extra: object) -> dict:
    values = {
        "registry_container_name": NAME,
        "registry_image": REGISTRY_IMAGE,
        "registry_image_pull": False,
        "registry_image_build": False,
        "registry_port": REGISTRY,
        "registry_data_path": str(WORK / "data"),
        "registry_config_path": str(WORK / "etc" / "registry.yml"),
        "registry_delete_enabled": True,
        "registry_http_secret": HTTP_SECRET,
        "registry_log_formatter": "json",
        "registry_metrics": True,
        "registry_metrics_port": METRICS,
        "registry_metrics_sd_file": str(WORK / "targets.json"),
        "registry_notifications": [
            {"name": "receiver", "url": "http://%s:%d/events" % (gateway, RECEIVER), "headers": {"Authorization": TOKEN},
             "timeout": "2s", "threshold": 3, "backoff": "1s"},
            {"name": "lost", "url": "http://%s:%d/events" % (gateway, LOST), "timeout": "3s", "threshold": 3, "backoff": "1s"},
        ],
        "registry_config": {"catalog": {"maxentries": 500}, "http": {"headers": {"X-Registry-Test": [PREFIX]}}},
    }  # fmt: skip
    values.update(extra)
    return values


def image(repository: str, tag: str, registry_port: int) -> str:
    """A small image of its own content, built and tagged for the registry on ``registry_port``."""
    context = WORK / "build" / uuid.uuid4().hex
    context.mkdir(parents=True)
    (context / "payload").write_bytes(os.urandom(16384))
    (context / "Dockerfile").write_text("FROM scratch\nCOPY payload /payload\n")
    ref = "127.0.0.1:%d/%s:%s" % (registry_port, repository, tag)
    docker("build", "-q", "--label", "%s=%s" % (TEST_LABEL, PREFIX), "-t", ref, str(context))
    return ref


def push(ref: str) -> tuple[float, str]:
    """``docker push``: (seconds, the manifest digest the registry recorded)."""
    started = time.monotonic()
    output = docker("push", ref)
    seconds = time.monotonic() - started
    return seconds, re.search(r"digest: (sha256:[0-9a-f]{64})", output).group(1)


@pytest.fixture(scope="module")
def deployed():
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    subprocess.run(["docker", "rm", "-f", NAME, PLAIN], capture_output=True, check=False)
    # A plain registry (no configuration of ours, no endpoint): the pushes' yardstick, and the bridge's gateway, the
    # address containers reach this host at (where the receivers listen).
    docker("run", "-d", "--name", PLAIN, "-p", "127.0.0.1:%d:5000" % PLAIN_PORT, REGISTRY_IMAGE)
    gateway = json.loads(docker("inspect", PLAIN))[0]["NetworkSettings"]["Gateway"]
    receiver = Receiver((gateway, RECEIVER))
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    playbook = role_playbook(WORK / "registry.yml", "localhost", "registry", role_vars(gateway))
    runs = []
    for verbosity in ((), ("-vvv",)):
        done = run_playbook(playbook, args=verbosity)
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-4000:]
        runs.append((recap(output), output))
    wait_v2("127.0.0.1:%d" % PLAIN_PORT)
    yield {"gateway": gateway, "receiver": receiver, "runs": runs, "playbook": playbook}
    receiver.shutdown()
    receiver.server_close()
    subprocess.run(["docker", "rm", "-f", NAME, PLAIN], capture_output=True, check=False)
    shutil.rmtree(WORK, ignore_errors=True)


def test_one_configuration_file_and_a_second_run_changes_nothing(deployed):
    (first, output), (second, verbose) = deployed["runs"]
    assert first["changed"] > 0 and second["changed"] == 0, (first, second)
    # The notification header and the shared secret are in the file, never in the output (-vvv included).
    assert find({"notification header": TOKEN.split()[1], "http secret": HTTP_SECRET}, output + verbose) == []
    path = WORK / "etc" / "registry.yml"
    assert path.stat().st_mode & 0o777 == 0o600
    container = json.loads(docker("inspect", NAME))[0]
    mount = next(m for m in container["Mounts"] if m["Destination"] == "/etc/docker/registry/config.yml")
    assert mount["Source"] == str(path) and mount["RW"] is False
    assert [e for e in container["Config"]["Env"] if e.startswith("REGISTRY_")] == [], "a registry setting in the environment"
    settings = effective(container)
    assert settings["storage.delete.enabled"] == "true" and settings["http.draintimeout"] == "10s"
    assert settings["http.debug.addr"] == ":5001" and settings["http.debug.prometheus.enabled"] == "true"
    assert settings["log.formatter"] == "json" and settings["catalog.maxentries"] == "500"
    assert settings["storage.filesystem.rootdirectory"] == "/var/lib/registry"
    assert settings["http.secret"] == HTTP_SECRET
    # registry_config merged on top: its header served next to the role's own.
    answer = requests.get("http://127.0.0.1:%d/v2/" % REGISTRY, timeout=5)
    assert answer.headers["X-Registry-Test"] == PREFIX and answer.headers["X-Content-Type-Options"] == "nosniff"
    # The metrics on loopback only, and the target file naming them.
    assert docker("port", NAME, "5001/tcp").split() == ["127.0.0.1:%d" % METRICS]
    targets = json.loads((WORK / "targets.json").read_text())
    assert targets == [{"targets": ["127.0.0.1:%d" % METRICS], "labels": {"registry": NAME, "registry_host": "localhost", "registry_mode": "container"}}]


def test_prometheus_counts_the_requests_and_sees_a_stopped_registry(deployed):
    rules = ROOT / "docs" / "prometheus" / "registry-rules.yml"
    with Prometheus(WORK / "prometheus", PROMETHEUS, WORK / "targets.json", rules=[rules]) as prom:
        prom.wait('up{registry="%s"}' % NAME, lambda v: v == 1)
        groups = prom.rules_loaded()
        assert [len(g["rules"]) for g in groups if g["name"] == "dockhand-registry"] == [5]
        assert all(r["health"] in ("ok", "unknown") for g in groups for r in g["rules"]), groups
        series = {
            "manifest put": 'sum(registry_http_requests_total{handler="manifest",method="put"})',
            "manifest get": 'sum(registry_http_requests_total{handler="manifest",method=~"get|head"})',
            "base get": 'sum(registry_http_requests_total{handler="base",method="get"})',
            "all": "sum(registry_http_requests_total)",
        }
        before = {k: prom.value(expr) or 0.0 for k, expr in series.items()}
        pushes, pulls, pings = 3, 3, 10
        refs = [image("obs/metrics", "v%d" % n, REGISTRY) for n in range(pushes)]
        for ref in refs:
            push(ref)
        for ref in refs[:pulls]:
            docker("pull", "-q", ref)
        for _ping in range(pings):
            assert requests.get("http://127.0.0.1:%d/v2/" % REGISTRY, timeout=5).status_code == 200
        wanted = {"manifest put": pushes, "manifest get": pulls, "base get": pings, "all": pushes + pulls + pings}
        after = {k: prom.wait(series[k], lambda v, k=k: (v or 0) - before[k] >= wanted[k]) for k in series}
        print("registry_http_requests_total through Prometheus, before -> after (made):",
              {k: "%g -> %g (%d)" % (before[k], after[k], wanted[k]) for k in series})  # fmt: skip

        started = time.monotonic()
        docker("stop", NAME)
        try:
            prom.wait('up{registry="%s"}' % NAME, lambda v: v == 0)
            print("up == 0 seen %.1fs after docker stop began" % (time.monotonic() - started))
            prom.wait('ALERTS{alertname="RegistryDown",registry="%s"}' % NAME, lambda v: v == 1)
            assert prom.query('ALERTS{alertname="RegistryDown"}')[0]["metric"]["alertstate"] == "pending"
        finally:
            docker("start", NAME)
            wait_v2("127.0.0.1:%d" % REGISTRY)


def test_push_event_reaches_the_receiver_with_repository_tag_and_digest(deployed):
    receiver = deployed["receiver"]
    _seconds, digest = push(image("obs/events", "1.0", REGISTRY))
    deadline = time.monotonic() + 20
    while True:
        found = [e for e in receiver.events() if e.get("action") == "push" and e["target"].get("tag") == "1.0"
                 and e["target"].get("repository") == "obs/events"]  # fmt: skip
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert found, [e["target"] for e in receiver.events()]
    assert found[0]["target"]["digest"] == digest
    assert found[0]["target"]["mediaType"] == MANIFEST_TYPES
    headers = next(h for h, envelope in receiver.received if found[0] in envelope.get("events", []))
    assert headers["Authorization"] == TOKEN
    assert headers["Content-Type"].startswith("application/vnd.docker.distribution.events.v1+json")


def test_a_receiver_down_or_hanging_does_not_slow_pushes(deployed):
    """The endpoint ``lost`` (3 s timeout) is refused, then accepts and never answers: pushes to the registry take
    what pushes to a plain registry take, push by push (were the events sent in the push's path, each push would
    wait 3 s or more)."""
    measured = {}
    hung = None
    for phase in ("down", "hanging"):
        if phase == "hanging":
            hung = socket.socket()
            hung.bind((deployed["gateway"], LOST))
            hung.listen(1)  # never accepted: connections complete, requests are never answered
        ours, plain = [], []
        try:
            for n in range(4):
                ours.append(push(image("obs/slow", "%s%d" % (phase, n), REGISTRY))[0])
                plain.append(push(image("obs/slow", "%s%d" % (phase, n), PLAIN_PORT))[0])
        finally:
            if hung is not None and phase == "hanging":
                hung.close()
        measured[phase] = (statistics.median(ours), statistics.median(plain), max(ours))
    print("push seconds (median with the endpoint %s, median plain registry, slowest with it):" % "/".join(measured),
          {k: "%.2f / %.2f / %.2f" % v for k, v in measured.items()})  # fmt: skip
    for phase, (ours_median, plain_median, slowest) in measured.items():
        assert ours_median < plain_median + 1.0, (phase, measured)
        assert slowest < 3.0, (phase, measured)


def _state() -> tuple:
    container = json.loads(docker("inspect", NAME))[0]
    return container["Id"], container["State"]["StartedAt"], container["RestartCount"], (WORK / "etc" / "registry.yml").read_bytes()


def test_bad_configurations_refused_in_one_line_and_the_registry_untouched(deployed):
    gateway = deployed["gateway"]
    cases = [
        ({"registry_config": {"http": {"addr": ":6000"}}},
         "registry_config (option config) key http.addr conflicts with registry_port (option port), which sets it: the registry"
         " listens on :5000 in its container; registry_port publishes it"),
        ({"registry_config": {"bogus": {"x": 1}}},
         "registry_config (option config) key 'bogus' is not a key of the distribution 2.8 configuration (it would be ignored)"),
        ({"registry_config": {"log": "debug"}}, "registry_config (option config) log must be a mapping, not a string"),
        ({"registry_secret_config": {"redis": {"password": ["x"]}}},
         "registry_secret_config (option secret_config) redis.password must be a string, not a list"),
        ({"registry_config": {"log": {"level": "loud"}}},
         "the registry refused the configuration (trial start of %s exited 1): configuration error: error parsing"
         " /etc/docker/registry/config.yml: invalid loglevel loud Must be one of [error, warn, info, debug]" % REGISTRY_IMAGE),
        ({"registry_config": {"storage": {"s3": {"region": "nowhere-1", "bucket": "b"}}}},
         "the registry refused the configuration (trial start of %s exited 2): panic: invalid region provided: nowhere-1" % REGISTRY_IMAGE),
        ({"registry_gc_on_run": True, "registry_config": {"storage": {"s3": {"region": "eu-west-1", "bucket": "b"}}}},
         "registry_gc_delete_untagged needs the filesystem storage driver (what the tags reach is read from the storage),"
         " and registry_config sets storage.s3: set registry_gc_delete_untagged: false"),
        ({"registry_metrics_port": REGISTRY},
         "registry_metrics_port %d must be 1-65535 and not registry_port %d: the metrics need a port of their own" % (REGISTRY, REGISTRY)),
    ]  # fmt: skip
    before = _state()
    tasks = []
    for number, (override, _message) in enumerate(cases):
        tasks.append({
            "block": [{"name": "Case %d" % number, "ansible.builtin.include_role": {"name": "dockhand.registry.registry"},
                       "vars": role_vars(gateway, **override)}],
            "rescue": [{"name": "Keep case %d" % number, "ansible.builtin.copy": {
                "content": "{{ ansible_failed_result | to_json }}", "dest": str(WORK / ("case-%d.json" % number)), "mode": "0644"}}],
        })  # fmt: skip
    playbook = WORK / "refusals.yml"
    playbook.write_text(json.dumps([{"name": "Refusals", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    started = time.monotonic()
    done = run_playbook(playbook)
    print("%d refusals through the role in %.1fs" % (len(cases), time.monotonic() - started))
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    for number, (_override, message) in enumerate(cases):
        kept = WORK / ("case-%d.json" % number)
        assert kept.exists(), "case %d was not refused" % number
        result = json.loads(kept.read_text())
        assert result.get("failed") and "\n" not in result["msg"].strip(), result
        assert message in result["msg"], (number, result["msg"])
    assert _state() == before, "the running registry or its configuration changed"
    assert docker("ps", "-aq", "--filter", "name=^/%s-dockhand-trial$" % NAME).strip() == ""
    assert requests.get("http://127.0.0.1:%d/v2/" % REGISTRY, timeout=5).status_code == 200


def test_registry_info_reports_storage_use(deployed):
    _seconds, digest = push(image("obs/storage", "1", REGISTRY))
    base = "http://127.0.0.1:%d/v2/obs/storage" % REGISTRY
    upload = requests.post(base + "/blobs/uploads/", timeout=5)
    assert upload.status_code == 202
    location = upload.headers["Location"]
    location = location if location.startswith("http") else "http://127.0.0.1:%d%s" % (REGISTRY, location)
    assert requests.patch(location, data=b"u" * 4096, headers={"Content-Type": "application/octet-stream"}, timeout=5).status_code == 202
    result = run_module("registry_info", {"registry": "127.0.0.1:%d" % REGISTRY, "details": False, "data_path": str(WORK / "data")})
    assert not result.get("failed"), result
    storage = result["storage"]
    # The oracle: the blob files themselves, and the image's manifest as the registry serves it.
    blobs = list((WORK / "data" / "docker" / "registry" / "v2" / "blobs").rglob("data"))
    assert storage["blobs"] == len(blobs) and storage["blob_bytes"] == sum(p.stat().st_size for p in blobs)
    raw = requests.get(base + "/manifests/" + digest, headers={"Accept": MANIFEST_TYPES}, timeout=5).content
    manifest = json.loads(raw)
    (repo,) = [r for r in storage["repositories"] if r["name"] == "obs/storage"]
    assert repo["blob_bytes"] == len(raw) + manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    assert repo["blobs"] == 2 + len(manifest["layers"]) and repo["tags"] == 1 and repo["manifests"] == 1
    assert repo["uploads"] == 1 and repo["upload_bytes"] >= 4096
    assert storage["uploads"] >= 1 and storage["upload_bytes"] >= 4096
    print("storage use:", {k: storage[k] for k in ("blobs", "blob_bytes", "uploads", "upload_bytes")}, "obs/storage:", repo)
