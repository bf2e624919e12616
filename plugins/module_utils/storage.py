# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A registry's storage as distribution's filesystem driver lays it out, read (and cleaned) from the module's host.

::

    <data path>/docker/registry/v2/
      blobs/sha256/<xx>/<hex>/data                        every blob (manifests, configs, layers), shared by all repositories
      repositories/<name>/                                a repository (names nest: a/b/c); the directory holding _manifests
        _manifests/revisions/sha256/<hex>/link            each manifest the repository holds
        _manifests/tags/<tag>/current/link                the manifest a tag names
        _manifests/tags/<tag>/index/sha256/<hex>/link     every manifest the tag has named
        _layers/sha256/<hex>/link                         the blobs the repository serves
        _uploads/<uuid>/{startedat,data,hashstates/...}   upload sessions

What a tag reaches (never removed): its manifest; the manifests of an image index (a Docker manifest list or an OCI
index), at any depth; a manifest whose ``subject`` is reached (OCI referrers such as signatures); and everything those
manifests reference. Revisions are per repository: a tag reaches only manifests of its own repository. Untagged
manifests are the revisions of a repository that none of its tags reaches. Blobs are global: after the untagged
revisions are gone, ``registry garbage-collect`` (without ``--delete-untagged``) marks what every remaining revision
references and sweeps the rest; :func:`unreferenced` computes the same set beforehand.

No Ansible import: the registry role's scheduled GC runs this on the registry host's own Python.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

V2 = os.path.join("docker", "registry", "v2")
# Where the registry image keeps its storage (the filesystem driver's default root directory) in its container.
DATA_TARGET = "/var/lib/registry"
BLOBS = os.path.join(V2, "blobs")
REPOSITORIES = os.path.join(V2, "repositories")
ROOT_ENV = "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"
DEFAULT_ROOT = "/var/lib/registry"
# The storage drivers other than filesystem (REGISTRY_STORAGE_<DRIVER>_... in the environment).
_DRIVERS = frozenset({"S3", "AZURE", "GCS", "SWIFT", "OSS", "INMEMORY", "S3AWS"})
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


class StorageError(Exception):
    """The storage could not be read or changed as planned."""


def driver_from_env(env: dict[str, str]) -> str | None:
    """The storage driver the registry's environment sets, when not the filesystem one (``REGISTRY_STORAGE=s3``,
    or ``REGISTRY_STORAGE_S3_...`` keys): ``"s3 (REGISTRY_STORAGE=s3)"``; None when it sets none or ``filesystem``."""
    chosen = env.get("REGISTRY_STORAGE", "").strip()
    if chosen and chosen.lower() != "filesystem":
        return "%s (REGISTRY_STORAGE=%s)" % (chosen.lower(), chosen)
    if chosen:
        return None
    # REGISTRY_STORAGE_S3_REGION=... sets one parameter, REGISTRY_STORAGE_S3='{bucket: ...}' the driver's whole section.
    for key in sorted(env):
        parts = key.split("_")
        if key.startswith("REGISTRY_STORAGE_") and parts[2] in _DRIVERS:
            return "%s (%s)" % (parts[2].lower(), key)
    return None


def root_directory(env: dict[str, str]) -> str:
    """Where the registry keeps its data inside its container (``storage.filesystem.rootdirectory``)."""
    return (env.get(ROOT_ENV) or DEFAULT_ROOT).rstrip("/") or "/"


def host_path(mounts: list[dict[str, Any]], root: str) -> str | None:
    """The host path of the container path ``root``, through the mount that holds it (the deepest one)."""
    best = None
    for mount in mounts:
        if not mount.get("Destination") or not mount.get("Source"):
            continue  # holds nothing this host can read
        target = mount["Destination"].rstrip("/") or "/"
        if root == target or root.startswith(target.rstrip("/") + "/"):
            if best is None or len(target) > len(best[0]):
                best = (target, mount["Source"])
    if best is None:
        return None
    rest = root[len(best[0]) :].lstrip("/")
    return os.path.join(best[1], rest) if rest else best[1]


