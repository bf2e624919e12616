"""engine_daemon_config through AnsibleModule: check mode and diff, a real write, and a bad value as one line."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.dockhand.registry.plugins.modules import engine_daemon_config


def run(args, capsys) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        engine_daemon_config.main()
    out = capsys.readouterr().out
    return json.loads(out[out.index("{") :])


def test_check_mode_diff_then_write_then_unchanged(tmp_path, capsys):
    path = tmp_path / "daemon.json"
    path.write_text('{"log-driver": "local"}')
    args = {"path": str(path), "settings": {"registry-mirrors": ["https://mirror.example:5001"]}, "apply": "none"}
    checked = run(dict(args, _ansible_check_mode=True, _ansible_diff=True), capsys)
    assert checked["changed"] and path.read_text() == '{"log-driver": "local"}'
    assert checked["actions"][0].startswith("would write")
    assert json.loads(checked["diff"]["after"])["registry-mirrors"] == ["https://mirror.example:5001"]
    written = run(args, capsys)
    assert written["changed"] and "diff" not in written
    assert json.loads(path.read_text()) == {"log-driver": "local", "registry-mirrors": ["https://mirror.example:5001"]}
    assert not run(args, capsys)["changed"]


def test_bad_value_is_one_line(tmp_path, capsys):
    result = run({"path": str(tmp_path / "daemon.json"), "settings": {"insecure-registries": ["bad host"]}}, capsys)
    assert result["failed"] and "bad host" in result["msg"] and "\n" not in result["msg"]
    assert not (tmp_path / "daemon.json").exists()
