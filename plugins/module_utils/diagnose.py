# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Why a registry failed, in one line a user can act on, and how much room its storage has.

When a registry fails a push the engine says only ``received unexpected HTTP status: 500 Internal Server Error``.
The registry says more: its error body names the storage driver's failure (operation, path, errno) and its log
holds the same line. :func:`storage_cause` reads either. :class:`PushDiagnosis` asks, once per registry and engine
error, the registry itself (does it answer, does it take a login, what does a write meet), the log of the local
container that publishes its port (the last error line, as registry_container reports its own failures:
engine.last_error) and, when that storage is on this host, the storage (bytes free, bytes held by abandoned
uploads): ``registry localhost:5000 has no space left on device (/srv/registry, 0 B free): 2.5 MB in abandoned
uploads; run registry_gc``. :func:`with_storage` adds the room of the storage to registry_info's storage use.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError
from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import env_dict
from ansible_collections.dockhand.registry.plugins.module_utils.engine import last_error
from ansible_collections.dockhand.registry.plugins.module_utils.storage import (
    Storage,
    StorageError,
    host_path,
    root_directory,
)
from ansible_collections.dockhand.registry.plugins.module_utils.storage_errors import (
    RegistryStorageError,
    StorageCause,
    human_size,
    storage_cause,
    storage_message,
)
from ansible_collections.dockhand.registry.plugins.module_utils.transport import (
    RegistryAuthError,
    RegistryUnreachable,
)

# Engine messages that mean the registry (not the image or the engine) is in trouble, worth asking the registry
# about: a server error, a cut connection, a refused login.
_SERVER = "unexpected http status: 5"
_CUT = ("connection refused", "eof", "broken pipe", "connection reset", "i/o timeout", "dial tcp", "blob upload unknown")
_REFUSED = ("unauthorized", "authentication required", "denied")


def storage_usage(path: str) -> dict[str, Any] | None:
    """The room on the file system of a registry's storage directory ``path`` (on this host) and the upload sessions
    it holds (what a failed or interrupted push leaves, read as registry_gc reads them); None when this host cannot
    read ``path``."""
    try:
        room = storage_room(path)[0]
        uploads = [upload for repo in Storage(path).repositories() for upload in repo.uploads]
    except (OSError, StorageError):
        return None
    return dict(room, path=path, uploads=len(uploads), upload_bytes=sum(upload.bytes for upload in uploads))


def data_mount_source(container: dict[str, Any], inside: str = "") -> str | None:
    """The host path of a container's registry storage: ``inside`` (the root the registry named), else its
    configured root directory, through the mount that holds it (a volume's mount point included)."""
    root = inside or root_directory(env_dict((container.get("Config") or {}).get("Env")))
    return host_path(container.get("Mounts") or [], root)


def _split_address(registry: str) -> tuple[str, int]:
    """(host, port) of ``host[:port]`` (``[v6]:port`` too); the port defaults to 443."""
    tail = registry.rsplit("]", 1)[-1]
    if ":" in tail:
        host, _sep, port = registry.rpartition(":")
        return host.strip("[]"), int(port)
    return registry.strip("[]"), 443


