#!/usr/bin/python
# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_provision
short_description: Make an image present in the engine - pull it, load it from an archive, or build it
version_added: 0.1.0
description:
  - When the engine already has O(name), nothing happens (unless O(force_build) is set).
  - Otherwise the sources are tried in this order, each only when enabled, and the first that works wins - pull
    O(name) (O(pull)), load a C(docker save) archive (O(archive)), build a context directory (O(build_path)).
  - With O(force_build), the context is built every run; the engine's build cache gives an unchanged context the same
    image ID, so C(changed) is true only when the image ID moves.
author:
  - dockhand.registry contributors (@dockhand)
extends_documentation_fragment:
  - dockhand.registry.docker
  - dockhand.registry.docker.attributes
options:
  name:
    description: The image, as C([registry/]repository[:tag]).
    type: str
    required: true
  pull:
    description: Try to pull O(name) when it is missing.
    type: bool
    default: true
  archive:
    description: A C(docker save) archive on the target host that holds O(name). Loaded when pulling did not work.
    type: path
  build_path:
    description: A build context directory on the target host, built as O(name) when nothing else gave the image.
    type: path
  dockerfile:
    description: Dockerfile name inside O(build_path).
    type: str
  force_build:
    description: Build O(build_path) every run, even when O(name) exists.
    type: bool
    default: false
  allow_missing:
    description:
      - When no enabled source gives the image, return RV(present=false) instead of failing (a later task can
        then try another way).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Registry image, pulled or loaded from an archive shipped to the host
  dockhand.registry.image_provision:
    name: registry:2
    archive: /var/cache/images/registry-2.tar

- name: Build the demo image from its context every run (changed only if it changed)
  dockhand.registry.image_provision:
    name: go-demo:1.0
    build_path: /var/cache/dockhand/demo
    pull: false
    force_build: true
"""

RETURN = r"""
actions:
  description: What was done (in check mode, what would be done) to make the image present - its pull, load or build.
  returned: always
  type: list
  elements: str
  sample: ["build go-demo:1.0 from /srv/build/go-demo"]
present:
  description: Whether the engine has the image now (in check mode, would have it).
  returned: always
  type: bool
image_id:
  description: The image ID (null in check mode when the image would be fetched).
  returned: always
  type: str
  sample: sha256:3c4578a8dcb960ad772fddb090492b9ca50d61afc5b3fe51215332d69310aa01
source:
  description: Where the image came from - V(local), V(pull), V(archive) or V(build); null when it is missing.
  returned: always
  type: str
  sample: build
attempts:
  description: Why the sources tried before the one that worked did not work.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockhand.registry.plugins.module_utils.args import DOCKER_ARGSPEC, run_module
from ansible_collections.dockhand.registry.plugins.module_utils.common import pick
from ansible_collections.dockhand.registry.plugins.module_utils.engine import DOCKER_LIBRARY, EngineClient
from ansible_collections.dockhand.registry.plugins.module_utils.provision import provision_image


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            DOCKER_ARGSPEC,
            name=dict(type="str", required=True),
            pull=dict(type="bool", default=True),
            archive=dict(type="path"),
            build_path=dict(type="path"),
            dockerfile=dict(type="str"),
            force_build=dict(type="bool", default=False),
            allow_missing=dict(type="bool", default=False),
        ),
        required_by={"dockerfile": ("build_path",)},
        supports_check_mode=True,
    )
    p = module.params
    if p["force_build"] and not p["build_path"]:
        module.fail_json(msg="force_build needs build_path")

    def action() -> dict:
        engine = EngineClient.from_params(p)
        options = pick(p, "pull", "archive", "build_path", "dockerfile", "force_build", "allow_missing")
        result = provision_image(engine, p["name"], check_mode=module.check_mode, **options)
        result["diff"] = {"before": {"image_id": result.pop("before", None)}, "after": {"image_id": result["image_id"]}}
        return result

    run_module(module, action, DOCKER_LIBRARY)


if __name__ == "__main__":
    main()
