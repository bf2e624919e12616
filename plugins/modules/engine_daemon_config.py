#!/usr/bin/python
# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: engine_daemon_config
short_description: Merge keys into the Docker engine's daemon.json and apply them with a reload
version_added: 0.2.0
description:
  - Merges O(settings) into the engine's configuration file (C(/etc/docker/daemon.json)). Keys the user set stay.
    List keys (C(insecure-registries), C(registry-mirrors), C(allow-nondistributable-artifacts), C(dns), C(labels))
    gain the missing entries and keep the entries already there; other keys take the given value.
  - Validates the result before writing (JSON object, registry addresses and mirror URLs, and C(dockerd --validate)
    where the daemon has it, Docker 23 and later), then writes it atomically (a temporary file and a rename).
  - Applies a change the way the engine allows without stopping containers. Keys dockerd re-reads on C(SIGHUP)
    (C(insecure-registries), C(registry-mirrors), C(debug), C(labels), C(live-restore), ...) are applied with
    C(systemctl reload docker), or C(SIGHUP) to the daemon without systemd. Only when another key changed is the
    engine restarted (O(apply=auto)); containers with a restart policy come back with it.
  - Reports C(changed) only when the file's content changed. A file that is not valid JSON is left alone and reported
    as an error.
author:
  - dockhand.registry contributors (@dockhand)
extends_documentation_fragment:
  - dockhand.registry.docker.attributes
options:
  path:
    description: The engine's configuration file.
    type: path
    default: /etc/docker/daemon.json
  settings:
    description: Keys to merge into the file, as daemon.json spells them (for example C(insecure-registries)).
    type: dict
    default: {}
  remove:
    description: Keys to remove from the file.
    type: list
    elements: str
    default: []
  apply:
    description:
      - How a changed file reaches the running engine.
      - V(auto) reloads, and restarts the engine only when a changed key is not reloadable.
      - V(reload) never restarts; a key that needs a restart gives a warning.
      - V(none) only writes the file.
    type: str
    choices: [auto, reload, none]
    default: auto
  service:
    description: The engine's systemd unit.
    type: str
    default: docker
  pidfile:
    description: The daemon's PID file, for C(SIGHUP) on hosts without systemd.
    type: path
    default: /var/run/docker.pid
notes:
  - Needs no Python library beyond the standard one.
"""

EXAMPLES = r"""
- name: Trust a plain-HTTP registry and use a mirror; keys the user set stay
  dockhand.registry.engine_daemon_config:
    settings:
      insecure-registries: [registry.example.internal:5000]
      registry-mirrors: [https://mirror.example.internal:5001]
"""

RETURN = r"""
path:
  description: The configuration file.
  returned: always
  type: str
config:
  description: The configuration after the merge (what the file holds, or would hold in check mode).
  returned: always
  type: dict
changed_keys:
  description: Keys whose value changed.
  returned: always
  type: list
  elements: str
restart_keys:
  description: Changed keys the engine applies only after a restart.
  returned: changed
  type: list
  elements: str
applied:
  description: How the change reached the engine (C(systemctl reload docker), C(SIGHUP ...), C(systemctl restart docker)), or empty.
  returned: always
  type: str
actions:
  description: What the module did, or would do in check mode, in words.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockhand.registry.plugins.module_utils.args import run_module
from ansible_collections.dockhand.registry.plugins.module_utils.daemon_config import converge


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/docker/daemon.json"),
            settings=dict(type="dict", default={}),
            remove=dict(type="list", elements="str", default=[]),
            apply=dict(type="str", choices=["auto", "reload", "none"], default="auto"),
            service=dict(type="str", default="docker"),
            pidfile=dict(type="path", default="/var/run/docker.pid"),
        ),
        supports_check_mode=True,
    )
    p = module.params

    def action() -> dict:
        return converge(
            p["path"], p["settings"], remove=p["remove"], apply=p["apply"], service=p["service"], pidfile=p["pidfile"], check_mode=module.check_mode
        )

    run_module(module, action)


if __name__ == "__main__":
    main()
