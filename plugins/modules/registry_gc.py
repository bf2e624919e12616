#!/usr/bin/python
# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_gc
short_description: Garbage-collect a registry's storage while the registry is read-only
version_added: 0.2.0
description:
  - Runs C(registry garbage-collect) against the registry's own storage and configuration, inside its container
    (O(name)), or inside this node's task of a registry Swarm service (O(service)).
  - First a dry run on the registry as it runs. When nothing can be removed, that is all (no read-only window,
    not changed).
  - Otherwise the registry is recreated with C(storage.maintenance.readonly) on (data kept, see
    M(dockhand.registry.registry_container)). Pulls keep being served, pushes are refused with the registry's
    read-only error. The collection runs, then the registry is recreated read-write, also when the collection
    fails or the module receives SIGTERM. A registry left read-only by a run that was killed outright is made
    read-write again by the next run, first.
  - Each switch restarts the registry process. No client is refused for it. The old registry finishes the requests
    in flight, and new connections to the port are held (not refused) until the new registry listens, which needs
    root and C(iptables) on the registry host. Without them the result carries a warning, and a client connecting
    in that fraction of a second is refused.
  - What goes is computed by the module, never by the registry binary's C(--delete-untagged) (distribution 2.8 keeps
    only the manifests a tag names, and removes the platform images of every multi-platform image). With the
    registry's storage readable on the module's host (the filesystem driver on a bind mount or volume of a local
    engine), in the read-only window the module removes the manifests no tag reaches (O(delete_untagged)), dangling
    tags (a tag whose manifest is gone, as a registry killed in the middle of a delete leaves it), abandoned upload
    sessions (O(uploads_older_than_minutes)) and repositories left with nothing (so C(_catalog) and
    M(dockhand.registry.registry_info) no longer list them). Then C(registry garbage-collect) runs without
    C(--delete-untagged) - it keeps every remaining manifest and what it references, and removes the other blobs.
  - What a tag reaches is never removed - its manifest, the manifests of an image index (a Docker manifest list or
    an OCI index) at any depth, a manifest whose C(subject) is reached (OCI referrers such as signatures), and their
    configurations and layers.
  - Reports what it removed (blobs with their bytes, manifests, repositories, dangling tags, upload sessions), and
    separately the storage's usage before and after, and how long the registry was read-only.
  - With O(service) (a service of M(dockhand.registry.registry_service), replicas on shared storage), the switch is
    one service update of the task environment, rolled out by the service's own update settings (one task at a
    time, so the other nodes keep answering), and the collection starts only once every running task runs the
    read-only spec and answers C(/v2/). Run it on a manager that runs one of the service's tasks; the collection
    runs with C(docker exec) in that task (the configuration is a Swarm secret only a task can read). The way back
    is one more rolling update; nothing else in the service spec changes.
author:
  - dockhand.registry contributors (@dockhand)
extends_documentation_fragment:
  - dockhand.registry.docker
  - dockhand.registry.docker.attributes
options:
  name:
    description: Name of the registry container.
    type: str
    default: registry
  service:
    description:
      - Name of a registry Swarm service (see M(dockhand.registry.registry_service)) instead of a container.
      - Mutually exclusive with O(name).
    type: str
  delete_untagged:
    description:
      - Also remove the manifests of a repository that none of its tags reaches, as left by
        M(dockhand.registry.registry_prune) (the platform images of a deleted index) or by re-pushed tags, and
        repositories left without a tag.
      - Computed by the module from the registry's storage, which must be readable on the module's host (the
        filesystem storage driver, on a bind mount or volume of a local engine). Elsewhere (a remote O(docker_host),
        another storage driver) the module fails, naming why, before anything is switched; without
        O(delete_untagged) it runs there, keeping every manifest.
    type: bool
    default: false
  uploads_older_than_minutes:
    description:
      - Remove the upload sessions (the registry's C(_uploads)) nothing was written to for this many minutes, in the
        read-only window. Their bytes are reported in RV(upload_bytes_removed).
      - V(0) removes every upload session. An upload in flight when the window opens is cut by the switch anyway
        (Docker, containerd and skopeo start a failed upload again from the beginning).
      - Needs the registry's storage readable on the module's host, as O(delete_untagged) does; elsewhere nothing is
        done about uploads (the registry itself purges sessions older than a week).
    type: int
    default: 60
  wait_timeout:
    description:
      - Seconds to wait for the registry to answer after each switch.
      - With O(service), per step of the service's rolling update (one task with the default update parallelism,
        plus the update delay), so a service of N tasks gets N times this for every task to run the new spec and
        answer; else the module fails in one line naming the service and what did not converge (the registry is
        switched back read-write first).
    type: int
    default: 60
notes:
  - In check mode the module computes what would be removed from the live storage (and runs C(garbage-collect
    --dry-run)) and reports it in the same fields; the registry is not switched.
  - With O(service), a node does not answer while its task is replaced (twice; into and out of the window; with
    host-mode ports and stop-first updates under a second), one node at a time. Clients need a load balancer or
    client that tries the next node, as for any rolling update of the service. See the collection's
    docs/maintenance.md.
