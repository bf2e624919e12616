#!/usr/bin/python
# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_service
short_description: Run a Docker Registry as a Docker Swarm service (replicas on shared storage)
version_added: 0.2.0
description:
  - The Swarm counterpart of M(dockhand.registry.registry_container). Runs on a swarm manager.
  - Replicated (O(replicas), at most O(max_replicas_per_node) per node) or global; placement O(constraints).
  - Publishes the registry's port in V(host) mode (a port on every node that runs a task; put a load balancer or DNS
    name that health-checks C(/v2/) in front) or V(ingress) mode (the routing mesh answers on every node).
  - Storage is a directory every node shares at the same path (O(data_path), a bind mount of NFS, CephFS, ...) or a
    named volume of a driver that gives every node the same data (O(volume), O(volume_driver)). The filesystem
    storage driver keeps uploads and manifests as files, so every replica must see the same files; a path local to
    each node would give each replica its own, different registry.
  - The registry's C(http.secret), which lets one replica finish an upload another started, is generated once (kept
    in O(http_secret_path) on this manager, or given as O(http_secret)) and reaches the replicas only inside the
    registry's configuration, kept as a B(Swarm secret) (the configuration holds the secret, so it is not a Swarm
    config). The configuration is built as M(dockhand.registry.registry_config) builds it (logs, blob cache, metrics,
    notifications, and O(config) / O(secret_config) deep-merged on top, refused in one line when they conflict with
    another option, name an unknown key or hold a wrong type); a new one is first tried by the registry binary in a
    throwaway container on this manager (O(validate)). The htpasswd file and the TLS certificate and key become Swarm
    secrets too. Secret names carry the
    digest of their content, so a rotated file is a new secret and a changed service spec, rolled out like any other
    change; secrets no longer used are removed afterwards.
  - Compares the wanted spec with the running service (image and its ID on this manager, arguments, environment,
    mounts, secrets, mode and replicas, placement, ports, update policy) and changes only what differs, as a rolling
    update one task at a time with rollback on failure. Then waits until every task runs the new spec and answers
    C(GET /v2/) on its node, and returns per-node health.
author:
  - dockhand.registry contributors (@dockhand)
extends_documentation_fragment:
  - dockhand.registry.docker
  - dockhand.registry.registry_config
  - dockhand.registry.docker.attributes
