#!/usr/bin/python
# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vip_info
short_description: What this host sees of a virtual IP address (its own addresses, who holds or answers for it)
version_added: 0.2.0
description:
  - Lists the host's global IPv4 addresses (C(ip -j -4 addr show)) and tells whether the host holds O(address) on
    one of its interfaces.
  - When the host does not hold it but has an address in its subnet, sends ARP probes for it on that interface (sender
    address 0.0.0.0, as RFC 5227's address conflict detection does, so no neighbour cache learns anything) and
    reports the MAC address of a machine that answers.
  - Read-only. The P(dockhand.registry.frontend#role) role runs it on every frontend host and gives the results to
    the P(dockhand.registry.frontend_plan#filter) filter, which refuses a virtual IP outside the hosts' subnet or one
    that another machine already answers for.
author:
  - dockhand.registry contributors (@dockhand)
extends_documentation_fragment:
  - dockhand.registry.docker.attributes
options:
  address:
    description: The virtual IPv4 address.
    type: str
    required: true
  timeout:
    description: Seconds to wait for an ARP answer (three probes are sent in that time).
    type: float
    default: 1.0
requirements:
  - the C(ip) command (iproute2), and root (a raw packet socket for the ARP probe)
"""

EXAMPLES = r"""
- name: Look at the virtual IP from every frontend host
  dockhand.registry.vip_info:
    address: 192.0.2.100
  register: vip

- name: Refuse an address another machine uses
  ansible.builtin.assert:
    that: vip.holds or not vip.answered_by
    fail_msg: "192.0.2.100 already answers (MAC {{ vip.answered_by }})"
"""

RETURN = r"""
addresses:
  description: The host's global IPv4 addresses other than O(address).
  returned: always
  type: list
  elements: dict
  sample: [{interface: eth0, address: 192.0.2.11, prefixlen: 24}]
holds:
  description: Whether O(address) is on one of the host's interfaces.
  returned: always
  type: bool
interface:
  description: The interface that holds O(address), else the one whose subnet holds it; null when none does.
  returned: always
  type: str
  sample: eth0
answered_by:
  description: MAC address of another machine answering ARP for O(address); null when none does, or when the host holds
    it itself or has no interface in its subnet (no probe sent).
  returned: always
  type: str
  sample: "02:42:ac:14:00:09"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockhand.registry.plugins.module_utils.args import run_module
from ansible_collections.dockhand.registry.plugins.module_utils.frontend import arp_probe, probe


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            address=dict(type="str", required=True),
            timeout=dict(type="float", default=1.0),
        ),
        supports_check_mode=True,
    )
    p = module.params

    def action() -> dict:
        ip = module.get_bin_path("ip", required=True, opt_dirs=["/usr/sbin", "/sbin"])
        rc, out, err = module.run_command([ip, "-j", "-4", "addr", "show"])
        if rc != 0:
            module.fail_json(msg="ip -j -4 addr show failed (%d): %s" % (rc, " ".join(err.split())))
        found = probe(p["address"], out, lambda interface, target: arp_probe(interface, target, timeout=p["timeout"]))
        return dict(found, changed=False)

    run_module(module, action)


if __name__ == "__main__":
    main()
