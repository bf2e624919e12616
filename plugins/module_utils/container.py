# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry container: compare what is wanted with what runs, and converge safely.

What is compared: image ID, port binding (host address and port), the data mount and
extra mounts, environment, restart policy, the configuration digest (a label: the
checksum of files the registry reads only at start, such as htpasswd and TLS material)
and running or not. A restart-policy
change is an in-place update. Any other difference recreates the container in a way
that keeps the data and the old container until the new one answers ``/v2/``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError, one_line
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient
from ansible_collections.dockhand.registry.plugins.module_utils.registry import wait_ready

REGISTRY_PORT = "5000/tcp"
DATA_TARGET = "/var/lib/registry"
MANAGED_LABEL = "io.dockhand.registry.managed"
CONFIG_LABEL = "io.dockhand.registry.config-digest"
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
_SECRET_KEY_RE = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|KEY$", re.IGNORECASE)
_ANONYMOUS_VOLUME_RE = re.compile(r"^[0-9a-f]{64}$")
_VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


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

    def validate(self) -> None:
        """Raise InvalidSpec naming the first bad value; touches nothing."""
        if not re.match(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", self.name or ""):
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
            if os.path.lexists(self.data_path) and not os.path.isdir(self.data_path):
                raise InvalidSpec("data_path %s exists and is not a directory" % self.data_path)
            parent = _existing_parent(self.data_path)
            if not os.path.isdir(parent):
                raise InvalidSpec("data_path %s cannot be created: %s is not a directory" % (self.data_path, parent))
            if not os.access(parent, os.W_OK | os.X_OK):
                raise InvalidSpec("data_path %s is not writable (%s)" % (self.data_path, parent))
        if self.volume and not _VOLUME_NAME_RE.match(self.volume):
            raise InvalidSpec("invalid volume name %r" % self.volume)
        for key in self.env:
            if not key or "=" in key:
                raise InvalidSpec("invalid environment variable name %r" % key)
        for mount in self.mounts:
            if not os.path.isabs(mount.get("target") or ""):
                raise InvalidSpec("mount target %r must be an absolute path" % mount.get("target"))
            if mount.get("target") == DATA_TARGET:
                raise InvalidSpec("mount target %s is the data mount: use data_path or volume" % DATA_TARGET)
            if mount.get("type", "bind") == "bind" and not os.path.exists(mount.get("source") or ""):
                # The engine would refuse it only at create time, after a recreate stopped the old container.
                raise InvalidSpec("mount source %r does not exist" % mount.get("source"))


def port_problem(address: str, port: int) -> str | None:
    """Why ``address:port`` cannot be published on this host (taken, address not local), or None."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
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
    if not spec.env.get("REGISTRY_AUTH"):
        warnings.append("%s without authentication: anyone who reaches it can push and pull" % where)
    if not spec.env.get("REGISTRY_HTTP_TLS_CERTIFICATE"):
        warnings.append("%s without TLS: credentials and images travel in clear text" % where)
    return warnings


def _existing_parent(path: str) -> str:
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def _mask(env: dict[str, str]) -> dict[str, str]:
    return {k: ("********" if _SECRET_KEY_RE.search(k) else v) for k, v in env.items()}


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


def desired_view(spec: RegistrySpec, image: dict[str, Any]) -> dict[str, Any]:
    """The comparable properties the container should have."""
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
        "env": {k: v for k, v in spec.env.items() if image_env.get(k) != v},
        "restart_policy": _policy(spec.restart_policy, spec.restart_retries),
        "config_digest": spec.config_digest or "",
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
        "state": "running" if (container.get("State") or {}).get("Running") else "stopped",
    }


def _anonymous_data_volume(container: dict[str, Any]) -> str | None:
    for mount in container.get("Mounts") or []:
        if (
            mount.get("Destination") == DATA_TARGET
            and mount.get("Type") == "volume"
            and _ANONYMOUS_VOLUME_RE.match(mount.get("Name") or "")
        ):
            return mount["Name"]
    return None


def _summary(container: dict[str, Any] | None, view: dict[str, Any] | None) -> dict[str, Any]:
    if not container or not view:
        return {}
    return {
        "id": container["Id"],
        "name": container["Name"].lstrip("/"),
        "image": view["image"],
        "image_id": view["image_id"],
        "ports": view["ports"],
        "mounts": view["mounts"],
        "env": _mask(view["env"]),
        "restart_policy": view["restart_policy"],
        "config_digest": view["config_digest"],
        "status": view["state"],
    }


class RegistryContainer:
    """Converge one registry container to a :class:`RegistrySpec`."""

    def __init__(self, engine: EngineClient, spec: RegistrySpec, check_mode: bool = False) -> None:
        self.engine = engine
        self.spec = spec
        self.check_mode = check_mode
        self.actions: list[str] = []

    # -- helpers --------------------------------------------------------------------
    @property
    def address(self) -> str:
        host = self.spec.bind_address
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = "[%s]" % host
        return "%s:%d" % (host, self.spec.port)

    @property
    def scheme(self) -> str:
        return "https" if self.spec.env.get("REGISTRY_HTTP_TLS_CERTIFICATE") else "http"

    def _image(self) -> dict[str, Any]:
        image = self.engine.image(self.spec.image or "")
        if image is None and self.check_mode:
            # In check mode the role has not provisioned the image yet: say what would happen.
            return {"Id": "(image %s, once provisioned)" % self.spec.image, "Config": {}}
        if image is None:
            raise InvalidSpec("registry image %s is not in the engine: pull, load or build it first" % self.spec.image)
        return image

    def _create(self, name: str, image_id: str) -> str:
        spec = self.spec
        mounts = [
            {"type": "bind", "source": os.path.realpath(spec.data_path), "target": DATA_TARGET}
            if spec.data_path
            else {"type": "volume", "source": spec.volume, "target": DATA_TARGET}
        ] + [dict(m, type=m.get("type", "bind")) for m in spec.mounts]
        return self.engine.create_container(
            name=name,
            image=spec.image or image_id,
            env=spec.env,
            port_bindings={REGISTRY_PORT: (spec.bind_address, spec.port)},
            mounts=mounts,
            restart_policy={"Name": spec.restart_policy, "MaximumRetryCount": spec.restart_retries},
            labels=dict({MANAGED_LABEL: "true"}, **({CONFIG_LABEL: spec.config_digest} if spec.config_digest else {})),
        )

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
            wait_ready(self.address, self.scheme, self.spec.wait_timeout, running)
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

    def _new(self, image_id: str) -> dict[str, Any] | None:
        self._prepare_data()
        self.actions.append("create container %s" % self.spec.name)
        if self.check_mode:
            return None
        container_id = self._create(self.spec.name, image_id)
        if self.spec.state == "started":
            try:
                self._start_and_wait(container_id)
            except DockhandError:
                self.engine.remove_container(container_id)
                raise
        return self.engine.container(container_id)

    def _recreate(self, old: dict[str, Any], image_id: str, why: list[str]) -> dict[str, Any] | None:
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
        backup = "%s-dockhand-old" % self.spec.name
        if was_running:
            self.engine.stop(old["Id"])
        self.engine.rename(old["Id"], backup)
        new_id = None
        try:
            new_id = self._create(self.spec.name, image_id)
            if self.spec.state == "started":
                self._start_and_wait(new_id)
        except DockhandError as exc:
            if new_id:
                self.engine.remove_container(new_id)
            self.engine.rename(old["Id"], self.spec.name)
            if was_running:
                self.engine.start(old["Id"])
            raise DockhandError("%s (the previous container %s was kept)" % (exc, self.spec.name)) from None
        self.engine.remove_container(old["Id"])
        return self.engine.container(new_id)

    # -- the one entry point --------------------------------------------------------
    def converge(self) -> dict[str, Any]:
        spec = self.spec
        spec.validate()
        old = self.engine.container(spec.name)
        leftover = self.engine.container("%s-dockhand-old" % spec.name)
        if leftover and old:
            # A run that died mid-swap: the new container exists, the old copy is obsolete.
            self.actions.append("remove leftover container %s-dockhand-old" % spec.name)
            if not self.check_mode:
                self.engine.remove_container(leftover["Id"])
        elif leftover and not old:
            self.actions.append("restore leftover container %s-dockhand-old as %s" % (spec.name, spec.name))
            if not self.check_mode:
                self.engine.rename(leftover["Id"], spec.name)
                old = self.engine.container(spec.name)
            else:
                old = leftover

        if spec.state == "absent":
            if old:
                self.actions.append("remove container %s (data kept)" % spec.name)
                if not self.check_mode:
                    self.engine.remove_container(old["Id"])
            return self._result(old, None, {}, None)

        image = self._image()
        want = desired_view(spec, image)
        image_env = _env_dict((image.get("Config") or {}).get("Env"))
        have = current_view(old, image_env) if old else None
        if spec.state == "started" and self.engine.local and not (have and have["state"] == "running"
                                                                  and have["ports"] == want["ports"]):
            # Checked before anything is stopped: a taken port must not cost the running registry its uptime.
            problem = port_problem(spec.bind_address, spec.port)
            if problem:
                raise InvalidSpec("port %d on %s cannot be published: %s" % (spec.port, spec.bind_address, problem))
        new = old
        if old is None:
            new = self._new(image["Id"])
        else:
            if have is None:  # narrows the type: `old` is set, so `have` was computed
                raise AssertionError("no current view of an existing container")
            differs = [key for key in ("image_id", "ports", "mounts", "env", "config_digest") if have[key] != want[key]]
            if differs:
                new = self._recreate(old, image["Id"], differs)
            else:
                if have["restart_policy"] != want["restart_policy"]:
                    self.actions.append(
                        "update restart policy %s -> %s (in place)" % (have["restart_policy"], want["restart_policy"])
                    )
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
                            self.engine.stop(old["Id"])
                elif spec.state == "started" and not self.check_mode:
                    wait_ready(self.address, self.scheme, spec.wait_timeout)
                if self.actions and not self.check_mode:
                    new = self.engine.container(old["Id"])
        return self._result(old, new, want, image_env)

    def _result(
        self,
        old: dict[str, Any] | None,
        new: dict[str, Any] | None,
        want: dict[str, Any],
        image_env: dict[str, str] | None,
    ) -> dict[str, Any]:
        env = image_env or {}
        before = _summary(old, current_view(old, env) if old else None)
        if self.check_mode and self.actions and want:
            after = dict(before, **{k: v for k, v in want.items() if k != "state"}, status=want["state"])
            after["env"] = _mask(after["env"])
            after.setdefault("name", self.spec.name)
        else:
            after = _summary(new, current_view(new, env) if new else None)
        return {
            "changed": bool(self.actions),
            "actions": self.actions,
            "container": after,
            "diff": {"before": before, "after": after},
        }


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
        config_digest=view["config_digest"],
    )
