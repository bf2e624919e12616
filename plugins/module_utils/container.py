# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry container: compare what is wanted with what runs, and converge safely.

What is compared: image ID, port binding (host address and port), the data mount and
extra mounts, environment (secrets included), restart policy, the hardening (read-only root
file system, dropped and added capabilities, security options), the configuration digest (a
label: the checksum this module computes over the read-only bind-mounted files the registry
reads only at start, such as htpasswd and TLS material) and running or not. A restart-policy
change is an in-place update. Any other difference recreates the container in a way
that keeps the data and the old container until the new one answers ``/v2/``.

converge() runs in four steps, each its own method: adopt what an interrupted run left
(``_adopt_leftover``), check the port before touching anything (``_check_port``), update in
place (``_update_in_place``) or recreate (``_recreate``). A per-container lock on the module
host keeps two runs from swapping the same container at once.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError, host_lock, one_line
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient
from ansible_collections.dockhand.registry.plugins.module_utils.hold import ConnectionHold
from ansible_collections.dockhand.registry.plugins.module_utils.registry import RegistryUnreachable, wait_ready

REGISTRY_PORT = "5000/tcp"
DATA_TARGET = "/var/lib/registry"
MANAGED_LABEL = "io.dockhand.registry.managed"
CONFIG_LABEL = "io.dockhand.registry.config-digest"
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
# Environment keys whose values are never returned: secrets, passwords, storage keys, tokens, auth headers.
_SECRET_KEY_RE = re.compile(r"SECRET|PASSWORD|PASSWD|KEY|TOKEN|AUTHORIZATION|CREDENTIAL", re.IGNORECASE)
_CAPABILITY_RE = re.compile(r"[A-Za-z_]+", re.ASCII)
# Hashing every file of a mounted configuration directory: bounded, a data directory mounted by mistake is refused.
CONFIG_MAX_FILES = 256
CONFIG_MAX_BYTES = 16 * 1024 * 1024
BACKUP_SUFFIX = "-dockhand-old"
_ANONYMOUS_VOLUME_RE = re.compile(r"[0-9a-f]{64}", re.ASCII)
DRAIN_ENV = "REGISTRY_HTTP_DRAINTIMEOUT"
DEFAULT_DRAIN_TIMEOUT = 10
MAX_DRAIN_TIMEOUT = 600
STOP_MARGIN = 5
_DURATION_RE = re.compile(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?", re.ASCII)
# The engine's own pattern for container and volume names (one character is a valid name), matched in full.
_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", re.ASCII)


class InvalidSpec(DockhandError):
    """An option value cannot describe a registry container."""


@dataclass
class RegistrySpec:
    name: str
    image: str | None = None
    state: str = "started"
    port: int = 5000
    bind_address: str = "127.0.0.1"
    data_path: str | None = None
    volume: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    restart_policy: str = "always"
    restart_retries: int = 0
    mounts: list[dict[str, Any]] = field(default_factory=list)
    wait_timeout: int = 60
    config_digest: str = ""
    secret_env: dict[str, str] = field(default_factory=dict)
    read_only: bool = True
    cap_drop: list[str] = field(default_factory=lambda: ["ALL"])
    capabilities: list[str] = field(default_factory=list)
    security_opts: list[str] = field(default_factory=lambda: ["no-new-privileges"])
    config_changed: bool = False
    # Set by spec_from_container: the running container's config label, kept as it is instead of computed again.
    config_label: str | None = None
    # http.draintimeout: on a stop the registry finishes the requests in flight (for up to this long) instead of
    # cutting them. 0 leaves the registry's own default (none: cut). An env/secret_env value of its own wins.
    # (The module's and the role's default is DEFAULT_DRAIN_TIMEOUT.)
    drain_timeout: int = 0

    @property
    def all_env(self) -> dict[str, str]:
        env = dict(self.env, **self.secret_env)
        if self.drain_timeout and DRAIN_ENV not in env:
            env[DRAIN_ENV] = "%ds" % self.drain_timeout
        return env

    def validate(self) -> None:
        """Raise InvalidSpec naming the first bad value; touches nothing."""
        if not _NAME_RE.fullmatch(self.name or ""):
            raise InvalidSpec("invalid container name %r" % self.name)
        if self.state == "absent":
            return
        if not self.image:
            raise InvalidSpec("image is required when state is %s" % self.state)
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise InvalidSpec("port %r is out of range (1-65535)" % (self.port,))
        try:
            ipaddress.ip_address(self.bind_address)
        except ValueError:
            raise InvalidSpec("bind_address %r is not an IP address" % (self.bind_address,)) from None
        if not isinstance(self.drain_timeout, int) or not 0 <= self.drain_timeout <= MAX_DRAIN_TIMEOUT:
            raise InvalidSpec("drain_timeout %r must be 0-%d seconds" % (self.drain_timeout, MAX_DRAIN_TIMEOUT))
        drain = self.all_env.get(DRAIN_ENV)
        if drain is not None and drain_seconds(drain) < 0:
            raise InvalidSpec("%s %r is not a duration such as 10s or 1m" % (DRAIN_ENV, drain))
        if not isinstance(self.wait_timeout, int) or self.wait_timeout <= 0:
            # 0 or less would roll back every create: the registry never gets the time to answer.
            raise InvalidSpec("wait_timeout %r must be more than 0 seconds" % (self.wait_timeout,))
        if self.restart_policy not in RESTART_POLICIES:
            raise InvalidSpec(
                "unknown restart policy %r: one of %s" % (self.restart_policy, ", ".join(RESTART_POLICIES))
            )
        if not isinstance(self.restart_retries, int) or self.restart_retries < 0:
            raise InvalidSpec("restart_retries %r must be 0 or more" % (self.restart_retries,))
        if self.restart_retries and self.restart_policy != "on-failure":
            # The engine refuses this at create time, after a recreate has already stopped the old container.
            raise InvalidSpec(
                "restart_retries %d needs restart_policy on-failure, not %r"
                % (self.restart_retries, self.restart_policy)
            )
        if bool(self.data_path) == bool(self.volume):
            raise InvalidSpec(
                "give exactly one of data_path (host directory) or volume (named volume) for the registry data;"
                " an anonymous volume would be lost on the next recreate"
            )
        if self.data_path:
            if not os.path.isabs(self.data_path):
                raise InvalidSpec("data_path %r must be an absolute path" % self.data_path)
            _refuse_dangerous_data_path(self.data_path, self.mounts)
            if os.path.lexists(self.data_path) and not os.path.isdir(self.data_path):
                raise InvalidSpec("data_path %s exists and is not a directory" % self.data_path)
            parent = _existing_parent(self.data_path)
            if not os.path.isdir(parent):
                raise InvalidSpec("data_path %s cannot be created: %s is not a directory" % (self.data_path, parent))
            if not os.access(parent, os.W_OK | os.X_OK):
                raise InvalidSpec("data_path %s is not writable (%s)" % (self.data_path, parent))
        if self.volume and not _NAME_RE.fullmatch(self.volume):
            raise InvalidSpec("invalid volume name %r" % self.volume)
        for key in list(self.env) + list(self.secret_env):
            if not key or "=" in key:
                raise InvalidSpec("invalid environment variable name %r" % key)
        both = sorted(set(self.env) & set(self.secret_env))
        if both:
            raise InvalidSpec("environment variable %s is in both env and secret_env: give it once" % both[0])
        for cap in list(self.cap_drop) + list(self.capabilities):
            if not _CAPABILITY_RE.fullmatch(cap or ""):
                raise InvalidSpec("invalid capability name %r" % (cap,))
        for mount in self.mounts:
            if not os.path.isabs(mount.get("target") or ""):
                raise InvalidSpec("mount target %r must be an absolute path" % mount.get("target"))
            if mount.get("target") == DATA_TARGET:
                raise InvalidSpec("mount target %s is the data mount: use data_path or volume" % DATA_TARGET)
            if mount.get("type", "bind") == "bind" and not os.path.exists(mount.get("source") or ""):
                # The engine would refuse it only at create time, after a recreate stopped the old container.
                raise InvalidSpec("mount source %r does not exist" % mount.get("source"))


# Host directories never to mount read-write into a network-facing container as its data directory.
SYSTEM_DIRECTORIES = frozenset((
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt", "/opt",
    "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local",
    "/usr/sbin", "/usr/share", "/var", "/var/lib", "/var/lib/docker", "/var/log", "/var/run",
))


def drain_seconds(value: str) -> int:
    """Whole seconds of a Go duration as the registry reads http.draintimeout (``10s``, ``1m30s``, ``500ms``);
    0 for none, -1 for a value that is not such a duration."""
    value = (value or "").strip()
    if not value or value == "0":
        return 0
    match = _DURATION_RE.fullmatch(value)
    if not match or not any(match.groups()):
        return -1
    hours, minutes, seconds, millis = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + (1 if millis else 0)


def _refuse_dangerous_data_path(data_path: str, mounts: list[dict[str, Any]]) -> None:
    """Refuse a system directory, or a parent of a file the registry mounts (htpasswd, TLS key), as data_path."""
    real = os.path.realpath(data_path)
    if real in SYSTEM_DIRECTORIES or os.path.normpath(data_path) in SYSTEM_DIRECTORIES:
        raise InvalidSpec(
            "data_path %s is a system directory: the registry would write into it as root; use a directory of its own"
            % data_path
        )
    for mount in mounts:
        if mount.get("type", "bind") != "bind" or not mount.get("source"):
            continue
        source = os.path.realpath(mount["source"])
        if source == real or source.startswith(real.rstrip("/") + "/"):
            raise InvalidSpec(
                "data_path %s holds mount source %s: the registry's data directory must not contain its own"
                " configuration (htpasswd, TLS key); keep them apart" % (data_path, mount["source"])
            )


def port_problem(address: str, port: int) -> str | None:
    """Why ``address:port`` cannot be published on this host (taken, address not local), or None."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        # Inside the try: creating an IPv6 socket fails (EAFNOSUPPORT) on a host without IPv6.
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        return "this host cannot open an IPv%s socket (%s)" % ("6" if family == socket.AF_INET6 else "4", exc.strerror or exc)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        sock.close()
    return None


def exposure_warnings(spec: RegistrySpec) -> list[str]:
    """Warnings for a registry published beyond loopback without authentication or without TLS."""
    if spec.state == "absent":
        return []
    try:
        if ipaddress.ip_address(spec.bind_address).is_loopback:
            return []
    except ValueError:
        return []
    where = "registry %s is published on %s:%d, beyond loopback," % (spec.name, spec.bind_address, spec.port)
    warnings = []
    if not spec.all_env.get("REGISTRY_AUTH"):
        warnings.append("%s without authentication: anyone who reaches it can push and pull" % where)
    if not spec.all_env.get("REGISTRY_HTTP_TLS_CERTIFICATE"):
        warnings.append("%s without TLS: credentials and images travel in clear text" % where)
    return warnings


def _existing_parent(path: str) -> str:
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def _mask(env: dict[str, str], secret_keys: frozenset[str] | set[str] = frozenset()) -> dict[str, str]:
    return {k: ("********" if (k in secret_keys or _SECRET_KEY_RE.search(k)) else v) for k, v in env.items()}


def _caps(values: list[str] | None) -> list[str]:
    """Capability names as the engine may print them (``CAP_NET_ADMIN``, ``net_admin``) in one spelling."""
    names = set()
    for value in values or []:
        name = str(value).upper()
        names.add(name[4:] if name.startswith("CAP_") else name)
    return sorted(names)


def _security_opts(values: list[str] | None) -> list[str]:
    opts = set()
    for value in values or []:
        text = str(value).replace("=", ":", 1)
        opts.add("no-new-privileges" if text in ("no-new-privileges", "no-new-privileges:true") else text)
    return sorted(opts)


def _hardening(read_only: bool, cap_drop: list[str] | None, cap_add: list[str] | None, opts: list[str] | None) -> str:
    return "read_only=%s cap_drop=%s cap_add=%s security_opt=%s" % (
        "yes" if read_only else "no", ",".join(_caps(cap_drop)) or "-", ",".join(_caps(cap_add)) or "-",
        ",".join(_security_opts(opts)) or "-")


def _config_files(spec: RegistrySpec) -> list[tuple[str, str]]:
    """(path in the container, host path) of every file under a read-only bind mount, sorted."""
    files: list[tuple[str, str]] = []
    for mount in spec.mounts:
        if mount.get("type", "bind") != "bind" or not mount.get("read_only"):
            continue
        source, target = mount["source"], mount["target"]
        if os.path.isfile(source):
            files.append((target, source))
            continue
        for root, dirs, names in os.walk(source):
            dirs.sort()
            for name in sorted(names):
                path = os.path.join(root, name)
                if os.path.isfile(path):
                    files.append((os.path.join(target, os.path.relpath(path, source)), path))
            if len(files) > CONFIG_MAX_FILES:
                raise InvalidSpec(
                    "read-only mount %s holds more than %d files: mount the configuration files only"
                    % (source, CONFIG_MAX_FILES)
                )
    return sorted(files)


def config_digest(spec: RegistrySpec) -> str:
    """SHA-256 over the content of every file under the read-only bind mounts (htpasswd, TLS certificate and key:
    what the registry reads only at start) and the user's ``config_digest``; empty when there is neither."""
    if spec.config_label is not None:
        return spec.config_label
    files = _config_files(spec)
    if not files and not spec.config_digest:
        return ""
    digest = hashlib.sha256()
    digest.update(b"user:%s\0" % spec.config_digest.encode("utf-8"))
    total = 0
    for target, path in files:
        try:
            with open(path, "rb") as stream:
                data = stream.read(CONFIG_MAX_BYTES + 1)
        except OSError as exc:
            raise InvalidSpec("cannot read mounted file %s: %s" % (path, exc.strerror or exc)) from None
        total += len(data)
        if total > CONFIG_MAX_BYTES:
            raise InvalidSpec(
                "read-only mounts hold more than %d bytes at %s: mount the configuration files only" % (CONFIG_MAX_BYTES, path)
            )
        digest.update(b"%s\0%s\0" % (target.encode("utf-8"), hashlib.sha256(data).hexdigest().encode("ascii")))
    return digest.hexdigest()


def _env_dict(entries: list[str] | None) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in entries or []:
        key, _sep, value = entry.partition("=")
        env[key] = value
    return env


def _policy(name: str, retries: int) -> str:
    return "%s:%d" % (name, retries) if name == "on-failure" and retries else name


def _mount_text(kind: str, source: str, target: str, read_only: bool = False) -> str:
    return "%s:%s->%s%s" % (kind, source, target, " (ro)" if read_only else "")


def desired_view(spec: RegistrySpec, image: dict[str, Any], digest: str | None = None) -> dict[str, Any]:
    """The comparable properties the container should have (``digest``: the configuration digest, when known)."""
    data = (
        _mount_text("bind", os.path.realpath(spec.data_path), DATA_TARGET)
        if spec.data_path
        else _mount_text("volume", spec.volume or "", DATA_TARGET)
    )
    mounts = [data] + [
        _mount_text(m.get("type", "bind"), m["source"], m["target"], bool(m.get("read_only"))) for m in spec.mounts
    ]
    image_env = _env_dict((image.get("Config") or {}).get("Env"))
    return {
        "image": spec.image,
        "image_id": image["Id"],
        "ports": ["%s:%d->%s" % (spec.bind_address, spec.port, REGISTRY_PORT)],
        "mounts": sorted(mounts),
        "env": {k: v for k, v in spec.all_env.items() if image_env.get(k) != v},
        "restart_policy": _policy(spec.restart_policy, spec.restart_retries),
        "config_digest": digest if digest is not None else config_digest(spec),
        "hardening": _hardening(spec.read_only, spec.cap_drop, spec.capabilities, spec.security_opts),
        "state": "running" if spec.state == "started" else "stopped",
    }


def current_view(container: dict[str, Any], image_env: dict[str, str]) -> dict[str, Any]:
    """The same properties read from ``docker container inspect``."""
    host = container.get("HostConfig") or {}
    ports = []
    for port, bindings in sorted((host.get("PortBindings") or {}).items()):
        for binding in bindings or []:
            ports.append("%s:%s->%s" % (binding.get("HostIp") or "0.0.0.0", binding.get("HostPort"), port))
    mounts = []
    for mount in container.get("Mounts") or []:
        source = mount.get("Name") if mount.get("Type") == "volume" else mount.get("Source")
        mounts.append(_mount_text(mount.get("Type"), source, mount.get("Destination"), not mount.get("RW", True)))
    env = _env_dict((container.get("Config") or {}).get("Env"))
    policy = host.get("RestartPolicy") or {}
    return {
        "image": (container.get("Config") or {}).get("Image"),
        "image_id": container.get("Image"),
        "ports": ports,
        "mounts": sorted(mounts),
        "env": {k: v for k, v in env.items() if image_env.get(k) != v},
        "restart_policy": _policy(policy.get("Name") or "no", policy.get("MaximumRetryCount") or 0),
        "config_digest": ((container.get("Config") or {}).get("Labels") or {}).get(CONFIG_LABEL, ""),
        "hardening": _hardening(
            bool(host.get("ReadonlyRootfs")), host.get("CapDrop"), host.get("CapAdd"), host.get("SecurityOpt")
        ),
        "state": "running" if (container.get("State") or {}).get("Running") else "stopped",
    }


def _anonymous_data_volume(container: dict[str, Any]) -> str | None:
    for mount in container.get("Mounts") or []:
        if (
            mount.get("Destination") == DATA_TARGET
            and mount.get("Type") == "volume"
            and _ANONYMOUS_VOLUME_RE.fullmatch(mount.get("Name") or "")
        ):
            return mount["Name"]
    return None


def _summary(
    container: dict[str, Any] | None, view: dict[str, Any] | None, secret_keys: frozenset[str] | set[str] = frozenset()
) -> dict[str, Any]:
    if not container or not view:
        return {}
    return {
        "id": container["Id"],
        "name": container["Name"].lstrip("/"),
        "image": view["image"],
        "image_id": view["image_id"],
        "ports": view["ports"],
        "mounts": view["mounts"],
        "env": _mask(view["env"], secret_keys),
        "restart_policy": view["restart_policy"],
        "config_digest": view["config_digest"],
        "hardening": view["hardening"],
        "status": view["state"],
    }


def _started_at(container: dict[str, Any]) -> int | None:
    text = ((container.get("State") or {}).get("StartedAt") or "")[:19]
    try:
        started = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    return int(started.replace(tzinfo=datetime.timezone.utc).timestamp())


def wait_ready_in_engine(
    engine: EngineClient, container_id: str, port: int, timeout: float, still_running: Callable[[], bool] | None = None
) -> float:
    """Readiness as the engine sees it, for an engine on another host (whose published ports this host may not
    reach): the engine published ``port`` for the container, and the registry logged that it listens, since
    its last start. Asked through the engine API only; nothing is probed from the module host."""
    started = time.monotonic()
    last = "not started"
    while True:
        info = engine.container(container_id) or {}
        bindings = ((info.get("NetworkSettings") or {}).get("Ports") or {}).get(REGISTRY_PORT) or []
        if not any(str(b.get("HostPort")) == str(port) for b in bindings):
            last = "port %d not published yet" % port
        elif "listening on" not in engine.logs(container_id, tail="all", since=_started_at(info)):
            last = "the registry has not logged 'listening on' yet"
        else:
            return time.monotonic() - started
        if still_running is not None and not still_running():
            raise RegistryUnreachable("registry %s stopped before it listened (%s)" % (container_id[:12], last))
        if time.monotonic() - started > timeout:
            raise RegistryUnreachable("registry %s did not listen within %ss (%s)" % (container_id[:12], timeout, last))
        time.sleep(0.2)


class RegistryContainer:
    """Converge one registry container to a :class:`RegistrySpec`."""

    def __init__(self, engine: EngineClient, spec: RegistrySpec, check_mode: bool = False, docker_host: str = "") -> None:
        self.engine = engine
        self.spec = spec
        self.check_mode = check_mode
        self.docker_host = docker_host
        self.actions: list[str] = []
        self.warnings: list[str] = []
        self._hold: ConnectionHold | None = None

    # -- helpers --------------------------------------------------------------------
    @property
    def address(self) -> str:
        """Where this host reaches the registry: the bind address, or loopback for a wildcard one."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.spec.bind_address, self.spec.bind_address)
        if ":" in host:
            host = "[%s]" % host
        return "%s:%d" % (host, self.spec.port)

    @property
    def backup_name(self) -> str:
        return self.spec.name + BACKUP_SUFFIX

    @property
    def scheme(self) -> str:
        return "https" if self.spec.all_env.get("REGISTRY_HTTP_TLS_CERTIFICATE") else "http"

    @property
    def secret_keys(self) -> frozenset[str]:
        return frozenset(self.spec.secret_env)

    def _image(self) -> dict[str, Any]:
        image = self.engine.image(self.spec.image or "")
        if image is None and self.check_mode:
            # In check mode the role has not provisioned the image yet: say what would happen.
            return {"Id": "(image %s, once provisioned)" % self.spec.image, "Config": {}}
        if image is None:
            raise InvalidSpec("registry image %s is not in the engine: pull, load or build it first" % self.spec.image)
        return image

    def _wanted_digest(self) -> str:
        digest = config_digest(self.spec)
        if self.check_mode and self.spec.config_changed:
            # A task before this one would rewrite a mounted file (htpasswd, certificate): the registry restarts.
            return "(changes: a mounted configuration file is rewritten)"
        return digest

    def _create(self, name: str, image_id: str, digest: str) -> str:
        spec = self.spec
        mounts = [
            {"type": "bind", "source": os.path.realpath(spec.data_path), "target": DATA_TARGET}
            if spec.data_path
            else {"type": "volume", "source": spec.volume, "target": DATA_TARGET}
        ] + [dict(m, type=m.get("type", "bind")) for m in spec.mounts]
        return self.engine.create_container(
            name=name,
            image=spec.image or image_id,
            env=spec.all_env,
            port_bindings={REGISTRY_PORT: (spec.bind_address, spec.port)},
            mounts=mounts,
            restart_policy={"Name": spec.restart_policy, "MaximumRetryCount": spec.restart_retries},
            labels=dict({MANAGED_LABEL: "true"}, **({CONFIG_LABEL: digest} if digest else {})),
            read_only=spec.read_only,
            cap_drop=list(spec.cap_drop),
            cap_add=list(spec.capabilities),
            security_opt=list(spec.security_opts),
        )

    def _wait(self, container_id: str, timeout: float, still_running: Callable[[], bool] | None = None) -> None:
        """Wait until the registry answers: probed over HTTP from here when the engine is local (its published
        ports are on this host), else asked of the engine (see wait_ready_in_engine)."""
        if self.engine.local and self._hold is not None and self._hold.active:
            # New connections are held (their SYN dropped, see hold.py), so an HTTP probe would wait too: the
            # registry's own "listening on" (it logs it once the socket is bound) lets them through.
            wait_ready_in_engine(self.engine, container_id, self.spec.port, timeout, still_running)
            self._hold.release()
        if self.engine.local:
            wait_ready(self.address, self.scheme, timeout, still_running)
        else:
            wait_ready_in_engine(self.engine, container_id, self.spec.port, timeout, still_running)

    def _answers(self, container: dict[str, Any]) -> bool:
        if not (container.get("State") or {}).get("Running"):
            return False
        try:
            self._wait(container["Id"], 3)
        except DockhandError:
            return False
        return True

    def _stop(self, container: dict[str, Any]) -> None:
        """Stop a registry, leaving it the time to drain the requests in flight (its own http.draintimeout)."""
        env = _env_dict((container.get("Config") or {}).get("Env"))
        self.engine.stop(container["Id"], timeout=max(drain_seconds(env.get(DRAIN_ENV, "")), 0) + STOP_MARGIN)

    def _start_and_wait(self, container_id: str) -> None:
        restarts = (self.engine.container(container_id) or {}).get("RestartCount") or 0
        self.engine.start(container_id)

        def running() -> bool:
            # With a restart policy a crashing registry stays "Running" between restarts: a restart
            # (or the restarting state) means the process exited.
            info = self.engine.container(container_id) or {}
            state = info.get("State") or {}
            restarted = (info.get("RestartCount") or 0) != restarts
            return bool(state.get("Running")) and not state.get("Restarting") and not restarted

        try:
            self._wait(container_id, self.spec.wait_timeout, running)
        except DockhandError as exc:
            lines = [line for line in self.engine.logs(container_id, tail=20).splitlines() if line.strip()]
            fatal = [line for line in lines if "level=fatal" in line or "level=error" in line] or lines[-1:]
            last = (" ; registry log: " + one_line(fatal[-1])[:300]) if fatal else ""
            raise DockhandError("%s%s" % (exc, last)) from None

    def _prepare_data(self) -> None:
        if self.spec.data_path and not os.path.isdir(self.spec.data_path):
            self.actions.append("create data directory %s" % self.spec.data_path)
            if not self.check_mode:
                try:
                    os.makedirs(self.spec.data_path, mode=0o755, exist_ok=True)
                except OSError as exc:
                    raise InvalidSpec(
                        "data_path %s cannot be created: %s" % (self.spec.data_path, exc.strerror or exc)
                    ) from None
        if self.spec.volume and self.engine.volume(self.spec.volume) is None:
            self.actions.append("create volume %s" % self.spec.volume)
            if not self.check_mode:
                self.engine.create_volume(self.spec.volume)

    def _best_effort(self, steps: list[tuple[str, Callable[[], object]]]) -> list[str]:
        """Run every step even when one fails (a rollback must not stop half-way); the failures, in words."""
        problems = []
        for what, step in steps:
            try:
                step()
            except DockhandError as exc:
                problems.append("%s failed: %s" % (what, one_line(exc)))
        return problems

    @staticmethod
    def _differences(have: dict[str, Any], want: dict[str, Any]) -> list[str]:
        return [key for key in ("image_id", "ports", "mounts", "env", "config_digest", "hardening") if have[key] != want[key]]

    # -- step 1: what an interrupted run left ------------------------------------------
    def _adopt_leftover(
        self, old: dict[str, Any] | None, want: dict[str, Any], image_env: dict[str, str]
    ) -> dict[str, Any] | None:
        """A ``<name>-dockhand-old`` container is the good copy a killed recreate kept. It is removed only when
        the current container answers ``/v2/`` and matches the wanted spec; otherwise the current one (half-made)
        is removed and the copy restored, and the run goes on from there."""
        leftover = self.engine.container(self.backup_name)
        if not leftover:
            return old
        if old is None:
            self.actions.append("restore leftover container %s as %s" % (self.backup_name, self.spec.name))
            if self.check_mode:
                return leftover
            self.engine.rename(leftover["Id"], self.spec.name)
            return self.engine.container(self.spec.name)
        have = current_view(old, image_env)
        why = self._differences(have, want)
        if not why and have["state"] == "running" and self._answers(old):
            self.actions.append("remove leftover container %s (%s answers and matches)" % (self.backup_name, self.spec.name))
            if not self.check_mode:
                self.engine.remove_container(leftover["Id"])
            return old
        anonymous = _anonymous_data_volume(old)
        if anonymous:
            raise InvalidSpec(
                "container %s (left by an interrupted recreate next to %s) keeps data on anonymous volume %s:"
                " move it by hand" % (self.spec.name, self.backup_name, anonymous)
            )
        reason = ("%s differ" % ", ".join(why)) if why else "it does not answer /v2/"
        self.actions.append(
            "remove container %s left by an interrupted recreate (%s) and restore %s"
            % (self.spec.name, reason, self.backup_name)
        )
        if self.check_mode:
            return leftover
        self.engine.remove_container(old["Id"])
        self.engine.rename(leftover["Id"], self.spec.name)
        return self.engine.container(self.spec.name)

    def _clear_held_port(self) -> None:
        """A run killed in the middle of a swap can leave new connections to the port held (hold.py): let them
        through. (The rules expire by themselves a little after the swap's wait_timeout anyway.)"""
        if not self.engine.local:
            return
        hold = ConnectionHold(self.spec.port, self.spec.bind_address, self.spec.name, 0)
        left = hold.clear_leftovers(dry_run=self.check_mode)
        if left:
            self.actions.append(
                "let new connections to port %d through again (held by an interrupted run: %s)"
                % (self.spec.port, ", ".join(left))
            )

    # -- step 2: the port, before anything is stopped -----------------------------------
    def _check_port(self, have: dict[str, Any] | None, want: dict[str, Any]) -> None:
        spec = self.spec
        if spec.state != "started" or not self.engine.local:
            return
        if have and have["state"] == "running" and have["ports"] == want["ports"]:
            return
        # Checked before anything is stopped: a taken port must not cost the running registry its uptime.
        problem = port_problem(spec.bind_address, spec.port)
        if problem:
            raise InvalidSpec("port %d on %s cannot be published: %s" % (spec.port, spec.bind_address, problem))

    # -- step 3: update in place (restart policy, start, stop) ---------------------------
    def _update_in_place(self, old: dict[str, Any], have: dict[str, Any], want: dict[str, Any]) -> dict[str, Any] | None:
        spec = self.spec
        before = len(self.actions)
        if have["restart_policy"] != want["restart_policy"]:
            self.actions.append("update restart policy %s -> %s (in place)" % (have["restart_policy"], want["restart_policy"]))
            if not self.check_mode:
                self.engine.update_restart_policy(
                    old["Id"], {"Name": spec.restart_policy, "MaximumRetryCount": spec.restart_retries}
                )
        if have["state"] != want["state"]:
            self.actions.append("%s container %s" % ("start" if spec.state == "started" else "stop", spec.name))
            if not self.check_mode:
                if spec.state == "started":
                    self._start_and_wait(old["Id"])
                else:
                    self._stop(old)
        elif spec.state == "started" and not self.check_mode:
            self._wait(old["Id"], spec.wait_timeout)
        if len(self.actions) > before and not self.check_mode:
            return self.engine.container(old["Id"])
        return old

    # -- step 4: recreate, keeping the old container until the new one answers ----------
    def _new(self, image_id: str, digest: str) -> dict[str, Any] | None:
        self._prepare_data()
        self.actions.append("create container %s" % self.spec.name)
        if self.check_mode:
            return None
        container_id = self._create(self.spec.name, image_id, digest)
        if self.spec.state == "started":
            try:
                self._start_and_wait(container_id)
            except DockhandError:
                self._best_effort([("remove the new container", lambda: self.engine.remove_container(container_id))])
                raise
        return self.engine.container(container_id)

    def _recreate(self, old: dict[str, Any], image_id: str, digest: str, why: list[str]) -> dict[str, Any] | None:
        """Swap in a new container; the old one is kept (stopped, renamed) until the new one answers."""
        anonymous = _anonymous_data_volume(old)
        if anonymous:
            raise InvalidSpec(
                "container %s keeps its registry data on anonymous volume %s: recreating it would lose the data;"
                " set volume: %s to keep using it" % (self.spec.name, anonymous, anonymous)
            )
        self._prepare_data()
        self.actions.append("recreate container %s (%s differ)" % (self.spec.name, ", ".join(why)))
        if self.check_mode:
            return None
        was_running = (old.get("State") or {}).get("Running")
        hold = None
        if was_running and self.engine.local and self.spec.state == "started":
            hold = ConnectionHold(self.spec.port, self.spec.bind_address, self.spec.name, self.spec.wait_timeout + 30)
        with hold or contextlib.nullcontext():
            if hold is not None and hold.problem:
                self.warnings.append(
                    "new connections to port %d could not be held during the swap (%s): a client connecting in the"
                    " fraction of a second between the two registries is refused" % (self.spec.port, hold.problem)
                )
            self._hold = hold
            try:
                return self._swap(old, image_id, digest, bool(was_running))
            finally:
                self._hold = None

    def _swap(self, old: dict[str, Any], image_id: str, digest: str, was_running: bool) -> dict[str, Any] | None:
        if was_running:
            # The old registry drains the requests in flight (its own http.draintimeout) before it exits.
            self._stop(old)
        try:
            self.engine.rename(old["Id"], self.backup_name)
        except DockhandError:
            if was_running:
                self._best_effort([("start %s again" % self.spec.name, lambda: self.engine.start(old["Id"]))])
            raise
        new_id = None
        try:
            new_id = self._create(self.spec.name, image_id, digest)
            if self.spec.state == "started":
                self._start_and_wait(new_id)
        except DockhandError as exc:
            steps: list[tuple[str, Callable[[], object]]] = []
            if new_id:
                steps.append(("remove the new container", lambda: self.engine.remove_container(new_id)))
            steps.append(("rename %s back to %s" % (self.backup_name, self.spec.name),
                          lambda: self.engine.rename(old["Id"], self.spec.name)))
            if was_running:
                steps.append(("start %s again" % self.spec.name, lambda: self.engine.start(old["Id"])))
            problems = self._best_effort(steps)
            kept = ("the previous container %s was kept" % self.spec.name) if not problems else (
                "the previous container is kept as %s; rollback: %s" % (self.backup_name, "; ".join(problems)))
            raise DockhandError("%s (%s)" % (exc, kept)) from None
        problems = self._best_effort([("remove the previous container", lambda: self.engine.remove_container(old["Id"]))])
        if problems:
            self.warnings.append("%s; the next run removes %s" % (problems[0], self.backup_name))
        return self.engine.container(new_id)

    # -- the one entry point --------------------------------------------------------
    def converge(self) -> dict[str, Any]:
        self.spec.validate()
        if self.check_mode:
            return self._converge()
        # Two runs on one host must not swap the same container at once: the second waits, then finds it done.
        key = "%s|%s" % (self.docker_host, self.spec.name)
        with host_lock("registry-container", key, max(120, 3 * self.spec.wait_timeout), "registry container %s" % self.spec.name):
            return self._converge()

    def _converge(self) -> dict[str, Any]:
        spec = self.spec
        first = self.engine.container(spec.name)
        if spec.state == "absent":
            for found in (first, self.engine.container(self.backup_name)):
                if found:
                    name = found["Name"].lstrip("/")
                    self.actions.append("remove container %s (data kept)" % name)
                    if not self.check_mode:
                        self.engine.remove_container(found["Id"])
            return self._result(first, None, {}, None)

        image = self._image()
        digest = self._wanted_digest()
        want = desired_view(spec, image, digest)
        image_env = _env_dict((image.get("Config") or {}).get("Env"))
        self._clear_held_port()
        old = self._adopt_leftover(first, want, image_env)
        have = current_view(old, image_env) if old else None
        self._check_port(have, want)
        if old is None or have is None:
            new = self._new(image["Id"], digest)
        else:
            why = self._differences(have, want)
            new = self._recreate(old, image["Id"], digest, why) if why else self._update_in_place(old, have, want)
        return self._result(first, new, want, image_env)

    def _result(
        self,
        old: dict[str, Any] | None,
        new: dict[str, Any] | None,
        want: dict[str, Any],
        image_env: dict[str, str] | None,
    ) -> dict[str, Any]:
        env = image_env or {}
        before = _summary(old, current_view(old, env) if old else None, self.secret_keys)
        if self.check_mode and self.actions and want:
            after = dict(before, **{k: v for k, v in want.items() if k != "state"}, status=want["state"])
            after["env"] = _mask(after["env"], self.secret_keys)
            after.setdefault("name", self.spec.name)
        else:
            after = _summary(new, current_view(new, env) if new else None, self.secret_keys)
        result = {
            "changed": bool(self.actions),
            "actions": self.actions,
            "container": after,
            "diff": {"before": before, "after": after},
        }
        if self.warnings:
            result["warnings"] = self.warnings
        return result


def spec_from_container(container: dict[str, Any], image_env: dict[str, str], image: str | None = None) -> RegistrySpec:
    """The RegistrySpec that describes a running registry container as it is (for a caller that recreates it
    with one setting changed, such as the read-only switch of a garbage collection)."""
    host = container.get("HostConfig") or {}
    bindings = (host.get("PortBindings") or {}).get(REGISTRY_PORT) or [{}]
    data_path = volume = None
    mounts = []
    for mount in container.get("Mounts") or []:
        if mount.get("Destination") == DATA_TARGET:
            if mount.get("Type") == "volume":
                volume = mount.get("Name")
            else:
                data_path = mount.get("Source")
            continue
        mounts.append(
            {
                "type": mount.get("Type") or "bind",
                "source": mount.get("Name") if mount.get("Type") == "volume" else mount.get("Source"),
                "target": mount.get("Destination"),
                "read_only": not mount.get("RW", True),
            }
        )
    view = current_view(container, image_env)
    policy = host.get("RestartPolicy") or {}
    return RegistrySpec(
        name=(container.get("Name") or "").lstrip("/"),
        image=image or (container.get("Config") or {}).get("Image"),
        state="started",
        port=int(bindings[0].get("HostPort") or 5000),
        bind_address=bindings[0].get("HostIp") or "0.0.0.0",
        data_path=data_path,
        volume=volume,
        env=dict(view["env"]),
        restart_policy=policy.get("Name") or "no",
        restart_retries=policy.get("MaximumRetryCount") or 0,
        mounts=mounts,
        read_only=bool(host.get("ReadonlyRootfs")),
        cap_drop=list(host.get("CapDrop") or []),
        capabilities=list(host.get("CapAdd") or []),
        security_opts=list(host.get("SecurityOpt") or []),
        # The label as it is: the files it was computed from are still the same.
        config_label=view["config_digest"],
    )
