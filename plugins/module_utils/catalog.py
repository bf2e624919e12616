# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a registry holds: its repositories, their tags, and each tag's manifest, size, created time and platforms.

:func:`read_catalog` reads repositories, tags, manifests and image configurations through
:class:`RegistryClient` (many requests at once on its pooled session), with :class:`Reader`.
"""

from __future__ import annotations

import datetime
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError
from ansible_collections.dockhand.registry.plugins.module_utils.registry import INDEX_MEDIA_TYPES, RegistryClient, client_from_params
from ansible_collections.dockhand.registry.plugins.module_utils.storage import Storage, StorageError

_DIGITS_RE = re.compile(r"(\d+)")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


class InvalidPattern(DockhandError):
    """A repository or tag pattern is not a regular expression."""


def compile_patterns(patterns: list[str] | None, what: str) -> list[re.Pattern[str]]:
    """Regular expressions matched against the whole name; raise naming the first bad one."""
    compiled = []
    for pattern in patterns or []:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise InvalidPattern("%s %r is not a regular expression: %s" % (what, pattern, exc)) from None
    return compiled


def matches(name: str, patterns: list[re.Pattern[str]]) -> bool:
    return any(p.fullmatch(name) for p in patterns)


def parse_created(text: str | None) -> datetime.datetime | None:
    """An RFC 3339 time of an image configuration (nanoseconds and ``Z`` allowed), or None."""
    if not text:
        return None
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", text.strip())
    if not match:
        return None
    fraction = (match.group(2) or ".0")[:7]
    zone = match.group(3) or "Z"
    zone = "+00:00" if zone == "Z" else zone
    try:
        return datetime.datetime.fromisoformat(match.group(1) + fraction + zone)
    except ValueError:
        return None


@dataclass
class TagInfo:
    repository: str
    tag: str
    digest: str = ""
    media_type: str = ""
    size: int = 0
    created: str | None = None
    platforms: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    config_digest: str = ""

    def created_time(self) -> datetime.datetime:
        return parse_created(self.created) or _EPOCH

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "tag": self.tag,
            "digest": self.digest,
            "media_type": self.media_type,
            "size": self.size,
            "created": self.created,
        }
        if self.platforms:
            result["platforms"] = self.platforms
        return result


def natural_key(tag: str) -> list[Any]:
    """``1.10`` after ``1.9``: digit runs compare as numbers, the rest as text; numbers before text (``1.0`` before
    ``latest``), a name before its own extensions (``1.9`` before ``1.9-rc1``)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in _DIGITS_RE.split(tag) if part]


def newest_first(tags: list[TagInfo]) -> list[TagInfo]:
    """Newest created time first; equal times (one build tagged several ways, or images built with a fixed
    time such as reproducible builds) by the tag name in version order, highest first: ``latest`` before
    ``1.10`` before ``1.9-rc1`` before ``1.9`` (see :func:`natural_key`). Deterministic whatever order the
    registry lists tags in."""
    return sorted(tags, key=lambda t: (t.created_time(), natural_key(t.tag)), reverse=True)


def _platform(entry: dict[str, Any]) -> str:
    platform = entry.get("platform") or {}
    text = "%s/%s" % (platform.get("os", "?"), platform.get("architecture", "?"))
    return text + ("/" + platform["variant"] if platform.get("variant") else "")


