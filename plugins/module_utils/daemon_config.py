# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's /etc/docker/daemon.json: merge wanted keys into what the user set, validate, write atomically,
and apply the change with a reload (SIGHUP) -- or a restart only when a changed key needs one.

No docker SDK here: the file and the daemon's process are all this touches, so it also runs on a host whose
engine is not answering yet.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError, one_line, write_atomic

DEFAULT_PATH = "/etc/docker/daemon.json"
DEFAULT_PIDFILE = "/var/run/docker.pid"

# Keys dockerd re-reads on SIGHUP (Docker docs, "Configuration reload behavior"); any other changed key needs a
# restart of the daemon to take effect.
RELOADABLE = frozenset(
    {
        "debug",
        "labels",
        "live-restore",
        "max-concurrent-downloads",
        "max-concurrent-uploads",
        "max-download-attempts",
        "default-runtime",
        "runtimes",
        "authorization-plugins",
        "insecure-registries",
        "registry-mirrors",
        "allow-nondistributable-artifacts",
        "shutdown-timeout",
        "features",
        "builder",
        "default-ulimits",
    }
)
# Keys whose value is a list of entries: the wanted entries are added to the user's, whose own entries stay.
LIST_KEYS = frozenset({"insecure-registries", "registry-mirrors", "allow-nondistributable-artifacts", "dns", "labels"})

_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253}[A-Za-z0-9])?)(?::[0-9]{1,5})?$")
_MIRROR = re.compile(r"^https?://(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253}[A-Za-z0-9])?)(?::[0-9]{1,5})?/?$")


class DaemonConfigError(DockhandError):
    pass


def _check_port(value: str, text: str) -> None:
    port = re.search(r":([0-9]{1,5})$", text)
    if port and not 0 < int(port.group(1)) < 65536:
        raise DaemonConfigError("invalid port in %s %r: 1-65535" % (value, text))


def validate(settings: dict[str, Any]) -> None:
    """Refuse values dockerd would refuse at its next (re)start, as one line naming the value."""
    for key, value in settings.items():
        if not isinstance(key, str) or not key:
            raise DaemonConfigError("invalid daemon.json key %r" % (key,))
        if key in ("insecure-registries", "registry-mirrors", "allow-nondistributable-artifacts") and not (
            isinstance(value, list) and all(isinstance(item, str) for item in value)
        ):
            raise DaemonConfigError("daemon.json key %s must be a list of strings, got %r" % (key, value))
    for entry in settings.get("insecure-registries", []) + settings.get("allow-nondistributable-artifacts", []):
        if "/" in entry:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise DaemonConfigError("invalid insecure registry %r: host[:port] or a CIDR such as 10.0.0.0/8" % entry) from None
            continue
        if not _HOST_PORT.match(entry):
            raise DaemonConfigError("invalid insecure registry %r: host[:port] or a CIDR such as 10.0.0.0/8" % entry)
        _check_port("insecure registry", entry)
    for entry in settings.get("registry-mirrors", []):
        if not _MIRROR.match(entry):
            raise DaemonConfigError("invalid registry mirror %r: an http:// or https:// URL without a path" % entry)
        _check_port("registry mirror", entry.rstrip("/"))


def read(path: str) -> tuple[dict[str, Any] | None, str | None]:
    """The current configuration (None when the file is missing) and its text."""
    try:
        with open(path, "rb") as stream:
            raw = stream.read()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        raise DaemonConfigError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    try:
        text = raw.decode("utf-8")
        data = json.loads(text) if text.strip() else {}
    except (UnicodeDecodeError, ValueError) as exc:
        raise DaemonConfigError("%s is not valid JSON, left as it is: %s" % (path, one_line(exc))) from None
    if not isinstance(data, dict):
        raise DaemonConfigError("%s does not hold a JSON object, left as it is" % path)
    return data, text


def merge(current: dict[str, Any], wanted: dict[str, Any], remove: list[str] | None = None) -> dict[str, Any]:
    """``current`` with ``wanted`` laid over it: list keys gain the missing entries (the user's stay, in
    order), other keys take the wanted value; keys in ``remove`` go."""
    merged = dict(current)
    for key, value in wanted.items():
        if key in LIST_KEYS and isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = list(merged[key]) + [item for item in value if item not in merged[key]]
        else:
            merged[key] = value
    for key in remove or []:
        merged.pop(key, None)
    return merged