options:
  name:
    description: Name of the service.
    type: str
    default: registry
  state:
    description: V(present) or V(absent) (absent removes the service, never the data nor the http secret file).
    type: str
    choices: [present, absent]
    default: present
  image:
    description:
      - The registry image; every node that may run a task must hold it (the P(dockhand.registry.registry#role) role
        provisions it on every host). Required unless O(state=absent).
    type: str
  mode:
    description: V(replicated) (O(replicas) tasks) or V(global) (one task on every eligible node).
    type: str
    choices: [replicated, global]
    default: replicated
  replicas:
    description: Number of tasks in V(replicated) mode.
    type: int
    default: 1
  max_replicas_per_node:
    description: At most this many tasks per node in V(replicated) mode; V(0) for no limit.
    type: int
    default: 1
  constraints:
    description: Placement constraints, for example V(node.labels.registry==true).
    type: list
    elements: str
    default: []
  port:
    description: Published port of the registry's port 5000.
    type: int
    default: 5000
  publish_mode:
    description: V(host) (on each node running a task) or V(ingress) (routing mesh, every node).
    type: str
    choices: [host, ingress]
    default: host
  data_path:
    description: Directory, the same shared storage at the same path on every node, bind-mounted on C(/var/lib/registry).
    type: path
  volume:
    description: Named volume mounted on C(/var/lib/registry) instead of O(data_path).
    type: str
  volume_driver:
    description: Volume driver of O(volume) (one whose volumes hold the same data on every node).
    type: str
  volume_options:
    description: Options of O(volume_driver).
    type: dict
    default: {}
  data_move:
    description:
      - What to do when O(data_path) or O(volume) of an existing service changes while the old storage holds
        repositories and the new one is empty, so that the replicas would come back empty.
      - V(refuse) fails in one line naming both, before anything changes (in check mode too). V(adopt_empty) updates
        the service onto the empty storage on purpose (the data stays where it is). V(copy) is refused for a service, as
        its replicas write to the shared storage while they run; copy the data yourself (the service scaled to 0),
        then run again (a new storage that holds repositories is used as it is).
      - Both locations are read on this manager through a helper container C(<name>-dockhand-probe) that only mounts
        one (created, never started, removed right away). An old volume this manager does not have cannot be read
        and counts as holding repositories.
    type: str
    choices: [refuse, copy, adopt_empty]
    default: refuse
  env:
    description:
      - Environment of the tasks, for example C(GOGC); C(REGISTRY_<PATH>) variables override the configuration (not
        C(REGISTRY_HTTP_SECRET), see O(http_secret)). Prefer O(config) for registry settings.
    type: dict
    default: {}
  metrics_port:
    description:
      - With O(metrics), the port each node that runs a task publishes the debug server (metrics at C(/metrics)) on,
        in C(host) mode, so that Prometheus scrapes each replica at its node's address. Swarm publishes it on every
        address of the node - keep it behind the node's firewall. Refused when it is O(port).
    type: int
    default: 5001
  validate:
    description:
      - Start the registry on a new configuration in a throwaway container on this manager before any secret is
        created or the service changes (the registry must log C(listening on) within O(validate_timeout)).
    type: bool
    default: true
  validate_timeout:
    description: Seconds the trial registry has to log C(listening on).
    type: int
    default: 30
  read_only:
    description:
      - Put every replica in read-only mode (C(storage.maintenance.readonly)); pulls work, pushes are refused. A
        change rolls the service. Meant for garbage collection on shared storage, which needs no writer.
    type: bool
    default: false
  http_secret:
    description: The replicas' shared C(http.secret). Without it, one is generated once and kept in O(http_secret_path).
    type: str
  http_secret_path:
    description: File on this manager keeping the generated http secret (mode 0600).
    type: path
    default: /etc/dockhand/registry/http-secret
  htpasswd:
    description: An htpasswd file on this manager (bcrypt entries, see M(dockhand.registry.registry_htpasswd)); turns authentication on.
    type: path
  auth_realm:
    description: Realm of the htpasswd authentication.
    type: str
    default: dockhand.registry
  tls_cert:
    description: TLS certificate file on this manager (see M(dockhand.registry.registry_tls)); with O(tls_key), serves HTTPS.
    type: path
  tls_key:
    description: TLS private key file on this manager.
    type: path
  update_order:
    description:
      - Order of a rolling update. V(start-first) starts the new task before stopping the old one.
      - V(auto) is V(start-first), except in V(host) publish mode with V(global) mode or one task per node, where the old
        task holds the node's port until it stops, so the new task could not start; V(stop-first) there (the registry
        finishes requests in flight first; clients go to another node meanwhile).
    type: str
    choices: [auto, start-first, stop-first]
    default: auto
  update_delay:
    description: Seconds between two task updates.
    type: float
    default: 2
  update_monitor:
    description: Seconds a new task is watched for failure before the next one is updated.
    type: float
    default: 5
  stop_grace_period:
    description: Seconds a stopping task has to finish its requests.
    type: float
    default: 15
  wait_timeout:
    description: Seconds to wait for the tasks to run the wanted spec and answer C(/v2/).
    type: int
    default: 300
requirements:
  - docker (Python SDK) >= 5.0.3
  - requests
seealso:
  - module: dockhand.registry.swarm_node
  - module: dockhand.registry.registry_container
"""

EXAMPLES = r"""
- name: Three replicas on shared storage, port 5000 on each node running one
  dockhand.registry.registry_service:
    image: registry:2
    replicas: 3
    data_path: /srv/nfs/registry
    htpasswd: /etc/dockhand/registry/htpasswd

- name: Garbage collection window - every replica read-only
  dockhand.registry.registry_service:
    image: registry:2
    replicas: 3
    data_path: /srv/nfs/registry
    read_only: true
"""

RETURN = r"""
actions:
  description: What the module did, or would do in check mode, in words.
  returned: always
  type: list
  elements: str
service:
  description: The parts of the service spec the module manages, as wanted.
  returned: unless O(state=absent)
  type: dict
nodes:
  description: Per node running a task - C(node), C(address), C(task), C(state), C(answers) (C(/v2/)), C(seconds).
  returned: always (empty in check mode)
  type: list
  elements: dict
