#!/usr/bin/python
# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_container
short_description: Run a Docker Registry container whose data survives every change
version_added: 0.1.0
description:
  - Creates, updates, starts, stops or removes the container that runs a Docker Registry (distribution).
  - Compares the image ID, the port binding (host address and port), the mounts, the environment and the restart
    policy with the container the engine runs, and changes only what differs.
  - A restart-policy change is applied in place (the container keeps its ID). Any other difference recreates the
    container; the data stays on its host directory or named volume, and the old container is kept (stopped,
    renamed) until the new one answers C(/v2/), then removed. If the new one fails, the old one is put back.
  - Registry data must live on a host directory (O(data_path)) or a named volume (O(volume)), never on the anonymous
    volume the image declares, which a recreate would silently replace by an empty one.
  - With O(state=started), waits until the registry answers C(GET /v2/) (200, or 401 with authentication on), over
    HTTPS when O(env) sets C(REGISTRY_HTTP_TLS_CERTIFICATE).
  - Warns when the registry is published beyond loopback (O(bind_address)) without authentication
    (C(REGISTRY_AUTH) in O(env)) or without TLS (C(REGISTRY_HTTP_TLS_CERTIFICATE) in O(env)).
author:
  - dockhand.registry contributors (@dockhand)
extends_documentation_fragment:
  - dockhand.registry.docker
  - dockhand.registry.docker.attributes
