#!/usr/bin/python
# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_replication
short_description: Copy the chosen tags of upstream registries into a registry, source by source, and record the run
version_added: 0.2.0
description:
  - For each of O(sources) - an upstream registry and some of its repositories - lists each repository's tags, chooses
    them with O(sources[].tag_pattern), O(sources[].tag_semver) and O(sources[].tag_limit), and copies them into
    O(registry) with the code of M(dockhand.registry.image_sync) (digest for digest, nothing copied twice, a re-run
    copies nothing).
  - Sources run one after the other. A source that fails (unreachable, login refused, a repository or tag that does
    not copy) is recorded with its error and the other sources still run; the task then fails naming each failed
    source.
  - With O(state_file), the run's status (start and end, duration, per source the tags chosen, copied, present and
    failed, errors, and the time of its last successful run) is written to that file (JSON, written atomically).
    M(dockhand.registry.registry_info) reads it back.
  - The P(dockhand.registry.registry#role) role runs the same replication on a schedule (C(registry_replication)),
    and this module in check mode to show what the next replication would copy.
author:
  - dockhand.registry contributors (@dockhand)
extends_documentation_fragment:
  - dockhand.registry.docker.registry
  - dockhand.registry.docker.attributes
options:
  registry:
    description: The registry to copy into, C(host:port) (no scheme); its login is O(username) / O(password).
    type: str
    required: true
  workers:
    description: How many tags of a source are copied at the same time, 1 to 64.
    type: int
    default: 4
  registry_timeout:
    description: Seconds to wait for each answer of a registry.
    type: float
    default: 30
  state_file:
    description: Write the run's status to this file (not in check mode).
    type: path
  sources:
    description: The upstream registries.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The source's name in the status (unique). Default O(sources[].registry).
        type: str
      registry:
        description: The upstream registry, C(host[:port]), for example V(registry-1.docker.io) or V(ghcr.io).
        type: str
        required: true
      repositories:
        description: Repositories of the upstream to copy, for example V(library/nginx).
        type: list
        elements: str
        required: true
      dest_prefix:
        description: A path put before each repository name in O(registry) (V(mirror) gives C(mirror/library/nginx)).
        type: str
        default: ""
      tag_pattern:
        description: As M(dockhand.registry.image_sync)'s O(dockhand.registry.image_sync#module:tag_pattern).
        type: str
      tag_semver:
        description: As M(dockhand.registry.image_sync)'s O(dockhand.registry.image_sync#module:tag_semver), for example V(>=1.25,<2).
        type: str
      tag_limit:
        description: As M(dockhand.registry.image_sync)'s O(dockhand.registry.image_sync#module:tag_limit).
        type: int
      platforms:
        description: Copy only these platforms of an image index (C(os/architecture[/variant])).
        type: list
        elements: str
      username:
        description: User name for the upstream.
        type: str
      password:
        description: Password of O(sources[].username).
        type: str
      credentials_file:
        description:
          - A file on the host with the upstream login, readable by its owner only (mode 0600; any other mode is refused),
            either JSON with the keys C(username) and C(password), or a Docker client configuration
            (C(~/.docker/config.json), its C(auths) by registry).
        type: path
      registry_scheme:
        description: How to reach the upstream, as O(registry_scheme).
        type: str
        choices: [auto, https, http]
        default: auto
      registry_ca_cert:
        description: A CA certificate file (PEM) to verify the upstream's certificate with.
        type: path
      registry_validate_certs:
        description: Verify the upstream's TLS certificate.
        type: bool
        default: true
notes:
  - Each source needs at least one of O(sources[].tag_pattern), O(sources[].tag_semver) and O(sources[].tag_limit);
    O(sources[].tag_semver) and O(sources[].tag_limit) need the Python library C(packaging) on the host.
seealso:
  - module: dockhand.registry.image_sync
  - module: dockhand.registry.registry_info
"""

EXAMPLES = r"""
- name: Mirror nginx 1.25 and later 1.x releases, and the newest three alpine tags, into this host's registry
  dockhand.registry.registry_replication:
    registry: localhost:5000
    state_file: /var/lib/dockhand/replication/registry.json
    sources:
      - name: hub
        registry: registry-1.docker.io
        repositories: [library/nginx]
        tag_semver: ">=1.25,<2"
        dest_prefix: mirror
        platforms: [linux/amd64]
        credentials_file: /etc/dockhand/hub.json
      - name: alpine
        registry: registry-1.docker.io
        repositories: [library/alpine]
        tag_limit: 3
"""

RETURN = r"""
state:
  description:
    - The run's status, as written to O(state_file) - C(version), C(registry), C(started), C(finished) (UTC),
      C(duration_seconds), C(ok), and C(sources), one record per source.
    - A source's record - C(name), C(registry), C(started), C(finished), C(duration_seconds), C(ok), C(error) (a
      source-wide failure, or null), C(repositories) (per repository what the tag options chose), C(tags_chosen),
      C(tags_copied), C(tags_present), C(tags_failed), C(copied) (destination references with digests),
      C(failures) (C(tag) or C(repository), C(msg)) and C(last_success).
  returned: always
  type: dict
  sample:
    version: 1
    registry: 127.0.0.1:5000
    started: "2026-12-07T03:00:00Z"
    finished: "2026-12-07T03:00:04Z"
    duration_seconds: 4.1
    ok: true
    sources:
      - name: hub
        registry: registry-1.docker.io
        ok: true
        error: null
        repositories: {library/nginx: {listed: 120, not_matching_pattern: 0, not_versions: 64, outside_range: 44, chosen: 12}}
        tags_chosen: 12
        tags_copied: 1
        tags_present: 11
        tags_failed: 0
        copied: ["127.0.0.1:5000/mirror/library/nginx:1.27.3@sha256:3f9a..."]
        failures: []
        last_success: "2026-12-07T03:00:04Z"
