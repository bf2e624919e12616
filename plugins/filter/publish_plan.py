# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn the publish role's list of images into image_tag items and image_push names."""

from __future__ import annotations

DOCUMENTATION = r"""
name: publish_plan
short_description: The image_tag items and image_push names for a list of images to publish
version_added: 0.1.0
description:
  - Takes the P(dockhand.registry.publish#role) role's list of images (C(name), optional C(tag), C(repository),
    C(source)) and a registry address; returns C(tag_items), the O(dockhand.registry.image_tag#module:images) of
    M(dockhand.registry.image_tag), and C(push_names), the O(dockhand.registry.image_push#module:images) of
    M(dockhand.registry.image_push), and C(sources), each push name's local source image (the
    O(dockhand.registry.image_push#module:sources) of M(dockhand.registry.image_push)).
  - The target of an image is C(<registry>/<repository>:<tag>); C(repository) defaults to C(name), C(tag) to
    V(latest), and C(source), the local image to tag, to C(<name>:<tag>).
options:
  _input:
    description: The list of images.
    type: list
    elements: dict
    required: true
  registry:
    description: The registry address, C(host[:port]).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Show the plan
  ansible.builtin.debug:
    msg: "{{ [{'name': 'go-demo', 'tag': '1.0'}] | dockhand.registry.publish_plan('localhost:5000') }}"
  # {"tag_items": [{"source": "go-demo:1.0", "targets": ["localhost:5000/go-demo:1.0"]}],
  #  "push_names": ["localhost:5000/go-demo:1.0"], "sources": {"localhost:5000/go-demo:1.0": "go-demo:1.0"}}
"""

RETURN = r"""
_value:
  description: C(tag_items), C(push_names) and C(sources).
  type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.dockhand.registry.plugins.module_utils.reference import (
    InvalidReference,
    Reference,
    validate_registry,
    validate_repository,
    validate_tag,
)

_KEYS = {"name", "tag", "repository", "source"}


def publish_plan(images, registry):
    """``{"tag_items": [...], "push_names": [...], "sources": {...}}`` for ``images`` published to ``registry``."""
    try:
        validate_registry(to_text(registry))
    except InvalidReference as exc:
        raise AnsibleFilterError(to_text(exc)) from None
    if not isinstance(images, list):
        raise AnsibleFilterError("publish_plan expects a list of images, got %s" % type(images).__name__)
    by_source: dict[str, list[str]] = {}
    names: list[str] = []
    sources: dict[str, str] = {}
    for image in images:
        if not isinstance(image, dict) or not image.get("name"):
            raise AnsibleFilterError("each image to publish needs a name, got %r" % (image,))
        unknown = set(image) - _KEYS
        if unknown:
            raise AnsibleFilterError("image %s has unknown keys: %s" % (image["name"], ", ".join(sorted(unknown))))
        try:
            tag = validate_tag(to_text(image.get("tag") or "latest"))
            repository = validate_repository(to_text(image.get("repository") or image["name"]))
        except InvalidReference as exc:
            raise AnsibleFilterError("image %s: %s" % (image["name"], exc)) from None
        source = to_text(image.get("source") or "%s:%s" % (image["name"], tag))
        target = str(Reference(registry, repository, tag))
        by_source.setdefault(source, [])
        if target not in by_source[source]:
            by_source[source].append(target)
        if target not in names:
            names.append(target)
            sources[target] = source
    return {
        "tag_items": [{"source": source, "targets": targets} for source, targets in by_source.items()],
        "push_names": names,
        "sources": sources,
    }


class FilterModule:
    def filters(self):
        return {"publish_plan": publish_plan}