options:
  name:
    description: Name of the container.
    type: str
    default: registry
  state:
    description:
      - V(started) the container exists, matches the options and runs and answers.
      - V(stopped) the container exists, matches the options and does not run.
      - V(absent) the container does not exist; its data directory or volume is kept.
    type: str
    choices: [started, stopped, absent]
    default: started
  image:
    description:
      - The registry image. It must be present in the engine (the P(dockhand.registry.registry#role) role pulls, loads
        or builds it).
      - Required unless O(state=absent).
    type: str
  port:
    description: Host port published for the registry's port 5000.
    type: int
    default: 5000
  bind_address:
    description: Host address the port is published on. V(0.0.0.0) publishes it on every interface.
    type: str
    default: 127.0.0.1
  data_path:
    description:
      - Host directory bind-mounted on C(/var/lib/registry). Created when missing.
      - Exactly one of O(data_path) and O(volume) is required unless O(state=absent).
    type: path
  volume:
    description:
      - Named volume mounted on C(/var/lib/registry). Created when missing.
    type: str
  env:
    description:
      - Environment of the registry, for example C(REGISTRY_STORAGE_DELETE_ENABLED=true). Every key of the registry
        configuration can be set as C(REGISTRY_<PATH>).
    type: dict
    default: {}
  mounts:
    description: Further mounts (configuration, htpasswd, certificates).
    type: list
    elements: dict
    default: []
    suboptions:
      source:
        description: Host path (for V(bind)) or volume name (for V(volume)).
        type: str
        required: true
      target:
        description: Path in the container.
        type: str
        required: true
      type:
        description: Kind of mount.
        type: str
        choices: [bind, volume]
        default: bind
      read_only:
        description: Mount read-only.
        type: bool
        default: false
  restart_policy:
    description: The engine's restart policy for the container.
    type: str
    choices: ["no", always, unless-stopped, on-failure]
    default: always
  restart_retries:
    description: Maximum restarts with O(restart_policy=on-failure).
    type: int
    default: 0
  wait_timeout:
    description: Seconds to wait for the registry to answer C(/v2/).
    type: int
    default: 60
  config_digest:
    description:
      - An opaque value standing for files the registry reads only at start (htpasswd, TLS certificate and key), for
        example the RV(dockhand.registry.registry_htpasswd#module:checksum) of
        M(dockhand.registry.registry_htpasswd) joined with the RV(dockhand.registry.registry_tls#module:checksum) of
        M(dockhand.registry.registry_tls).
      - It is kept as the container label C(io.dockhand.registry.config-digest) and compared like the environment
        is; a different value recreates the container (data kept), so the registry starts again on the new files,
        and the task reports C(changed). An empty value sets no label.
    type: str
    default: ""
notes:
  - The port is published for TCP only, on one address.
seealso:
  - module: dockhand.registry.image_provision
  - module: dockhand.registry.image_push
"""

EXAMPLES = r"""
- name: Run a registry on localhost:5000 with its data in /srv/registry
  dockhand.registry.registry_container:
    image: registry:2
    data_path: /srv/registry

- name: Run it on every interface, data on a named volume, deletes enabled
  dockhand.registry.registry_container:
    name: registry
    image: registry:2
    port: 5000
    bind_address: 0.0.0.0
    volume: registry-data
    restart_policy: unless-stopped
    env:
      REGISTRY_STORAGE_DELETE_ENABLED: "true"

- name: Authentication and TLS; recreated when the htpasswd file or the certificate changes
  dockhand.registry.registry_container:
    image: registry:2
    data_path: /srv/registry
    bind_address: 0.0.0.0
    mounts:
      - {source: /etc/dockhand/registry/htpasswd, target: /auth/htpasswd, read_only: true}
      - {source: /etc/dockhand/registry/tls/server.crt, target: /certs/server.crt, read_only: true}
      - {source: /etc/dockhand/registry/tls/server.key, target: /certs/server.key, read_only: true}
    env:
      REGISTRY_AUTH: htpasswd
      REGISTRY_AUTH_HTPASSWD_REALM: Registry
      REGISTRY_AUTH_HTPASSWD_PATH: /auth/htpasswd
      REGISTRY_HTTP_TLS_CERTIFICATE: /certs/server.crt
      REGISTRY_HTTP_TLS_KEY: /certs/server.key
    config_digest: "{{ htpasswd.checksum }}-{{ tls.checksum }}"

- name: Remove the container (the data stays)
  dockhand.registry.registry_container:
    name: registry
    state: absent
"""

RETURN = r"""
container:
  description: The container after the change (in check mode, what it would be). Empty when absent.
  returned: always
  type: dict
  sample:
    id: 4e840e31544f23d3cff481cc10166ac1d25844ccd9ea49b91757b3f1513e32e6
    name: registry
    image: registry:2
    image_id: sha256:3c4578a8dcb960ad772fddb090492b9ca50d61afc5b3fe51215332d69310aa01
    ports: ["127.0.0.1:5000->5000/tcp"]
    mounts: ["bind:/var/lib/dockhand/registry->/var/lib/registry"]
    env: {}
    restart_policy: always
    config_digest: ""
    status: running
actions:
  description: What was done (in check mode, what would be done), in order.
  returned: always
  type: list
  elements: str
  sample: ["update restart policy always -> unless-stopped (in place)"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockhand.registry.plugins.module_utils.common import DOCKER_ARGSPEC, run_module
from ansible_collections.dockhand.registry.plugins.module_utils.container import (
    RESTART_POLICIES,
    RegistryContainer,
    RegistrySpec,
    exposure_warnings,
)
from ansible_collections.dockhand.registry.plugins.module_utils.engine import DOCKER_LIBRARY, EngineClient
from ansible_collections.dockhand.registry.plugins.module_utils.registry import REQUESTS_LIBRARY


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def main() -> None:
    argument_spec = dict(
        DOCKER_ARGSPEC,
        name=dict(type="str", default="registry"),
        state=dict(type="str", choices=["started", "stopped", "absent"], default="started"),
        image=dict(type="str"),
        port=dict(type="int", default=5000),
        bind_address=dict(type="str", default="127.0.0.1"),
        data_path=dict(type="path"),
        volume=dict(type="str"),
        env=dict(type="dict", default={}),
        mounts=dict(
            type="list",
            elements="dict",
            default=[],
            options=dict(
                source=dict(type="str", required=True),
                target=dict(type="str", required=True),
                type=dict(type="str", choices=["bind", "volume"], default="bind"),
                read_only=dict(type="bool", default=False),
            ),
        ),
        restart_policy=dict(type="str", choices=list(RESTART_POLICIES), default="always"),
        restart_retries=dict(type="int", default=0),
        wait_timeout=dict(type="int", default=60),
        config_digest=dict(type="str", default=""),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("data_path", "volume")],
        required_if=[
            ("state", "started", ("image",)),
            ("state", "stopped", ("image",)),
            ("state", "started", ("data_path", "volume"), True),
            ("state", "stopped", ("data_path", "volume"), True),
        ],
        supports_check_mode=True,
    )
    p = module.params
    spec = RegistrySpec(
        name=p["name"],
        image=p["image"],
        state=p["state"],
        port=p["port"],
        bind_address=p["bind_address"],
        data_path=p["data_path"],
        volume=p["volume"],
        env={str(k): _env_value(v) for k, v in p["env"].items()},
        restart_policy=p["restart_policy"],
        restart_retries=p["restart_retries"],
        mounts=p["mounts"],
        wait_timeout=p["wait_timeout"],
        config_digest=p["config_digest"] or "",
    )
    for warning in exposure_warnings(spec):
        module.warn(warning)

    def action() -> dict:
        spec.validate()
        engine = EngineClient.from_params(p)
        return RegistryContainer(engine, spec, module.check_mode).converge()

    run_module(module, action, DOCKER_LIBRARY, REQUESTS_LIBRARY)


if __name__ == "__main__":
    main()
