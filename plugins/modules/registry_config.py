#!/usr/bin/python
# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_config
short_description: Write a Docker Registry's configuration file, tried by the registry itself before it is written
version_added: 0.2.0
description:
  - Builds the whole configuration of a registry (distribution 2.8) from the options - the files it reads
    (htpasswd, TLS certificate and key), deletes, draining, the pull-through cache, logs, the blob cache, metrics,
    notifications - then deep-merges O(config) and O(secret_config) on top for anything else distribution supports.
  - Checks it before anything changes, each refusal in one line - a key of O(config) that another option sets, a key
    distribution does not know, a value of the wrong type.
  - When the result differs from the file at O(path), asks the registry binary itself to start on it first - a
    throwaway container of O(image) (no published port, read-only, no capabilities, an empty in-memory data
    directory, the new file and the files it names mounted) must log C(listening on) within O(validate_timeout);
    else the registry's own error is the task's one-line failure and the file is not written. Then writes the file
    atomically, mode 0600 (it may hold secrets).
  - The file is meant for M(dockhand.registry.registry_container), mounted read-only at
    C(/etc/docker/registry/config.yml); that module hashes it with its other read-only mounts, so a new file
    restarts the registry, and nothing that runs is touched before that.
  - Inside the container the registry listens on C(:5000) and keeps its data at C(/var/lib/registry); O(htpasswd) is
    mounted at C(/auth/htpasswd), O(tls_cert) and O(tls_key) at C(/certs/server.crt) and C(/certs/server.key) - mount
    them there.
  - The output (result, diff) masks secrets - O(secret_config), passwords, the shared secret, notification headers and
    values under secret-looking keys.
author:
  - dockhand.registry contributors (@dockhand)
extends_documentation_fragment:
  - dockhand.registry.docker
  - dockhand.registry.registry_config
  - dockhand.registry.docker.attributes
options:
  path:
    description: The configuration file on the host (its directory is created, mode 0755).
    type: path
    required: true
  name:
    description: Name of the registry container; the trial container is C(<name>-dockhand-trial).
    type: str
    default: registry
  image:
    description: The registry image the trial start runs (the one the container runs). Required when O(validate).
    type: str
  validate:
    description:
      - Start the registry on a new configuration in a throwaway container before the file is written. Check mode
        runs the other checks only.
    type: bool
    default: true
  validate_timeout:
    description: Seconds the trial registry has to log C(listening on).
    type: int
    default: 30
  htpasswd:
    description: An htpasswd file on the host (bcrypt entries); turns htpasswd authentication on (C(auth.htpasswd)).
    type: path
  auth_realm:
    description: Realm of the htpasswd authentication.
    type: str
    default: dockhand.registry
  tls_cert:
    description: TLS certificate file on the host; with O(tls_key) the registry serves HTTPS (C(http.tls)).
    type: path
  tls_key:
    description: TLS private key file on the host.
    type: path
  drain_timeout:
    description: Seconds a stopping registry finishes the requests in flight (C(http.draintimeout)), 0-600; V(0) cuts them.
    type: int
    default: 10
  http_secret:
    description: The registry's C(http.secret) (uploads signed with it can be finished by any registry sharing it).
    type: str
  proxy:
    description: Run the registry as a pull-through cache of another registry (C(proxy)); empty for a normal registry.
    type: dict
    suboptions:
      url:
        description: The upstream registry, C(https://host[:port]).
        type: str
        required: true
      username:
        description: User name at the upstream.
        type: str
      password:
        description: Password at the upstream (never printed).
        type: str
  env:
    description: The registry container's environment, for the trial start (C(REGISTRY_*) variables win over the file).
    type: dict
    default: {}
  secret_env:
    description: The container's secret environment, for the trial start; never printed.
    type: dict
    default: {}
notes:
  - The trial start needs the engine on this host (the file and the files it names are bind-mounted from here).
seealso:
  - module: dockhand.registry.registry_container
  - module: dockhand.registry.registry_service
"""

EXAMPLES = r"""
- name: The configuration of a registry with metrics, JSON logs, S3 storage and a notification endpoint
  dockhand.registry.registry_config:
    path: /etc/dockhand/registry/registry.yml
    image: registry:2
    log_formatter: json
    metrics: true
    storage_redirect_disable: true
    notifications:
      - name: audit
        url: https://audit.example.org/registry-events
        headers: {Authorization: "Bearer {{ vault_audit_token }}"}
        timeout: 2s
        ignored_media_types: [application/octet-stream]
    config:
      storage:
        s3: {region: eu-west-1, bucket: registry-data}
    secret_config:
      storage:
        s3: {accesskey: "{{ vault_s3_access }}", secretkey: "{{ vault_s3_secret }}"}
  register: registry_configuration

- name: Run the registry on it (restarted when the file changes)
  dockhand.registry.registry_container:
    image: registry:2
    data_path: /srv/registry
    metrics_port: 5001
    mounts:
      - {source: /etc/dockhand/registry/registry.yml, target: /etc/docker/registry/config.yml, read_only: true}
    config_changed: "{{ registry_configuration is changed }}"
"""

RETURN = r"""
path:
  description: The configuration file.
  returned: always
  type: str
digest:
  description: SHA-256 of the file's content as wanted.
  returned: always
  type: str
config:
  description: The configuration as wanted, secrets masked.
  returned: always
  type: dict
storage_driver:
  description: The storage driver it names (V(filesystem), V(s3), ...).
  returned: always
  type: str
  sample: filesystem
actions:
  description: What was done (in check mode, what would be done).
  returned: always
  type: list
  elements: str
  sample: ["try the configuration: the registry started on it (listening after 0.6s)", "write /etc/dockhand/registry/registry.yml"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockhand.registry.plugins.module_utils.args import CONFIG_ARGSPEC, DOCKER_ARGSPEC, run_module
from ansible_collections.dockhand.registry.plugins.module_utils.common import env_strings
from ansible_collections.dockhand.registry.plugins.module_utils.config_file import write_config
from ansible_collections.dockhand.registry.plugins.module_utils.engine import DOCKER_LIBRARY, EngineClient


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            DOCKER_ARGSPEC,
            **CONFIG_ARGSPEC,
            path=dict(type="path", required=True),
            name=dict(type="str", default="registry"),
            image=dict(type="str"),
            validate=dict(type="bool", default=True),
            validate_timeout=dict(type="int", default=30),
            htpasswd=dict(type="path"),
            auth_realm=dict(type="str", default="dockhand.registry"),
            tls_cert=dict(type="path"),
            tls_key=dict(type="path"),
            drain_timeout=dict(type="int", default=10),
            http_secret=dict(type="str", no_log=True),
            proxy=dict(
                type="dict",
                options=dict(url=dict(type="str", required=True), username=dict(type="str"), password=dict(type="str", no_log=True)),
            ),
            env=dict(type="dict", default={}),
            secret_env=dict(type="dict", default={}, no_log=True),
        ),
        required_together=[("tls_cert", "tls_key")],
        supports_check_mode=True,
    )
    p = dict(module.params, env=env_strings(module.params["env"]), secret_env=env_strings(module.params["secret_env"]))

    def action() -> dict:
        return write_config(p, lambda: EngineClient.from_params(p), module.check_mode)

    run_module(module, action, DOCKER_LIBRARY)


if __name__ == "__main__":
    main()
