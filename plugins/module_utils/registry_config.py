# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry's configuration file (distribution 2.8's ``config.yml``): built, merged, checked, rendered, tried.

One builder for every mode: :func:`build` turns the settings the collection owns (:class:`ConfigSettings`: the
listening address, the storage root, htpasswd, TLS, deletes, draining, the pull-through cache, logs, the blob
cache, metrics, notifications, the shared ``http.secret``, the maintenance read-only switch) into the base
configuration; the user's own mapping (``config``, then ``secret_config``) is deep-merged on top
(:func:`deep_merge`: mappings merge, anything else replaces, ``null`` removes a key; a storage driver other than
``filesystem`` replaces the filesystem one). :func:`check` refuses, in one line each and before anything runs:

- a key the collection sets from one of its own settings (the listening address, the storage root, htpasswd
  authentication, TLS, the metrics address, the cache's upstream, notification endpoints, ``http.secret``): the
  message names the key and the setting;
- a top-level key distribution 2.8 does not know (it would silently ignore it), and an unknown key inside the
  sections whose every key is known (``log``, ``http``, ``redis``, ``health``, ``notifications``, ``proxy``,
  ``catalog``);
- a value of the wrong type (a string where a mapping belongs, a list where a number belongs...).

:func:`render` writes JSON (which is YAML), sorted and stable, so that the same settings give the same bytes and
the same digest. :func:`masked` hides secret values for diffs and results. config_file.py tries a configuration (the trial start)
and writes it (registry_config's run).

No Ansible import (args.py holds the option specs).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError
from ansible_collections.dockhand.registry.plugins.module_utils.storage import DATA_TARGET

CONFIG_TARGET = "/etc/docker/registry/config.yml"
AUTH_TARGET = "/auth/htpasswd"
TLS_CERT_TARGET = "/certs/server.crt"
TLS_KEY_TARGET = "/certs/server.key"
# The debug server (metrics, pprof, health) inside the registry's container or task; published on a private
# address by registry_container (metrics_port) and registry_service.
DEBUG_PORT = 5001
HEADER = "# The registry's configuration, written by dockhand.registry: a change here is overwritten on the next run.\n"
TRIAL_LABEL = "io.dockhand.registry.trial"
# The storage driver a registry's configuration names, on a container or service task whose configuration cannot be
# read from the host (a Swarm secret): what the garbage collection asks before it reads the storage itself.
STORAGE_LABEL = "io.dockhand.registry.storage-driver"
TRIAL_SUFFIX = "-dockhand-trial"
MASK = "********"

LOG_LEVELS = ("error", "warn", "info", "debug")
LOG_FORMATTERS = ("text", "json", "logstash")
BLOB_CACHES = ("none", "inmemory", "redis")
# Event actions distribution 2.8 sends (notifications.endpoints[].ignore.actions).
EVENT_ACTIONS = ("pull", "push", "mount", "delete")
# Keys of ``storage`` that are not a storage driver.
STORAGE_PARAMETERS = frozenset({"delete", "maintenance", "cache", "redirect", "tag"})
# Keys whose values are secrets wherever they appear (masked in diffs and results).
_SECRET_KEY_RE = re.compile(
    r"pass(word)?|secret|accesskey|secretkey|accountkey|credentials|token|apikey|licensekey|privatekey", re.IGNORECASE
)
_DURATION_RE = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


class ConfigError(DockhandError):
    """The registry configuration cannot be used (a conflict, an unknown key, a wrong type, a refused start)."""


# -- the schema of distribution 2.8.2 (the keys of its configuration structs) ------------------------------------------
# A dict is a section: its keys are the only ones distribution reads there (an unknown one is refused). ANY_MAP is a
# mapping whose keys are free (storage driver parameters, auth providers, middleware...). A list [schema] is a list
# whose items follow schema.
STR, BOOL, INT, DURATION, ANY_MAP, STR_LIST = "string", "boolean", "integer", "duration", "mapping", "list of strings"
HEADERS = "mapping of header lists"
_ENDPOINT = {
    "name": STR, "disabled": BOOL, "url": STR, "headers": HEADERS, "timeout": DURATION, "threshold": INT,
    "backoff": DURATION, "ignoredmediatypes": STR_LIST, "ignore": {"mediatypes": STR_LIST, "actions": STR_LIST},
}
SCHEMA: dict[str, Any] = {
    "version": STR,
    "log": {"accesslog": {"disabled": BOOL}, "level": STR, "formatter": STR, "fields": ANY_MAP, "hooks": [ANY_MAP]},
    "loglevel": STR,
    "storage": ANY_MAP,
    "auth": ANY_MAP,
    "middleware": ANY_MAP,
    "reporting": ANY_MAP,
    "http": {
        "addr": STR, "net": STR, "host": STR, "prefix": STR, "secret": STR, "relativeurls": BOOL,
        "draintimeout": DURATION,
        "tls": {
            "certificate": STR, "key": STR, "clientcas": STR_LIST, "minimumtls": STR, "ciphersuites": STR_LIST,
            "letsencrypt": {"cachefile": STR, "email": STR, "hosts": STR_LIST},
        },
        "headers": HEADERS,
        "debug": {"addr": STR, "prometheus": {"enabled": BOOL, "path": STR}},
        "http2": {"disabled": BOOL},
    },
    "notifications": {"events": {"includereferences": BOOL}, "endpoints": [_ENDPOINT]},
    "redis": {
        "addr": STR, "password": STR, "db": INT, "dialtimeout": DURATION, "readtimeout": DURATION,
        "writetimeout": DURATION, "pool": {"maxidle": INT, "maxactive": INT, "idletimeout": DURATION},
    },
    "health": {
        "storagedriver": {"enabled": BOOL, "interval": DURATION, "threshold": INT},
        "file": [ANY_MAP], "http": [ANY_MAP], "tcp": [ANY_MAP],
    },
    "catalog": {"maxentries": INT},
    "proxy": {"remoteurl": STR, "username": STR, "password": STR},
    "compatibility": ANY_MAP,
    "validation": ANY_MAP,
    "policy": ANY_MAP,
}


# -- what the collection sets ------------------------------------------------------------------------------------------
@dataclass
class Endpoint:
    """One notification endpoint (``notifications.endpoints[]``)."""

    url: str
    name: str = ""
    headers: dict[str, Any] = field(default_factory=dict)
    timeout: str = ""
    threshold: int = 0
    backoff: str = ""
    ignored_media_types: list[str] = field(default_factory=list)
    ignored_actions: list[str] = field(default_factory=list)
    disabled: bool = False


@dataclass
class ConfigSettings:
    """The settings the collection turns into configuration keys (each owns the keys it sets, see :func:`owned`).

    Paths are the ones the registry sees: in its container (``/auth/htpasswd``) or its Swarm task
    (``/run/secrets/htpasswd``)."""

    htpasswd: str | None = None
    auth_realm: str = "dockhand.registry"
    tls_cert: str | None = None
    tls_key: str | None = None
    delete_enabled: bool = False
    drain_timeout: int = 0
    read_only: bool = False
    http_secret: str | None = None
    proxy: dict[str, Any] = field(default_factory=dict)
    log_level: str = "info"
    log_formatter: str = "text"
    storage_redirect_disable: bool = False
    blob_cache: str = "inmemory"
    redis: dict[str, Any] = field(default_factory=dict)
    metrics: bool = False
    metrics_path: str = "/metrics"
    notifications: list[Endpoint] = field(default_factory=list)
    health_interval: str = "10s"
    health_threshold: int = 3
    # The user's mappings, merged on top in this order.
    config: dict[str, Any] = field(default_factory=dict)
    secret_config: dict[str, Any] = field(default_factory=dict)


# The keys a setting sets: (path, the role variable and module option that set it, what the message adds).
def owned(settings: ConfigSettings) -> list[tuple[tuple[str, ...], str, str]]:
    keys = [
        (("http", "addr"), "registry_port (option port)",
         ": the registry listens on :5000 in its container; registry_port publishes it"),
        (("storage", "filesystem", "rootdirectory"), "registry_data_path or registry_volume (option data_path or volume)",
         ": the data is at %s in the container" % DATA_TARGET),
    ]  # fmt: skip
    if settings.htpasswd:
        keys.append((("auth",), "registry_auth_users (option htpasswd)", ""))
    if settings.tls_cert:
        keys.append((("http", "tls"), "registry_tls_cert or registry_tls_generate (option tls_cert)", ""))
    if settings.metrics:
        keys.append((("http", "debug", "addr"), "registry_metrics (option metrics)", ": the debug server listens on :%d in the container" % DEBUG_PORT))
    if settings.proxy.get("url"):
        keys.append((("proxy",), "registry_proxy (option proxy)", ""))
    if settings.notifications:
        keys.append((("notifications", "endpoints"), "registry_notifications (option notifications)", ""))
    if settings.http_secret:
        keys.append((("http", "secret"), "registry_http_secret (option http_secret)", ""))
    if settings.read_only:
        keys.append((("storage", "maintenance", "readonly"), "registry_service_read_only (option read_only)", ""))
    return keys


def _endpoint(endpoint: Endpoint, number: int) -> dict[str, Any]:
    data: dict[str, Any] = {"name": endpoint.name or "endpoint-%d" % number, "url": endpoint.url, "disabled": endpoint.disabled}
    if endpoint.headers:
        data["headers"] = {k: [str(x) for x in v] if isinstance(v, list) else [str(v)] for k, v in endpoint.headers.items()}
    if endpoint.timeout:
        data["timeout"] = endpoint.timeout
    if endpoint.threshold:
        data["threshold"] = endpoint.threshold
    if endpoint.backoff:
        data["backoff"] = endpoint.backoff
    if endpoint.ignored_media_types:
        data["ignoredmediatypes"] = list(endpoint.ignored_media_types)
    if endpoint.ignored_actions:
        data["ignore"] = {"actions": list(endpoint.ignored_actions)}
    return data


def base(settings: ConfigSettings) -> dict[str, Any]:
    """The configuration the settings make, before the user's mappings."""
    storage: dict[str, Any] = {"filesystem": {"rootdirectory": DATA_TARGET}}
    if settings.blob_cache != "none":
        storage["cache"] = {"blobdescriptor": settings.blob_cache}
    if settings.delete_enabled:
        storage["delete"] = {"enabled": True}
    if settings.storage_redirect_disable:
        storage["redirect"] = {"disable": True}
    if settings.read_only:
        storage["maintenance"] = {"readonly": {"enabled": True}}
    http: dict[str, Any] = {"addr": ":5000", "headers": {"X-Content-Type-Options": ["nosniff"]}}
    if settings.drain_timeout:
        http["draintimeout"] = "%ds" % settings.drain_timeout
    if settings.http_secret:
        http["secret"] = settings.http_secret
    if settings.tls_cert:
        http["tls"] = {"certificate": settings.tls_cert, "key": settings.tls_key}
    if settings.metrics:
        http["debug"] = {"addr": ":%d" % DEBUG_PORT, "prometheus": {"enabled": True, "path": settings.metrics_path}}
    config: dict[str, Any] = {
        "version": "0.1",
        "log": {"level": settings.log_level, "formatter": settings.log_formatter, "fields": {"service": "registry"}},
        "storage": storage,
        "http": http,
        "health": {
            "storagedriver": {"enabled": True, "interval": settings.health_interval, "threshold": settings.health_threshold}
        },
    }
    if settings.blob_cache == "redis":
        config["redis"] = {k: v for k, v in settings.redis.items() if v not in (None, "")}
    if settings.htpasswd:
        config["auth"] = {"htpasswd": {"realm": settings.auth_realm, "path": settings.htpasswd}}
    if settings.proxy.get("url"):
        proxy = {"remoteurl": settings.proxy["url"]}
        if settings.proxy.get("username"):
            proxy.update(username=settings.proxy["username"], password=settings.proxy.get("password") or "")
        config["proxy"] = proxy
    if settings.notifications:
        config["notifications"] = {"endpoints": [_endpoint(e, n) for n, e in enumerate(settings.notifications, 1)]}
    return config


# -- merging and checking ----------------------------------------------------------------------------------------------
def _storage_driver(storage: dict[str, Any]) -> list[str]:
    return sorted(k for k in storage if k not in STORAGE_PARAMETERS)


def deep_merge(lower: dict[str, Any], upper: dict[str, Any]) -> dict[str, Any]:
    """``upper`` on top of ``lower``: mappings merge key by key, anything else replaces, ``None`` removes the key."""
    merged = copy.deepcopy(lower)
    for key, value in upper.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_user(config: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    storage = user.get("storage")
    if isinstance(storage, dict) and isinstance(config.get("storage"), dict):
        drivers = [d for d in _storage_driver(storage) if d != "filesystem" and storage[d] is not None]
        if drivers:
            # Another storage driver replaces the filesystem one (distribution refuses two).
            config = dict(config, storage={k: v for k, v in config["storage"].items() if k != "filesystem"})
    return deep_merge(config, user)


def _get(mapping: Any, path: tuple[str, ...]) -> tuple[bool, Any]:
    for key in path:
        if not isinstance(mapping, dict) or key not in mapping:
            return False, None
        mapping = mapping[key]
    return True, mapping


def _dotted(path: tuple[str, ...] | list[str]) -> str:
    return ".".join(str(p) for p in path)


_TYPE_NAMES = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"), (dict, "a mapping"), (list, "a list"))


def _type_name(value: Any) -> str:
    for kind, name in _TYPE_NAMES:
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def _check_value(value: Any, schema: Any, path: list[str], where: str) -> None:
    dotted = _dotted(path)
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise ConfigError("%s %s must be a mapping, not %s" % (where, dotted, _type_name(value)))
        for key, item in value.items():
            if key not in schema:
                raise ConfigError(
                    "%s %s: unknown key %r (distribution 2.8 reads only %s there)"
                    % (where, dotted, key, ", ".join(sorted(schema)))
                )
            _check_value(item, schema[key], [*path, key], where)
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise ConfigError("%s %s must be a list, not %s" % (where, dotted, _type_name(value)))
        for number, item in enumerate(value):
            _check_value(item, schema[0], [*path, str(number)], where)
        return
    expected = {
        STR: lambda v: isinstance(v, str),
        BOOL: lambda v: isinstance(v, bool),
        INT: lambda v: isinstance(v, int) and not isinstance(v, bool),
        DURATION: lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, str) and bool(_DURATION_RE.match(v))),
        ANY_MAP: lambda v: isinstance(v, dict),
        STR_LIST: lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        HEADERS: lambda v: isinstance(v, dict) and all(isinstance(x, list) and all(isinstance(y, str) for y in x) for x in v.values()),
    }[schema]
    if not expected(value):
        what = "a duration such as 500ms, 10s or 1m" if schema == DURATION else ("a " + schema if schema != INT else "an integer")
        got = ("%r" % value) if schema == DURATION and isinstance(value, str) and not _SECRET_KEY_RE.search(dotted) else _type_name(value)
        raise ConfigError("%s %s must be %s, not %s" % (where, dotted, what, got))


def check_user(settings: ConfigSettings) -> None:
    """Refuse, in one line, a user key that conflicts with a setting, an unknown key and a wrong type."""
    for where, user in (("registry_config (option config)", settings.config), ("registry_secret_config (option secret_config)", settings.secret_config)):
        if not isinstance(user, dict):
            raise ConfigError("%s must be a mapping, not %s" % (where, _type_name(user)))
        for key in user:
            if key not in SCHEMA:
                raise ConfigError(
                    "%s key %r is not a key of the distribution 2.8 configuration (it would be ignored): one of %s"
                    % (where, key, ", ".join(sorted(SCHEMA)))
                )
        for key, value in user.items():
            if value is not None:
                _check_value(value, SCHEMA[key], [key], where)
        for path, owner, why in owned(settings):
            for depth in range(1, len(path) + 1):
                found, value = _get(user, path[:depth])
                if found and (depth == len(path) or value is None):
                    raise ConfigError("%s key %s conflicts with %s, which sets it%s" % (where, _dotted(path[:depth]), owner, why))


def _check_settings(settings: ConfigSettings) -> None:
    if settings.log_level not in LOG_LEVELS:
        raise ConfigError("log_level %r: one of %s" % (settings.log_level, ", ".join(LOG_LEVELS)))
    if settings.log_formatter not in LOG_FORMATTERS:
        raise ConfigError("log_formatter %r: one of %s" % (settings.log_formatter, ", ".join(LOG_FORMATTERS)))
    if settings.blob_cache not in BLOB_CACHES:
        raise ConfigError("blob_cache type %r: one of %s" % (settings.blob_cache, ", ".join(BLOB_CACHES)))
    if settings.blob_cache == "redis" and not settings.redis.get("addr"):
        raise ConfigError("blob_cache type redis needs the Redis address (blob_cache.addr, host:port)")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("tls_cert and tls_key go together")
    if not settings.metrics_path.startswith("/"):
        raise ConfigError("metrics path %r must start with /" % settings.metrics_path)
    names = set()
    for number, endpoint in enumerate(settings.notifications, 1):
        if not re.match(r"^https?://[^/\s]+", endpoint.url or ""):
            raise ConfigError("notification endpoint %d: url %r is not an http(s) URL" % (number, endpoint.url))
        name = endpoint.name or "endpoint-%d" % number
        if name in names:
            raise ConfigError("notification endpoint name %r is given twice: names must differ" % name)
        names.add(name)
        for what, value in (("timeout", endpoint.timeout), ("backoff", endpoint.backoff)):
            if value and not _DURATION_RE.match(value):
                raise ConfigError("notification endpoint %s: %s %r is not a duration such as 500ms, 5s or 1m" % (name, what, value))
        if endpoint.threshold < 0:
            raise ConfigError("notification endpoint %s: threshold %d must be 0 or more" % (name, endpoint.threshold))
        unknown = [a for a in endpoint.ignored_actions if a not in EVENT_ACTIONS]
        if unknown:
            raise ConfigError("notification endpoint %s: ignored action %r is not one of %s" % (name, unknown[0], ", ".join(EVENT_ACTIONS)))


def build(settings: ConfigSettings) -> dict[str, Any]:
    """The whole configuration: the settings' keys, then ``config``, then ``secret_config``, checked (ConfigError)."""
    _check_settings(settings)
    check_user(settings)
    config = _merge_user(_merge_user(base(settings), settings.config), settings.secret_config)
    storage = config.get("storage")
    if not isinstance(storage, dict) or not _storage_driver(storage):
        raise ConfigError("the configuration names no storage driver: keep storage.filesystem or give another driver")
    drivers = _storage_driver(storage)
    if len(drivers) > 1:
        raise ConfigError("the configuration names %d storage drivers (%s): give one" % (len(drivers), ", ".join(drivers)))
    return config


def storage_driver(config: dict[str, Any]) -> str | None:
    """The storage driver a configuration names (``filesystem``, ``s3``...), None when it names none."""
    storage = config.get("storage")
    drivers = _storage_driver(storage) if isinstance(storage, dict) else []
    return drivers[0] if len(drivers) == 1 else None


# -- rendering, reading, masking ---------------------------------------------------------------------------------------
def render(config: dict[str, Any], header: bool = True) -> bytes:
    """The file's bytes: a comment line (``header``), then JSON (YAML reads it), sorted keys: the same configuration,
    the same bytes."""
    return ((HEADER if header else "") + json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse(data: bytes) -> dict[str, Any] | None:
    """A configuration file's content as a mapping: JSON (what :func:`render` writes) or, when PyYAML is there, YAML;
    None when it is neither."""
    text = data.decode("utf-8", "replace")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    try:
        loaded = json.loads(body)
    except ValueError:
        try:
            import yaml  # not a requirement of the managed host: only for a file this collection did not write
        except ImportError:
            return None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError:
            return None
    return loaded if isinstance(loaded, dict) else None


def read(path: str) -> dict[str, Any] | None:
    """The configuration in the file ``path`` (None when it is missing or unreadable)."""
    try:
        with open(path, "rb") as stream:
            return parse(stream.read())
    except OSError:
        return None


def _leaves(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [str(value)] if isinstance(value, str) and value else []


def masked(config: Any, secrets: list[str] | None = None, _key: str = "", _inside_headers: bool = False) -> Any:
    """A copy with secret values replaced by ``********``: values under secret-looking keys (password, secret,
    accesskey, token...), every notification header, and every value in ``secrets``."""
    secrets = secrets if secrets is not None else []
    if isinstance(config, dict):
        return {
            k: (MASK if isinstance(v, (str, int, float)) and not isinstance(v, bool) and (_SECRET_KEY_RE.search(str(k)) or _inside_headers)
                else masked(v, secrets, str(k), _inside_headers or (str(k) == "headers" and _key != "http")))
            for k, v in config.items()
        }  # fmt: skip
    if isinstance(config, list):
        return [MASK if _inside_headers and isinstance(v, str) else masked(v, secrets, _key, _inside_headers) for v in config]
    if isinstance(config, str) and config in secrets:
        return MASK
    return config


def secret_values(settings: ConfigSettings) -> list[str]:
    """Every value the settings hold as a secret (the mask hides them wherever they appear)."""
    values = _leaves(settings.secret_config)
    values += [v for v in (settings.http_secret, settings.proxy.get("password"), settings.redis.get("password")) if v]
    for endpoint in settings.notifications:
        values += _leaves(endpoint.headers)
    return values


def diff_text(config: dict[str, Any] | None, secrets: list[str]) -> str:
    if config is None:
        return ""
    return json.dumps(masked(config, secrets), indent=2, sort_keys=True) + "\n"
