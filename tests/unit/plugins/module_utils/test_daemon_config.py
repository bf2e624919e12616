from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.daemon_config import DaemonConfigError, converge, merge


class Engine:
    """Records how the module applied a change instead of touching a real daemon."""

    def __init__(self):
        self.calls = []

    def reload(self, service, pidfile):
        self.calls.append("reload")
        return "systemctl reload %s" % service

    def restart(self, service):
        self.calls.append("restart")
        return "systemctl restart %s" % service


@pytest.fixture
def engine():
    return Engine()


def _run(path, settings, engine, **kwargs):
    return converge(str(path), settings, dockerd=None, reloader=engine.reload, restarter=engine.restart, **kwargs)


def test_merge_keeps_user_keys_and_list_entries():
    current = {"log-driver": "journald", "insecure-registries": ["old.example:5000"]}
    merged = merge(current, {"insecure-registries": ["new.example:5000", "old.example:5000"], "debug": True})
    assert merged == {"log-driver": "journald", "insecure-registries": ["old.example:5000", "new.example:5000"], "debug": True}


def test_new_file_written_reloaded_then_unchanged(tmp_path, engine):
    path = tmp_path / "docker" / "daemon.json"
    first = _run(path, {"insecure-registries": ["registry.example:5000"]}, engine)
    assert first["changed"] and first["changed_keys"] == ["insecure-registries"] and first["restart_keys"] == []
    assert engine.calls == ["reload"]
    assert json.loads(path.read_text()) == {"insecure-registries": ["registry.example:5000"]}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    second = _run(path, {"insecure-registries": ["registry.example:5000"]}, engine)
    assert not second["changed"] and second["actions"] == [] and engine.calls == ["reload"]


def test_user_keys_stay_and_unchanged_file_is_not_rewritten(tmp_path, engine):
    path = tmp_path / "daemon.json"
    path.write_text('{"log-driver": "journald", "registry-mirrors": ["https://a.example"]}')
    result = _run(path, {"registry-mirrors": ["https://b.example:5001"]}, engine)
    assert result["changed"]
    assert json.loads(path.read_text()) == {"log-driver": "journald", "registry-mirrors": ["https://a.example", "https://b.example:5001"]}
    mtime = os.stat(path).st_mtime_ns
    again = _run(path, {"registry-mirrors": ["https://a.example"]}, engine)
    assert not again["changed"] and os.stat(path).st_mtime_ns == mtime


def test_same_content_other_formatting_is_not_a_change(tmp_path, engine):
    path = tmp_path / "daemon.json"
    text = '{"insecure-registries":["r.example:5000"],   "debug": false}'
    path.write_text(text)
    result = _run(path, {"insecure-registries": ["r.example:5000"]}, engine)
    assert not result["changed"] and path.read_text() == text and engine.calls == []


def test_check_mode_changes_nothing_and_predicts(tmp_path, engine):
    path = tmp_path / "daemon.json"
    path.write_text('{"debug": false}')
    result = _run(path, {"insecure-registries": ["r.example:5000"]}, engine, check_mode=True)
    assert result["changed"] and path.read_text() == '{"debug": false}' and engine.calls == []
    assert result["actions"] == ["would write %s (insecure-registries)" % path, "would reload the engine"]
    assert json.loads(result["diff"]["after"]) == {"debug": False, "insecure-registries": ["r.example:5000"]}
    assert result["diff"]["before"] == '{"debug": false}'
    real = _run(path, {"insecure-registries": ["r.example:5000"]}, engine)
    assert real["changed"] and real["changed_keys"] == result["changed_keys"]


def test_restart_only_for_keys_that_need_it(tmp_path, engine):
    path = tmp_path / "daemon.json"
    result = _run(path, {"data-root": "/srv/docker"}, engine)
    assert result["restart_keys"] == ["data-root"] and engine.calls == ["restart"]
    result = _run(path, {"data-root": "/srv/docker2"}, engine, apply="reload")
    assert engine.calls == ["restart", "reload"] and "data-root" in result["warnings"][0]
    result = _run(path, {"debug": True}, engine, apply="none")
    assert result["changed"] and result["applied"] == "" and engine.calls == ["restart", "reload"]


def test_remove_key(tmp_path, engine):
    path = tmp_path / "daemon.json"
    path.write_text('{"debug": true, "log-driver": "local"}')
    result = _run(path, {}, engine, remove=["debug"])
    assert result["changed"] and json.loads(path.read_text()) == {"log-driver": "local"}


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", b"\xff\xfe"])
def test_invalid_file_is_left_alone(tmp_path, engine, text):
    path = tmp_path / "daemon.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    before = path.read_bytes()
    with pytest.raises(DaemonConfigError, match=r"daemon\.json"):
        _run(path, {"debug": True}, engine)
    assert path.read_bytes() == before and engine.calls == []


@pytest.mark.parametrize(
    ("settings", "bad"),
    [
        ({"insecure-registries": ["bad host:5000"]}, "bad host:5000"),
        ({"insecure-registries": ["r.example:70000"]}, "r.example:70000"),
        ({"insecure-registries": ["10.0.0.0/33"]}, "10.0.0.0/33"),
        ({"insecure-registries": "r.example:5000"}, "r.example:5000"),
        ({"registry-mirrors": ["mirror.example:5000"]}, "mirror.example:5000"),
        ({"registry-mirrors": ["https://mirror.example/path"]}, "https://mirror.example/path"),
    ],
)
def test_bad_values_refused_before_anything_changes(tmp_path, engine, settings, bad):
    path = tmp_path / "daemon.json"
    path.write_text('{"debug": false}')
    with pytest.raises(DaemonConfigError) as raised:
        _run(path, settings, engine)
    assert bad in str(raised.value) and "\n" not in str(raised.value)
    assert path.read_text() == '{"debug": false}' and engine.calls == []


def test_good_values_accepted(tmp_path, engine):
    settings = {
        "insecure-registries": ["registry.example.internal:5000", "192.0.2.10:5000", "[2001:db8::1]:5000", "10.0.0.0/8", "myregistry"],
        "registry-mirrors": ["https://mirror.example:5001", "http://192.0.2.10:5000/"],
    }
    assert _run(tmp_path / "daemon.json", settings, engine)["changed"]


def test_insecure_registry_comes_with_a_warning_every_run(tmp_path, engine):
    for _attempt in range(2):
        result = _run(tmp_path / "daemon.json", {"insecure-registries": ["r.example:5000"]}, engine)
        assert len(result["warnings"]) == 1 and "r.example:5000" in result["warnings"][0] and "plain HTTP" in result["warnings"][0]