update_order:
  description: The rolling update order used.
  returned: unless O(state=absent)
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockhand.registry.plugins.module_utils.args import CONFIG_ARGSPEC, DOCKER_ARGSPEC, run_module
from ansible_collections.dockhand.registry.plugins.module_utils.common import env_strings
from ansible_collections.dockhand.registry.plugins.module_utils.config_file import settings_from_params
from ansible_collections.dockhand.registry.plugins.module_utils.engine import DOCKER_LIBRARY, EngineClient
from ansible_collections.dockhand.registry.plugins.module_utils.swarm import RegistryService, ServiceSpec
from ansible_collections.dockhand.registry.plugins.module_utils.transport import REQUESTS_LIBRARY


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            DOCKER_ARGSPEC,
            **CONFIG_ARGSPEC,
            metrics_port=dict(type="int", default=5001),
            validate=dict(type="bool", default=True),
            validate_timeout=dict(type="int", default=30),
            name=dict(type="str", default="registry"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            image=dict(type="str"),
            mode=dict(type="str", choices=["replicated", "global"], default="replicated"),
            replicas=dict(type="int", default=1),
            max_replicas_per_node=dict(type="int", default=1),
            constraints=dict(type="list", elements="str", default=[]),
            port=dict(type="int", default=5000),
            publish_mode=dict(type="str", choices=["host", "ingress"], default="host"),
            data_path=dict(type="path"),
            volume=dict(type="str"),
            volume_driver=dict(type="str"),
            volume_options=dict(type="dict", default={}),
            data_move=dict(type="str", choices=["refuse", "copy", "adopt_empty"], default="refuse"),
            env=dict(type="dict", default={}),
            read_only=dict(type="bool", default=False),
            http_secret=dict(type="str", no_log=True),
            http_secret_path=dict(type="path", default="/etc/dockhand/registry/http-secret"),
            htpasswd=dict(type="path"),
            auth_realm=dict(type="str", default="dockhand.registry"),
            tls_cert=dict(type="path"),
            tls_key=dict(type="path"),
            update_order=dict(type="str", choices=["auto", "start-first", "stop-first"], default="auto"),
            update_delay=dict(type="float", default=2),
            update_monitor=dict(type="float", default=5),
            stop_grace_period=dict(type="float", default=15),
            wait_timeout=dict(type="int", default=300),
        ),
        mutually_exclusive=[("data_path", "volume")],
        required_if=[("state", "present", ("image",)), ("state", "present", ("data_path", "volume"), True)],
        required_together=[("tls_cert", "tls_key")],
        required_by={"volume_driver": ("volume",)},
        supports_check_mode=True,
    )
    p = module.params
    spec = ServiceSpec(
        name=p["name"],
        image=p["image"] or "",
        state=p["state"],
        mode=p["mode"],
        replicas=p["replicas"],
        max_replicas_per_node=p["max_replicas_per_node"],
        constraints=p["constraints"],
        port=p["port"],
        publish_mode=p["publish_mode"],
        data_path=p["data_path"],
        volume=p["volume"],
        volume_driver=p["volume_driver"],
        volume_options=env_strings(p["volume_options"]),
        env=env_strings(p["env"]),
        read_only=p["read_only"],
        http_secret=p["http_secret"],
        http_secret_path=p["http_secret_path"],
        htpasswd=p["htpasswd"],
        auth_realm=p["auth_realm"],
        tls_cert=p["tls_cert"],
        tls_key=p["tls_key"],
        update_order=p["update_order"],
        update_delay=p["update_delay"],
        update_monitor=p["update_monitor"],
        stop_grace_period=p["stop_grace_period"],
        wait_timeout=p["wait_timeout"],
        data_move=p["data_move"],
        settings=settings_from_params(p, blob_cache_default="none"),
        metrics_port=p["metrics_port"],
        try_config=p["validate"],
        validate_timeout=p["validate_timeout"],
    )

    def action() -> dict:
        spec.validate()  # every bad value, before the engine is asked anything
        engine = EngineClient.from_params(p)
        return RegistryService(engine, spec, module.check_mode).converge()

    run_module(module, action, DOCKER_LIBRARY, REQUESTS_LIBRARY)


if __name__ == "__main__":
    main()