def changed_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(key for key in set(before) | set(after) if before.get(key, None) != after.get(key, None) or (key in before) != (key in after))


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def dockerd_validate(text: str, dockerd: str | None) -> None:
    """``dockerd --validate`` (Docker 23+) on the new file before it replaces the old one; skipped on older daemons."""
    if not dockerd:
        return
    try:
        usage = subprocess.run([dockerd, "--help"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return
    if "--validate" not in usage:
        return
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="dockhand-daemon-") as handle:
        handle.write(text)
        handle.flush()
        done = subprocess.run([dockerd, "--validate", "--config-file", handle.name], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise DaemonConfigError("dockerd refuses the new daemon.json: %s" % one_line(done.stderr or done.stdout))


def _systemd_running() -> bool:
    return os.path.isdir("/run/systemd/system")


def _systemctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=300, check=False)


def _engine_active(service: str) -> bool:
    return _systemd_running() and _systemctl("is-active", "--quiet", service).returncode == 0


def _dockerd_pid(pidfile: str) -> int | None:
    try:
        with open(pidfile) as stream:
            pid = int(stream.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def reload_engine(service: str, pidfile: str) -> str:
    """Make the running daemon re-read daemon.json; return how ('' when no daemon runs: it reads it at start)."""
    if _engine_active(service):
        done = _systemctl("reload", service)
        if done.returncode == 0:
            return "systemctl reload %s" % service
    pid = _dockerd_pid(pidfile)
    if pid is None:
        return ""
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        raise DaemonConfigError("cannot send SIGHUP to dockerd (pid %s): %s" % (pid, exc.strerror or exc)) from None
    return "SIGHUP to dockerd (pid %s)" % pid


def restart_engine(service: str) -> str:
    if not _engine_active(service):
        return ""
    done = _systemctl("restart", service)
    if done.returncode != 0:
        raise DaemonConfigError("systemctl restart %s failed: %s" % (service, one_line(done.stderr or done.stdout)))
    return "systemctl restart %s" % service


def converge(
    path: str,
    settings: dict[str, Any],
    remove: list[str] | None = None,
    apply: str = "auto",
    service: str = "docker",
    pidfile: str = DEFAULT_PIDFILE,
    check_mode: bool = False,
    dockerd: str | None = "",
    reloader: Callable[[str, str], str] = reload_engine,
    restarter: Callable[[str], str] = restart_engine,
) -> dict[str, Any]:
    """Merge ``settings`` into the file at ``path``; ``apply``: auto (reload, restart only when a key needs it),
    reload (never restart: warn instead), none (write only)."""
    validate(settings)
    current, text = read(path)
    before = current or {}
    after = merge(before, settings, remove)
    validate(after)
    keys = changed_keys(before, after)
    new_text = render(after)
    result: dict[str, Any] = {
        "changed": False,
        "path": path,
        "config": after,
        "changed_keys": keys,
        "applied": "",
        "actions": [],
        "warnings": [],
        "diff": {"before": text or "", "after": text or "", "before_header": path, "after_header": path},
    }
    for entry in settings.get("insecure-registries", []):
        result["warnings"].append(
            "insecure-registries holds %s in %s: this engine pulls from and pushes to it over plain HTTP, unencrypted and "
            "without checking who answers (and skips certificate checks if it speaks HTTPS); give the registry TLS instead" % (entry, path)
        )
    if not keys:
        return result
    restart_keys = [key for key in keys if key not in RELOADABLE]
    result["changed"] = True
    result["restart_keys"] = restart_keys
    result["diff"]["after"] = new_text
    how = "restart" if restart_keys and apply == "auto" else ("reload" if apply != "none" else "")
    result["actions"].append("%s %s (%s)" % ("would write" if check_mode else "wrote", path, ", ".join(keys)))
    if restart_keys and apply == "reload":
        result["warnings"].append(
            "%s changed in %s: the engine applies it only after a restart (apply=reload never restarts)" % (", ".join(restart_keys), path)
        )
    if check_mode:
        if how:
            result["actions"].append("would %s the engine" % how)
        return result
    if dockerd == "":
        dockerd = shutil.which("dockerd")
    dockerd_validate(new_text, dockerd)
    try:
        write_atomic(path, new_text.encode("utf-8"), 0o644)
    except OSError as exc:
        raise DaemonConfigError("cannot write %s: %s" % (path, exc.strerror or exc)) from None
    if how == "restart":
        result["applied"] = restarter(service)
    elif how == "reload":
        result["applied"] = reloader(service, pidfile)
    if result["applied"]:
        result["actions"].append(result["applied"])
    return result
