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

What goes is decided here, never by the binary's ``--delete-untagged`` (distribution 2.8 marks only the manifests a
tag names: the platform images of an index go with it). With the storage readable from this host (module_utils/
storage.py): in the read-only window, the manifests no tag reaches (with ``delete_untagged``), dangling tags, old
upload sessions and repositories left with nothing are removed from the storage, then ``registry garbage-collect``
runs WITHOUT ``--delete-untagged``: it marks every remaining manifest and what it references, and sweeps the rest.
No registry accepts a write in the window (every replica is read-only and answers first), so the plan made there
is the storage as it stays until the sweep ends: a push can only come before the window (and is then seen) or after
it (and then finds the registry it expects, or is refused and retried: never accepted and lost).
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
from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import env_dict, spec_from_container
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient
from ansible_collections.dockhand.registry.plugins.module_utils.registry_config import CONFIG_TARGET, STORAGE_LABEL, storage_driver
from ansible_collections.dockhand.registry.plugins.module_utils.registry_config import read as read_config
from ansible_collections.dockhand.registry.plugins.module_utils.storage import (
    ROOT_ENV,
    Plan,
    Storage,
    StorageError,
    driver_from_env,
    enumerated,
    host_path,
    root_directory,
    same_storage,
)
from ansible_collections.dockhand.registry.plugins.module_utils.transport import RegistryUnreachable, wait_ready

READONLY_ENV = "REGISTRY_STORAGE_MAINTENANCE_READONLY"
READONLY_VALUE = '{"enabled": true}'
DEFAULT_CONFIG = "/etc/docker/registry/config.yml"
UPLOADS_OLDER_THAN_MINUTES = 60

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

    def garbage_collect(self, dry_run: bool) -> tuple[int, str]: ...

    def data_path(self) -> str | None: ...

    # Why the registry's storage cannot be read from this host (None: data_path() is it).
    def storage_problem(self) -> str | None: ...


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

    def garbage_collect(self, dry_run: bool) -> tuple[int, str]:
        """The registry's own collection, never with ``--delete-untagged`` (2.8 drops an index's platform images)."""
        binary, config = self._command()
        return self.engine.exec_run(self.name, [binary, "garbage-collect", *(["--dry-run"] if dry_run else []), config])

    def _env(self) -> dict[str, str]:
        return env_dict((self._inspect().get("Config") or {}).get("Env"))

    def _config(self) -> dict[str, Any]:
        """The configuration file bind-mounted at CONFIG_TARGET ({} when there is none: the image's own)."""
        for mount in self._inspect().get("Mounts") or []:
            if mount.get("Destination") == CONFIG_TARGET and mount.get("Type") == "bind" and mount.get("Source"):
                return read_config(mount["Source"]) or {}
        return {}

    def _root(self) -> str:
        """storage.filesystem.rootdirectory in the container: the environment's, else the configuration file's."""
        env = self._env()
        configured = ((self._config().get("storage") or {}).get("filesystem") or {}).get("rootdirectory")
        return root_directory(env) if env.get(ROOT_ENV) or not configured else root_directory({ROOT_ENV: configured})

    def _driver(self) -> str | None:
        """The storage driver when not filesystem: the environment's (it wins), else the configuration file's, else
        the label a service task carries (its configuration is a Swarm secret)."""
        env = self._env()
        driver = driver_from_env(env)
        if driver or env.get("REGISTRY_STORAGE"):
            return driver
        configured = storage_driver(self._config())
        if configured and configured != "filesystem":
            return "%s (storage.%s in its configuration file)" % (configured, configured)
        labelled = ((self._inspect().get("Config") or {}).get("Labels") or {}).get(STORAGE_LABEL)
        if labelled and labelled != "filesystem":
            return "%s (storage.%s in its configuration)" % (labelled, labelled)
        return None

    def data_path(self) -> str | None:
        """The registry's root directory as this host sees it: through the bind mount or volume holding it."""
        if not self.engine.local:
            return None
        return host_path(self._inspect().get("Mounts") or [], self._root())

    def storage_problem(self) -> str | None:
        if not self.engine.local:
            return "its engine is not this host's (docker_host)"
        driver = self._driver()
        if driver:
            return "it stores with the %s driver" % driver
        if self.data_path() is None:
            return "its storage (%s in the container) is on no bind mount or volume" % self._root()
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

    def garbage_collect(self, dry_run: bool) -> tuple[int, str]:
        return self._local_task().garbage_collect(dry_run)

    def data_path(self) -> str | None:
        """The shared storage as this node mounts it (a bind path; a volume's directory), when the engine is local."""
        if not self.engine.local:
            return None
        return self._local_task().data_path()

    def storage_problem(self) -> str | None:
        if not self.engine.local:
            return "its engine is not this host's (docker_host)"
        return self._local_task().storage_problem()


