"""The frontend's virtual IP: what a host sees of it (probe, ARP frames) and the plan made from every host's view."""

from __future__ import annotations

import json
import socket

import pytest

from ansible_collections.dockhand.registry.plugins.filter.frontend_plan import frontend_plan
from ansible_collections.dockhand.registry.plugins.module_utils import frontend
from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError

VIP = "192.0.2.100"
MAC = bytes.fromhex("02420a000001")


def ip_json(*addresses: tuple[str, str, int], scope: str = "global") -> str:
    links: dict[str, list] = {}
    for interface, address, prefix in addresses:
        links.setdefault(interface, []).append({"family": "inet", "local": address, "prefixlen": prefix, "scope": scope})
    return json.dumps([{"ifname": name, "addr_info": info} for name, info in links.items()])


def seen(address: str, holds: bool = False, answered_by: str | None = None, interface: str = "eth0") -> dict:
    """A vip_info result of a host with ``address``/24 on ``interface``."""
    return {"addresses": [{"interface": interface, "address": address, "prefixlen": 24}], "holds": holds,
            "interface": interface, "answered_by": answered_by}  # fmt: skip


THREE = {"fe1": seen("192.0.2.11"), "fe2": seen("192.0.2.12"), "fe3": seen("192.0.2.13")}


