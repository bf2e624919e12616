"""registry_config through AnsibleModule: check mode with a masked diff, a real write (no trial), a refusal in one line,
secret options never in the output."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.dockhand.registry.plugins.modules import registry_config


def run(args, capsys) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        registry_config.main()
    out = capsys.readouterr().out
    return json.loads(out[out.index("{") :])


def test_check_mode_diff_masks_then_write_then_unchanged(tmp_path, capsys):
    path = tmp_path / "registry.yml"
    args = {
        "path": str(path), "validate": False, "metrics": True, "log_formatter": "json",
        "notifications": [{"url": "http://hook.example/e", "headers": {"Authorization": "Bearer tok-1234567"}}],
        "secret_config": {"storage": {"s3": {"region": "eu-west-1", "accesskey": "AKIA-abcdef", "secretkey": "SECRET-xyz"}}},
    }  # fmt: skip
    checked = run(dict(args, _ansible_check_mode=True, _ansible_diff=True), capsys)
    assert checked["changed"] and not path.exists()
    after = json.loads(checked["diff"]["after"])
    assert after["http"]["debug"]["addr"] == ":5001" and after["storage"]["s3"]["accesskey"] == "********"
    for secret in ("tok-1234567", "AKIA-abcdef", "SECRET-xyz"):
        assert secret not in json.dumps(checked)
    written = run(args, capsys)
    assert written["changed"] and written["storage_driver"] == "s3"
    assert "SECRET-xyz" in path.read_text() and "SECRET-xyz" not in json.dumps(written)
    assert not run(args, capsys)["changed"]


def test_conflict_is_one_line_and_nothing_written(tmp_path, capsys):
    result = run({"path": str(tmp_path / "registry.yml"), "validate": False, "config": {"http": {"addr": ":6000"}}}, capsys)
    assert result["failed"] and "\n" not in result["msg"]
    assert result["msg"] == (
        "registry_config (option config) key http.addr conflicts with registry_port (option port), which sets it: the registry"
        " listens on :5000 in its container; registry_port publishes it"
    )
    assert not (tmp_path / "registry.yml").exists()
