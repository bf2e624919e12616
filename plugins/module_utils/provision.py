# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make an image present: already there, else pull, else load an archive, else build."""

from __future__ import annotations

import os
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient
from ansible_collections.dockhand.registry.plugins.module_utils.reference import parse


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

    if force_build and build_path:
        if check_mode:
            return dict(result, source="build", changed=True, msg="would build %s from %s" % (name, build_path))
        return done("build", engine.build(build_path, name, dockerfile))

    if check_mode:
        sources = [s for s, on in (("pull", pull), ("archive", archive), ("build", build_path)) if on]
        if not sources:
            if allow_missing:
                return dict(result, present=False, source=None)
            raise DockhandError("image %s is not present and no source (pull, archive, build) is enabled" % name)
        return dict(result, changed=True, present=True, source=sources[0], image_id=None)

    if pull and not ref.digest:
        try:
            return done("pull", engine.pull(ref.name, ref.tag_or_default))
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
        return done("build", engine.build(build_path, name, dockerfile))
    if allow_missing:
        return dict(result, present=False, source=None, image_id=None)
    raise DockhandError(
        "image %s is not present and could not be provisioned: %s" % (name, "; ".join(result["attempts"]) or "no source")
    )
