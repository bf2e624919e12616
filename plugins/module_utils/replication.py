# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replication from upstream registries into this registry: the sources of the registry role's
``registry_replication``, copied by the module registry_replication and by the role's scheduled runner
(roles/registry/files/dockhand_registry_replicate.py, systemd timer or cron) with image_sync's code (sync.py's
Syncer, tag_select.py).

Sources run one after the other; within a source, its tags are copied ``workers`` at a time. A source that fails
(unreachable, login refused, a tag that does not copy) is recorded with its error and the next one runs. Each run's
status (times, tags copied, failures, duration, per source) is written atomically to a state file that registry_info
reads back (:func:`read_state`). Free of Ansible: the runner imports it on a host without Ansible.
"""

from __future__ import annotations

import base64
import datetime
import glob
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError, PartialFailure, check_workers, one_line, write_atomic
from ansible_collections.dockhand.registry.plugins.module_utils.reference import validate_registry, validate_repository
from ansible_collections.dockhand.registry.plugins.module_utils.registry import RegistryClient
from ansible_collections.dockhand.registry.plugins.module_utils.sync import Item, Syncer, parse_platform
from ansible_collections.dockhand.registry.plugins.module_utils.tag_select import TagSelector
from ansible_collections.dockhand.registry.plugins.module_utils.transport import is_loopback

# Where the registry role keeps the state files (one per registry container or service): registry_info looks here.
STATE_DIR = "/var/lib/dockhand/replication"
STATE_VERSION = 1
SOURCE_KEYS = {
    "name", "registry", "repositories", "dest_prefix", "tag_pattern", "tag_semver", "tag_limit", "platforms",
    "username", "password", "credentials_file", "registry_scheme", "registry_ca_cert", "registry_validate_certs",
}  # fmt: skip


class ReplicationError(PartialFailure):
    """A source failed (or several); ``results`` holds every source's record, ``result`` the run's result."""

    def __init__(self, message: str, results: list[dict], result: dict | None = None) -> None:
        super().__init__(message, dict(result or {}, results=results))


@dataclass
class Source:
    """One upstream: a registry and repositories, which tags, and how to log in."""

    name: str
    registry: str
    repositories: list[str]
    dest_prefix: str
    options: dict[str, Any]  # tag_pattern, tag_semver, tag_limit (checked by TagSelector.build)
    platforms: list[str] | None
    username: str | None
    password: str | None
    scheme: str | None
    ca_cert: str | None
    validate_certs: bool

    def dest_repository(self, repository: str) -> str:
        return "%s/%s" % (self.dest_prefix.strip("/"), repository) if self.dest_prefix.strip("/") else repository


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_credentials(path: str, registry: str) -> tuple[str, str]:
    """User and password for ``registry`` from a file only root may read: JSON ``{"username": ..., "password": ...}``,
    or a Docker client configuration (``{"auths": {"<registry>": {"auth": base64("user:password")}}}``)."""
    try:
        mode = os.stat(path).st_mode
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except OSError as exc:
        raise DockhandError("credentials_file %s cannot be read: %s" % (path, exc.strerror or exc)) from None
    except ValueError:
        raise DockhandError("credentials_file %s is not JSON" % path) from None
    if mode & 0o077:
        raise DockhandError("credentials_file %s is readable by others (mode %04o): make it 0600" % (path, mode & 0o7777))
    if isinstance(data, dict) and isinstance(data.get("auths"), dict):
        entry = next((data["auths"][key] for key in (registry, "https://" + registry, "http://" + registry) if key in data["auths"]), None)
        if not isinstance(entry, dict):
            raise DockhandError("credentials_file %s holds no login for %s (auths)" % (path, registry))
        if entry.get("auth"):
            user, _sep, password = base64.b64decode(entry["auth"]).decode("utf-8").partition(":")
            return user, password
        data = entry
    if not isinstance(data, dict) or not data.get("username") or data.get("password") is None:
        raise DockhandError("credentials_file %s must hold username and password" % path)
    return str(data["username"]), str(data["password"])


def parse_sources(sources: list[dict]) -> list[Source]:
    """Every source checked (references, tag options, platforms, credentials files) before anything is asked; an
    error names the source (``replication source 2 (hub): ...``)."""
    parsed: list[Source] = []
    names: set[str] = set()
    for number, entry in enumerate(sources or [], 1):
        if not isinstance(entry, dict):
            raise DockhandError("replication source %d must be a dict, got %r" % (number, entry))
        label = "replication source %d (%s)" % (number, entry.get("name") or entry.get("registry"))
        try:
            source = _parse_source(entry)
        except DockhandError as exc:
            message = str(exc)
            raise type(exc)(message if message.startswith(label) else "%s: %s" % (label, message)) from None
        if source.name in names:
            raise DockhandError("%s: the name %s is given twice: give each source its own name" % (label, source.name))
        names.add(source.name)
        parsed.append(source)
    return parsed


def _parse_source(entry: dict) -> Source:
    unknown = sorted(set(entry) - SOURCE_KEYS)
    if unknown:
        raise DockhandError("unknown keys %s (known: %s)" % (", ".join(unknown), ", ".join(sorted(SOURCE_KEYS))))
    registry = validate_registry(str(entry.get("registry") or ""))
    repositories = entry.get("repositories")
    if not repositories or not isinstance(repositories, list):
        raise DockhandError("give repositories, a list of repository names")
    for repository in repositories:
        validate_repository(str(repository))
    prefix = str(entry.get("dest_prefix") or "")
    if prefix.strip("/"):
        validate_repository(prefix.strip("/"))
    options = {key: entry.get(key) for key in ("tag_pattern", "tag_semver", "tag_limit")}
    if all(value is None for value in options.values()):
        raise DockhandError("give tag_pattern, tag_semver or tag_limit (which tags to copy)")
    TagSelector.build(**options)
    platforms = entry.get("platforms") or None
    for platform in platforms or []:
        parse_platform(platform)
    username, password = entry.get("username"), entry.get("password")
    if entry.get("credentials_file"):
        if username:
            raise DockhandError("give username/password or credentials_file, not both")
        username, password = read_credentials(str(entry["credentials_file"]), registry)
    scheme = entry.get("registry_scheme") or "auto"
    if scheme not in ("auto", "https", "http"):
        raise DockhandError("registry_scheme must be auto, https or http, got %r" % (scheme,))
    return Source(
        str(entry.get("name") or registry), registry, [str(r) for r in repositories], prefix, options, platforms, username, password,
        None if scheme == "auto" else scheme, entry.get("registry_ca_cert"), entry.get("registry_validate_certs", True) is not False,
    )  # fmt: skip


def _client_factory(make_client: Any, registry: str, username: str | None, password: str | None, scheme: str | None,
                    ca_cert: str | None, validate_certs: bool, timeout: float, workers: int):  # fmt: skip
    def make(address: str) -> RegistryClient:
        if address != registry:
            raise DockhandError("no login known for registry %s" % address)
        return make_client(address, username, password, ca_cert=ca_cert, validate_certs=validate_certs, scheme=scheme,
                           timeout=timeout, pool_size=workers)  # fmt: skip

    return make


def run_source(
    source: Source, dest_factory: Any, dest_registry: str, workers: int, timeout: float, check_mode: bool, make_client: Any = RegistryClient
) -> dict:
    """Copy one source's chosen tags; its record (never raises: a failure is the record's ``error`` / ``failures``)."""
    started = time.monotonic()
    record: dict[str, Any] = {
        "name": source.name, "registry": source.registry, "started": now(), "ok": False, "error": None,
        "repositories": {}, "tags_chosen": 0, "tags_copied": 0, "tags_present": 0, "tags_failed": 0,
        "copied": [], "failures": [],
    }  # fmt: skip
    src_factory = _client_factory(make_client, source.registry, source.username, source.password, source.scheme, source.ca_cert,
                                  source.validate_certs, timeout, workers)  # fmt: skip
    syncer = Syncer(src_factory, dest_factory, workers=workers, platforms=source.platforms, check_mode=check_mode)
    try:
        items: list[Item] = []
        src = syncer.client("src", source.registry)
        for repository in source.repositories:
            tags = src.repository_tags(repository)
            if tags is None:
                record["failures"].append({"repository": repository, "msg": "repository %s is not in registry %s" % (repository, source.registry)})
                continue
            selector = TagSelector.build(**source.options)
            chosen = selector.select(tags)
            record["repositories"][repository] = selector.counts
            destination = source.dest_repository(repository)
            items.extend(Item(source.registry, repository, tag, dest_registry, destination, tag) for tag in chosen)
        record["tags_chosen"] = len(items)
        syncer.check_access(items)
        for result in syncer.run(items):
            if result["failed"]:
                record["failures"].append({"tag": result["source"], "msg": result["msg"]})
            elif result["changed"]:
                record["copied"].append("%s@%s" % (result["dest"], result["digest"]))
            else:
                record["tags_present"] += 1
    except DockhandError as exc:
        record["error"] = one_line(exc)
    record["tags_copied"] = len(record["copied"])
    record["tags_failed"] = len([f for f in record["failures"] if "tag" in f])
    record["ok"] = record["error"] is None and not record["failures"]
    record["finished"] = now()
    record["duration_seconds"] = round(time.monotonic() - started, 3)
    return record


def replicate(params: dict[str, Any], check_mode: bool = False, make_client: Any = RegistryClient) -> dict:
    """A whole replication run as the module's and the runner's parameters describe it (see the module
    registry_replication): every source, then the state file (not in check mode). Raises ReplicationError, with
    every source's record, when a source failed. ``make_client``: what makes a registry's client (tests)."""
    dest_registry = validate_registry(str(params.get("registry") or ""))
    workers = check_workers(int(params.get("workers") or 4))
    timeout = float(params.get("registry_timeout") or 30)
    sources = parse_sources(params.get("sources") or [])
    scheme = params.get("registry_scheme") or "auto"
    dest_factory = _client_factory(make_client, dest_registry, params.get("username"), params.get("password"), None if scheme == "auto" else scheme,
                                   params.get("registry_ca_cert"), params.get("registry_validate_certs", True) is not False,
                                   timeout, workers)  # fmt: skip
    started, clock = now(), time.monotonic()
    state_file = params.get("state_file")
    previous = _load(state_file) if state_file else None
    records = []
    for source in sources:
        record = run_source(source, dest_factory, dest_registry, workers, timeout, check_mode, make_client)
        earlier = next((s for s in (previous or {}).get("sources", []) if s.get("name") == source.name), {})
        record["last_success"] = record["finished"] if record["ok"] else earlier.get("last_success")
        records.append(record)
    state = {
        "version": STATE_VERSION, "registry": dest_registry, "started": started, "finished": now(),
        "duration_seconds": round(time.monotonic() - clock, 3), "ok": all(r["ok"] for r in records), "sources": records,
    }  # fmt: skip
    if state_file and not check_mode:
        write_atomic(state_file, (json.dumps(state, indent=1, sort_keys=True) + "\n").encode(), 0o644)
    verb = "would copy" if check_mode else "copied"
    copied = [ref for record in records for ref in record["copied"]]
    result = {
        "changed": bool(copied),
        "state": state,
        "state_file": state_file,
        "synced": [ref.split("@", 1)[0] for ref in copied],
        "actions": ["%s %s" % (verb, ref) for ref in copied],
        "diff": {"before": "", "after": "".join("%s\n" % ref for ref in copied)},
    }
    failed = [r for r in records if not r["ok"]]
    if failed:
        causes = "; ".join("%s: %s" % (r["name"], r["error"] or "; ".join(f["msg"] for f in r["failures"])) for r in failed)
        raise ReplicationError("replication failed for %d of %d sources: %s" % (len(failed), len(records), causes), records, result)
    return result


def _load(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _same_registry(a: str, b: str) -> bool:
    """Two addresses of one registry on this host: equal, or both loopback on the same port."""
    if a == b:
        return True
    port_a, port_b = a.rsplit(":", 1)[-1], b.rsplit(":", 1)[-1]
    return port_a == port_b and ":" in a and ":" in b and is_loopback(a) and is_loopback(b)


def read_state(registry: str, path: str | None = None, directory: str = STATE_DIR) -> dict | None:
    """The last replication run's state for ``registry``: from ``path`` when given (an error when unreadable), else,
    for a registry on this host (a loopback address), the state file in ``directory`` recorded for it; with
    ``age_seconds`` since the run finished. None when there is none."""
    if path:
        state = _load(path)
        if state is None:
            raise DockhandError("replication_state %s cannot be read as a replication state file" % path)
    else:
        if not is_loopback(registry):
            return None
        state = next((s for s in map(_load, sorted(glob.glob(os.path.join(directory, "*.json"))))
                      if s and _same_registry(str(s.get("registry", "")), registry)), None)  # fmt: skip
        if state is None:
            return None
    try:
        finished = datetime.datetime.strptime(str(state.get("finished")), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
        state["age_seconds"] = int((datetime.datetime.now(datetime.timezone.utc) - finished).total_seconds())
    except ValueError:
        state["age_seconds"] = None
    return state
