"""registry_info's ``created`` option reaches read_catalog(); without it, created times are read (the default)."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.dockhand.registry.plugins.module_utils import catalog
from ansible_collections.dockhand.registry.plugins.modules import registry_info


def run(args: dict, capsys) -> tuple[dict, mock.MagicMock]:
    held = {"repositories": [{"name": "app", "tags": [{"tag": "1", "digest": "sha256:" + "a" * 64}]}]}
    with mock.patch.object(catalog, "read_catalog", return_value=held) as listed, \
            mock.patch.object(catalog, "client_from_params") as made, patch_module_args(args), pytest.raises(SystemExit):
        made.return_value.registry = args["registry"]
        registry_info.main()
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):]), listed


@pytest.mark.parametrize("given, created", [({}, True), ({"created": False}, False), ({"created": True}, True)])
def test_created_option_passed(given, created, capsys):
    result, listed = run({"registry": "localhost:5000", **given}, capsys)
    assert not result.get("failed") and result["counts"] == {"repositories": 1, "tags": 1, "digests": 1}
    assert listed.call_args.args[4] is created
