# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The frontend's plan (VRRP interface, source address, peers and priority per host), or its first input error."""

from __future__ import annotations

DOCUMENTATION = r"""
name: frontend_plan
short_description: Check the frontend's input and plan its VRRP peers, from what every frontend host sees
version_added: 0.2.0
description:
  - Takes the frontend hosts (inventory names, in order) and what M(dockhand.registry.vip_info) reported on each of
    them; returns the plan the P(dockhand.registry.frontend#role) role writes into keepalived's configuration, or the
    first problem with the input as one line (C(error)).
  - Refused, each in one line naming the value and the host, are a virtual IP that is not IPv4, outside a frontend host's
    subnets, a host's own address, the network or broadcast address; a virtual IP another machine answers for while
    no frontend host holds it; a virtual IP with fewer than two frontend hosts; O(port) or O(metrics_port) the same as
    the registry port of a frontend host that runs the registry, or the same as each other; a host missing from the run.
  - Per host, the interface whose subnet holds the virtual IP, the host's address there (VRRP's unicast source), the
    other hosts' addresses (its unicast peers) and its priority (given, else by its place in the list, as in 200,
    160, 120 and so on).
options:
  _input:
    description: The frontend hosts' inventory names, the preferred holder of the address first.
    type: list
    elements: str
    required: true
  probes:
    description: Each host's M(dockhand.registry.vip_info) result, by inventory name.
    type: dict
    required: true
  vip:
    description: The virtual IPv4 address; empty for a frontend without one (HAProxy only).
    type: str
    default: ""
  port:
    description: The port clients reach the registry on through the frontend.
    type: int
    default: 5000
  metrics_port:
    description: The port of HAProxy's statistics and Prometheus exporter.
    type: int
    default: 8404
  registry_ports:
    description: The registry port of each frontend host that also runs the registry, by inventory name.
    type: dict
    default: {}
  router_id:
    description: VRRP's virtual router ID (1-255); 0 for the last byte of the virtual IP.
    type: int
    default: 0
  priorities:
    description: VRRP priorities (1-254) by inventory name; a host left out (or 0) gets one by its place.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Plan the frontend
  ansible.builtin.set_fact:
    plan: >-
      {{ ['fe1', 'fe2'] | dockhand.registry.frontend_plan(
           {'fe1': hostvars.fe1.vip, 'fe2': hostvars.fe2.vip}, vip='192.0.2.100', port=5000) }}
  # {"error": "", "vip": "192.0.2.100", "router_id": 100, "holder": null,
  #  "hosts": {"fe1": {"interface": "eth0", "address": "192.0.2.11", "peers": ["192.0.2.12"], "priority": 200},
  #            "fe2": {"interface": "eth0", "address": "192.0.2.12", "peers": ["192.0.2.11"], "priority": 160}}}
"""

RETURN = r"""
_value:
  description: C(error) (one line, empty when the input is sound), C(vip), C(router_id), C(holder) (the frontend host
    that holds the address now, or null) and C(hosts) (per host C(interface), C(address), C(peers), C(priority)).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.dockhand.registry.plugins.module_utils.frontend import plan


def frontend_plan(members, probes, vip="", port=5000, metrics_port=8404, registry_ports=None, router_id=0, priorities=None):
    if not isinstance(members, list) or not isinstance(probes, dict):
        raise AnsibleFilterError("frontend_plan expects a list of host names and a dict of vip_info results")
    return plan([str(m) for m in members], probes, str(vip or ""), port, metrics_port, registry_ports, router_id, priorities)


class FilterModule:
    def filters(self):
        return {"frontend_plan": frontend_plan}