class PushDiagnosis:
    """The cause of failed pushes, in words a user can act on: found once per registry and engine error (pushes
    run on several threads and fail together)."""

    # How long a registry that went away is watched for coming back (a restart takes about a second).
    back_within = 5.0

    def __init__(self, engine: Any, client_for: Callable[[str], Any]) -> None:
        self.engine = engine
        self.client_for = client_for
        self._found: dict[tuple[str, str], str] = {}
        self._gone: dict[str, str] = {}  # registries that went away and stayed away: their last words
        self._lock = threading.Lock()

    def explain(self, registry: str, repository: str, reason: str) -> str:
        """Why a push of ``repository`` to ``registry`` failed with the engine's ``reason``."""
        key = (registry, reason)
        with self._lock:
            if key not in self._found:
                try:
                    self._found[key] = self._explain(registry, repository, reason)
                except Exception:  # a diagnosis must never hide the failure it explains
                    self._found[key] = reason
            return self._found[key]

    def _explain(self, registry: str, repository: str, reason: str) -> str:
        lowered = reason.lower()
        if "x509" in lowered or "certificate" in lowered:
            return (
                "the Docker engine does not trust the certificate of registry %s (%s): install the registry's CA as"
                " /etc/docker/certs.d/%s/ca.crt (the engine role's entry point ca)" % (registry, reason, registry)
            )
        server, refused = _SERVER in lowered, any(word in lowered for word in _REFUSED)
        if not (server or refused or any(word in lowered for word in _CUT)):
            return reason
        if registry in self._gone:
            return self._gone[registry]
        client = self.client_for(registry)
        back = False
        try:
            try:
                self._ask(client, repository, server or refused)
            except RegistryUnreachable as exc:
                # A restart (a restart policy, an upgrade) answers again within seconds; a killed registry does not.
                gone = self._still_unreachable(client, exc)
                if gone is not None:
                    # Its last answer, for every push the registry's end cut, whatever the engine said of each.
                    self._gone[registry] = str(gone)
                    return self._gone[registry]
                back = True
                self._ask(client, repository, server or refused)
        except (RegistryAuthError, RegistryStorageError) as exc:
            return self._with_storage(registry, str(exc))
        except DockhandError:
            pass
        if back:
            return "%s (registry %s went away during the push and answers again now: a new run pushes what it lacks)" % (
                reason, registry)
        if refused:
            return reason
        said = self._container_log(registry)
        cause = storage_cause(said) if said else None
        if cause:
            return self._storage(registry, cause)
        if server:
            return "registry %s failed the push (%s)%s" % (registry, reason, "; registry log: " + said[:300] if said else "")
        return "%s (registry %s answers now: a new run pushes what it lacks)" % (reason, registry)

    @staticmethod
    def _ask(client: Any, repository: str, write: bool) -> None:
        """Does the registry answer and take the login; with ``write``, what does a write meet (a full storage, a
        login that may read but not push)."""
        client.ping()
        if write:
            client.probe_write(repository)

    def _still_unreachable(self, client: Any, error: RegistryUnreachable) -> RegistryUnreachable | None:
        """The last error of a registry that does not answer again within ``back_within`` seconds; None when it does."""
        deadline = time.monotonic() + self.back_within
        while time.monotonic() < deadline:
            time.sleep(0.25)
            try:
                client.ping()
            except RegistryUnreachable as exc:
                error = exc
                continue
            except DockhandError:
                pass  # it answers (if only to refuse the login)
            return None
        return error

    def _container(self, registry: str) -> dict[str, Any] | None:
        if not getattr(self.engine, "local", False):
            return None
        host, port = _split_address(registry)
        loopback = host in ("localhost", "127.0.0.1", "::1")
        return self.engine.container_publishing(port, None if loopback else host)

    def _container_log(self, registry: str) -> str:
        container = self._container(registry)
        return last_error(self.engine.logs(container["Id"], tail=20)) if container else ""

    def _storage(self, registry: str, cause: StorageCause) -> str:
        container = self._container(registry)
        host_path = data_mount_source(container, cause.root) if container else None
        usage = storage_usage(host_path) if host_path else None
        return storage_message(registry, cause, host_path if usage else None, usage)

    def _with_storage(self, registry: str, message: str) -> str:
        """A storage failure the registry's answer named, told with where its storage is on this host."""
        cause = storage_cause(message)
        return self._storage(registry, cause) if cause else message


def storage_room(path: str, upload_bytes: int = 0) -> tuple[dict[str, int], list[str]]:
    """``bytes_free`` and ``bytes_total`` of the file system holding ``path``, and a warning when less than 5% is free
    (naming the bytes abandoned uploads hold, when there are)."""
    stat = os.statvfs(path)
    room = {"bytes_free": stat.f_bavail * stat.f_frsize, "bytes_total": stat.f_blocks * stat.f_frsize}
    warnings = []
    if room["bytes_total"] and room["bytes_free"] < room["bytes_total"] * 0.05:
        warnings.append(
            "registry storage %s has %s free of %s: pushes fail when it is full%s"
            % (path, human_size(room["bytes_free"]), human_size(room["bytes_total"]),
               "; %s in upload sessions (registry_gc with uploads_older_than_minutes 0 removes them)" % human_size(upload_bytes)
               if upload_bytes else "")
        )
    return room, warnings


def with_storage(read: Callable[[dict[str, Any]], dict[str, Any]], params: dict[str, Any], engine_of: Callable[[], Any]) -> dict[str, Any]:
    """registry_info's run: ``read(params)`` (the listing, and the storage use read from ``data_path`` when it is set),
    with ``container`` standing for the data directory it mounts (read through ``engine_of()``), and the room on the
    storage's file system added to ``storage``."""
    name = params.get("container")
    if name is not None:
        if not name.strip():
            raise DockhandError("container %r is not a container name" % name)
        engine = engine_of()
        container = engine.container(name)
        if container is None:
            raise DockhandError("there is no container %s on the engine (option container)" % name)
        if not engine.local:
            result = read(dict(params, data_path=None))
            result.setdefault("warnings", []).append(
                "container %s runs on a remote engine: its storage cannot be read from here" % name)
            return dict(result, storage=None)
        path = data_mount_source(container)
        if not path:
            raise DockhandError("container %s mounts nothing at its storage directory: its storage cannot be read from here" % name)
        params = dict(params, data_path=path)
    result = read(params)
    storage = result.get("storage")
    if storage:
        room, warnings = storage_room(storage["data_path"], storage.get("upload_bytes") or 0)
        storage.update(room)
        result.setdefault("warnings", []).extend(warnings)
    return result
