#!/usr/bin/python
# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_info
short_description: List what a Docker Registry holds (repositories, tags, digests, sizes, created times)
version_added: 0.2.0
description:
  - Reads the registry's catalog and tag lists (paged), then for every tag its manifest digest and media type, the
    platforms of an image index, the total size (configuration plus layers, for an index the sum over its platform
    images) and the created time (from the image configuration; for an index the newest of its platform images).
  - Many requests run at the same time on one pool of connections (O(workers)).
  - A tag the registry lists but whose manifest is gone (a registry stopped in the middle of a delete leaves such
    tags; a pull fails with C(manifest unknown)) is not listed among the tags but returned in RV(dangling) (and
    in its repository's C(dangling)) with a warning. Read again before it is reported, so a tag deleted or pushed
    while the module reads is not taken for one. Found when O(details=true).
    M(dockhand.registry.registry_prune) and M(dockhand.registry.registry_gc) remove them.
  - With O(data_path) or O(container), also the storage the registry uses and the room it has (RV(storage)), read
    from the registry's files on this host (filesystem storage driver only) - bytes of blobs, bytes in upload sessions,
    per repository the blobs it links, its manifests, tags and upload sessions, and the bytes free and in all on its
    file system. A warning says when less than 5% is free.
  - Read-only; in check mode it returns the same.
author:
  - dockhand.registry contributors (@dockhand)
extends_documentation_fragment:
  - dockhand.registry.docker
  - dockhand.registry.docker.registry
  - dockhand.registry.registry_api
  - dockhand.registry.docker.attributes
options:
  repositories:
    description:
      - Python regular expressions; only repositories whose whole name matches one of them are listed. Empty lists all.
    type: list
    elements: str
    default: []
  tags:
    description:
      - Python regular expressions; only tags whose whole name matches one of them are listed. Empty lists all.
    type: list
    elements: str
    default: []
  details:
    description:
      - Read manifests and configurations (digest, media type, size, created, platforms). V(false) lists names only.
    type: bool
    default: true
  created:
    description:
      - Read every image configuration for its created time (one request per image, about half of all requests).
      - V(false) leaves C(created) of every tag null and lists about twice as fast; digests, media types,
        platforms and sizes come from the manifests alone.
    type: bool
    default: true
  replication_state:
    description:
      - The state file of the registry's scheduled replication (the P(dockhand.registry.registry#role) role's
        C(registry_replication_state_file)) to return as RV(replication).
      - Not given - for a registry on this host (a loopback address), the state file the role wrote for it under
        C(/var/lib/dockhand/replication/) is found by itself; for any other address, none is read.
    type: path
    version_added: 0.2.0
  data_path:
    description:
      - The registry's data directory on this host (what is mounted at C(/var/lib/registry), the role's
        C(registry_data_path); for a named volume its C(Mountpoint)), for storage use read from its files. Only for the
        C(filesystem) storage driver; S3, Azure or GCS storage is not readable here.
      - The module reads it itself, so it must run on the host that holds the storage.
      - Mutually exclusive with O(container).
    type: path
  container:
    description:
      - The registry container (on the engine O(docker_host)) whose storage to report in RV(storage), in place of
        O(data_path). The module reads the source of its data mount (a host directory or a named volume) through the
        engine, then the files themselves, so the engine must be local (a C(unix://) O(docker_host)).
      - The registry address (O(registry)) says which registry is listed; this option only says where its storage is.
      - Mutually exclusive with O(data_path).
    type: str
attributes:
  diff_mode:
    support: none
seealso:
  - module: dockhand.registry.registry_prune
"""

EXAMPLES = r"""
- name: Everything the registry on localhost:5000 holds
  dockhand.registry.registry_info:
    registry: localhost:5000
  register: held

- name: What the registry holds and the storage it uses
  dockhand.registry.registry_info:
    registry: localhost:5000
    data_path: /var/lib/dockhand/registry
    details: false
  register: held
- name: Show the bytes per repository
  ansible.builtin.debug:
    msg: "{{ held.storage.repositories | items2dict(key_name='name', value_name='blob_bytes') }}"

- name: How much room the storage of the registry container has (run on the registry host)
  dockhand.registry.registry_info:
    registry: localhost:5000
    container: registry
    details: false
  register: held

- name: Release tags of the team's repositories, over HTTPS with a private CA
  dockhand.registry.registry_info:
    registry: registry.example.org:5000
    registry_ca_cert: /etc/dockhand/registry/tls/ca.crt
    username: reader
    password: "{{ reader_password }}"
    repositories: ['team/.*']
    tags: ['v?\d+\.\d+\.\d+']
"""

RETURN = r"""
registry:
  description: The registry address that was read.
  returned: always
  type: str
  sample: localhost:5000
repositories:
  description: Every listed repository with its tags, in name order; tags in version order (C(1.9) before C(1.10)).
  returned: always
  type: list
  elements: dict
  sample:
    - name: team/app
      tags:
        - tag: "1.0"
          digest: sha256:6f2c9f1a3c0b66e3f0b2f5e5a1d8b9d3c1f0e5a2b4c6d8e0f1a3b5c7d9e1f3a5
          media_type: application/vnd.docker.distribution.manifest.v2+json
          size: 2871
          created: "2026-11-30T02:00:00.123456789Z"
      dangling: ["0.9"]
dangling:
  description:
    - The dangling tags (C(repository:tag)) of the repositories listed, each also in its repository's C(dangling)
      list (present only in a repository that has some). Empty with O(details=false).
  returned: always
  type: list
  elements: str
  sample: ["team/app:0.9"]
counts:
  description: How many repositories, tags and distinct manifest digests were listed (dangling tags not counted).
  returned: always
  type: dict
  sample: {repositories: 1, tags: 12, digests: 11}
replication:
  description:
    - The last scheduled replication into this registry, as its state file holds it (see
      M(dockhand.registry.registry_replication)'s RV(dockhand.registry.registry_replication#module:state)), with
      C(age_seconds) since it finished.
  returned: when a state file was given or found
  type: dict
  sample:
    registry: 127.0.0.1:5000
    finished: "2026-12-07T03:00:04Z"
    age_seconds: 1800
    ok: false
    sources:
      - {name: hub, ok: true, tags_copied: 1, tags_present: 11, tags_failed: 0, error: null}
      - {name: partner, ok: false, tags_copied: 0, error: "registry partner.example.com is unreachable: Connection refused"}
storage:
  description:
    - Storage use read from O(data_path) (or the data directory of O(container)) - C(blobs) and C(blob_bytes) (every
      blob once), C(uploads) and C(upload_bytes) (upload sessions - pushes in progress, or left by failed and
      interrupted ones; M(dockhand.registry.registry_gc) removes abandoned ones), and C(repositories), each with
      C(name), C(blobs) and C(blob_bytes) (the blobs it links; a blob shared by repositories counts in each),
      C(manifests), C(tags), C(uploads) and C(upload_bytes).
    - C(bytes_free) and C(bytes_total) - the room on the storage's file system (C(bytes_free) is what the registry may
      still write, the room for unprivileged writers).
    - Null for a O(container) on a remote engine (a warning says so).
  returned: when O(data_path) or O(container) is set
  type: dict
  sample:
    driver: filesystem
    data_path: /var/lib/dockhand/registry
    blobs: 7
    blob_bytes: 3187203
    uploads: 1
    upload_bytes: 524288
    bytes_free: 52428800
    bytes_total: 10737418240
    repositories:
      - {name: team/app, blobs: 5, blob_bytes: 3181874, manifests: 2, tags: 2, uploads: 1, upload_bytes: 524288}
actions:
  description: Always empty (the module changes nothing).
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockhand.registry.plugins.module_utils.args import DOCKER_ARGSPEC, REGISTRY_API_ARGSPEC, run_module
from ansible_collections.dockhand.registry.plugins.module_utils.catalog import catalog_info
from ansible_collections.dockhand.registry.plugins.module_utils.diagnose import with_storage
from ansible_collections.dockhand.registry.plugins.module_utils.engine import DOCKER_LIBRARY, EngineClient
from ansible_collections.dockhand.registry.plugins.module_utils.replication import read_state
from ansible_collections.dockhand.registry.plugins.module_utils.transport import REQUESTS_LIBRARY


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            DOCKER_ARGSPEC,
            **REGISTRY_API_ARGSPEC,
            repositories=dict(type="list", elements="str", default=[]),
            tags=dict(type="list", elements="str", default=[]),
            details=dict(type="bool", default=True),
            created=dict(type="bool", default=True),
            replication_state=dict(type="path"),
            data_path=dict(type="path"),
            container=dict(type="str"),
        ),
        mutually_exclusive=[("data_path", "container")],
        supports_check_mode=True,
    )
    p = module.params

    def action() -> dict:
        result = with_storage(catalog_info, p, lambda: EngineClient.from_params(p))
        state = read_state(p["registry"], p["replication_state"])
        if state is not None:
            result["replication"] = state
        return result

    libraries = (REQUESTS_LIBRARY, DOCKER_LIBRARY) if p["container"] is not None else (REQUESTS_LIBRARY,)
    run_module(module, action, *libraries)


if __name__ == "__main__":
    main()
