# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry as a Docker Swarm service (registry_service); a host's membership of the swarm is swarm_membership.py.

The engine does the work (scheduling, rolling updates, secrets); this file decides what to ask for and says
what changed. All engine calls go through :class:`EngineClient`, all registry HTTP through transport.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import secrets as token_source
import time
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import write_atomic
from ansible_collections.dockhand.registry.plugins.module_utils.config_file import TrialFile, trial_start
from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import DATA_TARGET
from ansible_collections.dockhand.registry.plugins.module_utils.data_move import decide, probe_location
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient, EngineError
from ansible_collections.dockhand.registry.plugins.module_utils.registry_config import (
    DEBUG_PORT,
    STORAGE_LABEL,
    ConfigSettings,
    build,
    render,
    storage_driver,
)
from ansible_collections.dockhand.registry.plugins.module_utils.swarm_membership import SwarmError, manager_host
from ansible_collections.dockhand.registry.plugins.module_utils.transport import RegistryUnreachable, wait_ready

LABEL_SERVICE = "io.dockhand.registry.service"
LABEL_KIND = "io.dockhand.registry.kind"
LABEL_IMAGE = "io.dockhand.registry.image-id"
SECRET_DIR = "/run/secrets/"
CONFIG_FILE = "dockhand-registry.yml"
NANO = 1_000_000_000


# -- registry_service ------------------------------------------------------------------------------------------------
@dataclass
class ServiceSpec:
    """What the user asks of the registry service (the module's options)."""

    name: str
    image: str = ""
    state: str = "present"
    mode: str = "replicated"
    replicas: int = 1
    max_replicas_per_node: int = 1
    constraints: list[str] = field(default_factory=list)
    port: int = 5000
    publish_mode: str = "host"
    data_path: str | None = None
    volume: str | None = None
    volume_driver: str | None = None
    volume_options: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    read_only: bool = False
    http_secret: str | None = None
    http_secret_path: str = "/etc/dockhand/registry/http-secret"
    htpasswd: str | None = None
    auth_realm: str = "dockhand.registry"
    tls_cert: str | None = None
    tls_key: str | None = None
    update_order: str = "auto"
    update_delay: float = 2
    update_monitor: float = 5
    stop_grace_period: float = 15
    wait_timeout: int = 300
    # Another data location while the old one holds repositories and the new one is empty (data_move.py's decide).
    data_move: str = "refuse"
    # The configuration's other settings (logs, blob cache, metrics, notifications, the user's mappings); the paths,
    # the drain, the secret and the read-only switch come from the fields above (registry_config() below).
    settings: ConfigSettings = field(default_factory=lambda: ConfigSettings(blob_cache="none"))
    # Where each node running a task publishes the debug server (metrics), in host mode, when settings.metrics.
    metrics_port: int = DEBUG_PORT
    # Start the registry on a new configuration in a throwaway container on this manager before the service changes.
    try_config: bool = True
    validate_timeout: int = 30

    def validate(self) -> None:
        if not (self.name or "").strip():
            raise SwarmError("name %r is not a service name" % self.name)
        if self.state == "absent":
            return
        if not self.image:
            raise SwarmError("image is required unless state=absent")
        if not 1 <= self.port <= 65535:
            raise SwarmError("port %s is not between 1 and 65535" % self.port)
        if self.mode == "replicated" and self.replicas < 0:
            raise SwarmError("replicas %s is negative" % self.replicas)
        if self.max_replicas_per_node < 0:
            raise SwarmError("max_replicas_per_node %s is negative" % self.max_replicas_per_node)
        if bool(self.data_path) == bool(self.volume):
            raise SwarmError("exactly one of data_path and volume is required")
        if self.data_path and (not os.path.isabs(self.data_path) or os.path.normpath(self.data_path) in ("/", "/etc", "/var", "/usr")):
            raise SwarmError("data_path %s is not a dedicated absolute directory" % self.data_path)
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SwarmError("tls_cert and tls_key go together")
        if self.wait_timeout <= 0:
            raise SwarmError("wait_timeout %s is not a positive number of seconds" % self.wait_timeout)
        for what, path in (("htpasswd", self.htpasswd), ("tls_cert", self.tls_cert), ("tls_key", self.tls_key)):
            if path and not os.path.isfile(path):
                raise SwarmError("%s %s is not a file on this host" % (what, path))
        for key in self.env:
            if key.upper() == "REGISTRY_HTTP_SECRET":
                raise SwarmError("env REGISTRY_HTTP_SECRET would show in docker service inspect: use http_secret")
        if self.settings.metrics and not 1 <= self.metrics_port <= 65535:
            raise SwarmError("metrics_port %s is not between 1 and 65535" % self.metrics_port)
        if self.settings.metrics and self.metrics_port == self.port:
            raise SwarmError("metrics_port %d is the registry's port: give the metrics a port of their own" % self.port)
        if self.try_config and self.validate_timeout < 1:
            raise SwarmError("validate_timeout %s must be 1 second or more" % self.validate_timeout)
        # Every configuration check (conflicts, unknown keys, types) before the engine is asked anything.
        registry_config(self, "(the shared secret)")

    @property
    def order(self) -> str:
        """start-first unless host-mode ports leave no free node for the new task (then stop-first)."""
        if self.update_order != "auto":
            return self.update_order
        if self.publish_mode == "host" and (self.mode == "global" or self.max_replicas_per_node == 1):
            # A host-mode port is held by the old task until it stops: start-first can only place the new task
            # on a node without one, which global mode and one-per-node replicas on every node do not leave.
            return "stop-first"
        return "start-first"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def registry_config(spec: ServiceSpec, http_secret: str) -> bytes:
    """The registry's configuration (JSON is YAML), with the shared ``http.secret``; kept as a Swarm secret. Built by
    the one builder of every mode (registry_config.build): the settings, then the user's mappings on top, checked
    (ConfigError, one line). No in-memory blob descriptor cache unless asked: with replicas on shared storage it would
    go stale after a delete through another replica (settings.blob_cache, default none; redis shares one)."""
    return render(build(_settings(spec, http_secret)), header=False)


