# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a registry says when it cannot write its storage (a full disk, a read-only or unwritable file system), read
from its error body or a line of its log, and the one line a user can act on. Standard library only: the registry
client and the scheduled jobs use it."""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.storage import DATA_TARGET, V2
from ansible_collections.dockhand.registry.plugins.module_utils.transport import RegistryError

# The operating system errors a registry's storage driver reports, as the registry (Go) words them.
_STORAGE_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EIO: "input/output error",
}
_FULL = ("no space left on device", "disk quota exceeded")
_STORAGE_TEXT_RE = re.compile(
    r"(?:(/[^\s:\"'\\]+)\S*?: )?(%s)" % "|".join(re.escape(w) for w in _STORAGE_ERRNOS.values()), re.IGNORECASE
)
# Where a filesystem storage keeps its tree under its root directory.
_LAYOUT = "/" + V2


class RegistryStorageError(RegistryError):
    """The registry cannot write its storage: a full disk, a read-only or unwritable file system."""


@dataclass(frozen=True)
class StorageCause:
    """A storage failure a registry reported: its words (``no space left on device``) and the path it named."""

    words: str
    path: str = ""

    @property
    def full(self) -> bool:
        return self.words in _FULL

    @property
    def root(self) -> str:
        """The storage's root directory as the registry sees it (``/var/lib/registry``), when the path shows it."""
        head, sep, _tail = self.path.partition(_LAYOUT)
        return head if sep else ""


def _in_detail(detail: Any) -> StorageCause | None:
    """A storage failure in the ``detail`` of a registry error: the filesystem driver's ``{"Enclosed": {"Op",
    "Path", "Err": <errno>}}``, or a text."""
    if isinstance(detail, dict):
        code = detail.get("Err")
        if isinstance(code, int) and code in _STORAGE_ERRNOS:
            return StorageCause(_STORAGE_ERRNOS[code], str(detail.get("Path") or ""))
        for value in detail.values():
            found = _in_detail(value)
            if found:
                return found
        return None
    if isinstance(detail, (list, tuple)):
        for value in detail:
            found = _in_detail(value)
            if found:
                return found
        return None
    if isinstance(detail, str):
        match = _STORAGE_TEXT_RE.search(detail)
        if match:
            return StorageCause(match.group(2).lower(), match.group(1) or "")
    return None


def storage_cause(answer: Any) -> StorageCause | None:
    """The storage failure a registry's error body (parsed JSON: ``{"errors": [{"detail": ...}]}``) or a line of its
    log names, or None."""
    if isinstance(answer, dict):
        return _in_detail([error.get("detail") for error in answer.get("errors") or [] if isinstance(error, dict)])
    if isinstance(answer, str):
        detail = re.search(r'err\.detail="((?:[^"\\]|\\.)*)"', answer)
        return _in_detail(detail.group(1) if detail else answer)
    return None


def human_size(count: int) -> str:
    """``2.5 MB`` (decimal units, as df -H and the registry's own figures)."""
    size = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (size, unit)
        size /= 1000
    return "%d B" % count  # pragma: no cover


def storage_message(registry: str, cause: StorageCause, host_path: str | None = None, usage: dict[str, Any] | None = None) -> str:
    """One line: what the registry's storage refused, where it is, and what to do."""
    if host_path:
        where = host_path
    else:
        where = "%s in its container" % (cause.root or DATA_TARGET)
    if usage:
        where += ", %s free of %s" % (human_size(usage["bytes_free"]), human_size(usage["bytes_total"]))
    if not cause.full:
        return "registry %s cannot write its storage (%s): %s" % (registry, where, cause.words)
    text = "registry %s has no space left on device (%s)" % (registry, where)
    if usage and usage["upload_bytes"]:
        return "%s: %s in abandoned uploads; run registry_gc with uploads_older_than_minutes 0" % (
            text, human_size(usage["upload_bytes"]))
    if usage:
        return "%s: delete what is not needed (registry_prune), then run registry_gc, or give the storage more room" % text
    return (
        "%s: abandoned uploads may hold space (registry_gc with uploads_older_than_minutes 0 removes them), else delete"
        " (registry_prune) or give it more room" % text
    )
