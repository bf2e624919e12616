#!/usr/bin/python
# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_tag
short_description: Tag local images, a whole list in one call
version_added: 0.1.0
description:
  - Makes each target name point to the image ID of its source image, for one image (O(source) and O(targets)) or a
    list (O(images)) in one module run.
  - Reports C(changed) only when a target is missing or points to another image ID.
  - Every item is checked first (references parse, source images exist, every item has at least one target); if
    any is bad, nothing is tagged and the task fails naming each bad value.
  - Docker engines before 25.0 cannot name an image after an IPv6 registry address (as in C([::1]:5000/app:1)),
    so such a target is refused up front.
author:
  - dockhand.registry contributors (@dockhand)
extends_documentation_fragment:
  - dockhand.registry.docker
  - dockhand.registry.docker.attributes
options:
  source:
    description: The local image to tag (name, name:tag, or image ID).
    type: str
  targets:
    description: The names to give O(source), as C([registry/]repository[:tag]). A missing tag means C(latest).
    type: list
    elements: str
  images:
    description: A list of sources and their targets, tagged in one module run.
    type: list
    elements: dict
    suboptions:
      source:
        description: The local image to tag.
        type: str
        required: true
      targets:
        description: The names to give it.
        type: list
        elements: str
        required: true
"""

EXAMPLES = r"""
- name: Name the demo image for the local registry
  dockhand.registry.image_tag:
    source: go-demo:1.0
    targets:
      - localhost:5000/go-demo:1.0
      - localhost:5000/go-demo:latest

- name: Tag a whole list in one call
  dockhand.registry.image_tag:
    images:
      - source: api:2.3.1
        targets: [localhost:5000/team/api:2.3.1]
      - source: web:7
        targets: [localhost:5000/team/web:7]
"""

RETURN = r"""
actions:
  description: The tags made (in check mode, that would be made), in input order, in words.
  returned: always
  type: list
  elements: str
  sample: ["tag go-demo:1.0 as localhost:5000/go-demo:1.0"]
images:
  description: Each source with its targets, in input order.
  returned: always
  type: list
  elements: dict
  sample:
    - source: go-demo:1.0
      image_id: sha256:183903cfa8a501dcf9c2185c808b85d891caef276ee108ead1256812aad1eee3
      changed: true
      targets:
        - name: localhost:5000/go-demo:1.0
          before: null
          changed: true
tagged:
  description: The targets that were (in check mode, would be) tagged.
  returned: always
  type: list
  elements: str
  sample: [localhost:5000/go-demo:1.0]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockhand.registry.plugins.module_utils.args import DOCKER_ARGSPEC, TAG_ITEM_OPTIONS, run_module
from ansible_collections.dockhand.registry.plugins.module_utils.engine import DOCKER_LIBRARY, EngineClient
from ansible_collections.dockhand.registry.plugins.module_utils.publish import TagItem, tag_images


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            DOCKER_ARGSPEC,
            source=dict(type="str"),
            targets=dict(type="list", elements="str"),
            images=dict(type="list", elements="dict", options=TAG_ITEM_OPTIONS),
        ),
        mutually_exclusive=[("images", "source"), ("images", "targets")],
        required_one_of=[("images", "source")],
        required_together=[("source", "targets")],
        supports_check_mode=True,
    )
    p = module.params
    if p["images"] is not None:
        items = [TagItem(item["source"], item["targets"]) for item in p["images"]]
    else:
        items = [TagItem(p["source"], p["targets"])]

    def action() -> dict:
        engine = EngineClient.from_params(p)
        return tag_images(engine, items, module.check_mode)

    run_module(module, action, DOCKER_LIBRARY)


if __name__ == "__main__":
    main()
