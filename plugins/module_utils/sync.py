# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Copy images from one registry to another through the registry HTTP API only (image_sync).

For each tag: ``GET`` the source manifest (verbatim bytes), ``HEAD`` the destination tag; equal digests
mean nothing to do. Otherwise copy every blob the manifest names (skipped when the destination has it,
mounted from another repository of the same registry when one holds it, else streamed GET -> PUT), then
every child manifest of an index (by digest), then ``PUT`` the manifest bytes under the tag. The
destination digest is the source digest, unless only some platforms of an index were chosen.

Children of an index are read from the index's own repository: the registry API resolves a manifest
digest only inside one repository (distribution refuses an index whose children are not in its
repository). A child missing there fails that tag, naming the child and its platform; nothing is tagged.
"""

from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import (
    MAX_WORKERS,
    DockhandError,
    PartialFailure,
    check_workers,
    grouped_causes,
    one_line,
)
from ansible_collections.dockhand.registry.plugins.module_utils.reference import (
    InvalidReference,
    parse,
    validate_registry,
    validate_repository,
    validate_tag,
)
from ansible_collections.dockhand.registry.plugins.module_utils.registry import (
    IMAGE_MEDIA_TYPES,
    INDEX_MEDIA_TYPES,
    Manifest,
    ManifestMissing,
    RegistryClient,
)
from ansible_collections.dockhand.registry.plugins.module_utils.tag_select import TagSelector
from ansible_collections.dockhand.registry.plugins.module_utils.transport import RegistryError

# The destination's catalog is read (to know which repositories are new) only when it has at most this many pages.
CATALOG_PAGES = 5


class SyncError(PartialFailure):
    """Some tags failed; ``results`` holds every tag's result, ``result`` the module's result fields as they stand
    (``changed`` true when any tag was copied)."""

    def __init__(self, message: str, results: list[dict], **result: Any) -> None:
        result.setdefault("changed", any(r.get("changed") for r in results))
        super().__init__(message, dict(result, results=results))


@dataclass
class Item:
    """One tag to copy: source and destination (registry, repository, tag)."""

    src_registry: str
    src_repository: str
    src_tag: str
    dest_registry: str
    dest_repository: str
    dest_tag: str
    result: dict = field(default_factory=dict)

    @property
    def source(self) -> str:
        return "%s/%s:%s" % (self.src_registry, self.src_repository, self.src_tag)

    @property
    def dest(self) -> str:
        return "%s/%s:%s" % (self.dest_registry, self.dest_repository, self.dest_tag)


def _full(reference: str, what: str) -> tuple[str, str, str | None]:
    ref = parse(reference)
    if ref.digest:
        raise InvalidReference("invalid %s %r: give a tag, not a digest" % (what, reference))
    if not ref.registry:
        raise InvalidReference("invalid %s %r: name the registry (host[:port]/repository)" % (what, reference))
    return ref.registry, ref.repository, ref.tag


def plan_items(
    images: list[dict] | None,
    src_repository: str | None,
    dest_repository: str | None,
    tags: list[str] | None,
) -> list[Item]:
    """The items of ``images`` (source -> dest references), or of a repository and a tag list; validates all."""
    items: list[Item] = []
    if images is not None:
        for entry in images:
            if not isinstance(entry, dict) or not entry.get("src") or not entry.get("dest"):
                raise InvalidReference("invalid images entry %r: give src and dest references" % (entry,))
            sreg, srepo, stag = _full(str(entry["src"]), "source reference")
            dreg, drepo, dtag = _full(str(entry["dest"]), "destination reference")
            stag = stag or "latest"
            items.append(Item(sreg, srepo, stag, dreg, drepo, dtag or stag))
        return items
    sreg, srepo, stag = _full(str(src_repository), "src_repository")
    dreg, drepo, dtag = _full(str(dest_repository), "dest_repository")
    if stag or dtag:
        raise InvalidReference(
            "invalid repository %r: give it without a tag (use tags or tag_pattern)" % (src_repository if stag else dest_repository)
        )
    for tag in tags or []:
        validate_tag(str(tag))
        items.append(Item(sreg, srepo, str(tag), dreg, drepo, str(tag)))
    return items


def parse_platform(text: str) -> tuple[str, str, str]:
    parts = str(text).strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidReference("invalid platform %r: give os/architecture[/variant], for example linux/arm64/v8" % (text,))
    return parts[0], parts[1], parts[2] if len(parts) == 3 else ""


def _platform_of(descriptor: dict) -> str:
    platform = descriptor.get("platform") or {}
    text = "%s/%s" % (platform.get("os", "?"), platform.get("architecture", "?"))
    if platform.get("variant"):
        text += "/" + platform["variant"]
    return text


def _matches(descriptor: dict, wanted: list[tuple[str, str, str]]) -> bool:
    platform = descriptor.get("platform") or {}
    for os_name, arch, variant in wanted:
        if platform.get("os") == os_name and platform.get("architecture") == arch:
            if not variant or platform.get("variant", "") == variant:
                return True
    return False


class Syncer:
    """Copy items between registries with ``workers`` threads and one pooled session per registry."""

    def __init__(
        self,
        src_factory: Any,
        dest_factory: Any,
        workers: int = 4,
        platforms: list[str] | None = None,
        check_mode: bool = False,
    ) -> None:
        self.workers = min(max(int(workers), 1), MAX_WORKERS)
        self.src_factory = src_factory
        self.dest_factory = dest_factory
        self.platforms = [parse_platform(p) for p in platforms] if platforms else None
        self.check_mode = check_mode
        self._clients: dict[tuple[str, str], RegistryClient] = {}
        self._lock = threading.Lock()
        # What the run knows of the destination, so that it asks no question twice:
        # - per (registry, digest): a repository of that registry known to hold the blob (placed there by this run,
        #   or found there), to mount it from straight away; the first placement of a blob in a registry is done
        #   under a lock of its own, so that tags sharing a layer never copy it twice at the same time;
        # - per (registry, repository, digest): blobs a destination repository holds (nothing more to do);
        # - per destination repository: its tags, listed once (tags/list) when the run writes several tags there or
        #   the repository is not in the registry's catalog: a tag not listed needs no HEAD; a repository the
        #   registry does not know (404 NAME_UNKNOWN) holds no blob either, so its blobs need no HEAD.
        self._blob_home: dict[tuple[str, str], str] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._done: set[tuple[str, str, str]] = set()
        self._dest_tags: dict[tuple[str, str], set[str] | None] = {}
        self._new_repositories: set[tuple[str, str]] = set()
        self._listed_repositories: set[tuple[str, str]] = set()

    def _lock_for(self, key: tuple) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def client(self, side: str, registry: str) -> RegistryClient:
        with self._lock:
            key = (side, registry)
            if key not in self._clients:
                factory = self.src_factory if side == "src" else self.dest_factory
                self._clients[key] = factory(registry)
            return self._clients[key]

    # -- the registry conversations -----------------------------------------------------
    def _copy_blob(self, item: Item, descriptor: dict, stats: dict) -> None:
        digest = descriptor["digest"]
        dest = self.client("dest", item.dest_registry)
        key = (item.dest_registry, item.dest_repository, digest)
        if key in self._done:
            stats["present"] += 1
            return
        home = self._blob_home.get((item.dest_registry, digest))
        if home is None and item.dest_registry == item.src_registry and item.dest_repository != item.src_repository:
            home = item.src_repository
        if home is None:
            # The first placement of this blob in the destination registry: one tag does it, the others wait and
            # then mount it (or find it placed, in the same repository).
            with self._lock_for((item.dest_registry, digest)):
                if key in self._done:
                    stats["present"] += 1
                    return
                home = self._blob_home.get((item.dest_registry, digest))
                if home is None:
                    self._place_blob(item, descriptor, dest, stats)
                    return
        with self._lock_for(key):
            if key in self._done:
                stats["present"] += 1
                return
            # Known in another repository of the registry: mount it straight away (no HEAD first: a mount of a blob
            # the repository already holds answers 201 as well). A registry that answers the mount with an upload
            # session gets the blob through that session.
            location = dest.start_upload(item.dest_repository, digest, home)
            if location is None:
                stats["mounted"] += 1
            else:
                self._upload(item, descriptor, dest, location, stats)
            self._placed(key)

    def _place_blob(self, item: Item, descriptor: dict, dest: RegistryClient, stats: dict) -> None:
        """HEAD (unless the repository is new to the registry), else upload."""
        digest = descriptor["digest"]
        key = (item.dest_registry, item.dest_repository, digest)
        if (item.dest_registry, item.dest_repository) not in self._new_repositories and dest.has_blob(item.dest_repository, digest):
            stats["present"] += 1
        else:
            self._upload(item, descriptor, dest, dest.start_upload(item.dest_repository), stats)
        self._placed(key)

    def _upload(self, item: Item, descriptor: dict, dest: RegistryClient, location: str | None, stats: dict) -> None:
        digest = descriptor["digest"]
        if location is None:
            raise RegistryError("registry %s gave no upload session for %s" % (item.dest_registry, digest))
        stream = self.client("src", item.src_registry).open_blob(item.src_repository, digest, int(descriptor.get("size", 0)))
        try:
            dest.upload_blob(item.dest_repository, location, digest, stream)
        finally:
            stream.close()
        stats["copied"] += 1
        stats["bytes"] += stream.sent

    def _placed(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._done.add(key)
            self._blob_home.setdefault((key[0], key[2]), key[1])

    def _listed_tags(self, item: Item) -> set[str] | None:
        """The destination repository's tags when the run lists them (see __init__), else None (HEAD the tag)."""
        key = (item.dest_registry, item.dest_repository)
        if key not in self._listed_repositories:
            return None
        if key not in self._dest_tags:
            with self._lock_for(key):
                if key not in self._dest_tags:
                    tags = self.client("dest", item.dest_registry).repository_tags(item.dest_repository)
                    if tags is None:
                        self._new_repositories.add(key)
                    self._dest_tags[key] = set(tags or ())
        return self._dest_tags[key]

    def _copy_image(self, item: Item, manifest: Manifest, stats: dict) -> None:
        body = json.loads(manifest.data)
        if manifest.media_type not in IMAGE_MEDIA_TYPES:
            raise RegistryError("%s: manifest type %r is not supported (schema 2 and OCI only)" % (item.source, manifest.media_type))
        descriptors = [body["config"], *(body.get("layers") or [])]
        for descriptor in descriptors:
            if descriptor.get("urls") and "foreign" in descriptor.get("mediaType", ""):
                continue  # a foreign layer: clients fetch it from its URLs, registries do not hold it
            self._copy_blob(item, descriptor, stats)

    def _children(self, item: Item, index: dict) -> list[dict]:
        children = list(index.get("manifests") or [])
        if self.platforms is None:
            return children
        chosen = [child for child in children if _matches(child, self.platforms)]
        if not chosen:
            raise RegistryError(
                "%s: none of the platforms %s is in the index (it has %s)"
                % (item.source, ", ".join("/".join(p for p in w if p) for w in self.platforms), ", ".join(_platform_of(c) for c in children))
            )
        return chosen

    def _source_manifest(self, item: Item) -> tuple[Manifest, Manifest, list[dict]]:
        """The source manifest, the manifest to write (another one when platforms were chosen), its children."""
        src = self.client("src", item.src_registry)
        manifest = src.get_manifest(item.src_repository, item.src_tag)
        if manifest.media_type not in INDEX_MEDIA_TYPES:
            return manifest, manifest, []
        index = json.loads(manifest.data)
        children = self._children(item, index)
        if len(children) == len(index.get("manifests") or []):
            return manifest, manifest, children
        index["manifests"] = children
        data = json.dumps(index, indent=3).encode()
        return manifest, Manifest(data, manifest.media_type, "sha256:" + hashlib.sha256(data).hexdigest()), children

    def sync_one(self, item: Item) -> dict:
        result: dict[str, Any] = {
            "source": item.source,
            "dest": item.dest,
            "changed": False,
            "failed": False,
        }
        stats = {"copied": 0, "mounted": 0, "present": 0, "bytes": 0}
        try:
            source, target, children = self._source_manifest(item)
            dest = self.client("dest", item.dest_registry)
            listed = self._listed_tags(item)
            if listed is not None and item.dest_tag not in listed:
                before = None
            else:
                before = dest.manifest_digest(item.dest_repository, item.dest_tag)
            result.update(
                source_digest=source.digest,
                digest_before=before,
                digest=target.digest,
                digest_preserved=source.digest == target.digest,
                media_type=target.media_type,
            )
            if children:
                result["platforms"] = [_platform_of(c) for c in children]
            if before == target.digest:
                result["action"] = "present"
                return result
            result["changed"] = True
            result["action"] = "would copy" if self.check_mode else "copied"
            if self.check_mode:
                return result
            src = self.client("src", item.src_registry)
            for child in children:
                try:
                    child_manifest = src.get_manifest(item.src_repository, child["digest"])
                except ManifestMissing:
                    raise RegistryError(
                        "%s: child manifest %s (%s) of the index is not in repository %s of %s; an index's children must "
                        "live in its own repository" % (item.source, child["digest"], _platform_of(child), item.src_repository, item.src_registry)
                    ) from None
                self._copy_image(item, child_manifest, stats)
                new = (item.dest_registry, item.dest_repository) in self._new_repositories
                if new or dest.manifest_digest(item.dest_repository, child["digest"]) != child["digest"]:
                    dest.put_manifest(item.dest_repository, child["digest"], child_manifest)
            if not children:
                self._copy_image(item, source, stats)
            stored = dest.put_manifest(item.dest_repository, item.dest_tag, target)
            if stored != target.digest:
                raise RegistryError("%s: the destination stored digest %s, not %s" % (item.dest, stored, target.digest))
            result["digest"] = stored
        except (DockhandError, KeyError, ValueError, TypeError) as exc:
            message = one_line(exc) if isinstance(exc, DockhandError) else "%s: bad manifest (%s)" % (item.source, one_line(exc))
            # Nothing was copied: action failed, no digest preserved (``digest`` stays the one the tag was to get).
            result.update(failed=True, changed=False, msg=message, action="failed")
            if "digest_preserved" in result:
                result["digest_preserved"] = False
        finally:
            result["blobs"] = {k: stats[k] for k in ("copied", "mounted", "present")}
            result["bytes_copied"] = stats["bytes"]
        return result

    def expand(self, items: list[Item], selector: TagSelector | None, src_repository: str | None, dest_repository: str | None) -> list[Item]:
        """With tag_pattern / tag_semver / tag_limit: the source repository's tags they choose (tag_select.py)."""
        if selector is None:
            return items
        sreg, srepo = _full(str(src_repository), "src_repository")[:2]
        dreg, drepo = _full(str(dest_repository), "dest_repository")[:2]
        tags = selector.select(self.client("src", sreg).tags(srepo))
        return [Item(sreg, srepo, t, dreg, drepo, t) for t in tags]

    def check_access(self, items: list[Item]) -> None:
        """Every registry answers and takes the login, before anything is copied."""
        seen = set()
        for item in items:
            for side, registry in (("src", item.src_registry), ("dest", item.dest_registry)):
                if (side, registry) not in seen:
                    seen.add((side, registry))
                    self.client(side, registry).ping()

    def plan_listings(self, items: list[Item]) -> None:
        """Which destination repositories the run lists the tags of (see __init__): those it writes more than two tags
        to, and, where it writes to more than two repositories of a registry, those not in that registry's catalog
        (read once, when it is at most CATALOG_PAGES pages long and the login may read it)."""
        counts: dict[tuple[str, str], int] = {}
        for item in items:
            key = (item.dest_registry, item.dest_repository)
            counts[key] = counts.get(key, 0) + 1
        per_registry: dict[str, int] = {}
        for registry, _repository in counts:
            per_registry[registry] = per_registry.get(registry, 0) + 1
        catalogs: dict[str, set[str] | None] = {}
        for registry, repositories in per_registry.items():
            if repositories > 2:
                try:
                    listed = self.client("dest", registry).catalog(max_pages=CATALOG_PAGES)
                except RegistryError:
                    listed = None  # not allowed to read it (or no catalog API): ask each repository
                catalogs[registry] = set(listed) if listed is not None else None
        for (registry, repository), count in counts.items():
            catalog = catalogs.get(registry)
            if count > 2 or (catalog is not None and repository not in catalog):
                self._listed_repositories.add((registry, repository))

    def run(self, items: list[Item]) -> list[dict]:
        if not items:
            return []
        self.plan_listings(items)
        if self.workers == 1 or len(items) == 1:
            return [self.sync_one(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items))) as pool:
            return list(pool.map(self.sync_one, items))