def _read(path: str) -> str | None:
    """A link file's text; None when there is none. Any other error stops everything: a tag or manifest that cannot be
    read is not known to be gone."""
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return stream.read().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise StorageError("cannot read %s: %s" % (path, exc.strerror or exc)) from None


def _exists(path: str) -> bool:
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise StorageError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    return True


def _digest(text: str | None) -> str | None:
    return text if text and _DIGEST_RE.match(text) else None


def _tree_size(path: str) -> tuple[int, float]:
    """Bytes of the files under ``path``, and the last time one of them (or the directory) was written."""
    size, latest = 0, 0.0
    for directory, _dirs, files in os.walk(path):
        try:
            latest = max(latest, os.lstat(directory).st_mtime)
        except OSError:
            pass
        for name in files:
            try:
                stat = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            size += stat.st_size
            latest = max(latest, stat.st_mtime)
    return size, latest


@dataclass
class Upload:
    repository: str
    uuid: str
    path: str
    bytes: int
    # The last write to the session (its data, hash states or start time), Unix time.
    written: float


@dataclass
class Repository:
    name: str
    path: str  # its directory under repositories/ (registry_info's storage report reads its _layers)
    # tag -> the manifest digest its current/link names (None: no readable link)
    tags: dict[str, str | None] = field(default_factory=dict)
    # the manifests the repository holds: a revision link whose manifest blob is there
    revisions: set[str] = field(default_factory=set)
    uploads: list[Upload] = field(default_factory=list)
    listed: bool = False  # has _manifests: _catalog lists it


@dataclass
class Manifest:
    # What ``registry garbage-collect`` marks for this manifest (its References()): config and layers, an index's
    # manifests, a schema 1 manifest's layers.
    references: list[str]
    # An index's manifests.
    children: list[str]
    subject: str | None


# What a manifest whose blob is gone references (one that vanished while the plan was made too): nothing.
_GONE = Manifest([], [], None)


@dataclass
class Plan:
    """What a collection removes from the storage (before the registry binary sweeps the blobs)."""

    manifests: list[tuple[str, str]] = field(default_factory=list)  # (repository, digest): no tag reaches it
    dangling: list[tuple[str, str]] = field(default_factory=list)  # (repository, tag): names no manifest it holds
    uploads: list[Upload] = field(default_factory=list)
    repositories: list[str] = field(default_factory=list)  # nothing left in them: no tag, manifest or upload
    blobs: list[str] = field(default_factory=list)  # unreferenced once the above are gone
    # tags whose manifest (or an index's manifest) the repository no longer holds: lost before this run
    broken: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.manifests or self.dangling or self.uploads or self.repositories or self.blobs)


