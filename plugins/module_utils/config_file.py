# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A registry configuration tried and written.

:func:`trial_start` asks the registry binary itself to start on a configuration in a throwaway container (same
image, no published port, the file and the files it names mounted, an empty in-memory data directory): it must log
``listening on`` within the timeout, else its own error is the one-line failure, and nothing that runs was touched.
registry_service tries a new configuration this way before it changes a secret. :func:`write_config` is
registry_config's run: build and check (registry_config.py), try, then write the file.

No Ansible import (args.py holds the option specs).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError, one_line, read_optional, write_atomic
from ansible_collections.dockhand.registry.plugins.module_utils.registry_config import (
    AUTH_TARGET,
    CONFIG_TARGET,
    TLS_CERT_TARGET,
    TLS_KEY_TARGET,
    TRIAL_LABEL,
    TRIAL_SUFFIX,
    ConfigError,
    ConfigSettings,
    Endpoint,
    build,
    diff_text,
    digest,
    masked,
    parse,
    render,
    secret_values,
    storage_driver,
)
from ansible_collections.dockhand.registry.plugins.module_utils.storage import DATA_TARGET

# -- the trial start ---------------------------------------------------------------------------------------------------
_LISTENING_RE = re.compile(r"listening on", re.IGNORECASE)
_MSG_RE = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


def _registry_error(output: str) -> str:
    """The line of the registry's output that says why it did not start."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    chosen = None
    for line in lines:
        lowered = line.lower()
        if "level=fatal" in lowered or "level=panic" in lowered or lowered.startswith(("panic:", "configuration error", "error:", "fatal")):
            chosen = line
            break
    if chosen is None:
        errors = [line for line in lines if "level=error" in line or "error" in line.lower()]
        chosen = errors[0] if errors else (lines[-1] if lines else "no output")
    found = _MSG_RE.search(chosen)
    return one_line(found.group(1) if found else chosen)[:400]


@dataclass
class TrialFile:
    """A file the trial container mounts: its bytes (written to a private temporary file) or a host path."""

    target: str
    data: bytes | None = None
    source: str | None = None


def trial_start(
    engine: Any,
    image: str,
    name: str,
    files: list[TrialFile],
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
    timeout: float = 30,
) -> float:
    """Start the registry of ``image`` on ``files`` in a throwaway container ``<name>-dockhand-trial`` (no published
    port, read-only root, no capabilities, data in memory) and wait until it logs ``listening on``; return the
    seconds it took. Raise ConfigError with the registry's own error when it exits or stays silent instead. The
    container and the temporary files are removed in every case."""
    trial = name + TRIAL_SUFFIX
    workdir = tempfile.mkdtemp(prefix="dockhand-registry-trial-")
    container_id = None
    try:
        os.chmod(workdir, 0o700)
        mounts = []
        for number, item in enumerate(files):
            source = item.source
            if item.data is not None:
                source = os.path.join(workdir, "%d-%s" % (number, os.path.basename(item.target)))
                write_atomic(source, item.data, 0o600)
            mounts.append({"type": "bind", "source": source, "target": item.target, "read_only": True})
        leftover = engine.container(trial)
        if leftover:
            engine.remove_container(leftover["Id"])
        container_id = engine.create_container(
            name=trial,
            image=image,
            env=dict(env or {}),
            port_bindings={},
            mounts=mounts,
            restart_policy={"Name": "no"},
            labels={TRIAL_LABEL: name},
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            tmpfs={DATA_TARGET: "size=64m"},
            command=command,
        )
        started = time.monotonic()
        engine.start(container_id)
        while True:
            output = engine.logs(container_id, tail="all")
            if _LISTENING_RE.search(output):
                return time.monotonic() - started
            info = engine.container(container_id) or {}
            state = info.get("State") or {}
            if not state.get("Running") and state.get("Status") in ("exited", "dead"):
                output = engine.logs(container_id, tail="all")
                raise ConfigError(
                    "the registry refused the configuration (trial start of %s exited %s): %s"
                    % (image, state.get("ExitCode"), _registry_error(output))
                )
            if time.monotonic() - started > timeout:
                raise ConfigError(
                    "the registry did not start on the configuration within %gs (trial start of %s): %s"
                    % (timeout, image, _registry_error(output) if output.strip() else "it logged nothing")
                )
            time.sleep(0.2)
    finally:
        if container_id:
            try:
                engine.remove_container(container_id)
            except DockhandError:
                pass
        shutil.rmtree(workdir, ignore_errors=True)


# -- from module options -----------------------------------------------------------------------------------------------
def endpoints_from_params(items: list[dict[str, Any]] | None) -> list[Endpoint]:
    return [
        Endpoint(
            url=item["url"],
            name=item.get("name") or "",
            headers=dict(item.get("headers") or {}),
            timeout=item.get("timeout") or "",
            threshold=item.get("threshold") or 0,
            backoff=item.get("backoff") or "",
            ignored_media_types=list(item.get("ignored_media_types") or []),
            ignored_actions=list(item.get("ignored_actions") or []),
            disabled=bool(item.get("disabled")),
        )
        for item in items or []
    ]


def settings_from_params(params: dict[str, Any], blob_cache_default: str = "inmemory") -> ConfigSettings:
    """The ConfigSettings of the options every configuring module shares (args.CONFIG_ARGSPEC); the paths (htpasswd,
    TLS), the drain, the secret and the read-only switch are the caller's to set."""
    cache = params.get("blob_cache") or {}
    return ConfigSettings(
        log_level=params["log_level"],
        log_formatter=params["log_formatter"],
        storage_redirect_disable=params["storage_redirect_disable"],
        delete_enabled=params["delete_enabled"],
        blob_cache=cache.get("type") or blob_cache_default,
        redis={k: cache.get(k) for k in ("addr", "password", "db") if cache.get(k) not in (None, "")},
        metrics=params["metrics"],
        metrics_path=params["metrics_path"],
        notifications=endpoints_from_params(params["notifications"]),
        config=params["config"] or {},
        secret_config=params["secret_config"] or {},
    )