state_file:
  description: The state file written (null without O(state_file)).
  returned: always
  type: str
synced:
  description: Destination references copied (in check mode, that would be).
  returned: always
  type: list
  elements: str
actions:
  description: One line per tag copied (in check mode, that would be).
  returned: always
  type: list
  elements: str
  sample: ["would copy 127.0.0.1:5000/mirror/library/nginx:1.27.3@sha256:3f9a..."]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockhand.registry.plugins.module_utils.args import REGISTRY_ARGSPEC, run_module
from ansible_collections.dockhand.registry.plugins.module_utils.replication import replicate
from ansible_collections.dockhand.registry.plugins.module_utils.tag_select import PACKAGING_LIBRARY
from ansible_collections.dockhand.registry.plugins.module_utils.transport import REQUESTS_LIBRARY

SOURCE_OPTIONS = {
    "name": {"type": "str"},
    "registry": {"type": "str", "required": True},
    "repositories": {"type": "list", "elements": "str", "required": True},
    "dest_prefix": {"type": "str", "default": ""},
    "tag_pattern": {"type": "str"},
    "tag_semver": {"type": "str"},
    "tag_limit": {"type": "int"},
    "platforms": {"type": "list", "elements": "str"},
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "credentials_file": {"type": "path"},
    "registry_scheme": {"type": "str", "choices": ["auto", "https", "http"], "default": "auto"},
    "registry_ca_cert": {"type": "path"},
    "registry_validate_certs": {"type": "bool", "default": True},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            REGISTRY_ARGSPEC,
            registry=dict(type="str", required=True),
            workers=dict(type="int", default=4),
            registry_timeout=dict(type="float", default=30),
            state_file=dict(type="path"),
            sources=dict(type="list", elements="dict", required=True, options=SOURCE_OPTIONS),
        ),
        supports_check_mode=True,
    )
    p = module.params
    needs_packaging = any(s.get("tag_semver") or s.get("tag_limit") for s in p["sources"])

    def action() -> dict:
        # A failed source raises ReplicationError (a PartialFailure): run_module returns every source's record and
        # what was copied with the failure.
        return replicate(p, check_mode=module.check_mode)

    run_module(module, action, REQUESTS_LIBRARY, *([PACKAGING_LIBRARY] if needs_packaging else []))


if __name__ == "__main__":
    main()
