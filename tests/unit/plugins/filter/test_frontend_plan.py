"""The frontend_plan filter: the plan made from every frontend host's view of the virtual IP (controller side)."""

from __future__ import annotations

import pytest

from ansible_collections.dockhand.registry.plugins.filter.frontend_plan import frontend_plan

VIP = "192.0.2.100"


def seen(address: str, holds: bool = False, answered_by: str | None = None, interface: str = "eth0") -> dict:
    """A vip_info result of a host with ``address``/24 on ``interface``."""
    return {"addresses": [{"interface": interface, "address": address, "prefixlen": 24}], "holds": holds,
            "interface": interface, "answered_by": answered_by}  # fmt: skip


THREE = {"fe1": seen("192.0.2.11"), "fe2": seen("192.0.2.12"), "fe3": seen("192.0.2.13")}


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