class Storage:
    """The filesystem storage under ``data_path`` (the registry's root directory as this host sees it)."""

    def __init__(self, data_path: str) -> None:
        self.data_path = data_path
        self.repositories_root = os.path.join(data_path, REPOSITORIES)
        self.blobs_root = os.path.join(data_path, BLOBS)
        self._manifests: dict[str, Manifest | None] = {}

    # -- reading ---------------------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> str:
        algorithm, _sep, hexdigest = digest.partition(":")
        return os.path.join(self.blobs_root, algorithm, hexdigest[:2], hexdigest, "data")

    def blob_size(self, digest: str) -> int | None:
        try:
            return os.lstat(self.blob_path(digest)).st_size
        except OSError:
            return None

    def blobs(self) -> dict[str, int]:
        """Every blob: digest -> bytes."""
        found: dict[str, int] = {}
        if not os.path.isdir(self.blobs_root):
            return found
        for algorithm in sorted(os.listdir(self.blobs_root)):
            for directory, _dirs, files in os.walk(os.path.join(self.blobs_root, algorithm)):
                if "data" in files:
                    try:
                        found["%s:%s" % (algorithm, os.path.basename(directory))] = os.lstat(os.path.join(directory, "data")).st_size
                    except OSError:
                        continue
        return found

    def manifest(self, digest: str) -> Manifest | None:
        """The manifest stored as blob ``digest``, read once; None when the blob is gone. A blob that is there but
        cannot be read or parsed stops everything (StorageError): what it references is unknown, so nothing is
        known to be unreached."""
        if digest not in self._manifests:
            path = self.blob_path(digest)
            try:
                with open(path, "rb") as stream:
                    data = stream.read()
            except FileNotFoundError:
                self._manifests[digest] = None
                return None
            except OSError as exc:
                raise StorageError("cannot read manifest %s (%s): %s" % (digest, path, exc.strerror or exc)) from None
            try:
                self._manifests[digest] = parse_manifest(data)
            except ValueError as exc:
                raise StorageError("manifest %s (%s) is not a manifest: %s" % (digest, path, exc)) from None
        return self._manifests[digest]

    def repositories(self) -> list[Repository]:
        """Every repository directory (one holding _manifests, _layers or _uploads), nested names included."""
        found: list[Repository] = []
        if not os.path.isdir(self.repositories_root):
            return found
        for directory, dirs, _files in os.walk(self.repositories_root, onerror=_walk_error):
            dirs.sort()
            if any(d in dirs for d in ("_manifests", "_layers", "_uploads")):
                name = os.path.relpath(directory, self.repositories_root).replace(os.sep, "/")
                found.append(self._repository(name, directory))
            # Repository names never have a component starting with "_": the rest may be nested repositories.
            dirs[:] = [d for d in dirs if not d.startswith("_")]
        return found

    def _repository(self, name: str, path: str) -> Repository:
        repo = Repository(name=name, path=path, listed=os.path.isdir(os.path.join(path, "_manifests")))
        revisions = os.path.join(path, "_manifests", "revisions")
        for algorithm in _listdir(revisions):
            for hexdigest in _listdir(os.path.join(revisions, algorithm)):
                digest = _digest(_read(os.path.join(revisions, algorithm, hexdigest, "link")))
                if digest == "%s:%s" % (algorithm, hexdigest) and _exists(self.blob_path(digest)):
                    repo.revisions.add(digest)
        tags = os.path.join(path, "_manifests", "tags")
        for tag in _listdir(tags):
            repo.tags[tag] = _digest(_read(os.path.join(tags, tag, "current", "link")))
        uploads = os.path.join(path, "_uploads")
        for uuid in _listdir(uploads):
            session = os.path.join(uploads, uuid)
            if os.path.isdir(session):
                size, written = _tree_size(session)
                repo.uploads.append(Upload(repository=name, uuid=uuid, path=session, bytes=size, written=written))
        return repo

    def listing(self) -> set[tuple[str, str]]:
        """``(repository, "")`` for every repository _catalog lists and ``(repository, digest)`` for each manifest it
        holds: what ``registry garbage-collect`` enumerates."""
        held: set[tuple[str, str]] = set()
        for repo in self.repositories():
            if repo.listed:
                held.add((repo.name, ""))
                held.update((repo.name, digest) for digest in repo.revisions)
        return held

    # -- what goes ------------------------------------------------------------------------------------------
    def plan(self, delete_untagged: bool, uploads_older_than: float, now: float | None = None) -> Plan:
        """What a collection removes: untagged manifests (with ``delete_untagged``), dangling tags, upload sessions
        last written more than ``uploads_older_than`` seconds ago (0: every one), repositories left with nothing;
        and the blobs no remaining manifest references."""
        now = time.time() if now is None else now
        plan = Plan()
        kept: set[str] = set()
        for repo in self.repositories():
            live = {tag: digest for tag, digest in repo.tags.items() if digest in repo.revisions}
            plan.dangling += [(repo.name, tag) for tag in sorted(set(repo.tags) - set(live))]
            if delete_untagged:
                reached = self._reached(repo, live, plan.broken)
                plan.manifests += [(repo.name, digest) for digest in sorted(repo.revisions - reached)]
                left = reached
            else:
                left = set(repo.revisions)
            old = [u for u in repo.uploads if uploads_older_than <= 0 or now - u.written > uploads_older_than]
            plan.uploads += old
            if not live and not left and len(old) == len(repo.uploads):
                plan.repositories.append(repo.name)
            kept |= left
        plan.blobs = unreferenced(self, kept)
        return plan

    def _reached(self, repo: Repository, live: dict[str, str], broken: list[str]) -> set[str]:
        """The manifests of ``repo`` its tags reach: each tag's manifest, an index's manifests at any depth, and a
        manifest whose subject is reached (referrers), until nothing more is."""
        reached: set[str] = set()
        todo = [(digest, "%s:%s" % (repo.name, tag)) for tag, digest in sorted(live.items())]
        while True:
            while todo:
                digest, via = todo.pop()
                if digest in reached:
                    continue
                reached.add(digest)
                for child in (self.manifest(digest) or _GONE).children:
                    if child in repo.revisions:
                        todo.append((child, via))
                    else:
                        broken.append("%s names manifest %s, which %s no longer holds" % (via, child, repo.name))
            for digest in sorted(repo.revisions - reached):
                subject = (self.manifest(digest) or _GONE).subject
                if subject in reached:
                    todo.append((digest, "%s@%s" % (repo.name, subject)))
            if not todo:
                return reached

    # -- removing (only while no registry writes to the storage) -------------------------------------------------
    def apply(self, plan: Plan) -> None:
        """Remove the plan's manifests (revision link and tag index entries, as the registry's own deletes do),
        dangling tags, upload sessions and repositories. The blobs are left to ``registry garbage-collect``."""
        tags_of: dict[str, list[str]] = {}
        for name, digest in plan.manifests:
            base = os.path.join(self.repositories_root, name, "_manifests")
            algorithm, _sep, hexdigest = digest.partition(":")
            if name not in tags_of:
                tags_of[name] = _listdir(os.path.join(base, "tags"))
            for tag in tags_of[name]:
                _remove(os.path.join(base, "tags", tag, "index", algorithm, hexdigest))
            _remove(os.path.join(base, "revisions", algorithm, hexdigest))
        for name, tag in plan.dangling:
            _remove(os.path.join(self.repositories_root, name, "_manifests", "tags", tag))
        for upload in plan.uploads:
            _remove(upload.path)
        for name in plan.repositories:
            path = os.path.join(self.repositories_root, name)
            for part in ("_manifests", "_layers", "_uploads"):
                _remove(os.path.join(path, part))
            # The directories up to repositories/, when nothing else (a nested repository) is in them.
            while os.path.normpath(path) != os.path.normpath(self.repositories_root):
                try:
                    os.rmdir(path)
                except OSError:
                    break
                path = os.path.dirname(path)

    def usage(self) -> dict[str, int]:
        """Storage usage: blobs and their bytes, upload sessions and theirs."""
        blobs = self.blobs()
        uploads = [u for repo in self.repositories() for u in repo.uploads]
        return {"blobs": len(blobs), "bytes": sum(blobs.values()), "uploads": len(uploads), "upload_bytes": sum(u.bytes for u in uploads)}

    def layers(self, repo: Repository) -> set[str]:
        """The blobs ``repo`` links in its _layers (layers and configurations it serves)."""
        found = set()
        root = os.path.join(repo.path, "_layers")
        for algorithm in _listdir(root):
            for hexdigest in _listdir(os.path.join(root, algorithm)):
                digest = _digest(_read(os.path.join(root, algorithm, hexdigest, "link")))
                if digest == "%s:%s" % (algorithm, hexdigest):
                    found.add(digest)
        return found

    def report(self) -> dict[str, Any]:
        """Storage use as registry_info reports it: blobs and their bytes (each blob once), upload sessions and
        theirs, and per repository the blobs it links (a blob two repositories share counts in both: layers,
        configurations and its manifests), its manifests, tags and upload sessions."""
        sizes = self.blobs()
        repositories = []
        for repo in self.repositories():
            linked = self.layers(repo) | repo.revisions
            repositories.append(
                {
                    "name": repo.name,
                    "blobs": len(linked),
                    "blob_bytes": sum(sizes.get(d, 0) for d in linked),
                    "manifests": len(repo.revisions),
                    "tags": len(repo.tags),
                    "uploads": len(repo.uploads),
                    "upload_bytes": sum(u.bytes for u in repo.uploads),
                }
            )
        return {
            "driver": "filesystem",
            "data_path": self.data_path,
            "blobs": len(sizes),
            "blob_bytes": sum(sizes.values()),
            "uploads": sum(r["uploads"] for r in repositories),
            "upload_bytes": sum(r["upload_bytes"] for r in repositories),
            "repositories": repositories,
        }


