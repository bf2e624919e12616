# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry container as wanted and as it runs: :class:`RegistrySpec`, its validation, and the views compared.

A spec is validated before anything is touched (:meth:`RegistrySpec.validate`: names, port, addresses, paths,
mounts, environment, capabilities; never a system directory as data, see :data:`SYSTEM_DIRECTORIES`).
:func:`desired_view` and :func:`current_view` put what is wanted and what ``docker container inspect`` says in
one comparable shape: image ID, port binding, mounts, environment (differences from the image's own), restart
policy, hardening, the configuration digest (:func:`config_digest`: a checksum over the read-only bind-mounted
files the registry reads only at start, such as htpasswd and TLS material) and running or not.
:func:`spec_from_container` reads a spec back from a running container. The swap that converges a container to a
spec is container.py's RegistryContainer.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import os
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError
from ansible_collections.dockhand.registry.plugins.module_utils.registry_config import CONFIG_TARGET, DEBUG_PORT
from ansible_collections.dockhand.registry.plugins.module_utils.registry_config import read as read_config
from ansible_collections.dockhand.registry.plugins.module_utils.storage import DATA_TARGET

REGISTRY_PORT = "5000/tcp"
METRICS_PORT = "%d/tcp" % DEBUG_PORT
MANAGED_LABEL = "io.dockhand.registry.managed"
CONFIG_LABEL = "io.dockhand.registry.config-digest"
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
DATA_MOVES = ("refuse", "copy", "adopt_empty")
_CAPABILITY_RE = re.compile(r"[A-Za-z_]+", re.ASCII)
# Hashing every file of a mounted configuration directory: bounded, a data directory mounted by mistake is refused.
CONFIG_MAX_FILES = 256
CONFIG_MAX_BYTES = 16 * 1024 * 1024
DRAIN_ENV = "REGISTRY_HTTP_DRAINTIMEOUT"
DEFAULT_DRAIN_TIMEOUT = 10
MAX_DRAIN_TIMEOUT = 600
# Seconds the engine waits after the drain before it kills a stopping registry.
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
    # When the data location of an existing registry changes and the old one holds repositories while the new one
    # is empty: refuse (one line naming both), copy the data over, or adopt the empty location (data_move.py).
    data_move: str = "refuse"
    # The registry's debug server (Prometheus metrics at /metrics, port 5001 inside) published on this host port
    # and address; 0: not published.
    metrics_port: int = 0
    metrics_bind_address: str = "127.0.0.1"

    @functools.cached_property
    def config(self) -> dict[str, Any]:
        """The registry configuration file bind-mounted at CONFIG_TARGET, as a mapping ({} when there is none or it
        cannot be read: the image's own then, and only the environment says more)."""
        for mount in self.mounts:
            if mount.get("target") == CONFIG_TARGET and mount.get("type", "bind") == "bind" and mount.get("source"):
                return read_config(mount["source"]) or {}
        return {}

    def __post_init__(self) -> None:
        # The engine stores a mount target normalised (``/auth/`` as ``/auth``): compare and refuse in that form.
        self.mounts = [dict(m, target=mount_target(m.get("target"))) for m in self.mounts]

    @property
    def all_env(self) -> dict[str, str]:
        env = dict(self.env, **self.secret_env)
        if self.drain_timeout and DRAIN_ENV not in env and not (self.config.get("http") or {}).get("draintimeout"):
            env[DRAIN_ENV] = "%ds" % self.drain_timeout
        return env

    @property
    def tls_on(self) -> bool:
        """The registry serves HTTPS (its configuration file or its environment names a certificate)."""
        tls = (self.config.get("http") or {}).get("tls") or {}
        return bool(self.all_env.get("REGISTRY_HTTP_TLS_CERTIFICATE") or tls.get("certificate") or tls.get("letsencrypt"))

    @property
    def auth_on(self) -> bool:
        """The registry asks for credentials (its configuration file or its environment sets an auth provider)."""
        return bool(self.all_env.get("REGISTRY_AUTH") or self.config.get("auth"))

    @property
    def stop_timeout(self) -> int:
        """Seconds a stop waits before the kill: the registry's drain (environment, else configuration file) and a
        margin; kept on the container, so that any ``docker stop`` gives it that time."""
        drain = self.all_env.get(DRAIN_ENV) or str((self.config.get("http") or {}).get("draintimeout") or "")
        return max(drain_seconds(drain), 0) + STOP_MARGIN

    def validate(self, check_mode: bool = False) -> None:
        """Raise InvalidSpec naming the first bad value; touches nothing. In check mode, when a task before this one
        would write the mounted files (``config_changed``), a mount source that is not there yet is expected."""
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
        self._validate_metrics()
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
        if self.data_move not in DATA_MOVES:
            raise InvalidSpec("data_move %r is not one of %s" % (self.data_move, ", ".join(DATA_MOVES)))
        for key in list(self.env) + list(self.secret_env):
            if not key or "=" in key:
                raise InvalidSpec("invalid environment variable name %r" % key)
        both = sorted(set(self.env) & set(self.secret_env))
        if both:
            raise InvalidSpec("environment variable %s is in both env and secret_env: give it once" % both[0])
        for cap in list(self.cap_drop) + list(self.capabilities):
            if not _CAPABILITY_RE.fullmatch(cap or ""):
                raise InvalidSpec("invalid capability name %r" % (cap,))
        targets: set[str] = set()
        for mount in self.mounts:
            if not os.path.isabs(mount.get("target") or ""):
                raise InvalidSpec("mount target %r must be an absolute path" % mount.get("target"))
            if mount["target"] == DATA_TARGET:
                raise InvalidSpec("mount target %s is the data mount: use data_path or volume" % DATA_TARGET)
            if mount["target"] in targets:
                # The engine refuses it ("duplicate mount point") only at create time, after a recreate stopped the old one.
                raise InvalidSpec("mount target %s is given twice" % mount["target"])
            targets.add(mount["target"])
            missing_ok = check_mode and self.config_changed
            if mount.get("type", "bind") == "bind" and not os.path.exists(mount.get("source") or "") and not missing_ok:
                # The engine would refuse it only at create time, after a recreate stopped the old container.
                raise InvalidSpec("mount source %r does not exist" % mount.get("source"))

    def _validate_metrics(self) -> None:
        if not self.metrics_port:
            return
        if not isinstance(self.metrics_port, int) or not 0 < self.metrics_port < 65536:
            raise InvalidSpec("metrics_port %r is out of range (1-65535)" % (self.metrics_port,))
        try:
            address = ipaddress.ip_address(self.metrics_bind_address)
        except ValueError:
            raise InvalidSpec("metrics_bind_address %r is not an IP address" % (self.metrics_bind_address,)) from None
        public = ipaddress.ip_address(self.bind_address)
        if self.metrics_port == self.port and (address == public or address.is_unspecified or public.is_unspecified):
            # Never the metrics next to the registry's own port by accident: one would take the other's place.
            raise InvalidSpec(
                "metrics_port %d is the registry's port %d on %s: give the metrics a port of their own"
                % (self.metrics_port, self.port, self.metrics_bind_address)
            )
        debug = str(((self.config.get("http") or {}).get("debug") or {}).get("addr") or "")
        if self.config and not debug.endswith(":%d" % DEBUG_PORT):
            raise InvalidSpec(
                "metrics_port %d publishes the debug server, but the configuration sets http.debug.addr %r, not :%d"
                % (self.metrics_port, debug, DEBUG_PORT)
            )

    @property
    def port_bindings(self) -> dict[str, tuple[str, int]]:
        """Container port -> (host address, host port): the registry's, and the metrics' when published."""
        bindings = {REGISTRY_PORT: (self.bind_address, self.port)}
        if self.metrics_port:
            bindings[METRICS_PORT] = (self.metrics_bind_address, self.metrics_port)
        return bindings


# Host directories never to mount read-write into a network-facing container as its data directory. The registry
# role refuses the same list before anything runs (registry__system_dirs in its vars; a unit test keeps them equal).
SYSTEM_DIRECTORIES = frozenset((
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt", "/opt",
    "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local",
    "/usr/sbin", "/usr/share", "/var", "/var/lib", "/var/lib/docker", "/var/log", "/var/run",
))


def mount_target(target: Any) -> Any:
    """A mount target as the engine keeps it (``/var/lib/registry/`` and ``//var/lib/registry`` are
    ``/var/lib/registry``); anything else as given, for validate() to name."""
    if not isinstance(target, str) or not target.startswith("/"):
        return target
    return posixpath.normpath("/" + target.lstrip("/"))


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


def _existing_parent(path: str) -> str:
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


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
    if not spec.auth_on:
        warnings.append("%s without authentication: anyone who reaches it can push and pull" % where)
    if not spec.tls_on:
        warnings.append("%s without TLS: credentials and images travel in clear text" % where)
    return warnings


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


def env_dict(entries: list[str] | None) -> dict[str, str]:
    """``KEY=value`` entries (a container's or an image's ``Config.Env``) as a mapping; the last of a key wins."""
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
    image_env = env_dict((image.get("Config") or {}).get("Env"))
    return {
        "image": spec.image,
        "image_id": image["Id"],
        "ports": sorted("%s:%d->%s" % (address, port, target) for target, (address, port) in spec.port_bindings.items()),
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
    env = env_dict((container.get("Config") or {}).get("Env"))
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


def spec_from_container(container: dict[str, Any], image_env: dict[str, str], image: str | None = None) -> RegistrySpec:
    """The RegistrySpec that describes a running registry container as it is (for a caller that recreates it
    with one setting changed, such as the read-only switch of a garbage collection)."""
    host = container.get("HostConfig") or {}
    bindings = (host.get("PortBindings") or {}).get(REGISTRY_PORT) or [{}]
    metrics = (host.get("PortBindings") or {}).get(METRICS_PORT) or [{}]
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
        metrics_port=int(metrics[0].get("HostPort") or 0),
        metrics_bind_address=metrics[0].get("HostIp") or "0.0.0.0",
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
