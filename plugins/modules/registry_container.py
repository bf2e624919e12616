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
  - With O(state=started), waits until the registry is ready. With a local engine (a C(unix://) O(docker_host)) the
    published port is on the module host, so the module probes it there - C(GET /v2/) answering 200, or 401 with
    authentication on, over HTTPS when the registry serves it (its configuration file, mounted at
    C(/etc/docker/registry/config.yml) through O(mounts), names a certificate in C(http.tls), or O(env) sets
    C(REGISTRY_HTTP_TLS_CERTIFICATE)). With a remote engine the
    module host may not reach the published address (a loopback O(bind_address) never is), so readiness is asked
    of the engine instead - the port is published and the registry logged C(listening on) since its start - and no
    request leaves the module host.
  - The container runs hardened by default - read-only root file system, every capability dropped,
    C(no-new-privileges) - which the registry needs nothing beyond (push, pull and garbage collection tested).
    O(read_only), O(cap_drop), O(capabilities) and O(security_opts) turn this off piece by piece.
  - Changes of one container are serialised on the module host by a lock (a file under C(/run/lock)); a second
    run waits for the first, then finds nothing to do.
  - Warns when the registry is published beyond loopback (O(bind_address)) without authentication
    (C(auth) in its configuration file, or C(REGISTRY_AUTH) in O(env)) or without TLS (C(http.tls) in its
    configuration file, or C(REGISTRY_HTTP_TLS_CERTIFICATE) in O(env)).
  - The registry's configuration file (written by M(dockhand.registry.registry_config)) is one of O(mounts), read-only
    at C(/etc/docker/registry/config.yml). It is hashed with the other read-only mounts, so a new configuration
    restarts the registry (see O(config_digest)).
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
  metrics_port:
    description:
      - Host port on which the registry's debug server (port 5001 in the container, C(http.debug.addr) in its
        configuration, with Prometheus metrics at C(/metrics) when C(http.debug.prometheus.enabled)) is published;
        V(0) publishes nothing.
      - A debug server listening on loopback inside the container could not be reached from the host at all; it
        listens on the container's own address, and this port publishes it on O(metrics_bind_address) only.
      - Refused when it is O(port) on the same (or a wildcard) address. With a mounted configuration file, that file
        must set C(http.debug.addr) to C(:5001).
    type: int
    default: 0
  metrics_bind_address:
    description: Host address O(metrics_port) is published on; keep it private (loopback, or an address only the
      monitoring network reaches). Independent of O(bind_address).
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
      - Returned values of keys that look secret (containing C(SECRET), C(PASSWORD), C(KEY), C(TOKEN),
        C(AUTHORIZATION), C(CREDENTIAL)) are masked, but O(env) itself is printed with the module's invocation at
        C(-vvv); put secrets in O(secret_env).
    type: dict
    default: {}
  secret_env:
    description:
      - Environment of the registry that is secret, for example C(REGISTRY_HTTP_SECRET), storage access keys or
        notification C(Authorization) headers. Merged with O(env) (a key may not be in both), compared the same way,
        never printed (the option is C(no_log), and returned values are masked).
    type: dict
    default: {}
  read_only:
    description: Run the container with a read-only root file system (the registry writes only to its data mount).
    type: bool
    default: true
  cap_drop:
    description: Capabilities dropped from the container; V(ALL) drops every one.
    type: list
    elements: str
    default: [ALL]
  capabilities:
    description: Capabilities added back after O(cap_drop) (the registry needs none).
    type: list
    elements: str
    default: []
  security_opts:
    description: Security options of the container, as C(docker run --security-opt).
    type: list
    elements: str
    default: [no-new-privileges]
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
    description: Seconds to wait for the registry to answer C(/v2/); more than 0.
    type: int
    default: 60
  drain_timeout:
    description:
      - Seconds a stopping registry gives the requests in flight to finish (the registry's C(http.draintimeout), set
        as C(REGISTRY_HTTP_DRAINTIMEOUT)). A swap (recreate) stops the old registry this way, so a pull in flight
        completes instead of being cut; the container's stop timeout (what any C(docker stop) waits before the kill)
        is the drain plus 5 seconds.
      - V(0) leaves the registry's own behaviour (requests in flight are cut). A C(REGISTRY_HTTP_DRAINTIMEOUT) in
        O(env) or O(secret_env), or C(http.draintimeout) in the mounted configuration file, wins over this option
        (the file's value is not repeated in the environment).
      - During a swap on this host, when the module runs as root and C(iptables) is there, new connections to the
        port are held (their first packet dropped, so the client retries after a second) until the new registry
        listens. A client sees a slower connect instead of a refused one. Without root or C(iptables) the module
        warns that a client connecting in that fraction of a second is refused.
    type: int
    default: 10
  config_digest:
    description:
      - The module computes a digest over the content of every file under a read-only bind mount of O(mounts) (the
        htpasswd file, TLS certificate and key, what the registry reads only at start) and this value, keeps it as
        the container label C(io.dockhand.registry.config-digest) and compares it like the environment; when a
        mounted file changes, the container is recreated (data kept), so the registry starts again on the new
        files, and the task reports C(changed).
      - This option adds an opaque value of your own to that digest (for something not mounted read-only). With no
        read-only bind mount and an empty value, no label is set.
    type: str
    default: ""
  config_changed:
    description:
      - In check mode only, a task before this one would rewrite a mounted configuration file (it reports
        C(changed)); the module then predicts the restart the real run will make. Ignored outside check mode,
        where the files themselves are compared.
    type: bool
    default: false
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
    config_changed: "{{ htpasswd is changed or tls is changed }}"

- name: A secret the registry needs, kept out of every output
  dockhand.registry.registry_container:
    image: registry:2
    data_path: /srv/registry
    secret_env:
      REGISTRY_HTTP_SECRET: "{{ vault_registry_http_secret }}"

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
    ports: ["127.0.0.1:5000->5000/tcp", "127.0.0.1:5001->5001/tcp"]
    mounts: ["bind:/var/lib/dockhand/registry->/var/lib/registry"]
    env: {}
    restart_policy: always
    config_digest: 5f1e7e5c8e0e0b6d1fb36d1b8c1c55a7e2f8c8d6f5e0d4c3b2a1908f7e6d5c4b
    hardening: read_only=yes cap_drop=ALL cap_add=- security_opt=no-new-privileges
    status: running
actions:
  description: What was done (in check mode, what would be done), in order.
  returned: always
  type: list
  elements: str
  sample: ["update restart policy always -> unless-stopped (in place)"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockhand.registry.plugins.module_utils.args import DOCKER_ARGSPEC, run_module
from ansible_collections.dockhand.registry.plugins.module_utils.common import env_strings, pick
from ansible_collections.dockhand.registry.plugins.module_utils.container import RegistryContainer
from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import RESTART_POLICIES, RegistrySpec, exposure_warnings
from ansible_collections.dockhand.registry.plugins.module_utils.engine import DOCKER_LIBRARY, EngineClient
from ansible_collections.dockhand.registry.plugins.module_utils.transport import REQUESTS_LIBRARY


def main() -> None:
    argument_spec = dict(
        DOCKER_ARGSPEC,
        name=dict(type="str", default="registry"),
        state=dict(type="str", choices=["started", "stopped", "absent"], default="started"),
        image=dict(type="str"),
        port=dict(type="int", default=5000),
        bind_address=dict(type="str", default="127.0.0.1"),
        metrics_port=dict(type="int", default=0),
        metrics_bind_address=dict(type="str", default="127.0.0.1"),
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
        drain_timeout=dict(type="int", default=10),
        config_digest=dict(type="str", default=""),
        config_changed=dict(type="bool", default=False),
        secret_env=dict(type="dict", default={}, no_log=True),
        read_only=dict(type="bool", default=True),
        cap_drop=dict(type="list", elements="str", default=["ALL"]),
        capabilities=dict(type="list", elements="str", default=[]),
        security_opts=dict(type="list", elements="str", default=["no-new-privileges"]),
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
        env=env_strings(p["env"]),
        secret_env=env_strings(p["secret_env"]),
        config_digest=p["config_digest"] or "",
        **pick(
            p, "name", "image", "state", "port", "bind_address", "metrics_port", "metrics_bind_address", "data_path",
            "volume", "restart_policy",
            "restart_retries", "mounts", "wait_timeout", "drain_timeout", "config_changed", "read_only", "cap_drop",
            "capabilities", "security_opts",
        ),
    )
    for warning in exposure_warnings(spec):
        module.warn(warning)

    def action() -> dict:
        spec.validate(module.check_mode)
        engine = EngineClient.from_params(p)
        return RegistryContainer(engine, spec, module.check_mode, docker_host=p["docker_host"] or "").converge()

    run_module(module, action, DOCKER_LIBRARY, REQUESTS_LIBRARY)


if __name__ == "__main__":
    main()
