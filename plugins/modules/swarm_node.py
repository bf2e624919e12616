#!/usr/bin/python
# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: swarm_node
short_description: Make a host's Docker engine a member of one Docker Swarm
version_added: 0.2.0
description:
  - Without O(join_addr), initialises a new swarm on the host (it becomes its first manager), unless the host is
    already a manager of a swarm.
  - With O(join_addr) and O(join_token), joins the swarm of those managers as O(role).
  - A host already in the wanted swarm with the wanted role is left as it is (not changed).
  - A host in another swarm, or with another role, is an error naming the node; it is never made to leave or
    change role silently.
  - On a manager, returns the join tokens; keep the task under C(no_log) (the P(dockhand.registry.swarm#role) role
    does).
author:
  - dockhand.registry contributors (@dockhand)
extends_documentation_fragment:
  - dockhand.registry.docker
  - dockhand.registry.docker.attributes
options:
  role:
    description: V(manager) or V(worker).
    type: str
    choices: [manager, worker]
    default: manager
  join_addr:
    description:
      - Addresses (C(host:port), port 2377) of managers of the swarm to join. Empty starts a new swarm.
    type: list
    elements: str
    default: []
  join_token:
    description: The swarm's join token for O(role). Never printed.
    type: str
  swarm_id:
    description:
      - The ID of the swarm this host must be in; a manager in a swarm with another ID is an error. Without it (and for
        workers, which cannot see the ID) the swarm is recognised by its managers' addresses (O(join_addr)).
    type: str
  advertise_addr:
    description: Address the other nodes reach this one at (C(docker swarm init/join --advertise-addr)).
    type: str
  listen_addr:
    description: Address the swarm's control plane listens on.
    type: str
    default: 0.0.0.0:2377
requirements:
  - docker (Python SDK) >= 5.0.3
seealso:
  - module: dockhand.registry.registry_service
"""

EXAMPLES = r"""
- name: Start the swarm on the first manager
  dockhand.registry.swarm_node:
    advertise_addr: 10.0.0.11
  register: first
  no_log: true

- name: Join a worker
  dockhand.registry.swarm_node:
    role: worker
    join_addr: ["10.0.0.11:2377"]
    join_token: "{{ first.join_tokens.worker }}"
    advertise_addr: 10.0.0.12
  no_log: true
"""

RETURN = r"""
actions:
  description: What the module did, or would do in check mode, in words.
  returned: always
  type: list
  elements: str
node_id:
  description: The host's node ID in the swarm.
  returned: when the host is in a swarm
  type: str
swarm_id:
  description: The swarm's ID (managers only).
  returned: when known
  type: str
role:
  description: The host's role.
  returned: always
  type: str
managers:
  description: Addresses of the swarm's managers (C(host:2377)).
  returned: on a manager, not in check mode
  type: list
  elements: str
join_tokens:
  description: The swarm's join tokens (C(manager), C(worker)). Secret.
  returned: on the manager that starts the swarm (no O(join_addr)), not in check mode
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockhand.registry.plugins.module_utils.args import DOCKER_ARGSPEC, run_module
from ansible_collections.dockhand.registry.plugins.module_utils.engine import DOCKER_LIBRARY, EngineClient
from ansible_collections.dockhand.registry.plugins.module_utils.swarm_membership import SwarmNode


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            DOCKER_ARGSPEC,
            role=dict(type="str", choices=["manager", "worker"], default="manager"),
            join_addr=dict(type="list", elements="str", default=[]),
            join_token=dict(type="str", no_log=True),
            swarm_id=dict(type="str"),
            advertise_addr=dict(type="str"),
            listen_addr=dict(type="str", default="0.0.0.0:2377"),
        ),
        supports_check_mode=True,
    )
    p = module.params

    def action() -> dict:
        return SwarmNode.from_params(p, lambda: EngineClient.from_params(p), module.check_mode).converge()

    run_module(module, action, DOCKER_LIBRARY)


if __name__ == "__main__":
    main()