def _settings(spec: ServiceSpec, http_secret: str) -> ConfigSettings:
    return dataclasses.replace(
        spec.settings,
        htpasswd=SECRET_DIR + "htpasswd" if spec.htpasswd else None,
        auth_realm=spec.auth_realm,
        tls_cert=SECRET_DIR + "server.crt" if spec.tls_cert else None,
        tls_key=SECRET_DIR + "server.key" if spec.tls_cert else None,
        # On SIGTERM (rolling update, drain), finish the requests in flight before exiting.
        drain_timeout=max(int(spec.stop_grace_period) - 3, 1),
        http_secret=http_secret,
        read_only=spec.read_only,
    )


def _image_name(image: str) -> str:
    return image.split("@", 1)[0] if "@sha256:" in image else image


def view(spec: dict[str, Any]) -> dict[str, Any]:
    """The parts of a service spec this module owns, in a form that compares (the engine adds defaults)."""
    task = spec.get("TaskTemplate") or {}
    container = task.get("ContainerSpec") or {}
    mode = spec.get("Mode") or {}
    placement = task.get("Placement") or {}
    update = spec.get("UpdateConfig") or {}
    ports = (spec.get("EndpointSpec") or {}).get("Ports") or []
    return {
        "image": _image_name(container.get("Image", "")),
        "image_id": (container.get("Labels") or {}).get(LABEL_IMAGE, ""),
        "args": list(container.get("Args") or []),
        "env": sorted(container.get("Env") or []),
        "mounts": sorted(
            "%s:%s:%s%s%s"
            % (m.get("Type", "volume"), m.get("Source", ""), m.get("Target", ""), ":ro" if m.get("ReadOnly") else "", _driver_text(m.get("VolumeOptions")))
            for m in container.get("Mounts") or []
        ),
        "secrets": sorted("%s→%s" % (s.get("SecretName"), (s.get("File") or {}).get("Name")) for s in container.get("Secrets") or []),
        "mode": ("global" if "Global" in mode else "replicated %d" % ((mode.get("Replicated") or {}).get("Replicas", 1))),
        "max_replicas_per_node": placement.get("MaxReplicas", 0),
        "constraints": sorted(placement.get("Constraints") or []),
        "ports": sorted("%s:%s/%s" % (p.get("PublishedPort"), p.get("TargetPort"), p.get("PublishMode", "ingress")) for p in ports),
        "update": "parallelism=%s order=%s failure=%s" % (update.get("Parallelism"), update.get("Order"), update.get("FailureAction")),
        "stop_grace_period": container.get("StopGracePeriod"),
    }


