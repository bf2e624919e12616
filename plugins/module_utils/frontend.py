# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The frontend's virtual IP: what one host sees of it, and the plan every frontend host shares.

``probe`` runs on a frontend host (module vip_info): the host's IPv4 addresses, whether it holds the virtual IP,
and whether another machine answers for it (an ARP probe as RFC 5227 describes: sender address 0.0.0.0, so no
neighbour cache learns anything from it). ``plan`` runs on the controller (filter frontend_plan): from every host's
probe it checks the input and picks, per host, the interface and source address VRRP uses, its peers and its
priority. Each problem is one line naming the value and the host.
"""

from __future__ import annotations

import ipaddress
import json
import select
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError

ETH_P_ARP = 0x0806
ARP_REQUEST = 1
ARP_REPLY = 2
BROADCAST_MAC = b"\xff" * 6
# Priorities by a host's place in the frontend group (first = preferred holder): far enough apart that the
# backups' take-over delays differ clearly ((256 - priority) / 256 advertisement intervals).
PRIORITY_FIRST = 200
PRIORITY_STEP = 40


# -- on a frontend host ------------------------------------------------------------------------------------------------
def parse_addresses(ip_json: str) -> list[dict[str, Any]]:
    """The global IPv4 addresses in ``ip -j -4 addr show`` output: ``[{interface, address, prefixlen}]``."""
    found = []
    for link in json.loads(ip_json or "[]"):
        for info in link.get("addr_info", []):
            if info.get("family") == "inet" and info.get("scope", "global") == "global":
                found.append({"interface": link["ifname"], "address": info["local"], "prefixlen": int(info["prefixlen"])})
    return found


def arp_request(source_mac: bytes, target_ip: str) -> bytes:
    """An Ethernet frame with an ARP probe for ``target_ip`` (sender IP 0.0.0.0)."""
    ethernet = BROADCAST_MAC + source_mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, ARP_REQUEST)
    arp += source_mac + socket.inet_aton("0.0.0.0") + b"\x00" * 6 + socket.inet_aton(target_ip)
    return ethernet + arp


def arp_reply_from(frame: bytes, target_ip: str) -> str | None:
    """The MAC address (``aa:bb:...``) of ``target_ip`` if ``frame`` is an ARP reply sent by it, else None."""
    if len(frame) < 42 or struct.unpack("!H", frame[12:14])[0] != ETH_P_ARP:
        return None
    _hw, proto, hw_len, proto_len, op = struct.unpack("!HHBBH", frame[14:22])
    if proto != 0x0800 or hw_len != 6 or proto_len != 4 or op != ARP_REPLY:
        return None
    if socket.inet_ntoa(frame[28:32]) != target_ip:
        return None
    return ":".join("%02x" % b for b in frame[22:28])


def _mac(interface: str) -> bytes:
    with open("/sys/class/net/%s/address" % interface, encoding="ascii") as stream:
        return bytes.fromhex(stream.read().strip().replace(":", ""))


def arp_probe(interface: str, target_ip: str, timeout: float = 1.0, attempts: int = 3,
              open_socket: Callable[[], socket.socket] | None = None) -> str | None:
    """Ask on ``interface`` who has ``target_ip`` (``attempts`` probes spread over ``timeout`` seconds); the MAC
    address that answered, or None. Needs a raw packet socket (root or CAP_NET_RAW)."""
    opener = open_socket or (lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)))
    try:
        sock = opener()
    except OSError as exc:
        raise DockhandError("cannot send an ARP probe on %s (%s): run as root" % (interface, exc)) from None
    try:
        sock.bind((interface, 0))
        frame = arp_request(_mac(interface), target_ip)
        deadline = time.monotonic() + timeout
        step = timeout / max(attempts, 1)
        next_send = 0.0
        while True:
            now = time.monotonic()
            if now >= deadline:
                return None
            if now >= next_send:
                sock.send(frame)
                next_send = now + step
            ready, _w, _x = select.select([sock], [], [], max(0.0, min(next_send, deadline) - now))
            if ready:
                answer = arp_reply_from(sock.recv(2048), target_ip)
                if answer:
                    return answer
    finally:
        sock.close()


def vip_subnet_address(addresses: list[dict[str, Any]], vip: str) -> dict[str, Any] | None:
    """The first of ``addresses`` whose subnet holds ``vip`` (other than the VIP itself), or None."""
    target = ipaddress.IPv4Address(vip)
    for item in addresses:
        if item["address"] != vip and target in ipaddress.IPv4Interface("%s/%d" % (item["address"], item["prefixlen"])).network:
            return item
    return None


def probe(vip: str, ip_json: str, arp: Callable[[str, str], str | None] = arp_probe) -> dict[str, Any]:
    """What this host sees of ``vip``: ``addresses``, ``holds`` (the VIP is on one of its interfaces), ``interface``
    (where it is, or the interface whose subnet holds it), ``answered_by`` (MAC of another machine answering ARP for
    it; None when nobody does, or when this host holds it or has no interface in its subnet)."""
    check_ipv4("address", vip)
    all_addresses = parse_addresses(ip_json)
    held = [a for a in all_addresses if a["address"] == vip]
    addresses = [a for a in all_addresses if a["address"] != vip]
    result: dict[str, Any] = {"addresses": addresses, "holds": bool(held), "interface": None, "answered_by": None}
    if held:
        result["interface"] = held[0]["interface"]
        return result
    local = vip_subnet_address(addresses, vip)
    if local is not None:
        result["interface"] = local["interface"]
        result["answered_by"] = arp(local["interface"], vip)
    return result


# -- on the controller -------------------------------------------------------------------------------------------------
def check_ipv4(name: str, value: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        raise DockhandError("%s %r is not an IPv4 address" % (name, value)) from None


def _listing(addresses: list[dict[str, Any]]) -> str:
    return ", ".join("%s/%d on %s" % (a["address"], a["prefixlen"], a["interface"]) for a in addresses) or "no IPv4 address"


def plan(
    members: list[str],
    probes: dict[str, dict[str, Any] | None],
    vip: str = "",
    port: int = 5000,
    metrics_port: int = 8404,
    registry_ports: dict[str, int] | None = None,
    router_id: int = 0,
    priorities: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The frontend of ``members`` (inventory names, in order), or the first problem with the input.

    ``probes``: each member's ``probe`` result (None or missing: not in this run). ``registry_ports``: the registry
    port of each frontend host that also runs the registry. Returns ``{error, vip, router_id, holder, hosts: {name:
    {interface, address, peers, priority}}}``; ``error`` is one line, empty when the input is sound."""
    result: dict[str, Any] = {"error": "", "vip": vip, "router_id": 0, "holder": None, "hosts": {}}
    try:
        _check(result, members, probes, vip, int(port), int(metrics_port), registry_ports or {}, int(router_id), priorities or {})
    except DockhandError as exc:
        result["error"] = str(exc)
    return result


