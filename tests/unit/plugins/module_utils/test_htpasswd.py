from __future__ import annotations

import os
import stat

import bcrypt
import pytest

from ansible_collections.dockhand.registry.plugins.module_utils import htpasswd
from ansible_collections.dockhand.registry.plugins.module_utils.htpasswd import HtpasswdError, User, converge

# Cheap hashes: the cost does not change the logic under test.
htpasswd.DEFAULT_ROUNDS = 4


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "auth" / "htpasswd")


def _read(path):
    with open(path) as stream:
        return stream.read()


def test_create_then_unchanged(path):
    users = [User("bob", "s3cret-b"), User("alice", "s3cret-a")]
    first = converge(path, users)
    assert first["changed"] and first["added"] == ["alice", "bob"]
    text = _read(path)
    assert [line.split(":")[0] for line in text.splitlines()] == ["alice", "bob"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    for line, password in zip(text.splitlines(), ["s3cret-a", "s3cret-b"], strict=True):
        assert bcrypt.checkpw(password.encode(), line.split(":", 1)[1].encode())
    second = converge(path, list(reversed(users)))
    assert not second["changed"] and second["actions"] == []
    assert _read(path) == text, "a verifying entry must keep its exact (salted) line"
    assert second["checksum"] == first["checksum"]


def test_password_change_rewrites_only_that_user(path):
    converge(path, [User("alice", "old-pass"), User("bob", "bob-pass")])
    bob_line = [line for line in _read(path).splitlines() if line.startswith("bob:")]
    result = converge(path, [User("alice", "new-pass"), User("bob", "bob-pass")])
    assert result["changed"] and result["updated"] == ["alice"] and result["added"] == []
    lines = _read(path).splitlines()
    assert [line for line in lines if line.startswith("bob:")] == bob_line
    alice = next(line for line in lines if line.startswith("alice:")).split(":", 1)[1]
    assert bcrypt.checkpw(b"new-pass", alice.encode())
    assert not bcrypt.checkpw(b"old-pass", alice.encode())


def test_removed_user(path):
    converge(path, [User("alice", "a-pass"), User("bob", "b-pass")])
    result = converge(path, [User("alice", "a-pass")])
    assert result["changed"] and result["removed"] == ["bob"]
    assert "bob:" not in _read(path)


def test_check_mode_touches_nothing(path):
    result = converge(path, [User("alice", "a-pass")], check_mode=True)
    assert result["changed"] and result["checksum"] is None
    assert not os.path.exists(path)
    converge(path, [User("alice", "a-pass")])
    before = _read(path)
    result = converge(path, [User("alice", "other")], check_mode=True)
    assert result["changed"] and result["updated"] == ["alice"]
    assert _read(path) == before


def test_mode_is_enforced(path):
    converge(path, [User("alice", "a-pass")])
    os.chmod(path, 0o644)
    result = converge(path, [User("alice", "a-pass")])
    assert result["changed"] and result["actions"] == ["set mode 0600 on %s" % path]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_foreign_lines_are_dropped(path):
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as stream:
        stream.write("# comment\nmallory:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    os.chmod(path, 0o600)
    result = converge(path, [User("alice", "a-pass")])
    assert result["changed"] and result["added"] == ["alice"]
    assert _read(path).splitlines()[0].startswith("alice:$2")
    assert "mallory" not in _read(path)


@pytest.mark.parametrize(
    "users, message",
    [
        ([User("a:b", "x")], "invalid htpasswd user name 'a:b'"),
        ([User("", "x")], "invalid htpasswd user name ''"),
        ([User("a", "x"), User("a", "y")], "htpasswd user a is listed twice"),
        ([User("a", "")], "htpasswd user a has an empty password"),
        ([User("a", "p" * 73)], "longer than 72 bytes"),
    ],
)
def test_bad_users_change_nothing(path, users, message):
    with pytest.raises(HtpasswdError, match=message):
        converge(path, users)
    assert not os.path.exists(path)


def test_no_password_in_result_or_error(path):
    secret = "never-show-me-1234"
    result = converge(path, [User("alice", secret)])
    assert secret not in repr(result)
    with pytest.raises(HtpasswdError) as err:
        converge(path, [User("alice", secret), User("alice", secret)])
    assert secret not in str(err.value)


def test_relative_path_is_refused():
    with pytest.raises(HtpasswdError, match="must be absolute"):
        converge("auth/htpasswd", [User("a", "b")])
