# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every part of the collection shares: the error type, the defaults and bounds of shared options, one-line
errors, atomic writes and host locks. Free of Ansible: it also runs where Ansible is not installed (the registry
role's scheduled GC runner); the option specs and the module runner are args.py."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager


class DockhandError(Exception):
    """An error a module reports to the user as one line (``fail_json(msg=str(err))``)."""


class InvalidOption(DockhandError):
    """An option's value is outside the range the option takes."""


# How many requests, pushes or copied tags a module runs at once, at most (the option ``workers`` of image_push,
# image_publish, image_sync, registry_info and registry_prune). More only adds load: the engine serialises layer
# uploads per registry anyway, and a registry answers no faster to more connections than its cores.
MAX_WORKERS = 64
DEFAULT_WORKERS = 4

# The engine a module or the scheduled GC talks to when none is given, and how long one engine call may take.
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
DEFAULT_DOCKER_TIMEOUT = 120


def check_workers(workers: int) -> int:
    """``workers`` when it is 1 to MAX_WORKERS, else InvalidOption naming it."""
    if not 1 <= workers <= MAX_WORKERS:
        raise InvalidOption("workers must be between 1 and %d, got %d" % (MAX_WORKERS, workers))
    return workers


def pick(params: dict, *names: str) -> dict:
    """The module parameters ``names``, as keyword arguments of the same names for a module_utils call."""
    return {name: params[name] for name in names}


def env_strings(values: dict) -> dict[str, str]:
    """A mapping of environment (or driver option) values as the engine takes them: strings, booleans as
    ``true``/``false`` (what YAML users write, not Python's ``True``)."""
    return {str(k): ("true" if v else "false") if isinstance(v, bool) else str(v) for k, v in values.items()}


def one_line(text: object) -> str:
    """Collapse an error text to one line (engine and registry errors can span several)."""
    return " ".join(str(text).split())


def write_atomic(path: str, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` with ``mode`` through a temporary file and a rename: readers see the old
    content or the new one, never a part (the registry reads htpasswd and certificates at start).

    The file is flushed to disk before the rename and the directory after it, so a power loss or crash
    right after the call leaves the new content, not an empty or missing file."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path))
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    fsync_directory(directory)


def read_optional(path: str, error: type[DockhandError] = DockhandError) -> bytes | None:
    """The content of the file ``path``; None when there is none; ``error`` naming it when it cannot be read."""
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise error("cannot read %s: %s" % (path, exc.strerror or exc)) from None


def fsync_directory(directory: str) -> None:
    """Flush a directory's entries (a rename in it) to disk."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock_directory() -> str:
    for directory in ("/run/lock", "/var/lock"):
        if os.path.isdir(directory) and os.access(directory, os.W_OK | os.X_OK):
            return directory
    return tempfile.gettempdir()


@contextmanager
def host_lock(kind: str, key: str, timeout: float, what: str) -> Iterator[None]:
    """Hold an exclusive lock for ``key`` on this host (a file under /run/lock, ``flock``): a second run asking
    for the same key waits, at most ``timeout`` seconds, then fails naming ``what``. The lock goes with the
    process, so a killed run never leaves it taken."""
    import fcntl

    name = "dockhand-%s-%s.lock" % (kind, hashlib.sha256(key.encode("utf-8")).hexdigest()[:20])
    path = os.path.join(_lock_directory(), name)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise DockhandError("cannot open lock file %s for %s: %s" % (path, what, exc.strerror or exc)) from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DockhandError(
                        "another run has been changing %s for more than %gs (lock %s)" % (what, timeout, path)
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing releases the lock
