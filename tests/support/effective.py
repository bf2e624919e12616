"""The configuration a registry container runs with, read as distribution 2.8 reads it, independently of the
collection: the file mounted at /etc/docker/registry/config.yml (YAML; JSON is YAML), then every ``REGISTRY_<PATH>``
variable of its environment over the key it names. Flattened to dotted lower-case keys with string values
(``storage.delete.enabled`` -> ``"true"``), so that a test asks one question whichever place a setting came from.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

CONFIG_TARGET = "/etc/docker/registry/config.yml"


def _flatten(value: Any, prefix: str, into: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, "%s.%s" % (prefix, str(key).lower()) if prefix else str(key).lower(), into)
    elif isinstance(value, bool):
        into[prefix] = "true" if value else "false"
    elif isinstance(value, list):
        into[prefix] = json.dumps(value)
    elif value is not None:
        into[prefix] = str(value)


def effective(container: dict[str, Any], read: Callable[[str], str] | None = None) -> dict[str, str]:
    """``container``: ``docker container inspect`` of a registry; ``read``: how to read a host file (default: here)."""
    read = read or (lambda path: Path(path).read_text(encoding="utf-8"))
    settings: dict[str, str] = {}
    for mount in container.get("Mounts") or []:
        if mount.get("Destination") == CONFIG_TARGET:
            _flatten(yaml.safe_load(read(mount["Source"])) or {}, "", settings)
    for entry in (container.get("Config") or {}).get("Env") or []:
        key, _sep, value = entry.partition("=")
        if key.startswith("REGISTRY_"):
            settings[key[len("REGISTRY_"):].lower().replace("_", ".")] = value
    return settings
