# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry's htpasswd file: bcrypt entries, rewritten only when users or passwords change.

bcrypt hashes are salted, so hashing the same password twice gives two different lines.
"Unchanged" therefore means: the file names exactly the wanted users, and each user's
existing hash still verifies the wanted password (``bcrypt.checkpw``). Then the file is
left alone; otherwise it is rewritten, keeping the lines that still verify.

Passwords are inputs only: they never appear in results, errors or diffs.
"""

from __future__ import annotations

import hashlib
import os
import re
import traceback
from dataclasses import dataclass
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError, write_atomic

try:
    import bcrypt

    BCRYPT_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported by the module through missing_required_lib
    BCRYPT_IMPORT_ERROR = traceback.format_exc()

# The registry (distribution) accepts bcrypt entries only; htpasswd -B writes $2y$.
_BCRYPT_RE = re.compile(r"\$2[abxy]?\$[0-9][0-9]\$[./A-Za-z0-9]{53}", re.ASCII)
# Printable ASCII without ':' or space, matched in full: "alice\n" would break the file's line structure.
_USER_RE = re.compile(r"[!-9;-~]+", re.ASCII)
DEFAULT_ROUNDS = 10
MAX_PASSWORD_BYTES = 72  # bcrypt ignores what comes after

# What the module passes to common.run_module to check that bcrypt is there.
HAS_BCRYPT = BCRYPT_IMPORT_ERROR is None
BCRYPT_LIBRARY = ("bcrypt", HAS_BCRYPT, BCRYPT_IMPORT_ERROR)


class HtpasswdError(DockhandError):
    """A user entry or the htpasswd file cannot be used."""


@dataclass
class User:
    name: str
    password: str


def validate_users(users: list[User]) -> None:
    """Raise HtpasswdError naming the first bad user (never its password)."""
    seen: set[str] = set()
    for user in users:
        if not _USER_RE.fullmatch(user.name or ""):
            raise HtpasswdError("invalid htpasswd user name %r (no ':' or white space, not empty)" % user.name)
        if user.name in seen:
            raise HtpasswdError("htpasswd user %s is listed twice" % user.name)
        seen.add(user.name)
        if not user.password:
            raise HtpasswdError("htpasswd user %s has an empty password" % user.name)
        if len(user.password.encode("utf-8")) > MAX_PASSWORD_BYTES:
            raise HtpasswdError(
                "the password of htpasswd user %s is longer than %d bytes (bcrypt would ignore the rest)"
                % (user.name, MAX_PASSWORD_BYTES)
            )


def parse(text: str) -> dict[str, str]:
    """``{user: hash}`` of an htpasswd text; lines that are not ``user:bcrypt`` are ignored."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, hashed = line.strip().partition(":")
        if sep and name and _BCRYPT_RE.fullmatch(hashed):
            entries[name] = hashed
    return entries


def verifies(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode("utf-8"), hashed.encode("ascii"))
    except ValueError:
        return False


def make_hash(password: str, rounds: int = DEFAULT_ROUNDS) -> str:
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=rounds)).decode("ascii")


def render(entries: dict[str, str]) -> str:
    return "".join("%s:%s\n" % (name, hashed) for name, hashed in entries.items())


def plan(current_text: str | None, users: list[User], rounds: int = DEFAULT_ROUNDS) -> tuple[str, dict[str, list[str]]]:
    """The wanted file text and what differs: ``{"added": [...], "removed": [...], "updated": [...]}``.

    A user whose current hash verifies the wanted password keeps that exact line.
    """
    validate_users(users)
    current = parse(current_text or "")
    wanted: dict[str, str] = {}
    changes: dict[str, list[str]] = {"added": [], "removed": [], "updated": []}
    for user in sorted(users, key=lambda u: u.name):
        hashed = current.get(user.name)
        if hashed is not None and verifies(user.password, hashed):
            wanted[user.name] = hashed
            continue
        changes["updated" if hashed is not None else "added"].append(user.name)
        wanted[user.name] = make_hash(user.password, rounds)
    changes["removed"] = sorted(set(current) - set(wanted))
    return render(wanted), changes


def checksum(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def converge(path: str, users: list[User], mode: int = 0o600, check_mode: bool = False) -> dict[str, Any]:
    """Make ``path`` hold a bcrypt entry for each user and no other; report what changed.

    The result names users only; ``checksum`` is the SHA-256 of the file, to tell a
    service that reads the file at start that it changed.
    """
    if not os.path.isabs(path):
        raise HtpasswdError("htpasswd path %r must be absolute" % path)
    if os.path.isdir(path):
        raise HtpasswdError("htpasswd path %s is a directory" % path)
    try:
        with open(path, encoding="utf-8") as stream:
            current: str | None = stream.read()
    except FileNotFoundError:
        current = None
    except UnicodeDecodeError as exc:
        raise HtpasswdError(
            "htpasswd file %s is not UTF-8 text (byte %d); remove or fix it" % (path, exc.start)
        ) from None
    except OSError as exc:
        raise HtpasswdError("cannot read htpasswd file %s: %s" % (path, exc.strerror or exc)) from None
    text, changes = plan(current, users)
    content_changed = current != text
    mode_changed = current is not None and (os.stat(path).st_mode & 0o7777) != mode
    actions = []
    if current is None:
        actions.append("create %s" % path)
    elif content_changed:
        actions.append("rewrite %s" % path)
    if mode_changed and not content_changed:
        actions.append("set mode %04o on %s" % (mode, path))
    if actions and not check_mode:
        try:
            if content_changed:
                write_atomic(path, text.encode("utf-8"), mode)
            else:
                os.chmod(path, mode)
        except OSError as exc:
            raise HtpasswdError("cannot write htpasswd file %s: %s" % (path, exc.strerror or exc)) from None
    before_users = sorted(parse(current or ""))
    return {
        "changed": bool(actions),
        "actions": actions,
        "path": path,
        "users": sorted(u.name for u in users),
        "added": changes["added"],
        "removed": changes["removed"],
        "updated": changes["updated"],
        # In check mode a rewrite would salt new hashes: there is no checksum to predict.
        "checksum": checksum(text) if (not check_mode or not content_changed) else None,
        "diff": {"before": {"users": before_users}, "after": {"users": sorted(u.name for u in users)}},
    }


def parse_mode(value: object) -> int:
    """The file mode ``value`` (an octal string such as ``'0600'``, or an int), refused when it is not one or lets
    others read the file."""
    try:
        mode = int(str(value), 8) if not isinstance(value, int) or isinstance(value, bool) else value
    except ValueError:
        raise HtpasswdError("invalid mode %r: an octal number such as 0600" % (value,)) from None
    if not 0 <= mode <= 0o777:
        # An unquoted 644 in YAML is the integer 644 (0o1204), not 0o644.
        raise HtpasswdError("invalid mode %r (%s): outside 0000-0777; quote it, as in '0600'" % (value, oct(mode)))
    if mode & 0o007:
        raise HtpasswdError(
            "invalid mode %r: the htpasswd file holds password hashes and must not be readable by others (%04o)"
            % (value, mode)
        )
    return mode


def converge_users(path: str, users: list[dict[str, str]], mode: object = "0600", check_mode: bool = False) -> dict[str, Any]:
    """registry_htpasswd's run: ``users`` as the module takes them (``name``, ``password``), ``mode`` as given
    (checked by :func:`parse_mode`), then :func:`converge`."""
    wanted = [User(u["name"], u["password"]) for u in users]
    return converge(path, wanted, parse_mode(mode), check_mode)
