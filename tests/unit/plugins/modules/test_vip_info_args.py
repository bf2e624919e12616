"""vip_info: the host's addresses through ``ip -j -4 addr show``, the ARP probe with the given timeout, one-line errors."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.dockhand.registry.plugins.modules import vip_info

ADDRESSES = json.dumps([{"ifname": "eth0", "addr_info": [{"family": "inet", "local": "192.0.2.11", "prefixlen": 24, "scope": "global"}]}])


def run(args: dict, capsys, rc: int = 0, out: str = ADDRESSES, answer: str | None = None) -> tuple[dict, list]:
    asked = []

    def probe(interface, target, timeout):
        asked.append((interface, target, timeout))
        return answer

    with mock.patch.object(vip_info.AnsibleModule, "run_command", return_value=(rc, out, "no such device\n")), \
            mock.patch.object(vip_info.AnsibleModule, "get_bin_path", return_value="/usr/sbin/ip"), \
            mock.patch.object(vip_info, "arp_probe", side_effect=probe), patch_module_args(args), pytest.raises(SystemExit):  # fmt: skip
        vip_info.main()
    text = capsys.readouterr().out
    return json.loads(text[text.index("{"):]), asked


def test_reports_who_answers_and_passes_the_timeout(capsys):
    result, asked = run({"address": "192.0.2.100", "timeout": 0.5}, capsys, answer="02:42:0a:00:00:63")
    assert asked == [("eth0", "192.0.2.100", 0.5)]
    assert result["answered_by"] == "02:42:0a:00:00:63" and result["holds"] is False and result["changed"] is False


def test_an_address_that_is_not_ipv4_is_one_line(capsys):
    result, asked = run({"address": "registry.example.com"}, capsys)
    assert result["failed"] and result["msg"] == "address 'registry.example.com' is not an IPv4 address" and not asked


def test_ip_failing_is_one_line(capsys):
    result, _asked = run({"address": "192.0.2.100"}, capsys, rc=1, out="")
    assert result["failed"] and result["msg"] == "ip -j -4 addr show failed (1): no such device"
