# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How much storage a registry uses, read from distribution's filesystem driver layout on this host.

::

    <data path>/docker/registry/v2/
      blobs/<algorithm>/<xx>/<hex>/data               every blob (layers, configs, manifests), stored once
      repositories/<name>/                            a repository (names nest: a/b/c)
        _layers/<algorithm>/<hex>/link                the blobs the repository serves (layers, configs)
        _manifests/revisions/<algorithm>/<hex>/link   the manifests it holds
        _manifests/tags/<tag>/                        its tags
        _uploads/<uuid>/                              upload sessions (data, start time, hash states)

Per repository the bytes are those of the blobs it links (a blob shared by two repositories counts in both; the
totals count every blob once). Upload sessions are what an interrupted push leaves until the registry's upload
purging (or a garbage collection) removes them. Other storage drivers (S3, Azure, GCS) are not readable here.

Shared by registry_info (storage use); it reads only, never changes anything. No Ansible import.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError

V2 = os.path.join("docker", "registry", "v2")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


class StorageUsageError(DockhandError):
    """The storage cannot be read."""


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise StorageUsageError("cannot read %s: %s" % (path, exc.strerror or exc)) from None


def _link(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            text = stream.read().strip()
    except OSError:
        return None
    return text if _DIGEST_RE.match(text) else None


def _tree_bytes(path: str) -> int:
    total = 0
    for directory, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                continue
    return total


def blob_sizes(data_path: str) -> dict[str, int]:
    """Every blob of the storage: digest -> bytes."""
    root = os.path.join(data_path, V2, "blobs")
    sizes: dict[str, int] = {}
    for algorithm in _listdir(root):
        for prefix in _listdir(os.path.join(root, algorithm)):
            for hexdigest in _listdir(os.path.join(root, algorithm, prefix)):
                try:
                    sizes["%s:%s" % (algorithm, hexdigest)] = os.lstat(os.path.join(root, algorithm, prefix, hexdigest, "data")).st_size
                except OSError:
                    continue
    return sizes


def _links(directory: str) -> set[str]:
    """The digests of ``<directory>/<algorithm>/<hex>/link`` files whose content names them."""
    found = set()
    for algorithm in _listdir(directory):
        for hexdigest in _listdir(os.path.join(directory, algorithm)):
            digest = _link(os.path.join(directory, algorithm, hexdigest, "link"))
            if digest == "%s:%s" % (algorithm, hexdigest):
                found.add(digest)
    return found


def repository_dirs(data_path: str) -> list[tuple[str, str]]:
    """(name, directory) of every repository (a directory holding _layers, _manifests or _uploads), nested names too."""
    root = os.path.join(data_path, V2, "repositories")
    found = []
    if not os.path.isdir(root):
        return found
    for directory, dirs, _files in os.walk(root):
        dirs.sort()
        if any(part in dirs for part in ("_layers", "_manifests", "_uploads")):
            found.append((os.path.relpath(directory, root).replace(os.sep, "/"), directory))
        # A repository name's components never start with "_": the rest may be nested repositories.
        dirs[:] = [d for d in dirs if not d.startswith("_")]
    return found


def storage_usage(data_path: str) -> dict[str, Any]:
    """The storage use under ``data_path`` (the registry's root directory as this host sees it): blobs and their bytes,
    upload sessions and theirs, and per repository the blobs it links, its manifests, tags and upload sessions."""
    if not os.path.isdir(data_path):
        raise StorageUsageError("data_path %s is not a directory on this host" % data_path)
    sizes = blob_sizes(data_path)
    repositories = []
    for name, directory in repository_dirs(data_path):
        manifests = _links(os.path.join(directory, "_manifests", "revisions"))
        linked = _links(os.path.join(directory, "_layers")) | manifests
        sessions = [os.path.join(directory, "_uploads", u) for u in _listdir(os.path.join(directory, "_uploads"))]
        sessions = [s for s in sessions if os.path.isdir(s)]
        repositories.append(
            {
                "name": name,
                "blobs": len(linked),
                "blob_bytes": sum(sizes.get(d, 0) for d in linked),
                "manifests": len(manifests),
                "tags": len(_listdir(os.path.join(directory, "_manifests", "tags"))),
                "uploads": len(sessions),
                "upload_bytes": sum(_tree_bytes(s) for s in sessions),
            }
        )
    return {
        "driver": "filesystem",
        "data_path": data_path,
        "blobs": len(sizes),
        "blob_bytes": sum(sizes.values()),
        "uploads": sum(r["uploads"] for r in repositories),
        "upload_bytes": sum(r["upload_bytes"] for r in repositories),
        "repositories": repositories,
    }
