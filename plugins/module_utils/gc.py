# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Garbage collection of a registry's storage while the registry is read-only.

``registry garbage-collect`` is stop-the-world: a push during it can lose blobs. So the
registry is switched to ``storage.maintenance.readonly`` first (pulls keep being served,
pushes get 405), the collection runs against the registry's own storage and
configuration, and the registry is switched back to read-write afterwards: in a
``finally``, on SIGTERM too, and on the next run when a run was killed outright.

A backend knows how to switch one kind of deployment and where to run the command:
:class:`ContainerBackend` (a registry container: recreated with the read-only setting,
data kept, the command run with ``docker exec``). A Swarm service is one more backend
(every replica read-only together: a rolling service update of the environment, the collection
once every task runs it, with ``docker exec`` in this node's task).
"""

from __future__ import annotations

import copy
import os
import re
import signal
import time
from collections.abc import Callable
from typing import Any, Protocol

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError, one_line
from ansible_collections.dockhand.registry.plugins.module_utils.container import RegistryContainer
from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import DATA_TARGET, env_dict, spec_from_container
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient
from ansible_collections.dockhand.registry.plugins.module_utils.transport import RegistryUnreachable, wait_ready

READONLY_ENV = "REGISTRY_STORAGE_MAINTENANCE_READONLY"
READONLY_VALUE = '{"enabled": true}'
DEFAULT_CONFIG = "/etc/docker/registry/config.yml"
BLOBS = os.path.join("docker", "registry", "v2", "blobs")

_SUMMARY_RE = re.compile(r"(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion")
_ELIGIBLE_RE = re.compile(r"blob eligible for deletion: (sha256:[0-9a-f]{64})")
_EMPTY_RE = re.compile(r"Path not found: /docker/registry/v2/repositories")


class GcError(DockhandError):
    """The garbage collection failed (the registry was made read-write again)."""


class GcInterrupted(DockhandError):
    """SIGTERM during the run."""


class Backend(Protocol):
    description: str
    # What the switches had to say (such as: new connections could not be held during a swap).
    warnings: list[str]

    def is_read_only(self) -> bool: ...

    def set_read_only(self, read_only: bool) -> None: ...

    def garbage_collect(self, dry_run: bool, delete_untagged: bool) -> tuple[int, str]: ...

    def data_path(self) -> str | None: ...


class ContainerBackend:
    """A registry container on ``engine``, switched by a data-keeping recreate (RegistryContainer)."""

    def __init__(self, engine: EngineClient, name: str, wait_timeout: int = 60) -> None:
        self.engine = engine
        self.name = name
        self.wait_timeout = wait_timeout
        self.description = "registry container %s" % name
        self.warnings: list[str] = []

    def _inspect(self) -> dict[str, Any]:
        container = self.engine.container(self.name)
        if container is None:
            raise GcError("there is no container %s on the engine" % self.name)
        return container

    def is_read_only(self) -> bool:
        env = env_dict((self._inspect().get("Config") or {}).get("Env"))
        return READONLY_ENV in env

    def set_read_only(self, read_only: bool) -> None:
        container = self._inspect()
        # Keep the image the container runs, under its name when the name still points at it.
        ref = (container.get("Config") or {}).get("Image") or ""
        image = self.engine.image(ref) if ref else None
        if image is None or image.get("Id") != container.get("Image"):
            ref = container.get("Image") or ref
            image = self.engine.image(ref) or {}
        spec = spec_from_container(container, env_dict((image.get("Config") or {}).get("Env")), ref)
        spec.wait_timeout = self.wait_timeout
        if read_only:
            spec.env[READONLY_ENV] = READONLY_VALUE
        else:
            spec.env.pop(READONLY_ENV, None)
        result = RegistryContainer(self.engine, spec).converge()
        # Such as: new connections could not be held during the swap (no root, no iptables).
        self.warnings.extend(w for w in result.get("warnings") or [] if w not in self.warnings)

    def _command(self) -> tuple[str, str]:
        """The registry binary and configuration file the container serves with."""
        config = self._inspect().get("Config") or {}
        args = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
        if "serve" in args:
            at = args.index("serve")
            binary = args[at - 1] if at > 0 else "registry"
            return binary, (args[at + 1] if at + 1 < len(args) else DEFAULT_CONFIG)
        # registry:2 of Docker Hub: /entrypoint.sh <config>, the binary on PATH.
        configs = [a for a in args if a.endswith((".yml", ".yaml"))]
        return "registry", (configs[-1] if configs else DEFAULT_CONFIG)

    def garbage_collect(self, dry_run: bool, delete_untagged: bool) -> tuple[int, str]:
        binary, config = self._command()
        command = [binary, "garbage-collect"]
        command += ["--dry-run"] if dry_run else []
        command += ["--delete-untagged"] if delete_untagged else []
        return self.engine.exec_run(self.name, [*command, config])

    def data_path(self) -> str | None:
        if not self.engine.local:
            return None
        for mount in self._inspect().get("Mounts") or []:
            if mount.get("Destination") == DATA_TARGET:
                return mount.get("Source")
        return None


class ServiceBackend:
    """A registry Swarm service (replicas on shared storage), run from a manager that runs one of its tasks.

    The switch is one service update of the task environment, rolled out by the service's own ``UpdateConfig`` as
    registry_service made it (one task at a time, stop-first with host-mode ports): at most one node is without a
    registry at any moment, so a client that tries the next node is never refused. The collection starts only once
    EVERY running task runs the read-only spec and answers ``/v2/`` (replicas mixed read-only/read-write before that
    are harmless: nothing is collected yet). It runs with ``docker exec`` in this node's task: the task's own binary,
    its configuration (a Swarm secret, which nothing outside a task can read) and its environment.

    ``wait_timeout`` is per step of the rolling update (one batch of ``Parallelism`` tasks, plus the update's
    ``Delay``): a rollout of N tasks may take N of them.
    """

    def __init__(self, engine: EngineClient, name: str, wait_timeout: int = 60) -> None:
        self.engine = engine
        self.name = name
        self.wait_timeout = wait_timeout
        self.description = "registry service %s" % name
        self.warnings: list[str] = []
        self._node_id: str | None = None

    def _service(self) -> dict[str, Any]:
        if self._node_id is None:
            state = self.engine.swarm_state()
            if not state.get("ControlAvailable"):
                raise GcError(
                    "this host is not a swarm manager (swarm state %s): run registry_gc for service %s on a manager"
                    % (state.get("LocalNodeState") or "inactive", self.name)
                )
            self._node_id = state.get("NodeID") or ""
        service = self.engine.service(self.name)
        if service is None:
            raise GcError("there is no service %s in the swarm" % self.name)
        return service

    @staticmethod
    def _env(spec: dict[str, Any]) -> list[str]:
        return list(((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Env") or [])

    @staticmethod
    def _read_only_env(env: list[str]) -> bool:
        return any(entry.split("=", 1)[0] == READONLY_ENV for entry in env)

    def _task_read_only(self, task: dict[str, Any]) -> bool:
        return self._read_only_env(self._env({"TaskTemplate": task.get("Spec") or {}}))

    def is_read_only(self) -> bool:
        return self._read_only_env(self._env(self._service()["Spec"]))

    def set_read_only(self, read_only: bool) -> None:
        service = self._service()
        spec = copy.deepcopy(service["Spec"])
        env = [entry for entry in self._env(spec) if entry.split("=", 1)[0] != READONLY_ENV]
        if read_only:
            env.append("%s=%s" % (READONLY_ENV, READONLY_VALUE))
        if env != self._env(spec) or read_only:
            # The environment only: the service's UpdateConfig (its rolling update) and everything else as they are.
            spec["TaskTemplate"]["ContainerSpec"]["Env"] = env
            previous = (service.get("UpdateStatus") or {}).get("StartedAt")
            budget = self._budget(spec)
            self.engine.update_service(service["ID"], service["Version"]["Index"], spec)
            self._wait(read_only, previous, budget)

    def _wanted_tasks(self, spec: dict[str, Any]) -> int | None:
        mode = spec.get("Mode") or {}
        return None if "Global" in mode else int((mode.get("Replicated") or {}).get("Replicas", 1))

    def _budget(self, spec: dict[str, Any]) -> float:
        """Seconds for the rollout: wait_timeout (plus the update's Delay) per batch of Parallelism tasks."""
        update = spec.get("UpdateConfig") or {}
        wanted = self._wanted_tasks(spec)
        if wanted is None:  # global: one task per eligible node, as many as run now
            wanted = len({t.get("NodeID") for t in self.engine.tasks(self.name) if t.get("DesiredState") == "running"})
        parallelism = int(update.get("Parallelism", 1) or 0)  # the swarm's default is 1; 0 is every task at once
        steps = 1 if parallelism <= 0 else max(-(-max(wanted, 1) // parallelism), 1)
        return steps * (self.wait_timeout + int(update.get("Delay") or 0) / 1e9)

    def _wait(self, read_only: bool, previous: str | None, budget: float) -> None:
        """Until every running task runs the new spec (and as many as wanted), each answering /v2/ on its node."""
        deadline = time.monotonic() + budget
        what = "read-only" if read_only else "read-write"
        while True:
            service = self._service()
            status = service.get("UpdateStatus") or {}
            if status.get("StartedAt") != previous and status.get("State") in ("rollback_started", "rollback_completed", "rollback_paused", "paused"):
                raise GcError("service %s: the update to %s stopped (%s): %s" % (self.name, what, status["State"], status.get("Message") or "no message"))
            wanted = self._wanted_tasks(service["Spec"])
            tasks = self.engine.tasks(self.name)
            running = [t for t in tasks if (t.get("Status") or {}).get("State") == "running"]
            new = [t for t in running if t.get("DesiredState") == "running" and self._task_read_only(t) == read_only]
            pending = [t for t in tasks if t.get("DesiredState") == "running" and t not in new]
            old = [t for t in running if t not in new]
            if not old and not pending and (wanted is None or len(new) >= wanted):
                break
            if time.monotonic() > deadline:
                reasons = "; ".join(sorted({one_line((t.get("Status") or {}).get("Err") or (t.get("Status") or {}).get("State") or "?") for t in pending}))
                raise GcError(
                    "service %s: %d of %s tasks run the %s spec after %.0fs of its rolling update (wait_timeout %ss per step; "
                    "%d old tasks still running%s)"
                    % (self.name, len(new), wanted if wanted is not None else len(new) + len(pending), what, budget, self.wait_timeout,
                       len(old), "; waiting: " + reasons if reasons else "")
                )  # fmt: skip
            time.sleep(0.5)
        self._wait_answers(service["Spec"], new, deadline)

    def _wait_answers(self, spec: dict[str, Any], tasks: list[dict[str, Any]], deadline: float) -> None:
        if not self.engine.local:
            return
        ports = [p for p in (spec.get("EndpointSpec") or {}).get("Ports") or [] if p.get("TargetPort") == 5000]
        if not ports:
            return
        secrets = ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Secrets") or []
        scheme = "https" if any((s.get("File") or {}).get("Name") == "server.crt" for s in secrets) else "http"
        addresses = {}
        for node in self.engine.nodes():
            address = (node.get("Status") or {}).get("Addr") or ""
            if address in ("", "0.0.0.0"):
                address = ((node.get("ManagerStatus") or {}).get("Addr") or "").rsplit(":", 1)[0]
            addresses[node.get("ID")] = address
        for task in tasks:
            address = addresses.get(task.get("NodeID"))
            if not address:
                continue
            host = "[%s]" % address if ":" in address else address
            try:
                wait_ready("%s:%d" % (host, ports[0].get("PublishedPort", 5000)), scheme, max(deadline - time.monotonic(), 1))
            except RegistryUnreachable as exc:
                raise GcError("service %s: %s" % (self.name, exc)) from None

    def _local_task(self) -> ContainerBackend:
        """The container of this node's running task (the collection runs in it)."""
        self._service()
        for task in self.engine.tasks(self.name):
            status = task.get("Status") or {}
            container = (status.get("ContainerStatus") or {}).get("ContainerID")
            if task.get("NodeID") == self._node_id and task.get("DesiredState") == "running" and status.get("State") == "running" and container:
                return ContainerBackend(self.engine, container, self.wait_timeout)
        raise GcError(
            "service %s has no running task on this node (%s): run registry_gc on a manager that runs one of its replicas" % (self.name, self._node_id)
        )

    def garbage_collect(self, dry_run: bool, delete_untagged: bool) -> tuple[int, str]:
        return self._local_task().garbage_collect(dry_run, delete_untagged)

    def data_path(self) -> str | None:
        """The shared storage as this node mounts it (a bind path; a volume's directory), when the engine is local."""
        if not self.engine.local:
            return None
        return self._local_task().data_path()


def blob_usage(data_path: str | None) -> dict[str, int] | None:
    """Blobs and bytes under the registry's storage (None when the storage is not on this host)."""
    if not data_path:
        return None
    blobs = count = 0
    root = os.path.join(data_path, BLOBS)
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            try:
                size = os.lstat(path).st_size
            except OSError:
                continue
            count += size
            blobs += name == "data"
    return {"blobs": blobs, "bytes": count}


def blob_size(data_path: str | None, digest: str) -> int:
    if not data_path:
        return 0
    algorithm, _sep, hexdigest = digest.partition(":")
    try:
        return os.path.getsize(os.path.join(data_path, BLOBS, algorithm, hexdigest[:2], hexdigest, "data"))
    except OSError:
        return 0


def parse_output(output: str) -> dict[str, Any]:
    summary = _SUMMARY_RE.search(output)
    return {
        "marked": int(summary.group(1)) if summary else 0,
        "eligible_blobs": int(summary.group(2)) if summary else 0,
        "eligible_manifests": int(summary.group(3)) if summary else 0,
        "digests": sorted(set(_ELIGIBLE_RE.findall(output))),
    }


def _interrupt(signum: int, frame: Any) -> None:
    raise GcInterrupted("interrupted by signal %d" % signum)


def _collect(backend: Backend, dry_run: bool, delete_untagged: bool) -> dict[str, Any]:
    code, output = backend.garbage_collect(dry_run, delete_untagged)
    if code != 0:
        if _EMPTY_RE.search(output):  # a registry that never stored a repository
            return parse_output("")
        lines = [line for line in output.splitlines() if line.strip()]
        raise GcError("registry garbage-collect failed (exit %d): %s" % (code, one_line(lines[-1] if lines else "no output")[:300]))
    return parse_output(output)


def backend_for(engine_of: Callable[[], EngineClient], name: str, service: str | None, wait_timeout: int) -> Backend:
    """The registry to collect: the Swarm service ``service`` when one is named, else the container ``name``. The
    values are checked before ``engine_of()`` connects to the engine."""
    if wait_timeout < 1:
        raise GcError("wait_timeout %r must be 1 or more" % wait_timeout)
    if service is not None and not service.strip():
        raise GcError("service %r is not a service name" % service)
    if service is None and not (name or "").strip():
        raise GcError("name %r is not a container name: give the registry container's name (default registry)" % name)
    engine = engine_of()
    if service is not None:
        return ServiceBackend(engine, service, wait_timeout)
    return ContainerBackend(engine, name, wait_timeout)


def collect(
    engine_of: Callable[[], EngineClient],
    name: str,
    service: str | None,
    wait_timeout: int,
    check_mode: bool = False,
    delete_untagged: bool = False,
) -> dict[str, Any]:
    """registry_gc's run: :func:`backend_for`, :func:`run_gc`, and the storage's usage before and after as the diff."""
    result = run_gc(backend_for(engine_of, name, service, wait_timeout), check_mode, delete_untagged)
    result["diff"] = {"before": result["before"], "after": result["after"]}
    return result


def run_gc(backend: Backend, check_mode: bool = False, delete_untagged: bool = False) -> dict[str, Any]:
    actions: list[str] = []
    result: dict[str, Any] = {"changed": False, "actions": actions}
    if backend.is_read_only():
        actions.append("make the %s read-write again (left read-only by an interrupted run)" % backend.description)
        if not check_mode:
            backend.set_read_only(False)
    data_path = backend.data_path()
    before = blob_usage(data_path)
    flag = " --delete-untagged" if delete_untagged else ""
    # A dry run first, on the registry as it runs: with nothing to remove, no read-only window at all.
    found = _collect(backend, True, delete_untagged)
    if check_mode or not (found["digests"] or found["eligible_manifests"]):
        sizes = sum(blob_size(data_path, d) for d in found["digests"])
        if found["digests"] and check_mode:
            actions.append("garbage-collect%s the %s while read-only: %d blobs (%d bytes) would be removed"
                           % (flag, backend.description, len(found["digests"]), sizes))
        result.update(
            changed=bool(actions),
            blobs_removed=len(found["digests"]) if check_mode else 0,
            bytes_removed=(sizes if check_mode else 0) if data_path else None,
            removed=found["digests"] if check_mode else [],
            manifests_removed=found["eligible_manifests"],
            read_only_seconds=0.0,
            gc_seconds=0.0,
            before=before,
            after=before,
        )
        return _with_warnings(result, backend)

    previous = signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    gc_seconds = 0.0
    try:
        actions.append("switch the %s to read-only" % backend.description)
        at = len(actions)
        backend.set_read_only(True)
        ready = time.monotonic()
        found = _collect(backend, False, delete_untagged)
        gc_seconds = time.monotonic() - ready
    finally:
        try:
            backend.set_read_only(False)
        finally:
            signal.signal(signal.SIGTERM, previous)
        actions.append("switch the %s back to read-write" % backend.description)
    window = time.monotonic() - started
    after = blob_usage(data_path)
    removed = len(found["digests"])
    if before is not None and after is not None:
        removed = max(before["blobs"] - after["blobs"], 0)
    actions.insert(at, "garbage-collect%s: %d blobs removed" % (flag, removed))
    result.update(
        changed=True,
        blobs_removed=removed,
        bytes_removed=(before["bytes"] - after["bytes"]) if before is not None and after is not None else None,
        removed=found["digests"],
        manifests_removed=found["eligible_manifests"],
        read_only_seconds=round(window, 3),
        gc_seconds=round(gc_seconds, 3),
        before=before,
        after=after,
    )
    return _with_warnings(result, backend)


def _with_warnings(result: dict[str, Any], backend: Backend) -> dict[str, Any]:
    """The backend's warnings (e.g. a swap that could not hold new connections) in the result."""
    if backend.warnings:
        result["warnings"] = list(backend.warnings)
    return result
