# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make an image present: already there, else pull, else load an archive, else build."""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient
from ansible_collections.dockhand.registry.plugins.module_utils.reference import parse

# Label of every image this module builds: a digest of the build context and Dockerfile name. An image whose label
# equals the context's digest is what a build would make again, so nothing is built (check mode and real run agree).
CONTEXT_LABEL = "io.dockhand.registry.context-digest"


def context_digest(build_path: str, dockerfile: str | None = None) -> str:
    """SHA-256 over the Dockerfile name and every entry of the build context: relative path, kind, permission
    bits and content (a symlink by its target). Owner and times are left out: a copy of the same files is equal."""
    digest = hashlib.sha256()
    digest.update(b"dockerfile:%s\0" % (dockerfile or "Dockerfile").encode("utf-8"))
    for root, dirs, files in os.walk(build_path):
        dirs.sort()
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(root, d))]):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, build_path).encode("utf-8", "surrogateescape")
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                digest.update(b"L\0%s\0%s\0" % (rel, os.readlink(path).encode("utf-8", "surrogateescape")))
                continue
            content = hashlib.sha256()
            try:
                with open(path, "rb") as stream:
                    for block in iter(lambda: stream.read(1 << 20), b""):
                        content.update(block)
            except OSError as exc:
                raise DockhandError("cannot read %s in build context %s: %s" % (path, build_path, exc.strerror or exc)) from None
            digest.update(b"F\0%s\0%o\0%s\0" % (rel, stat.S_IMODE(info.st_mode), content.hexdigest().encode("ascii")))
        for name in dirs:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                rel = os.path.relpath(path, build_path).encode("utf-8", "surrogateescape")
                digest.update(b"D\0%s\0%o\0" % (rel, stat.S_IMODE(os.lstat(path).st_mode)))
    return "sha256:" + digest.hexdigest()


def _built_from(engine: EngineClient, name: str) -> str | None:
    image = engine.image(name) or {}
    return ((image.get("Config") or {}).get("Labels") or {}).get(CONTEXT_LABEL)


def provision_image(
    engine: EngineClient,
    name: str,
    pull: bool = True,
    archive: str | None = None,
    build_path: str | None = None,
    dockerfile: str | None = None,
    force_build: bool = False,
    allow_missing: bool = False,
    check_mode: bool = False,
) -> dict[str, Any]:
    """Return ``{changed, present, image_id, source, attempts, actions}``; ``source`` says how it came."""
    result = _provision(engine, name, pull, archive, build_path, dockerfile, force_build, allow_missing, check_mode)
    result["actions"] = [_action(result["source"], name, archive, build_path)] if result["changed"] else []
    return result


def _action(source: str, name: str, archive: str | None, build_path: str | None) -> str:
    if source == "pull":
        return "pull %s" % name
    if source == "archive":
        return "load %s from archive %s" % (name, archive)
    return "build %s from %s" % (name, build_path)


def _provision(
    engine: EngineClient,
    name: str,
    pull: bool,
    archive: str | None,
    build_path: str | None,
    dockerfile: str | None,
    force_build: bool,
    allow_missing: bool,
    check_mode: bool,
) -> dict[str, Any]:
    ref = parse(name)
    if archive and not os.path.isfile(archive):
        raise DockhandError("image archive %s does not exist (for image %s)" % (archive, name))
    if build_path and not os.path.isdir(build_path) and not check_mode:
        raise DockhandError("build context %s is not a directory (for image %s)" % (build_path, name))
    before = engine.image_id(name)
    result: dict[str, Any] = {
        "changed": False, "present": True, "image_id": before, "before": before, "source": "local", "attempts": []
    }
    if before and not (force_build and build_path):
        return result

    def done(source: str, image_id: str | None) -> dict[str, Any]:
        result.update(source=source, image_id=image_id, changed=image_id != before, present=True)
        return result

    def build() -> dict[str, Any]:
        if build_path is None or not os.path.isdir(build_path):  # check mode: an earlier task would copy it
            return dict(result, source="build", changed=True, image_id=None, msg="would build %s from %s" % (name, build_path))
        digest = context_digest(build_path, dockerfile)
        if before and _built_from(engine, name) == digest:
            # Built from this very context already: a build would make the same image.
            return dict(result, source="build", msg="%s is built from this context already" % name)
        if check_mode:
            return dict(result, source="build", changed=True, image_id=None, msg="would build %s from %s" % (name, build_path))
        return done("build", engine.build(build_path, name, dockerfile, labels={CONTEXT_LABEL: digest}))

    if force_build and build_path:
        return build()

    if check_mode:
        sources = [s for s, on in (("pull", pull), ("archive", archive), ("build", build_path)) if on]
        if not sources:
            if allow_missing:
                return dict(result, present=False, source=None)
            raise DockhandError("image %s is not present and no source (pull, archive, build) is enabled" % name)
        return dict(result, changed=True, present=True, source=sources[0], image_id=None)

    if pull:
        try:
            # A digest-pinned name (registry@sha256:...) is pulled by that digest.
            return done("pull", engine.pull(ref.name, ref.digest or ref.tag_or_default))
        except DockhandError as exc:
            result["attempts"].append(str(exc))
    if archive:
        loaded = engine.load(archive)
        image_id = engine.image_id(name)
        if not image_id:
            raise DockhandError(
                "image archive %s does not hold %s (it loaded: %s)" % (archive, name, ", ".join(loaded) or "nothing")
            )
        return done("archive", image_id)
    if build_path:
        return build()
    if allow_missing:
        return dict(result, present=False, source=None, image_id=None)
    raise DockhandError(
        "image %s is not present and could not be provisioned: %s" % (name, "; ".join(result["attempts"]) or "no source")
    )