def unreferenced(storage: Storage, kept: set[str]) -> list[str]:
    """The blobs ``registry garbage-collect`` sweeps when ``kept`` are the revisions left (of every repository): every
    blob but the kept manifests and what they reference."""
    marked = set(kept)
    for digest in kept:
        marked.update((storage.manifest(digest) or _GONE).references)
    return sorted(set(storage.blobs()) - marked)


def parse_manifest(data: bytes) -> Manifest:
    """References, children and subject of a manifest (Docker schema 1/2, manifest list, OCI manifest/index); raises
    ValueError when ``data`` is not one."""
    document = json.loads(data)
    if not isinstance(document, dict):
        raise ValueError("a JSON %s, not an object" % type(document).__name__)

    def digests(entries: Any) -> list[str]:
        return [e["digest"] for e in entries if isinstance(e, dict) and isinstance(e.get("digest"), str)] if isinstance(entries, list) else []

    children = digests(document.get("manifests"))
    if "manifests" in document:
        references = list(children)
    elif "fsLayers" in document:  # schema 1
        layers = document.get("fsLayers")
        references = [e["blobSum"] for e in layers if isinstance(e, dict) and isinstance(e.get("blobSum"), str)] if isinstance(layers, list) else []
    else:
        references = digests([document.get("config")]) + digests(document.get("layers"))
    subject = document.get("subject")
    return Manifest(references, children, subject.get("digest") if isinstance(subject, dict) and isinstance(subject.get("digest"), str) else None)