def parse_output(output: str) -> dict[str, Any]:
    """The counts and the blobs of a ``registry garbage-collect`` run, and what it enumerated."""
    summary = _SUMMARY_RE.search(output)
    return {
        "marked": int(summary.group(1)) if summary else 0,
        "eligible_blobs": int(summary.group(2)) if summary else 0,
        "eligible_manifests": int(summary.group(3)) if summary else 0,
        "digests": sorted(set(_ELIGIBLE_RE.findall(output))),
        "enumerated": enumerated(output),
    }


def _interrupt(signum: int, frame: Any) -> None:
    raise GcInterrupted("interrupted by signal %d" % signum)


def _collect(backend: Backend, dry_run: bool) -> dict[str, Any]:
    code, output = backend.garbage_collect(dry_run)
    if code != 0:
        if _EMPTY_RE.search(output):  # a registry that never stored a repository
            return parse_output("")
        lines = [line for line in output.splitlines() if line.strip()]
        raise GcError("registry garbage-collect failed (exit %d): %s" % (code, one_line(lines[-1] if lines else "no output")[:300]))
    return parse_output(output)


def _refusal(backend: Backend, why: str) -> GcError:
    return GcError(
        "delete_untagged needs the registry's storage on this host (the filesystem driver on a bind mount or volume of a "
        "local engine) to compute what the tags reach, and the %s cannot be read here: %s. Run registry_gc on the "
        "registry's host, or without delete_untagged (which keeps every manifest)" % (backend.description, why)
    )


def _storage(backend: Backend, delete_untagged: bool) -> Storage | None:
    """The registry's storage as this host sees it, or None (refused with delete_untagged, which needs it)."""
    why = backend.storage_problem()
    path = backend.data_path() if why is None else None
    if path is not None:
        storage = Storage(path)
        writable = storage.repositories_root if os.path.isdir(storage.repositories_root) else path
        if os.access(writable, os.W_OK):
            return storage
        why = "this user cannot write %s (run the module as root: become)" % writable
    if delete_untagged:
        raise _refusal(backend, why or "no data path")
    return None


def _read(backend: Backend, call: Any, *args: Any) -> Any:
    """``call(*args)`` on the storage; its errors as one line naming the registry."""
    try:
        return call(*args)
    except StorageError as exc:
        raise GcError("%s: %s" % (backend.description, exc)) from None


def _plan(backend: Backend, storage: Storage | None, delete_untagged: bool, older: float, found: dict[str, Any]) -> tuple[Plan, dict[str, int] | None]:
    """What goes, and the bytes of each blob that goes (None: the storage is not readable here; then the registry's
    dry run says which blobs go, and nothing else does)."""
    if storage is None:
        return Plan(blobs=found["digests"]), None
    plan = _read(backend, storage.plan, delete_untagged, older)
    return plan, {d: storage.blob_size(d) or 0 for d in plan.blobs}


def _summary(plan: Plan, removed: list[str], sizes: dict[str, int] | None) -> dict[str, Any]:
    return {
        "removed": removed,
        "blobs_removed": len(removed),
        "bytes_removed": sum(sizes.get(d, 0) for d in removed) if sizes is not None else None,
        "manifests": ["%s@%s" % entry for entry in plan.manifests],
        "manifests_removed": len(plan.manifests),
        "repositories_removed": list(plan.repositories),
        "dangling_tags_removed": ["%s:%s" % entry for entry in plan.dangling],
        "uploads_removed": len(plan.uploads),
        "upload_bytes_removed": sum(u.bytes for u in plan.uploads),
    }


def _actions(plan: Plan, removed: list[str], sizes: dict[str, int] | None, would: bool) -> list[str]:
    verb = "would remove" if would else "remove"
    actions = []
    if plan.manifests:
        shown = ", ".join("%s@%s" % m for m in plan.manifests[:5]) + (", ..." if len(plan.manifests) > 5 else "")
        actions.append("%s %d manifests no tag reaches: %s" % (verb, len(plan.manifests), shown))
    if plan.dangling:
        actions.append("%s %d dangling tags (their manifest is gone): %s" % (verb, len(plan.dangling), ", ".join("%s:%s" % t for t in plan.dangling)))
    if plan.uploads:
        actions.append("%s %d abandoned upload sessions (%d bytes)" % (verb, len(plan.uploads), sum(u.bytes for u in plan.uploads)))
    if plan.repositories:
        actions.append("%s %d repositories left with nothing: %s" % (verb, len(plan.repositories), ", ".join(plan.repositories)))
    size = " (%d bytes)" % sum(sizes.get(d, 0) for d in removed) if sizes is not None else ""
    actions.append("garbage-collect: %d blobs%s %s" % (len(removed), size, "would be removed" if would else "removed"))
    return actions