def _same_task(task: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """A task runs the wanted container spec (what a rolling update replaces)."""
    keys = ("image", "image_id", "args", "env", "mounts", "secrets")
    mine = view({"TaskTemplate": task.get("Spec") or {}})
    theirs = view(wanted)
    return all(mine[k] == theirs[k] for k in keys)


def _driver_text(options: dict[str, Any] | None) -> str:
    driver = (options or {}).get("DriverConfig") or {}
    if not driver.get("Name"):
        return ""
    return " driver=%s%s" % (driver["Name"], "".join(" %s=%s" % kv for kv in sorted((driver.get("Options") or {}).items())))


class RegistryService:
    """Converge the registry Swarm service to a ServiceSpec (run on a manager)."""

    def __init__(self, engine: EngineClient, spec: ServiceSpec, check_mode: bool = False) -> None:
        self.engine = engine
        self.spec = spec
        self.check_mode = check_mode
        self.actions: list[str] = []

    # -- the inputs that become Swarm secrets ------------------------------------------------------------
    def _http_secret(self) -> str:
        if self.spec.http_secret:
            return self.spec.http_secret
        path = self.spec.http_secret_path
        try:
            with open(path, encoding="ascii") as handle:
                value = handle.read().strip()
            if value:
                return value
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError) as exc:
            raise SwarmError("cannot read the http secret file %s: %s" % (path, exc)) from None
        value = token_source.token_hex(32)
        self.actions.append("generate the registry's shared http secret (kept in %s)" % path)
        if not self.check_mode:
            write_atomic(path, (value + "\n").encode(), 0o600)
        return value

    def _read(self, path: str) -> bytes:
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise SwarmError("cannot read %s: %s" % (path, exc.strerror or exc)) from None

    def _wanted_secrets(self) -> dict[str, tuple[str, bytes]]:
        """target file name → (secret name, data): the name carries the content's digest, so a new content is a new
        secret and a new service spec (Swarm secrets cannot change): rotating one rolls the service."""
        files: dict[str, bytes] = {CONFIG_FILE: registry_config(self.spec, self._http_secret())}
        if self.spec.htpasswd:
            files["htpasswd"] = self._read(self.spec.htpasswd)
        if self.spec.tls_cert and self.spec.tls_key:
            files["server.crt"] = self._read(self.spec.tls_cert)
            files["server.key"] = self._read(self.spec.tls_key)
        kinds = {CONFIG_FILE: "config", "htpasswd": "htpasswd", "server.crt": "tls-cert", "server.key": "tls-key"}
        return {target: ("%s-%s-%s" % (self.spec.name, kinds[target], _digest(data)[:12]), data) for target, data in files.items()}

    def _try(self, wanted: dict[str, tuple[str, bytes]]) -> None:
        """Start the registry on a new configuration in a throwaway container on this manager (the files mounted where
        the task finds its secrets), before any secret is created or the service changed."""
        spec = self.spec
        if not spec.try_config or self.check_mode:
            return
        if self.engine.image(spec.image) is None:
            raise SwarmError("registry image %s is not on this manager: it cannot try the configuration" % spec.image)
        files = [TrialFile(SECRET_DIR + target, data=data) for target, (_name, data) in sorted(wanted.items())]
        seconds = trial_start(
            self.engine, spec.image, spec.name, files, dict(spec.env), ["serve", SECRET_DIR + CONFIG_FILE], spec.validate_timeout
        )
        self.actions.append("try the new configuration: the registry started on it (listening after %.1fs)" % seconds)

    def _secret_refs(self, wanted: dict[str, tuple[str, bytes]]) -> list[dict[str, Any]]:
        existing = {s["Spec"]["Name"]: s["ID"] for s in self.engine.secrets("%s=%s" % (LABEL_SERVICE, self.spec.name))}
        if wanted[CONFIG_FILE][0] not in existing:
            self._try(wanted)
        refs = []
        for target, (name, data) in sorted(wanted.items()):
            secret_id = existing.get(name)
            if secret_id is None:
                self.actions.append("create swarm secret %s" % name)
                if not self.check_mode:
                    secret_id = self.engine.create_secret(name, data, {LABEL_SERVICE: self.spec.name, LABEL_KIND: name.rsplit("-", 1)[0]})
            mode = 0o400 if target in ("server.key", CONFIG_FILE, "htpasswd") else 0o444
            refs.append({"File": {"Name": target, "UID": "0", "GID": "0", "Mode": mode}, "SecretID": secret_id or "", "SecretName": name})
        return refs

    # -- the spec ----------------------------------------------------------------------------------------------
    def wanted(self) -> dict[str, Any]:
        spec = self.spec
        if spec.data_path:
            mount: dict[str, Any] = {"Type": "bind", "Source": spec.data_path, "Target": DATA_TARGET}
        else:
            mount = {"Type": "volume", "Source": spec.volume, "Target": DATA_TARGET}
            if spec.volume_driver:
                mount["VolumeOptions"] = {"DriverConfig": {"Name": spec.volume_driver, "Options": dict(spec.volume_options)}}
        image = self.engine.image(spec.image)
        container: dict[str, Any] = {
            "Image": spec.image,
            "Args": ["serve", SECRET_DIR + CONFIG_FILE],
            "Env": sorted("%s=%s" % kv for kv in spec.env.items()),
            "Mounts": [mount],
            "Secrets": self._secret_refs(self._wanted_secrets()),
            "StopGracePeriod": int(spec.stop_grace_period * NANO),
            # The image each node runs is the one it holds under that tag; its ID on this manager, as a label,
            # makes a rebuilt image a spec change (rolled out like any other).
            "Labels": dict(
                {LABEL_IMAGE: image["Id"]} if image else {},
                # What the garbage collection reads to know whether the storage is files it can read (the
                # configuration itself is a secret no one outside a task reads).
                **{STORAGE_LABEL: storage_driver(build(_settings(spec, "-"))) or ""},
            ),
        }
        placement: dict[str, Any] = {"Constraints": list(spec.constraints)}
        if spec.mode == "replicated" and spec.max_replicas_per_node:
            placement["MaxReplicas"] = spec.max_replicas_per_node
        update = {
            "Parallelism": 1,
            "Delay": int(spec.update_delay * NANO),
            "FailureAction": "rollback",
            "Monitor": int(spec.update_monitor * NANO),
            "MaxFailureRatio": 0,
            "Order": spec.order,
        }
        rollback = dict(update, FailureAction="pause")
        ports = [{"Protocol": "tcp", "TargetPort": 5000, "PublishedPort": spec.port, "PublishMode": spec.publish_mode}]
        if spec.settings.metrics:
            # Host mode on every node running a task: Prometheus scrapes each replica at its node's address (the
            # routing mesh would hand each scrape to any replica). Swarm binds it on every address of the node.
            ports.append({"Protocol": "tcp", "TargetPort": DEBUG_PORT, "PublishedPort": spec.metrics_port, "PublishMode": "host"})
        return {
            "Name": spec.name,
            "Labels": {LABEL_SERVICE: spec.name},
            "TaskTemplate": {
                "ContainerSpec": container,
                "Placement": placement,
                "RestartPolicy": {"Condition": "any", "Delay": 2 * NANO},
            },
            "Mode": {"Global": {}} if spec.mode == "global" else {"Replicated": {"Replicas": spec.replicas}},
            "UpdateConfig": update,
            "RollbackConfig": rollback,
            "EndpointSpec": {"Ports": ports},
        }

    def converge(self) -> dict[str, Any]:
        self.spec.validate()
        state = self.engine.swarm_state()
        if not state.get("ControlAvailable") and self.check_mode and self.spec.state != "absent":
            # Check mode before the swarm exists (the swarm role would form it first): the service would be created.
            self.actions.append("create service %s once this host is a swarm manager" % self.spec.name)
            return self._result(True, None, None, [])
        if not state.get("ControlAvailable"):
            raise SwarmError(
                "this host is not a swarm manager (swarm state %s): run registry_service on a manager" % (state.get("LocalNodeState") or "inactive")
            )
        current = self.engine.service(self.spec.name)
        before = view(current["Spec"]) if current else None
        if self.spec.state == "absent":
            if current:
                self.actions.append("remove service %s" % self.spec.name)
                if not self.check_mode:
                    self.engine.remove_service(self.spec.name)
            return self._result(bool(current), before, None, [])
        wanted = self.wanted()
        after = view(wanted)
        changed = before != after
        if current is not None and changed:
            self._check_data_move(current["Spec"], wanted)
        if current is None:
            self.actions.append(
                "create service %s (%s, port %d published in %s mode)" % (self.spec.name, after["mode"], self.spec.port, self.spec.publish_mode)
            )
            if not self.check_mode:
                self.engine.create_service(wanted)
        previous = ((current or {}).get("UpdateStatus") or {}).get("StartedAt")
        if current is not None and changed:
            differ = sorted(k for k in after if before is None or before.get(k) != after[k])
            self.actions.append("rolling update of service %s (%s; %s, one task at a time)" % (self.spec.name, ", ".join(differ), self.spec.order))
            if not self.check_mode:
                self.engine.update_service(current["ID"], current["Version"]["Index"], wanted)
        health: list[dict[str, Any]] = []
        if not self.check_mode:
            health = self._wait_tasks(wanted, previous)
            if changed:
                self._forget_secrets(wanted)
        return self._result(changed, before, after, health)

    def _check_data_move(self, current: dict[str, Any], wanted: dict[str, Any]) -> None:
        """Another storage for an existing service: refused when the old one holds repositories and the new one is
        empty (unless data_move adopt_empty). Both are read on this manager through helper containers that only
        mount them (shared storage: every node sees the same). Copying is left to the user: the replicas write to
        the shared storage while they run."""

        def data(spec: dict[str, Any]) -> dict[str, Any]:
            mounts = ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Mounts") or []
            found = next((m for m in mounts if m.get("Target") == DATA_TARGET), {})
            return {"type": found.get("Type", "volume"), "source": found.get("Source", ""), "target": DATA_TARGET}

        old, new = data(current), data(wanted)
        if (old["type"], old["source"]) == (new["type"], new["source"]) or not old["source"]:
            return
        texts = {id(m): "%s %s" % ("volume" if m["type"] == "volume" else "data_path", m["source"]) for m in (old, new)}
        if old["type"] == "volume" and self.engine.volume(old["source"]) is None:
            held: str | None = "unknown: this manager has no volume %s to read" % old["source"]
        else:
            held = probe_location(self.engine, self.spec.name, self.spec.image, old)[0]
        _what, action = decide(
            self.engine, held, texts[id(old)], new, texts[id(new)], self.spec.image, self.spec.data_move, self.spec.name,
            no_copy="the replicas write to the shared storage while they run: copy the data yourself (with the service"
            " scaled to 0), then run again",
        )
        if action:
            self.actions.append(action)

    # -- waiting and reporting ----------------------------------------------------------------------------------
    def _update_failed(self, previous: str | None) -> str | None:
        """Why the rolling update the engine started after ``previous`` (StartedAt of the last one) stopped, if it did."""
        status = (self.engine.service(self.spec.name) or {}).get("UpdateStatus") or {}
        if status.get("StartedAt") != previous and status.get("State") in ("rollback_started", "rollback_completed", "rollback_paused", "paused"):
            return "rolling update of service %s stopped (%s): %s" % (self.spec.name, status["State"], status.get("Message") or "no message")
        return None

    def _node_addresses(self) -> dict[str, tuple[str, str]]:
        """node ID → (host name, address)."""
        nodes = {}
        for node in self.engine.nodes():
            address = (node.get("Status") or {}).get("Addr") or ""
            if address in ("", "0.0.0.0"):
                address = manager_host((node.get("ManagerStatus") or {}).get("Addr", ""))
            nodes[node["ID"]] = ((node.get("Description") or {}).get("Hostname", node["ID"]), address)
        return nodes

    def _wait_tasks(self, wanted_spec: dict[str, Any], previous: str | None) -> list[dict[str, Any]]:
        """Wait until every wanted task runs the wanted spec and answers /v2/ on its node; per-node health."""
        deadline = time.monotonic() + self.spec.wait_timeout
        wanted = None if self.spec.mode == "global" else self.spec.replicas
        nodes = self._node_addresses()
        while True:
            tasks = [t for t in self.engine.tasks(self.spec.name) if t.get("DesiredState") == "running"]
            running = [t for t in tasks if (t.get("Status") or {}).get("State") == "running" and _same_task(t, wanted_spec)]
            failed = self._update_failed(previous)
            if failed:
                raise SwarmError(failed)
            if running and len(running) == len(tasks) and (wanted is None or len(running) >= wanted):
                break
            if wanted == 0 and not tasks:
                return []
            if time.monotonic() > deadline:
                waiting = [(t.get("Status") or {}) for t in tasks if t not in running]
                reasons = "; ".join(sorted({(s.get("Err") or s.get("Message") or s.get("State") or "?") for s in waiting})) or "no task"
                raise SwarmError(
                    "service %s: %d of %s tasks running after %ss (%s)" % (self.spec.name, len(running), wanted or len(tasks), self.spec.wait_timeout, reasons)
                )
            time.sleep(1)
        scheme = "https" if self.spec.tls_cert else "http"
        health = []
        for task in sorted(running, key=lambda t: nodes.get(t.get("NodeID", ""), ("",))[0]):
            hostname, address = nodes.get(task.get("NodeID", ""), (task.get("NodeID", "?"), ""))
            entry: dict[str, Any] = {"node": hostname, "address": address, "task": task["ID"], "state": "running"}
            host = "[%s]" % address if ":" in address else address
            try:
                entry["seconds"] = round(wait_ready("%s:%d" % (host, self.spec.port), scheme, max(deadline - time.monotonic(), 1)), 2)
                entry["answers"] = True
            except RegistryUnreachable as exc:
                entry["answers"] = False
                entry["error"] = str(exc)
            health.append(entry)
        silent = [h for h in health if not h["answers"]]
        if silent:
            raise SwarmError("service %s: no /v2/ answer from %s" % (self.spec.name, "; ".join(h["error"] for h in silent)))
        return health

    def _forget_secrets(self, wanted: dict[str, Any]) -> None:
        """Remove this service's secrets that the new spec no longer uses (one still held by a stopping task stays)."""
        used = {s["SecretName"] for s in wanted["TaskTemplate"]["ContainerSpec"]["Secrets"]}
        for secret in self.engine.secrets("%s=%s" % (LABEL_SERVICE, self.spec.name)):
            if secret["Spec"]["Name"] not in used:
                try:
                    self.engine.remove_secret(secret["ID"])
                    self.actions.append("remove unused swarm secret %s" % secret["Spec"]["Name"])
                except EngineError:
                    pass

    def _result(self, changed: bool, before: Any, after: Any, health: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "changed": changed,
            "actions": self.actions,
            "service": after,
            "nodes": health,
            "update_order": self.spec.order if self.spec.state != "absent" else None,
            "diff": {"before": before or {}, "after": after or {}},
        }
