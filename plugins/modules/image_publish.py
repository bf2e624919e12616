#!/usr/bin/python
# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_publish
short_description: Tag local images for a registry and push what the registry lacks, a whole list in one call
version_added: 0.1.0
description:
  - Does what M(dockhand.registry.image_tag) and then M(dockhand.registry.image_push) do, for a whole list
    (O(images)), in one module run (one process, one engine connection, one C(docker images) call per step).
    The P(dockhand.registry.publish#role) role uses it, so that publishing many images costs one module run.
  - Tagging first. Each target is made to point to its source's image ID (C(changed) when a target was missing or
    pointed elsewhere). Every item is checked before anything is tagged; if a tag fails, nothing is pushed and the
    task fails naming each failed target, with every item's outcome in C(results).
  - Then pushing every target, as M(dockhand.registry.image_push) does it. Registry manifest digests (HEAD) asked
    concurrently and compared with the local RepoDigests; pushes with at most O(workers) at a time; results in input
    order; a failed push does not hide the others' results, and the task then fails naming each failed image.
  - When some pushes fail, the task fails with one line naming each failed image once, grouped by cause, and says
    why the registry failed a push where it can tell (its error body; the last error line of the local container that
    publishes its port; for a full storage, where it is, what is free and what abandoned uploads hold). The failed
    result still reports what happened - C(changed) is true when a tag was made or another image was pushed, and RV(results) holds
    every image's outcome (a failed one with C(pushed=false), C(failed=true) and its C(msg)).
  - Docker engines before 25.0 cannot name an image after an IPv6 registry address (as in C([::1]:5000/app:1)),
    so such a name is refused up front. M(dockhand.registry.image_sync), M(dockhand.registry.registry_info) and
    M(dockhand.registry.registry_prune) take the address.
  - An item with no O(images[].targets) is refused (a list that rendered empty would otherwise publish nothing).
  - In check mode nothing is tagged or pushed; the result says what would be.
author:
  - dockhand.registry contributors (@dockhand)
extends_documentation_fragment:
  - dockhand.registry.docker
  - dockhand.registry.docker.registry
  - dockhand.registry.docker.push
  - dockhand.registry.docker.attributes
options:
  images:
    description: Sources and the registry names to publish them as.
    type: list
    elements: dict
    required: true
    suboptions:
      source:
        description: The local image to publish (name, name:tag, or image ID).
        type: str
        required: true
      targets:
        description: The names to publish it as, each C(<registry host[:port]>/<repository>[:<tag>]); at least one.
        type: list
        elements: str
        required: true
seealso:
  - module: dockhand.registry.image_tag
  - module: dockhand.registry.image_push
"""

EXAMPLES = r"""
- name: Publish two images to the local registry in one module run
  dockhand.registry.image_publish:
    images:
      - source: api:2.3.1
        targets: [localhost:5000/team/api:2.3.1]
      - source: web:7
        targets: [localhost:5000/team/web:7, localhost:5000/team/web:latest]
    workers: 8
"""

RETURN = r"""
actions:
  description: The tags made and the pushes done (in check mode, that would be), in that order, in words.
  returned: always
  type: list
  elements: str
  sample: ["tag go-demo:1.0 as localhost:5000/go-demo:1.0", "push localhost:5000/go-demo:1.0 (registry lacked the tag)"]
images:
  description: Each target, in input order, with the fields M(dockhand.registry.image_push) returns and C(tagged).
  returned: always
  type: list
  elements: dict
tagged:
  description: The targets that were (in check mode, would be) tagged.
  returned: always
  type: list
  elements: str
results:
  description:
    - On failure only (some pushes failed) - every target in input order, with the fields of RV(images); a failed
      one as M(dockhand.registry.image_push) returns it (C(pushed=false), C(failed=true), its C(msg)).
  returned: failure
  type: list
  elements: dict
pushed:
  description: The targets that were (in check mode, would be) pushed.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockhand.registry.plugins.module_utils.args import (
    DOCKER_ARGSPEC,
    PUSH_ARGSPEC,
    REGISTRY_ARGSPEC,
    TAG_ITEM_OPTIONS,
    run_module,
)
from ansible_collections.dockhand.registry.plugins.module_utils.engine import DOCKER_LIBRARY, EngineClient
from ansible_collections.dockhand.registry.plugins.module_utils.publish import TagItem, publish_images, push_options
from ansible_collections.dockhand.registry.plugins.module_utils.transport import REQUESTS_LIBRARY


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            DOCKER_ARGSPEC,
            **REGISTRY_ARGSPEC,
            **PUSH_ARGSPEC,
            images=dict(type="list", elements="dict", required=True, options=TAG_ITEM_OPTIONS),
        ),
        required_together=[("username", "password")],
        supports_check_mode=True,
    )
    p = module.params
    items = [TagItem(item["source"], item["targets"]) for item in p["images"]]

    def action() -> dict:
        options = push_options(p)
        engine = EngineClient.from_params(p)
        return publish_images(
            engine,
            items,
            check_mode=module.check_mode,
            **options,
        )

    run_module(module, action, DOCKER_LIBRARY, REQUESTS_LIBRARY)


if __name__ == "__main__":
    main()
