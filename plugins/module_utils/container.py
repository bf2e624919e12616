# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry container: converge what runs to a RegistrySpec (container_spec.py), safely.

What is compared is container_spec.py's views (desired_view, current_view). A restart-policy
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
import os
import re
import socket
import time
from collections.abc import Callable
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError, host_lock, one_line
from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import (
    CONFIG_LABEL,
    DATA_TARGET,
    DRAIN_ENV,
    MANAGED_LABEL,
    REGISTRY_PORT,
    STOP_MARGIN,
    InvalidSpec,
    RegistrySpec,
    config_digest,
    current_view,
    desired_view,
    drain_seconds,
    env_dict,
)
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient
from ansible_collections.dockhand.registry.plugins.module_utils.hold import ConnectionHold
from ansible_collections.dockhand.registry.plugins.module_utils.transport import RegistryUnreachable, wait_ready

# Environment keys whose values are never returned: secrets, passwords, storage keys, tokens, auth headers.
_SECRET_KEY_RE = re.compile(r"SECRET|PASSWORD|PASSWD|KEY|TOKEN|AUTHORIZATION|CREDENTIAL", re.IGNORECASE)
BACKUP_SUFFIX = "-dockhand-old"
_ANONYMOUS_VOLUME_RE = re.compile(r"[0-9a-f]{64}", re.ASCII)


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


def _mask(env: dict[str, str], secret_keys: frozenset[str] | set[str] = frozenset()) -> dict[str, str]:
    return {k: ("********" if (k in secret_keys or _SECRET_KEY_RE.search(k)) else v) for k, v in env.items()}


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
        return "https" if self.spec.tls_on else "http"

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
            port_bindings=spec.port_bindings,
            mounts=mounts,
            restart_policy={"Name": spec.restart_policy, "MaximumRetryCount": spec.restart_retries},
            labels=dict({MANAGED_LABEL: "true"}, **({CONFIG_LABEL: digest} if digest else {})),
            read_only=spec.read_only,
            cap_drop=list(spec.cap_drop),
            cap_add=list(spec.capabilities),
            security_opt=list(spec.security_opts),
            stop_timeout=spec.stop_timeout,
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
        """Stop a registry, leaving it the time to drain the requests in flight (its own http.draintimeout): the stop
        timeout the container carries, else (a container made before it carried one) its environment's drain."""
        config = container.get("Config") or {}
        timeout = config.get("StopTimeout")
        if not isinstance(timeout, int) or timeout < 0:
            timeout = max(drain_seconds(env_dict(config.get("Env")).get(DRAIN_ENV, "")), 0) + STOP_MARGIN
        self.engine.stop(container["Id"], timeout=timeout)

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
        held = set(have["ports"]) if have and have["state"] == "running" else set()
        # Checked before anything is stopped: a taken port must not cost the running registry its uptime. A port the
        # running registry holds already is free once it stops.
        for target, (address, port) in sorted(spec.port_bindings.items()):
            if "%s:%d->%s" % (address, port, target) in held or any(h.split("->")[0] == "%s:%d" % (address, port) for h in held):
                continue
            problem = port_problem(address, port)
            if problem:
                what = "port" if target == REGISTRY_PORT else "metrics_port"
                raise InvalidSpec("%s %d on %s cannot be published: %s" % (what, port, address, problem))

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
        self.spec.validate(self.check_mode)
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
        image_env = env_dict((image.get("Config") or {}).get("Env"))
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