seealso:
  - module: dockhand.registry.registry_prune
  - module: dockhand.registry.registry_container
"""

EXAMPLES = r"""
- name: Reclaim the space of deleted tags
  dockhand.registry.registry_gc:
    name: registry
    delete_untagged: true
  register: gc

- name: Reclaim the space of a registry Swarm service (on a manager that runs one of its tasks)
  dockhand.registry.registry_gc:
    service: registry
    delete_untagged: true
    wait_timeout: 120  # per task of the rolling update
  run_once: true

- name: Free a full disk now - every upload session too
  dockhand.registry.registry_gc:
    name: registry
    uploads_older_than_minutes: 0

- name: Say what it did
  ansible.builtin.debug:
    msg: >-
      {{ gc.blobs_removed }} blobs ({{ gc.bytes_removed }} bytes), {{ gc.manifests_removed }} manifests,
      {{ gc.uploads_removed }} upload sessions; read-only for {{ gc.read_only_seconds }} s
"""

RETURN = r"""
blobs_removed:
  description: Blobs this run removed (in check mode, would remove); the length of RV(removed).
  returned: always
  type: int
  sample: 16
bytes_removed:
  description:
    - Bytes of the blobs this run removed (in check mode, would remove), each blob measured just before it went.
    - Null when the storage is not on this host.
  returned: always
  type: int
  sample: 4212
removed:
  description: Digests of the blobs removed (in check mode, that would be).
  returned: always
  type: list
  elements: str
  sample: ["sha256:6f2c9f1a3c0b66e3f0b2f5e5a1d8b9d3c1f0e5a2b4c6d8e0f1a3b5c7d9e1f3a5"]
manifests:
  description: The manifests removed because no tag reaches them (O(delete_untagged)), as C(repository@digest).
  returned: always
  type: list
  elements: str
  sample: ["app@sha256:0411f73a539e39678fab17e7684b60fbbbfd0b3e6824c85dde5724e7fe679967"]
manifests_removed:
  description: The length of RV(manifests).
  returned: always
  type: int
  sample: 8
repositories_removed:
  description:
    - Repositories removed because nothing was left in them (no tag, no manifest, no upload session; with
      O(delete_untagged), no tag). C(_catalog) no longer lists them.
  returned: always
  type: list
  elements: str
  sample: ["team/old-tool"]
dangling_tags_removed:
  description: Tags removed because the manifest they name is gone, as C(repository:tag).
  returned: always
  type: list
  elements: str
  sample: ["app:1.4"]
uploads_removed:
  description: Upload sessions removed (see O(uploads_older_than_minutes)).
  returned: always
  type: int
  sample: 1
upload_bytes_removed:
  description: Bytes of the upload sessions removed.
  returned: always
  type: int
  sample: 2621440
read_only_seconds:
  description: How long pushes were refused (from the switch to read-only until the read-write registry answered); 0 when not switched.
  returned: always
  type: float
  sample: 1.84
gc_seconds:
  description: How long the collection itself ran.
  returned: always
  type: float
  sample: 0.05
before:
  description:
    - Storage usage when the run started - blobs and their bytes, upload sessions and theirs; null when the storage is
      not on this host. Usage, not what this run did - pushes count in it too.
  returned: always
  type: dict
  sample: {blobs: 40, bytes: 12345, uploads: 1, upload_bytes: 2621440}
after:
  description: Storage usage when the run ended (as RV(before)).
  returned: always
  type: dict
  sample: {blobs: 24, bytes: 8133, uploads: 0, upload_bytes: 0}
actions:
  description: What was done (in check mode, what would be done).
  returned: always
  type: list
  elements: str
  sample: ["switch the registry container registry to read-only", "remove 2 manifests no tag reaches: app@sha256:...",
           "garbage-collect: 16 blobs (4212 bytes) removed", "switch the registry container registry back to read-write"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockhand.registry.plugins.module_utils.args import DOCKER_ARGSPEC, run_module
from ansible_collections.dockhand.registry.plugins.module_utils.engine import DOCKER_LIBRARY, EngineClient
from ansible_collections.dockhand.registry.plugins.module_utils.gc import collect
from ansible_collections.dockhand.registry.plugins.module_utils.transport import REQUESTS_LIBRARY


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            DOCKER_ARGSPEC,
            name=dict(type="str", default="registry"),
            service=dict(type="str"),
            delete_untagged=dict(type="bool", default=False),
            uploads_older_than_minutes=dict(type="int", default=60),
            wait_timeout=dict(type="int", default=60),
        ),
        mutually_exclusive=[("name", "service")],
        supports_check_mode=True,
    )
    p = module.params

    def action() -> dict:
        return collect(
            lambda: EngineClient.from_params(p),
            p["name"],
            p["service"],
            p["wait_timeout"],
            module.check_mode,
            p["delete_untagged"],
            p["uploads_older_than_minutes"],
        )

    run_module(module, action, DOCKER_LIBRARY, REQUESTS_LIBRARY)


if __name__ == "__main__":
    main()