def _file_settings(params: dict[str, Any]) -> ConfigSettings:
    """registry_config's settings: the container paths of the files its options name on the host."""
    settings = settings_from_params(params)
    settings.htpasswd = AUTH_TARGET if params.get("htpasswd") else None
    settings.auth_realm = params["auth_realm"]
    settings.tls_cert = TLS_CERT_TARGET if params.get("tls_cert") else None
    settings.tls_key = TLS_KEY_TARGET if params.get("tls_key") else None
    settings.drain_timeout = params["drain_timeout"]
    settings.http_secret = params.get("http_secret") or None
    settings.proxy = dict(params.get("proxy") or {})
    return settings


def write_config(params: dict[str, Any], engine_of: Any, check_mode: bool = False) -> dict[str, Any]:
    """registry_config's run: build and check the configuration, and when it differs from the file at ``path``,
    start the registry on it in a throwaway container (``validate``), then write it (mode 0600, atomically)."""
    path = params["path"]
    if not os.path.isabs(path or ""):
        raise ConfigError("path %r must be an absolute path" % path)
    if params["drain_timeout"] < 0 or params["drain_timeout"] > 600:
        raise ConfigError("drain_timeout %d must be 0-600 seconds" % params["drain_timeout"])
    settings = _file_settings(params)
    if (params.get("proxy") or {}).get("url") and not re.match(r"^https?://[^/\s]+/?$", params["proxy"]["url"]):
        raise ConfigError("proxy url %r is not a registry URL: give http(s)://host[:port]" % params["proxy"]["url"])
    if params["validate"] and params["validate_timeout"] < 1:
        raise ConfigError("validate_timeout %d must be 1 second or more" % params["validate_timeout"])
    config = build(settings)
    data = render(config)
    secrets = secret_values(settings)
    old = read_optional(path, ConfigError)
    actions: list[str] = []
    result: dict[str, Any] = {
        "path": path,
        "digest": digest(data),
        "config": masked(config, secrets),
        "storage_driver": storage_driver(config),
        "actions": actions,
    }
    if old == data:
        result.update(changed=False, diff={"before": diff_text(config, secrets), "after": diff_text(config, secrets)})
        return result
    files = [TrialFile(CONFIG_TARGET, data=data)]
    for option, target in (("htpasswd", AUTH_TARGET), ("tls_cert", TLS_CERT_TARGET), ("tls_key", TLS_KEY_TARGET)):
        if params.get(option):
            files.append(TrialFile(target, source=params[option]))
            if not check_mode and not os.path.isfile(params[option]):
                raise ConfigError("%s %s is not a file on this host" % (option, params[option]))
    if params["validate"] and not check_mode:
        if not params.get("image"):
            raise ConfigError("image is required to try the configuration (validate); give the registry image")
        engine = engine_of()
        if engine.image(params["image"]) is None:
            raise ConfigError("registry image %s is not in the engine: pull, load or build it first" % params["image"])
        seconds = trial_start(
            engine, params["image"], params["name"], files, dict(params.get("env") or {}, **(params.get("secret_env") or {})),
            timeout=params["validate_timeout"],
        )
        actions.append("try the configuration: the registry started on it (listening after %.1fs)" % seconds)
    actions.append("%s %s" % ("write" if old is None else "rewrite", path))
    if not check_mode:
        write_atomic(path, data, 0o600)
    before = parse(old) if old is not None else None
    result.update(
        changed=True,
        diff={
            "before": diff_text(before, secrets) if before is not None or old is None else "(%d bytes, not a configuration)\n" % len(old),
            "after": diff_text(config, secrets),
        },
    )
    return result
