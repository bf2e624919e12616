# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A registry's data moving to another location (another ``data_path`` or ``volume``): what each location holds,
whether the move may go ahead, and the copy.

A registry recreated on an empty location serves an empty registry: its images seem gone (the old data is still on
disk). :func:`decide` refuses that unless the user says what to do (``data_move``): ``copy`` the data over, or
``adopt_empty`` (start empty on purpose). Everything is read and written through the engine API (the container
archive API, as ``docker cp``), so one path serves bind mounts and volumes, a local engine and a remote one:

- the old location is read through the old container (running or not);
- the new one through a helper container that only mounts it (created, never started, removed right after);
- the copy streams a tar of the old container's ``/var/lib/registry`` into the new container before its first start
  (the old registry stopped: nothing is written meanwhile), memory bounded whatever the size.

A copy leaves a marker file in the new location, ``.dockhand-data-move``: ``incomplete`` while it runs, ``complete``
at the end. A location whose marker says ``incomplete`` (a copy that failed or was killed) counts as empty: the
next run copies again (the copy overwrites).
"""

from __future__ import annotations

import datetime
import io
import tarfile
from collections.abc import Iterable, Iterator
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError
from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import DATA_TARGET, InvalidSpec
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient

REPOSITORIES = DATA_TARGET + "/docker/registry/v2/repositories"
MARKER = ".dockhand-data-move"
PROBE_SUFFIX = "-dockhand-probe"


class _ChunkReader(io.RawIOBase):
    """A file object reading an iterable of byte strings (a streamed tar, for tarfile's ``r|`` mode)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            try:
                self._rest = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._rest))
        buffer[:size] = self._rest[:size]
        self._rest = self._rest[size:]
        return size


def location_text(mount: dict[str, Any] | None) -> str:
    """``data_path /srv/registry`` or ``volume registry-data`` for a mount of ``docker container inspect``."""
    if not mount:
        return "no data mount"
    if mount.get("Type") == "volume":
        return "volume %s" % mount.get("Name")
    return "data_path %s" % mount.get("Source")


def data_mount(container: dict[str, Any]) -> dict[str, Any] | None:
    """The mount on /var/lib/registry of ``docker container inspect``."""
    return next((m for m in container.get("Mounts") or [] if m.get("Destination") == DATA_TARGET), None)


def first_repository(engine: EngineClient, container: str) -> str | None:
    """A repository the registry data of ``container`` holds (the first the archive lists), or None: read until a
    repository's ``_manifests`` shows, so a large registry is not read whole."""
    stream = engine.archive(container, REPOSITORIES + "/.")
    if stream is None:
        return None
    try:
        with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(stream), 1 << 16), mode="r|") as tar:
            for member in tar:
                parts = [p for p in member.name.split("/") if p not in ("", ".")]
                if "_manifests" in parts and parts.index("_manifests") > 0:
                    return "/".join(parts[: parts.index("_manifests")])
    except tarfile.TarError as exc:
        raise DockhandError("cannot read the repositories of container %s: %s" % (container, exc)) from None
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    return None


def marker(engine: EngineClient, container: str) -> str:
    """The data-move marker of the data location of ``container`` (``incomplete ...``, ``complete ...``), or ``""``."""
    stream = engine.archive(container, "%s/%s" % (DATA_TARGET, MARKER))
    if stream is None:
        return ""
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.next()
        handle = tar.extractfile(member) if member is not None else None
        return handle.read().decode("utf-8", "replace").strip() if handle is not None else ""


def _marker_tar(text: str) -> bytes:
    data = (text + "\n").encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(MARKER)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(datetime.datetime.now(datetime.timezone.utc).timestamp())
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class _Counted:
    """An iterable of byte strings that counts what went through."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = chunks
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.size += len(chunk)
            yield chunk


def copy_data(engine: EngineClient, source: str, destination: str, what: str) -> int:
    """Stream the registry data of container ``source`` (stopped) into container ``destination`` (created, not
    started), marked ``incomplete`` until done; the bytes of the tar copied."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    engine.put_archive(destination, DATA_TARGET, _marker_tar("incomplete: copy of %s started %s" % (what, stamp)))
    stream = engine.archive(source, DATA_TARGET + "/.")
    if stream is None:
        raise DockhandError("container %s has no %s to copy" % (source, DATA_TARGET))
    counted = _Counted(stream)
    engine.put_archive(destination, DATA_TARGET, counted)
    done = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    engine.put_archive(destination, DATA_TARGET, _marker_tar("complete: copy of %s, %d bytes, %s" % (what, counted.size, done)))
    return counted.size


def probe_location(engine: EngineClient, name: str, image: str, mount: dict[str, Any]) -> tuple[str | None, str]:
    """``(first repository, marker)`` of a data location no container uses yet (``mount`` as create_container takes
    it), read through a helper container that only mounts it (created, never started, removed). A volume or a bind
    path that does not exist holds nothing."""
    if mount["type"] == "volume" and engine.volume(mount["source"]) is None:
        return None, ""
    probe = name + PROBE_SUFFIX
    found = engine.container(probe)
    if found:
        engine.remove_container(found["Id"])
    try:
        probe_id = engine.create_container(
            name=probe, image=image, env={}, port_bindings={}, mounts=[mount], restart_policy={"Name": "no"}, read_only=True
        )
    except DockhandError as exc:
        if "does not exist" in str(exc):  # a bind path not made yet
            return None, ""
        raise
    try:
        return first_repository(engine, probe_id), marker(engine, probe_id)
    finally:
        engine.remove_container(probe_id)


def decide(
    engine: EngineClient,
    held: str | None,
    old_text: str,
    new_mount: dict[str, Any],
    new_text: str,
    image: str,
    data_move: str,
    name: str,
    no_copy: str = "",
) -> tuple[str, str]:
    """What a change of the data location of registry ``name`` from ``old_text`` (holding repository ``held``, or
    none) to ``new_mount`` may do: ``("keep", "")`` (nothing would be lost: go ahead as asked), ``("copy", action)``,
    ``("adopt_empty", action)``; raises InvalidSpec naming both locations and ``data_move`` when the old location
    holds repositories, the new one is empty and ``data_move`` is ``refuse`` (or ``copy`` where ``no_copy`` says
    why it cannot be done)."""
    if held is None:
        return "keep", ""
    there, note = probe_location(engine, name, image, new_mount)
    if there is not None and not note.startswith("incomplete"):
        return "keep", ""  # the new location holds a registry of its own (moved there by hand): used as it is
    left = " (a copy that did not finish: %s)" % note if note.startswith("incomplete") else ""
    if data_move == "copy" and no_copy:
        raise InvalidSpec(
            "registry %s holds repositories (e.g. %s) in %s and the new %s is empty%s; data_move copy is not available: %s"
            % (name, held, old_text, new_text, left, no_copy)
        )
    if data_move == "copy":
        return "copy", "copy the registry data from %s to %s%s" % (old_text, new_text, left)
    if data_move == "adopt_empty":
        return "adopt_empty", "start on the empty %s (data_move adopt_empty; the data stays in %s)" % (new_text, old_text)
    raise InvalidSpec(
        "registry %s holds repositories (e.g. %s) in %s and the new %s is empty%s: it would come back empty;"
        " set data_move: copy to copy the data over, or data_move: adopt_empty to start empty" % (name, held, old_text, new_text, left)
    )
