#!/usr/bin/python
# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_push
short_description: Push images to a registry when the registry does not already hold them
version_added: 0.1.0
description:
  - Pushes one image (O(name)) or a list (O(images)) in one module run.
  - C(changed) comes from the registry, not from the engine's progress messages. For each C(<repository>:<tag>) the
    module asks the registry for its manifest digest (C(HEAD /v2/<name>/manifests/<tag>) with the Docker and OCI
    manifest and index media types) and compares it with the digest the engine recorded for the local image in that
    repository (its C(RepoDigests)). Equal means nothing to push. Otherwise the image is pushed, and the task reports
    C(changed) when the registry's digest for the tag moved; a new tag whose layers all exist in the registry is a
    change too.
  - Every item is checked before anything is pushed (references parse and name a registry, local images exist,
    registries answer and accept the login). A bad item fails the task naming it, and nothing is pushed.
  - The registry checks run concurrently; pushes run with at most O(workers) at a time. Results come in input order;
    a failed push does not hide the others' results, and the task then fails naming each failed image.
  - When some pushes fail, the task fails with one line naming each failed image once, grouped by cause, and says
    why the registry failed a push where it can tell (its error body; the last error line of the local container that
    publishes its port; for a full storage, where it is, what is free and what abandoned uploads hold). The failed
    result still reports what happened - C(changed) is true when another image was pushed, and RV(results) holds
    every image's outcome (a failed one with C(pushed=false), C(failed=true) and its C(msg)).
  - Docker engines before 25.0 cannot name an image after an IPv6 registry address (as in C([::1]:5000/app:1)),
    so such a name is refused up front. M(dockhand.registry.image_sync), M(dockhand.registry.registry_info) and
    M(dockhand.registry.registry_prune) take the address.
author:
  - dockhand.registry contributors (@dockhand)
extends_documentation_fragment:
  - dockhand.registry.docker
  - dockhand.registry.docker.registry
  - dockhand.registry.docker.push
  - dockhand.registry.docker.attributes
options:
  name:
    description: One image to push, as C(<registry host[:port]>/<repository>[:<tag>]). A missing tag means C(latest).
    type: str
  images:
    description:
      - Images to push, each as in O(name).
      - A list of names, where M(dockhand.registry.image_tag) and M(dockhand.registry.image_publish) take a list of
        C({source, targets}) - a push acts on names the engine already holds, a tag says which image gets which names.
    type: list
    elements: str
  sources:
    description:
      - The local image each name of O(images) (or O(name)) is a tag of, keyed by that name - the source
        M(dockhand.registry.image_tag) tags it from.
      - Used in check mode only, where that tag was not made - a name not tagged yet is then compared through its
        source image. Outside check mode every name must exist in the engine.
    type: dict
    default: {}
notes:
  - In check mode, a registry that does not answer (for instance one an earlier task would create) is taken as
    empty - every image for it would be pushed - and the task warns; outside check mode that fails the task.
  - Credentials, when not given, are taken from the engine client's configuration (C(~/.docker/config.json)) if it
    holds some for the registry.
seealso:
  - module: dockhand.registry.image_tag
"""

EXAMPLES = r"""
- name: Push the demo image
  dockhand.registry.image_push:
    name: localhost:5000/go-demo:1.0

- name: Push a list in one call, eight at a time, with credentials
  dockhand.registry.image_push:
    images:
      - registry.example.com:5000/team/api:2.3.1
      - registry.example.com:5000/team/web:7
    workers: 8
    username: ci
    password: "{{ vault_registry_password }}"
    registry_ca_cert: /etc/docker/certs.d/registry.example.com:5000/ca.crt
"""

RETURN = r"""
actions:
  description: The pushes done (in check mode, that would be done), in input order, in words.
  returned: always
  type: list
  elements: str
  sample: ["push localhost:5000/go-demo:1.0 (registry lacked the tag)"]
images:
  description: Each image, in input order.
  returned: always
  type: list
  elements: dict
  sample:
    - name: localhost:5000/go-demo:1.0
      registry: localhost:5000
      repository: go-demo
      tag: "1.0"
      image_id: sha256:183903cfa8a501dcf9c2185c808b85d891caef276ee108ead1256812aad1eee3
      digest_before: null
      digest: sha256:cf265c0688c737a7a6a14810503a8cf42fdde4db8760345995fd7e23099dc4a9
      pushed: true
      changed: true
results:
  description:
    - On failure only (some pushes failed) - every image in input order, with the fields of RV(images). A failed
      image has C(pushed=false), C(changed=false), C(failed=true), C(digest=null) and its C(msg).
  returned: failure
  type: list
  elements: dict
  sample:
    - name: localhost:5000/go-demo:1.0
      digest_before: null
      digest: null
      pushed: false
      changed: false
      failed: true
      msg: "push of localhost:5000/go-demo:1.0 failed: registry localhost:5000 is unreachable: Connection refused"
pushed:
  description: The images that were pushed (in check mode, that would be pushed).
  returned: always
  type: list
  elements: str
  sample: [localhost:5000/go-demo:1.0]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockhand.registry.plugins.module_utils.args import (
    DOCKER_ARGSPEC,
    PUSH_ARGSPEC,
    REGISTRY_ARGSPEC,
    run_module,
)
from ansible_collections.dockhand.registry.plugins.module_utils.engine import DOCKER_LIBRARY, EngineClient
from ansible_collections.dockhand.registry.plugins.module_utils.publish import push_images, push_options
from ansible_collections.dockhand.registry.plugins.module_utils.transport import REQUESTS_LIBRARY


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            DOCKER_ARGSPEC,
            **REGISTRY_ARGSPEC,
            **PUSH_ARGSPEC,
            name=dict(type="str"),
            images=dict(type="list", elements="str"),
            sources=dict(type="dict", default={}),
        ),
        mutually_exclusive=[("name", "images")],
        required_one_of=[("name", "images")],
        required_together=[("username", "password")],
        supports_check_mode=True,
    )
    p = module.params
    names = p["images"] if p["images"] is not None else [p["name"]]

    def action() -> dict:
        options = push_options(p)
        engine = EngineClient.from_params(p)
        return push_images(
            engine,
            names,
            check_mode=module.check_mode,
            **options,
            sources={str(k): str(v) for k, v in p["sources"].items()},
        )

    run_module(module, action, DOCKER_LIBRARY, REQUESTS_LIBRARY)


if __name__ == "__main__":
    main()
