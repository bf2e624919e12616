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
(every replica read-only together: a service update of the environment, the command in a
one-shot task on the same storage).
"""

from __future__ import annotations

import os
import re
import signal
import time
from typing import Any, Protocol

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError, one_line
from ansible_collections.dockhand.registry.plugins.module_utils.container import (
    DATA_TARGET,
    RegistryContainer,
    _env_dict,
    spec_from_container,
)
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient

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
        env = _env_dict((self._inspect().get("Config") or {}).get("Env"))
        return READONLY_ENV in env

    def set_read_only(self, read_only: bool) -> None:
        container = self._inspect()
        # Keep the image the container runs, under its name when the name still points at it.
        ref = (container.get("Config") or {}).get("Image") or ""
        image = self.engine.image(ref) if ref else None
        if image is None or image.get("Id") != container.get("Image"):
            ref = container.get("Image") or ref
            image = self.engine.image(ref) or {}
        spec = spec_from_container(container, _env_dict((image.get("Config") or {}).get("Env")), ref)
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
    warnings = list(getattr(backend, "warnings", None) or [])
    if warnings:
        result["warnings"] = warnings
    return result