def _check(result, members, probes, vip, port, metrics_port, registry_ports, router_id, priorities) -> None:
    if not members:
        raise DockhandError("the frontend has no host: give the frontend_hosts group (or registry_hosts) at least one")
    for name, value in (("frontend_port", port), ("frontend_metrics_port", metrics_port)):
        if not 1 <= value <= 65535:
            raise DockhandError("%s %s is out of range (1-65535)" % (name, value))
    if port == metrics_port:
        raise DockhandError("frontend_port and frontend_metrics_port are both %d: give them different ports" % port)
    for host in members:
        registry_port = registry_ports.get(host)
        if registry_port is not None and int(registry_port) in (port, metrics_port):
            which = "frontend_port" if int(registry_port) == port else "frontend_metrics_port"
            raise DockhandError(
                "%s %d clashes with registry_port %d on %s (it runs the registry and the frontend): give the registry"
                " another port (registry_port), the frontend forwards to it" % (which, int(registry_port), int(registry_port), host)
            )
    if not vip:
        result["hosts"] = {host: {} for host in members}
        return
    address = check_ipv4("frontend_vip", vip)
    if len(members) < 2:
        raise DockhandError(
            "frontend_vip %s needs at least two frontend hosts (VRRP peers), got %d: %s" % (vip, len(members), ", ".join(members))
        )
    missing = [host for host in members if not probes.get(host)]
    if missing:
        raise DockhandError(
            "frontend host %s did not report its addresses (not in this run?): every frontend host must be in the play"
            " that configures the frontend" % ", ".join(missing)
        )
    result["router_id"] = router_id or (int(address) & 0xFF) or 1
    if not 1 <= result["router_id"] <= 255:
        raise DockhandError("frontend_router_id %d is out of range (1-255)" % router_id)
    hosts: dict[str, dict[str, Any]] = {}
    for host in members:
        found = probes[host] or {}
        addresses = found.get("addresses") or []
        own = [a for a in addresses if a["address"] == vip]
        if own:
            raise DockhandError("frontend_vip %s is %s's own address: give an unused address of its subnet" % (vip, host))
        local = vip_subnet_address(addresses, vip)
        if local is None:
            raise DockhandError(
                "frontend_vip %s is outside the subnets of %s (%s): give an address of the frontend hosts' shared subnet"
                % (vip, host, _listing(addresses))
            )
        network = ipaddress.IPv4Interface("%s/%d" % (local["address"], local["prefixlen"])).network
        if network.prefixlen < 31 and address in (network.network_address, network.broadcast_address):
            raise DockhandError("frontend_vip %s is the network or broadcast address of %s on %s" % (vip, network, host))
        hosts[host] = {"interface": found.get("interface") or local["interface"], "address": local["address"]}
    holders = [host for host in members if (probes[host] or {}).get("holds")]
    if len(holders) > 1:
        raise DockhandError("frontend_vip %s is held by more than one frontend host (%s): VRRP is split, check the"
                            " network between them" % (vip, ", ".join(holders)))
    if not holders:
        for host in members:
            mac = (probes[host] or {}).get("answered_by")
            if mac:
                raise DockhandError(
                    "frontend_vip %s already answers (MAC %s, seen from %s) and no frontend host holds it: give an unused"
                    " address" % (vip, mac, host)
                )
    result["holder"] = holders[0] if holders else None
    for index, host in enumerate(members):
        priority = int(priorities.get(host) or max(1, PRIORITY_FIRST - PRIORITY_STEP * index))
        if not 1 <= priority <= 254:
            raise DockhandError("frontend_priority %d of %s is out of range (1-254)" % (priority, host))
        peers = [hosts[other]["address"] for other in members if other != host]
        hosts[host].update(priority=priority, peers=peers)
    result["hosts"] = hosts
