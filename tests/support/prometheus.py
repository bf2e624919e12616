"""A real Prometheus (Debian's ``prometheus`` package) for a test: its own configuration, data directory and port,
scraping what a file_sd target file lists every second, and its HTTP query API.

    with Prometheus(workdir, port, targets_file, rules=[...]) as prom:
        prom.wait("up", lambda v: v == 1)
        prom.value('sum(registry_http_requests_total{handler="base"})')
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import requests


class Prometheus:
    def __init__(self, workdir: Path, port: int, targets_file: Path, rules: list[Path] | None = None, job: str = "registry") -> None:
        self.workdir = workdir
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        self.targets_file = targets_file
        self.rules = rules or []
        self.job = job
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Prometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed: apt-get install --no-install-recommends prometheus (.ci/run)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in self.rules],
            "scrape_configs": [
                {"job_name": self.job, "file_sd_configs": [{"files": [str(self.targets_file)], "refresh_interval": "1s"}]}
            ],
        }
        (self.workdir / "prometheus.yml").write_text(json.dumps(config, indent=2))
        self.process = subprocess.Popen(
            [
                binary, "--config.file=%s" % (self.workdir / "prometheus.yml"), "--storage.tsdb.path=%s" % (self.workdir / "data"),
                "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn",
            ],
            stdout=(self.workdir / "prometheus.log").open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError("prometheus did not start: %s" % (self.workdir / "prometheus.log").read_text()[-2000:])

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def query(self, expr: str) -> list[dict]:
        answer = requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=5).json()
        if answer.get("status") != "success":
            raise RuntimeError("query %s failed: %s" % (expr, answer))
        return answer["data"]["result"]

    def value(self, expr: str) -> float | None:
        """The value of a query with one series (None when it has none)."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def wait(self, expr: str, ok: Callable[[float | None], bool], timeout: float = 30) -> float | None:
        """Poll ``expr`` until ``ok(value)``; its last value (AssertionError with it after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.value(expr)
            if ok(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError("Prometheus: %s is %s after %ss" % (expr, value, timeout))
            time.sleep(0.5)

    def rules_loaded(self) -> list[dict]:
        return requests.get(self.url + "/api/v1/rules", timeout=5).json()["data"]["groups"]