_MARK_RE = re.compile(r"^(\S+): marking manifest (\S+)\s*$")
_REPO_LINE_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


def enumerated(output: str) -> set[tuple[str, str]]:
    """What ``registry garbage-collect`` (without ``--delete-untagged``) enumerated, from its output: ``(repository,
    "")`` per repository and ``(repository, digest)`` per manifest it marked (the form of :meth:`Storage.listing`)."""
    held: set[tuple[str, str]] = set()
    for line in output.splitlines():
        line = line.strip()
        marked = _MARK_RE.match(line)
        if marked:
            held.add((marked.group(1), marked.group(2)))
        elif _REPO_LINE_RE.match(line):
            held.add((line, ""))
    return held


def same_storage(before: set[tuple[str, str]], registry: set[tuple[str, str]], after: set[tuple[str, str]]) -> str | None:
    """None when the registry binary read the storage this host sees, else what differs.

    ``before``/``after``: :meth:`Storage.listing` just before and just after the binary's run; ``registry``: what it
    enumerated. Writes between the two readings only add or remove entries, so what both readings hold must be in
    the binary's, and what the binary saw must be in one of them."""
    unseen = sorted((before & after) - registry)
    unknown = sorted(registry - (before | after))
    if not unseen and not unknown:
        return None
    parts = []
    if unknown:
        parts.append("the registry holds %d repositories or manifests this path does not (e.g. %s)" % (len(unknown), _entry(unknown[0])))
    if unseen:
        parts.append("this path holds %d the registry does not (e.g. %s)" % (len(unseen), _entry(unseen[0])))
    return "; ".join(parts)


def _entry(entry: tuple[str, str]) -> str:
    return "%s@%s" % entry if entry[1] else entry[0]


def _listdir(path: str) -> list[str]:
    """The names in a directory; none when it is not there. Any other error stops everything (see _read)."""
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise StorageError("cannot read %s: %s" % (path, exc.strerror or exc)) from None


def _walk_error(exc: OSError) -> None:
    if not isinstance(exc, (FileNotFoundError, NotADirectoryError)):  # gone while walked (live): nothing to read
        raise StorageError("cannot read %s: %s" % (exc.filename, exc.strerror or exc))


def _remove(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)
    except OSError as exc:
        raise StorageError("cannot remove %s: %s" % (path, exc.strerror or exc)) from None