def sync_images(
    src_factory: Any,
    dest_factory: Any,
    images: list[dict] | None = None,
    src_repository: str | None = None,
    dest_repository: str | None = None,
    tags: list[str] | None = None,
    tag_pattern: str | None = None,
    platforms: list[str] | None = None,
    workers: int = 4,
    check_mode: bool = False,
    tag_semver: str | None = None,
    tag_limit: int | None = None,
) -> dict:
    """The whole module run: validate, list, compare, copy; the module's result."""
    selector = None
    if tag_pattern is not None or tag_semver is not None or tag_limit is not None:
        selector = TagSelector.build(tag_pattern, tag_semver, tag_limit)
    check_workers(workers)
    if src_repository is not None:
        validate_repository(parse(str(src_repository)).repository)
        validate_registry(_full(str(dest_repository), "dest_repository")[0])
    items = plan_items(images, src_repository, dest_repository, None if selector else tags)
    syncer = Syncer(src_factory, dest_factory, workers=workers, platforms=platforms, check_mode=check_mode)
    if selector is not None:
        items = syncer.expand(items, selector, src_repository, dest_repository)
    syncer.check_access(items)
    results = syncer.run(items)
    failed = [r for r in results if r["failed"]]
    actions = [
        "%s %s -> %s (%s)" % ("would copy" if check_mode else "copied", r["source"], r["dest"], r["digest"])
        for r in results
        if r["changed"]
    ]
    changed = [r for r in results if r["changed"]]
    extra = {"tag_selection": selector.counts} if selector is not None else {}
    if failed:
        # Each failed tag once, grouped by cause; the tags copied before are reported with the failure.
        raise SyncError(
            "image_sync failed for %d of %d tags: %s"
            % (len(failed), len(results), grouped_causes([(r["dest"], r["msg"]) for r in failed])),
            results, synced=[r["dest"] for r in changed], actions=actions, **extra,
        )
    return {
        **extra,
        "changed": bool(changed),
        "images": results,
        "synced": [r["dest"] for r in changed],
        "actions": actions,
        "diff": {
            "before": "".join("%s %s\n" % (r["dest"], r["digest_before"] or "(absent)") for r in results),
            "after": "".join("%s %s\n" % (r["dest"], r["digest"] if not r["failed"] else r["digest_before"]) for r in results),
        },
    }