class Reader:
    """Reads one registry with a RegistryClient, asking for each manifest and configuration once.

    ``created=False`` reads no image configuration (half the requests): created times stay None."""

    def __init__(self, client: RegistryClient, created: bool = True) -> None:
        self.client = client
        self.created = created
        self._configs: dict[tuple[str, str], dict[str, Any]] = {}
        self._claim_lock = threading.Lock()

    def repositories(self, patterns: list[re.Pattern[str]]) -> list[str]:
        return sorted(r for r in self.client.catalog() if not patterns or matches(r, patterns))

    def tags(self, repositories: list[str], patterns: list[re.Pattern[str]]) -> dict[str, list[str]]:
        lists = self.client.map(self.client.tags, repositories)
        return {
            repo: sorted((t for t in tags if not patterns or matches(t, patterns)), key=natural_key)
            for repo, tags in zip(repositories, lists)
        }

    def details(self, tags: dict[str, list[str]]) -> dict[str, list[TagInfo]]:
        """Digest, media type, size, created time and platforms of every tag."""
        wanted = [TagInfo(repo, tag) for repo, names in tags.items() for tag in names]
        # One task per tag: its manifest, then (an image's) configuration right away in the same worker, so that
        # manifests and configurations overlap instead of waiting for each other in two rounds.
        manifests = self.client.map(self._read_tag, wanted)
        children: list[tuple[TagInfo, str]] = []
        for info, manifest in zip(wanted, manifests):
            if manifest is None:  # deleted between tags/list and here
                continue
            if info.children:
                children.extend((info, digest) for digest in info.children)
        # Indexes: size and created of their platform images (one GET per child manifest).
        unique_children = sorted({(i.repository, d) for i, d in children})
        child_manifests = dict(
            zip(unique_children, self.client.map(lambda rd: self.client.manifest(rd[0], rd[1]), unique_children))
        )
        child_infos: dict[tuple[str, str], TagInfo] = {}
        for (repo, digest), manifest in child_manifests.items():
            child = TagInfo(repo, digest)
            if manifest is not None:
                self._single(child, manifest[2])
                if self.created and child.config_digest:
                    self._configs.setdefault((repo, child.config_digest), {})
            child_infos[(repo, digest)] = child
        self._fetch_configs()
        for info in wanted:
            if info.children:
                parts = [child_infos[(info.repository, d)] for d in info.children if (info.repository, d) in child_infos]
                info.size = sum(p.size for p in parts)
                times = [self._created(p) for p in parts]
                info.created = max((t for t in times if t), key=lambda t: parse_created(t) or _EPOCH, default=None)
            elif info.digest:
                info.created = self._created(info)
        result: dict[str, list[TagInfo]] = {repo: [] for repo in tags}
        for info in wanted:
            if info.digest:
                result[info.repository].append(info)
        return result

    def _read_tag(self, info: TagInfo) -> tuple[str, str, dict[str, Any]] | None:
        """(In a worker.) The manifest of one tag; platforms of an index; size and configuration of an image."""
        manifest = self.client.manifest(info.repository, info.tag)
        if manifest is None:
            return None
        info.digest, info.media_type, body = manifest
        if info.media_type in INDEX_MEDIA_TYPES or "manifests" in body:
            for entry in body.get("manifests") or []:
                info.platforms.append(_platform(entry))
                info.children.append(entry.get("digest", ""))
        else:
            self._single(info, body)
            key = (info.repository, info.config_digest)
            if self.created and info.config_digest and self._claim(key):
                # Claimed by this worker alone: tags sharing one configuration read it once.
                self._configs[key] = self.client.blob_json(*key) or {"_empty": True}
        return manifest

    def _claim(self, key: tuple[str, str]) -> bool:
        with self._claim_lock:
            if key in self._configs:
                return False
            self._configs[key] = {}
            return True

    # -- single-platform images: config digest and layer sizes from the manifest --------------------
    def _single(self, info: TagInfo, body: dict[str, Any]) -> None:
        config = body.get("config") or {}
        info.config_digest = config.get("digest") or ""
        info.size = int(config.get("size") or 0) + sum(int(layer.get("size") or 0) for layer in body.get("layers") or [])

    def _fetch_configs(self) -> None:
        """The configurations not read yet (those of index children)."""
        if not self.created:
            return
        missing = [key for key, value in self._configs.items() if not value]
        bodies = self.client.map(lambda key: self.client.blob_json(key[0], key[1]), missing)
        for key, body in zip(missing, bodies):
            self._configs[key] = body or {"_empty": True}

    def _created(self, info: TagInfo) -> str | None:
        config = self._configs.get((info.repository, info.config_digest)) or {}
        return config.get("created")


def read_catalog(
    client: RegistryClient,
    repositories: list[str] | None = None,
    tags: list[str] | None = None,
    details: bool = True,
    created: bool = True,
) -> dict[str, Any]:
    """Every repository matching ``repositories`` and its tags matching ``tags`` (regular expressions, whole name).

    ``created=False`` skips the image configurations (one request per image fewer): ``created`` is then None."""
    repo_patterns = compile_patterns(repositories, "repository pattern")
    tag_patterns = compile_patterns(tags, "tag pattern")
    reader = Reader(client, created=created)
    names = reader.repositories(repo_patterns)
    tag_lists = reader.tags(names, tag_patterns)
    if not details:
        return {
            "repositories": [{"name": repo, "tags": [{"tag": t} for t in tag_lists[repo]]} for repo in names],
        }
    infos = reader.details(tag_lists)
    return {
        "repositories": [{"name": repo, "tags": [i.as_dict() for i in infos[repo]]} for repo in names],
        "infos": infos,
    }


def catalog_info(params: dict[str, Any]) -> dict[str, Any]:
    """registry_info's run: the patterns checked before the registry is asked, the listing (:func:`read_catalog`),
    and the counts of repositories, tags and distinct digests."""
    compile_patterns(params["repositories"], "repository pattern")
    compile_patterns(params["tags"], "tag pattern")
    client = client_from_params(params)
    held = read_catalog(client, params["repositories"], params["tags"], params["details"], params["created"])
    repositories = held["repositories"]
    result = {
        "changed": False,
        "actions": [],
        "registry": client.registry,
        "repositories": repositories,
        "counts": {
            "repositories": len(repositories),
            "tags": sum(len(r["tags"]) for r in repositories),
            "digests": len({(r["name"], t.get("digest")) for r in repositories for t in r["tags"] if t.get("digest")}),
        },
    }
    if params.get("data_path"):
        result["storage"] = storage_use(params["data_path"])
    return result


def storage_use(data_path: str) -> dict[str, Any]:
    """registry_info's ``storage``: read from the filesystem driver's files under ``data_path`` (storage.py)."""
    if not os.path.isdir(data_path):
        raise DockhandError("data_path %s is not a directory on this host" % data_path)
    try:
        return Storage(data_path).report()
    except StorageError as exc:
        raise DockhandError("cannot read the storage at %s: %s" % (data_path, exc)) from None
