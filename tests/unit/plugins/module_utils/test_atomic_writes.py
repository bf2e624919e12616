"""Atomic file writes flush the file and its directory to disk: a crash right after leaves the new content."""

from __future__ import annotations

import os
import stat

from ansible_collections.dockhand.registry.plugins.module_utils import common


def test_atomic_file_writes_fsync_file_and_directory(tmp_path, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd):
        mode = os.fstat(fd).st_mode
        synced.append("dir" if stat.S_ISDIR(mode) else "file:%s" % os.readlink("/proc/self/fd/%d" % fd))
        return real_fsync(fd)

    renamed: list[str] = []
    real_replace = os.replace

    def replace(src, dst):
        renamed.append("rename (after %d fsync)" % len(synced))
        return real_replace(src, dst)

    monkeypatch.setattr(common.os, "fsync", fsync)
    monkeypatch.setattr(common.os, "replace", replace)
    target = tmp_path / "htpasswd"
    common.write_atomic(str(target), b"alice:x\n", 0o600)
    assert target.read_bytes() == b"alice:x\n"
    assert len(synced) == 2
    assert synced[0].startswith("file:%s/.htpasswd." % tmp_path), "the temporary file is synced before the rename"
    assert renamed == ["rename (after 1 fsync)"]
    assert synced[1] == "dir", "the directory is synced after the rename"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