def backend_for(engine_of: Callable[[], EngineClient], name: str, service: str | None, wait_timeout: int) -> Backend:
    """The registry to collect: the Swarm service ``service`` when one is named, else the container ``name``. The
    values are checked before ``engine_of()`` connects to the engine."""
    if wait_timeout < 1:
        raise GcError("wait_timeout %r must be 1 or more" % wait_timeout)
    if service is not None and not service.strip():
        raise GcError("service %r is not a service name" % service)
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
    uploads_older_than_minutes: int = UPLOADS_OLDER_THAN_MINUTES,
) -> dict[str, Any]:
    """registry_gc's run: :func:`backend_for`, :func:`run_gc`, and the storage's usage before and after as the diff."""
    result = run_gc(backend_for(engine_of, name, service, wait_timeout), check_mode, delete_untagged, uploads_older_than_minutes)
    result["diff"] = {"before": result["before"], "after": result["after"]}
    return result


def run_gc(
    backend: Backend, check_mode: bool = False, delete_untagged: bool = False, uploads_older_than_minutes: int = UPLOADS_OLDER_THAN_MINUTES
) -> dict[str, Any]:
    """One collection. The counts are what this run removed (in check mode, would remove); ``before``/``after`` are the
    storage's usage (null when the storage is not readable here)."""
    if uploads_older_than_minutes < 0:
        raise GcError("uploads_older_than_minutes %r must be 0 or more" % uploads_older_than_minutes)
    older = uploads_older_than_minutes * 60.0
    actions: list[str] = []
    warnings: list[str] = []
    result: dict[str, Any] = {"changed": False, "actions": actions}
    if backend.is_read_only():
        actions.append("make the %s read-write again (left read-only by an interrupted run)" % backend.description)
        if not check_mode:
            backend.set_read_only(False)
    storage = _storage(backend, delete_untagged)
    before = _read(backend, storage.usage) if storage else None
    listed = _read(backend, storage.listing) if storage else set()
    # A dry run first, on the registry as it runs: with nothing to remove, no read-only window at all. What it
    # enumerates proves that the storage read here is the one the registry reads.
    found = _collect(backend, True)
    if storage is not None:
        problem = same_storage(listed, found["enumerated"], _read(backend, storage.listing))
        if problem:
            why = "its storage is not %s as this host sees it: %s" % (storage.data_path, problem)
            if delete_untagged:
                raise _refusal(backend, why)
            warnings.append("%s: %s; only the registry's own collection ran" % (backend.description, why))
            storage = before = None
    plan, sizes = _plan(backend, storage, delete_untagged, older, found)
    warnings += plan.broken
    if check_mode or plan.empty():
        if check_mode and not plan.empty():
            actions += _actions(plan, plan.blobs, sizes, would=True)
        result.update(_summary(plan, plan.blobs, sizes) if check_mode else _summary(Plan(), [], sizes))
        result.update(changed=bool(actions), read_only_seconds=0.0, gc_seconds=0.0, before=before, after=before)
        return _with_warnings(result, backend, warnings)

    previous = signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    gc_seconds = 0.0
    try:
        actions.append("switch the %s to read-only" % backend.description)
        at = len(actions)
        backend.set_read_only(True)
        ready = time.monotonic()
        if storage is not None:
            # The plan again, from the storage as no registry writes it any more: this is what goes.
            plan, sizes = _plan(backend, storage, delete_untagged, older, found)
            _read(backend, storage.apply, plan)
        found = _collect(backend, False)
        gc_seconds = time.monotonic() - ready
    finally:
        try:
            backend.set_read_only(False)
        finally:
            signal.signal(signal.SIGTERM, previous)
        actions.append("switch the %s back to read-write" % backend.description)
    window = time.monotonic() - started
    removed = found["digests"]
    if storage is None:
        plan = Plan()
    else:
        removed = [d for d in removed if storage.blob_size(d) is None]
        unforeseen = [d for d in removed if d not in (sizes or {})]
        if unforeseen:
            warnings.append(
                "garbage-collect removed %d blobs the plan did not foresee (their bytes are not counted), e.g. %s" % (len(unforeseen), unforeseen[0])
            )
    actions[at:at] = _actions(plan, removed, sizes, would=False)
    result.update(_summary(plan, removed, sizes))
    result.update(
        changed=True,
        read_only_seconds=round(window, 3),
        gc_seconds=round(gc_seconds, 3),
        before=before,
        after=_read(backend, storage.usage) if storage else None,
    )
    return _with_warnings(result, backend, warnings)


def _with_warnings(result: dict[str, Any], backend: Backend, warnings: list[str] | None = None) -> dict[str, Any]:
    """The backend's warnings (e.g. a swap that could not hold new connections) and the run's, in the result."""
    every = list(backend.warnings) + [w for w in warnings or [] if w not in backend.warnings]
    if every:
        result["warnings"] = every
    return result
