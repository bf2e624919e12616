#!/usr/bin/python
# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_prune
short_description: Delete the tags a retention policy lets go from a Docker Registry
version_added: 0.2.0
description:
  - For every repository matched by a rule (the first matching rule applies), orders the tags newest first by the
    created time of their image configuration; equal times are ordered by tag name in version order, highest first
    (C(1.10) before C(1.9)), so the outcome does not depend on the order the registry lists them in.
  - A tag goes when it is not among the O(rules[].keep_last) newest, matches none of O(rules[].keep_tags) and, when
    O(rules[].older_than_days) is set, is older than that.
  - Deletes through the registry API (manifest C(DELETE) by digest), which removes every tag of that digest. A digest
    that a kept tag (or a kept image index) still references is never deleted; its tags stay and say why in RV(kept).
  - Another client may tag while the module deletes, and such a delete would take the tag with it. So every delete
    waits for a fresh read of the repository's kept tags (and of any tag that appeared after the plan was made) and
    is skipped when one of them now points at its digest (RV(skipped)). After the deletes every such tag is read
    again; one that vanished all the same (moved in the instant between that read and the delete) is put back from
    the manifest bytes read before the delete (its blobs stay until a garbage collection), listed in RV(restored)
    with a warning. A tag the other client moved that way comes back where it was last read.
  - Parallel deletes share those reads, so a prune of 300 tags sends about a quarter more requests than deletes
    alone (a C(tags/list) and a C(HEAD) per kept tag every few deletes, see docs/maintenance.md).
  - Dangling tags of the repositories the rules match (listed, but their manifest is gone, as a registry stopped in
    the middle of a delete leaves them; a pull fails) are removed whatever the rules say, and listed in
    RV(dangling_removed) with a warning. The registry API cannot delete a tag whose manifest is gone (distribution
    2.8 deletes by digest only), so each is moved onto an empty image index of the run's own, which is then deleted.
  - Distribution 2.8 sometimes fails a delete (HTTP 500) after removing the manifest, leaving its tags dangling,
    when another client writes a tag of the repository at that moment; those tags are removed the same way and a
    warning says so. Reads the registry answers with such an error are asked again.
  - Deletes need C(storage.delete.enabled) on the registry (the P(dockhand.registry.registry#role) role turns it on
    when retention is configured); the module asks before deleting anything and fails with one line naming the fix.
  - Space is reclaimed only by a garbage collection afterwards (M(dockhand.registry.registry_gc)).
author:
  - dockhand.registry contributors (@dockhand)
extends_documentation_fragment:
  - dockhand.registry.docker.registry
  - dockhand.registry.registry_api
  - dockhand.registry.docker.attributes
options:
  rules:
    description: Retention rules, tried in order for each repository.
    type: list
    elements: dict
    required: true
    suboptions:
      repository:
        description: Python regular expression matched against the whole repository name.
        type: str
        default: ".*"
      keep_last:
        description: Keep the N newest tags.
        type: int
      keep_tags:
        description: Python regular expressions; tags whose whole name matches one are always kept.
        type: list
        elements: str
        default: []
      older_than_days:
        description:
          - Delete only tags older than this many days (created time). At least one of O(rules[].keep_last) and
            O(rules[].older_than_days) is required.
        type: int
seealso:
  - module: dockhand.registry.registry_info
  - module: dockhand.registry.registry_gc
"""

EXAMPLES = r"""
- name: Keep the 3 newest tags, latest and every release of each repository
  dockhand.registry.registry_prune:
    registry: localhost:5000
    rules:
      - repository: ".*"
        keep_last: 3
        keep_tags: [latest, 'v?\d+\.\d+\.\d+']

- name: Drop CI builds older than two weeks, keep at least 5
  dockhand.registry.registry_prune:
    registry: localhost:5000
    rules:
      - repository: ci/.*
        keep_last: 5
        older_than_days: 14
"""

RETURN = r"""
deleted:
  description: The manifests deleted (in check mode, that would be deleted), with the tags that pointed at them.
  returned: always
  type: list
  elements: dict
  sample: [{repository: app, digest: "sha256:6f2c9f1a3c0b66e3f0b2f5e5a1d8b9d3c1f0e5a2b4c6d8e0f1a3b5c7d9e1f3a5", tags: ["1.0"]}]
kept:
  description: Per repository, every kept tag and why.
  returned: always
  type: dict
  sample: {app: {latest: matches keep_tags, "1.3": one of the 3 newest}}
actions:
  description: What was done (in check mode, what would be done).
  returned: always
  type: list
  elements: str
  sample: ["delete app@sha256:6f2c9f1a3c0b66e3f0b2f5e5a1d8b9d3c1f0e5a2b4c6d8e0f1a3b5c7d9e1f3a5 (tags 1.0)"]
skipped:
  description:
    - Manifests the plan deleted but the module did not, because a tag that must stay (kept by the rules, or added
      after the plan was made) pointed at it when it was read right before the delete. Their tags stay.
    - Always empty in check mode.
  returned: always
  type: list
  elements: dict
  sample: [{repository: app, digest: "sha256:0b99c20c4171c53a332a8bbb3f0aa44d69ff4b7b63010c88c198abf6092e337d", tags: ["1.0"],
            reason: tag release points at it now}]
restored:
  description:
    - Tags that must stay and vanished while the module deleted (another client moved them onto a manifest in the
      instant before its delete), put back with the manifest bytes read before the delete; where and why.
    - Always empty in check mode.
  returned: always
  type: list
  elements: dict
  sample: [{repository: app, tag: release, digest: "sha256:0b99c20c4171c53a332a8bbb3f0aa44d69ff4b7b63010c88c198abf6092e337d",
            reason: "moved by another client onto sha256:0b99..., which this prune deleted: put back there"}]
dangling_removed:
  description: Dangling tags (C(repository:tag)) removed (in check mode, that would be removed).
  returned: always
  type: list
  elements: str
  sample: ["app:0.9"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockhand.registry.plugins.module_utils.args import REGISTRY_API_ARGSPEC, run_module
from ansible_collections.dockhand.registry.plugins.module_utils.prune import compile_rules, run_prune
from ansible_collections.dockhand.registry.plugins.module_utils.registry import client_from_params
from ansible_collections.dockhand.registry.plugins.module_utils.transport import REQUESTS_LIBRARY


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            REGISTRY_API_ARGSPEC,
            rules=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    repository=dict(type="str", default=".*"),
                    keep_last=dict(type="int"),
                    keep_tags=dict(type="list", elements="str", default=[]),
                    older_than_days=dict(type="int"),
                ),
            ),
        ),
        supports_check_mode=True,
    )
    p = module.params

    def action() -> dict:
        compile_rules(p["rules"])
        return run_prune(client_from_params(p), p["rules"], module.check_mode)

    run_module(module, action, REQUESTS_LIBRARY)


if __name__ == "__main__":
    main()