# -- on a host ---------------------------------------------------------------------------------------------------------
def test_parse_addresses_keeps_global_ipv4_only():
    text = json.dumps([
        {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"}]},
        {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "192.0.2.11", "prefixlen": 24, "scope": "global"},
                                         {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"}]},
    ])  # fmt: skip
    assert frontend.parse_addresses(text) == [{"interface": "eth0", "address": "192.0.2.11", "prefixlen": 24}]


def test_arp_request_is_a_probe_and_a_reply_is_recognised():
    frame = frontend.arp_request(MAC, VIP)
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == MAC and frame[12:14] == b"\x08\x06"
    assert frame[28:32] == socket.inet_aton("0.0.0.0")  # sender address 0.0.0.0: nobody learns from it
    assert frame[38:42] == socket.inet_aton(VIP)
    other = bytes.fromhex("02420a000063")
    reply = MAC + other + b"\x08\x06" + bytes.fromhex("000108000604") + b"\x00\x02" + other + socket.inet_aton(VIP)
    reply += MAC + socket.inet_aton("0.0.0.0")
    assert frontend.arp_reply_from(reply, VIP) == "02:42:0a:00:00:63"
    assert frontend.arp_reply_from(reply, "192.0.2.101") is None
    assert frontend.arp_reply_from(frame, VIP) is None  # a request, not a reply
    assert frontend.arp_reply_from(b"\x00" * 20, VIP) is None


def test_probe_asks_on_the_interface_of_the_vips_subnet():
    asked = []
    result = frontend.probe(VIP, ip_json(("docker0", "172.17.0.1", 16), ("eth0", "192.0.2.11", 24)),
                            lambda interface, target: asked.append((interface, target)) or "02:42:0a:00:00:63")  # fmt: skip
    assert asked == [("eth0", VIP)]
    assert result["answered_by"] == "02:42:0a:00:00:63" and result["interface"] == "eth0" and not result["holds"]


def test_probe_of_a_held_address_sends_nothing():
    result = frontend.probe(VIP, ip_json(("eth0", "192.0.2.11", 24), ("eth0", VIP, 32)), lambda *_: pytest.fail("probed"))
    assert result["holds"] and result["interface"] == "eth0" and result["answered_by"] is None
    assert [a["address"] for a in result["addresses"]] == ["192.0.2.11"]


def test_probe_outside_every_subnet_sends_nothing():
    result = frontend.probe("198.51.100.7", ip_json(("eth0", "192.0.2.11", 24)), lambda *_: pytest.fail("probed"))
    assert result["interface"] is None and result["answered_by"] is None


def test_probe_refuses_what_is_not_ipv4():
    with pytest.raises(DockhandError, match="address 'fe80::1' is not an IPv4 address"):
        frontend.probe("fe80::1", ip_json(("eth0", "192.0.2.11", 24)))


class FakeSocket:
    def __init__(self, answers: list[bytes]) -> None:
        self.answers, self.sent, self.closed = answers, [], False

    def bind(self, address):
        self.bound = address

    def send(self, frame):
        self.sent.append(frame)

    def recv(self, _size):
        return self.answers.pop(0)

    def fileno(self):
        return 0

    def close(self):
        self.closed = True


def test_arp_probe_returns_the_answering_mac(monkeypatch):
    other = bytes.fromhex("02420a000063")
    reply = MAC + other + b"\x08\x06" + bytes.fromhex("000108000604") + b"\x00\x02" + other + socket.inet_aton(VIP) + MAC + bytes(4)
    fake = FakeSocket([reply])
    monkeypatch.setattr(frontend, "_mac", lambda _i: MAC)
    monkeypatch.setattr(frontend.select, "select", lambda r, w, x, t: (r, [], []))
    assert frontend.arp_probe("eth0", VIP, open_socket=lambda: fake) == "02:42:0a:00:00:63"
    assert fake.bound == ("eth0", 0) and len(fake.sent) == 1 and fake.closed


def test_arp_probe_without_answer_gives_none_after_its_attempts(monkeypatch):
    fake = FakeSocket([])
    monkeypatch.setattr(frontend, "_mac", lambda _i: MAC)
    monkeypatch.setattr(frontend.select, "select", lambda r, w, x, t: ([], [], []))
    assert frontend.arp_probe("eth0", VIP, timeout=0.05, attempts=3, open_socket=lambda: fake) is None
    assert 1 <= len(fake.sent) <= 3 and fake.closed


def test_arp_probe_without_a_raw_socket_is_one_line():
    def refuse():
        raise PermissionError("Operation not permitted")

    with pytest.raises(DockhandError, match=r"cannot send an ARP probe on eth0 .*run as root"):
        frontend.arp_probe("eth0", VIP, open_socket=refuse)


# -- the plan ----------------------------------------------------------------------------------------------------------
def test_plan_gives_each_host_its_interface_source_peers_and_priority():
    plan = frontend_plan(["fe1", "fe2", "fe3"], THREE, vip=VIP)
    assert plan["error"] == "" and plan["router_id"] == 100 and plan["holder"] is None
    assert plan["hosts"]["fe1"] == {"interface": "eth0", "address": "192.0.2.11", "peers": ["192.0.2.12", "192.0.2.13"], "priority": 200}
    assert [plan["hosts"][h]["priority"] for h in ("fe1", "fe2", "fe3")] == [200, 160, 120]


def test_plan_keeps_the_holder_and_honours_given_priorities_and_router_id():
    probes = dict(THREE, fe2=seen("192.0.2.12", holds=True))
    plan = frontend_plan(["fe1", "fe2", "fe3"], probes, vip=VIP, router_id=7, priorities={"fe3": 250, "fe1": 0})
    assert plan["error"] == "" and plan["holder"] == "fe2" and plan["router_id"] == 7
    assert plan["hosts"]["fe3"]["priority"] == 250 and plan["hosts"]["fe1"]["priority"] == 200


def test_plan_without_vip_checks_ports_only():
    plan = frontend_plan(["fe1"], {}, vip="", port=5000, registry_ports={"fe1": 5800})
    assert plan["error"] == "" and plan["hosts"] == {"fe1": {}}


@pytest.mark.parametrize(
    ("members", "probes", "kwargs", "message"),
    [
        (["fe1", "fe2"], THREE, {"vip": "198.51.100.7"},
         "frontend_vip 198.51.100.7 is outside the subnets of fe1 (192.0.2.11/24 on eth0)"),
        (["fe1", "fe2"], dict(THREE, fe2=seen("192.0.2.12", answered_by="02:42:0a:00:00:63")), {"vip": VIP},
         "frontend_vip 192.0.2.100 already answers (MAC 02:42:0a:00:00:63, seen from fe2) and no frontend host holds it"),
        (["fe1"], THREE, {"vip": VIP}, "frontend_vip 192.0.2.100 needs at least two frontend hosts (VRRP peers), got 1: fe1"),
        (["fe1", "fe2"], THREE, {"vip": VIP, "port": 5800, "registry_ports": {"fe2": 5800}},
         "frontend_port 5800 clashes with registry_port 5800 on fe2"),
        (["fe1", "fe2"], THREE, {"vip": VIP, "metrics_port": 5800, "registry_ports": {"fe1": 5800}},
         "frontend_metrics_port 5800 clashes with registry_port 5800 on fe1"),
        (["fe1", "fe2"], THREE, {"vip": VIP, "port": 8404}, "frontend_port and frontend_metrics_port are both 8404"),
        (["fe1", "fe2"], THREE, {"vip": VIP, "port": 70000}, "frontend_port 70000 is out of range (1-65535)"),
        (["fe1", "fe2"], THREE, {"vip": "registry.example.com"}, "frontend_vip 'registry.example.com' is not an IPv4 address"),
        (["fe1", "fe2"], THREE, {"vip": "192.0.2.11"}, "frontend_vip 192.0.2.11 is fe1's own address"),
        (["fe1", "fe2"], THREE, {"vip": "192.0.2.255"}, "frontend_vip 192.0.2.255 is the network or broadcast address of 192.0.2.0/24"),
        (["fe1", "fe2"], {"fe1": THREE["fe1"]}, {"vip": VIP}, "frontend host fe2 did not report its addresses"),
        (["fe1", "fe2"], dict(THREE, fe1=seen("192.0.2.11", holds=True), fe2=seen("192.0.2.12", holds=True)), {"vip": VIP},
         "frontend_vip 192.0.2.100 is held by more than one frontend host (fe1, fe2)"),
        (["fe1", "fe2"], THREE, {"vip": VIP, "router_id": 300}, "frontend_router_id 300 is out of range (1-255)"),
        (["fe1", "fe2"], THREE, {"vip": VIP, "priorities": {"fe2": 255}}, "frontend_priority 255 of fe2 is out of range (1-254)"),
        ([], THREE, {"vip": VIP}, "the frontend has no host"),
    ],
)  # fmt: skip
def test_plan_refuses_bad_input_in_one_line(members, probes, kwargs, message):
    plan = frontend_plan(members, probes, **kwargs)
    assert message in plan["error"], plan["error"]
    assert "\n" not in plan["error"]


def test_plan_of_a_vip_answering_while_a_frontend_host_holds_it_is_fine():
    probes = dict(THREE, fe1=seen("192.0.2.11", holds=True), fe2=seen("192.0.2.12", answered_by="02:42:0a:00:00:0b"))
    assert frontend_plan(["fe1", "fe2", "fe3"], probes, vip=VIP)["error"] == ""


def test_router_id_of_an_address_ending_in_zero_is_one():
    probes = {"fe1": {**seen("10.0.0.11"), "addresses": [{"interface": "eth0", "address": "10.0.0.11", "prefixlen": 16}]},
              "fe2": {**seen("10.0.0.12"), "addresses": [{"interface": "eth0", "address": "10.0.0.12", "prefixlen": 16}]}}  # fmt: skip
    assert frontend_plan(["fe1", "fe2"], probes, vip="10.0.1.0")["router_id"] == 1
