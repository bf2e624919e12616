#!/usr/bin/python
# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_sync
short_description: Copy images from one registry to another through the registry API, digest for digest
version_added: 0.2.0
description:
  - Copies tags from a source registry to a destination registry with the registry HTTP API only - no Docker engine,
    no local image store. Give a source repository with O(tags) or O(tag_pattern), or a list of O(images)
    (C(src) -> C(dest) references). The destination repository and tag may differ from the source's.
  - The manifest bytes are copied verbatim, so the destination digest equals the source digest. An image index
    (multi-platform image, manifest list) is copied with every child manifest; with O(platforms) only the chosen
    children are, under a new index whose digest differs from the source's (the result says so in
    C(digest_preserved)).
  - Blobs the destination repository has (C(HEAD)) are skipped; a blob another repository of the destination registry
    holds (the source repository when both sides are one registry, or a repository this run copied it to) is mounted
    (C(POST ...?mount=&from=)); any other blob streams from the source to the destination (one streamed C(GET) into
    one streamed C(PUT), 256 KiB at a time, so memory stays bounded whatever the layer size).
  - C(changed) per tag only when the destination's digest for the tag moved. Tags are copied O(workers) at a time,
    with one pooled HTTP session per registry. Results come in input order (tags of O(tag_pattern) sorted); a failed
    tag does not stop the others, and the task then fails naming each failed tag once, grouped by cause. The failed
    result still reports what happened - C(changed) and RV(synced) for the tags copied, RV(results) for every tag (a
    failed one with C(action=failed), C(changed=false), C(digest_preserved=false), the digest the destination held
    and its C(msg)).
  - Every reference, pattern and platform is checked, and both registries must answer and take the login, before
    anything is copied.
  - Children of an index are read from the index's own repository, the only place the registry API resolves them
    (distribution refuses to store an index whose children are not in its repository). An index whose child is
    missing there (for instance one written by a tool that skipped that check) fails for that tag, naming the child
    digest and platform, and the destination tag is left as it was; use O(platforms) to copy the other children.
author:
  - dockhand.registry contributors (@dockhand)
extends_documentation_fragment:
  - dockhand.registry.docker.attributes
options:
  images:
    description:
      - Tags to copy, each a dict with C(src) and C(dest) image references C(<registry host[:port]>/<repository>[:<tag>]).
        A missing source tag means C(latest); a missing destination tag means the source's.
    type: list
    elements: dict
  src_repository:
    description: The source repository, C(<registry host[:port]>/<repository>), whose O(tags) or O(tag_pattern) are copied.
    type: str
  dest_repository:
    description: The destination repository, C(<registry host[:port]>/<repository>), for O(src_repository).
    type: str
  tags:
    description: Tags of O(src_repository) to copy (same tag at the destination).
    type: list
    elements: str
  tag_pattern:
    description: A Python regular expression; the tags of O(src_repository) it matches in full are copied.
    type: str
  tag_semver:
    description:
      - A version range; the tags of O(src_repository) that are versions in that range are copied, for example
        V(>=1.2,<2) or V(~=1.4) (version specifiers separated by commas, as pip takes them - PEP 440 - parsed and
        compared by the Python library C(packaging)).
      - V(1.2), V(v1.2.3) and V(1.2.3-rc1) are versions (the last a pre-release); V(latest) or V(1.2-alpine) are not,
        and are skipped and counted (C(not_versions) in RV(tag_selection)). Pre-releases are left out unless the range
        names one itself (V(>=2.0rc1)).
      - With O(tag_pattern) as well, a tag must match both.
    type: str
    version_added: 0.2.0
  tag_limit:
    description:
      - Copy only the newest N of the tags chosen by O(tag_pattern) and O(tag_semver), in version order (tags that
        are not versions are skipped). Alone, the newest N tags of O(src_repository) that are versions.
    type: int
    version_added: 0.2.0
  platforms:
    description:
      - Copy only these platforms of an image index, as C(os/architecture[/variant]) (V(linux/amd64), V(linux/arm64/v8)).
        The destination index then holds only those children, so its digest differs from the source's.
      - Ignored for single-platform images. Not given - the index is copied whole and keeps its digest.
    type: list
    elements: str
  workers:
    description: How many tags are copied at the same time (1 to 64).
    type: int
    default: 4
  registry_timeout:
    description: Seconds to wait for each answer of a registry (and between two pieces of a streamed blob), more than 0.
    type: float
    default: 30
  src_username:
    description: User name for the source registry (like skopeo's C(--src-creds)). Without it, anonymous.
    type: str
  src_password:
    description: Password of O(src_username); never written to output or logs.
    type: str
  src_registry_scheme:
    description: How to reach the source registry - V(auto) tries HTTPS, then plain HTTP.
    type: str
    choices: [auto, https, http]
    default: auto
  src_registry_validate_certs:
    description: Verify the source registry's TLS certificate (skopeo's C(--src-tls-verify)).
    type: bool
    default: true
  src_registry_ca_cert:
    description: A CA certificate file (PEM) to verify the source registry's certificate with.
    type: path
  dest_username:
    description: User name for the destination registry (like skopeo's C(--dest-creds)). Without it, anonymous.
    type: str
  dest_password:
    description: Password of O(dest_username); never written to output or logs.
    type: str
  dest_registry_scheme:
    description: How to reach the destination registry - V(auto) tries HTTPS, then plain HTTP.
    type: str
    choices: [auto, https, http]
    default: auto
  dest_registry_validate_certs:
    description: Verify the destination registry's TLS certificate (skopeo's C(--dest-tls-verify)).
    type: bool
    default: true
  dest_registry_ca_cert:
    description: A CA certificate file (PEM) to verify the destination registry's certificate with.
    type: path
notes:
  - Source and destination options carry a C(src_) / C(dest_) prefix, the way skopeo's C(--src-*) / C(--dest-*) flags
    do, on the collection's option names (C(username), C(password), C(registry_scheme), C(registry_validate_certs),
    C(registry_ca_cert)); both sides are independent.
  - A destination that is a pull-through cache (distribution's proxy mode) refuses uploads; the tag then fails with a
    one-line message saying so.
  - Only schema 2 and OCI manifests and indexes are copied; schema 1 manifests fail for their tag.
  - O(tag_semver) and O(tag_limit) need the Python library C(packaging) on the host (Debian's C(python3-packaging);
    the C(engine) role installs it).
  - The run asks a registry nothing it already knows - a destination repository new to the registry (its tags listed
    once - 404) holds no blob, so its blobs get no C(HEAD); a blob the run placed in one repository is mounted in the
    next straight away; a tag missing from a listing gets no C(HEAD). A re-run with nothing to copy costs two
    requests per tag (source manifest C(GET), destination C(HEAD)). docs/sync.md counts them.
seealso:
  - module: dockhand.registry.image_push
  - name: skopeo sync
    description: The command this module is measured against (docs/benchmarks.md).
    link: https://github.com/containers/skopeo/blob/main/docs/skopeo-sync.1.md
"""

EXAMPLES = r"""
- name: Promote two tags from staging to production
  dockhand.registry.image_sync:
    src_repository: staging.example.com:5000/team/api
    dest_repository: registry.example.com:5000/team/api
    tags: ["2.3.1", "2.3"]
    src_username: ci
    src_password: "{{ vault_staging_password }}"
    dest_username: ci
    dest_password: "{{ vault_prod_password }}"
    dest_registry_ca_cert: /etc/docker/certs.d/registry.example.com:5000/ca.crt

- name: Mirror every release tag, eight at a time
  dockhand.registry.image_sync:
    src_repository: localhost:5000/go-demo
    dest_repository: localhost:6000/mirror/go-demo
    tag_pattern: '[0-9]+\.[0-9]+(\.[0-9]+)?'
    workers: 8

- name: Mirror the newest three 1.x releases (no pre-releases, no "latest", no "-alpine" variants)
  dockhand.registry.image_sync:
    src_repository: registry.example.com:5000/team/api
    dest_repository: localhost:5000/mirror/api
    tag_semver: ">=1.0,<2"
    tag_limit: 3

- name: Copy single references, renaming, only the arm64 image of an index
  dockhand.registry.image_sync:
    images:
      - src: localhost:5000/tools:1.4
        dest: localhost:6000/edge/tools:1.4-arm64
    platforms: [linux/arm64]
"""

RETURN = r"""
images:
  description: Each tag, in input order (tags of O(tag_pattern) sorted).
  returned: always
  type: list
  elements: dict
  sample:
    - source: localhost:5000/go-demo:1.0
      dest: localhost:6000/mirror/go-demo:1.0
      source_digest: sha256:cf265c0688c737a7a6a14810503a8cf42fdde4db8760345995fd7e23099dc4a9
      digest_before: null
      digest: sha256:cf265c0688c737a7a6a14810503a8cf42fdde4db8760345995fd7e23099dc4a9
      digest_preserved: true
      media_type: application/vnd.oci.image.index.v1+json
      platforms: [linux/amd64, linux/arm64]
      action: copied
      changed: true
      failed: false
      blobs: {copied: 4, mounted: 0, present: 0}
      bytes_copied: 1482
results:
  description:
    - On failure only (some tags failed) - every tag in input order, with the fields of RV(images).
  returned: failure
  type: list
  elements: dict
  sample:
    - {dest: "localhost:6000/mirror/go-demo:1.0", action: failed, digest_preserved: false, failed: true,
       msg: "registry localhost:6000 is unreachable: Connection refused"}
tag_selection:
  description:
    - With O(tag_pattern), O(tag_semver) or O(tag_limit) - how many tags of O(src_repository) were listed, left out by
      each option, and chosen.
  returned: when O(tag_pattern), O(tag_semver) or O(tag_limit) is given
  type: dict
  sample: {listed: 14, not_matching_pattern: 0, not_versions: 3, outside_range: 6, over_limit: 2, chosen: 3}
synced:
  description: Destination references whose digest moved (in check mode, would move).
  returned: always
  type: list
  elements: str
  sample: [localhost:6000/mirror/go-demo:1.0]
actions:
  description: What the module did (or would do), one line per copied tag.
  returned: always
  type: list
  elements: str
  sample: ["copied localhost:5000/go-demo:1.0 -> localhost:6000/mirror/go-demo:1.0 (sha256:cf26...)"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockhand.registry.plugins.module_utils.args import SYNC_SIDES_ARGSPEC, run_module
from ansible_collections.dockhand.registry.plugins.module_utils.common import pick
from ansible_collections.dockhand.registry.plugins.module_utils.registry import client_factory
from ansible_collections.dockhand.registry.plugins.module_utils.sync import sync_images
from ansible_collections.dockhand.registry.plugins.module_utils.tag_select import PACKAGING_LIBRARY
from ansible_collections.dockhand.registry.plugins.module_utils.transport import REQUESTS_LIBRARY


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            SYNC_SIDES_ARGSPEC,
            images=dict(type="list", elements="dict"),
            src_repository=dict(type="str"),
            dest_repository=dict(type="str"),
            tags=dict(type="list", elements="str"),
            tag_pattern=dict(type="str"),
            tag_semver=dict(type="str"),
            tag_limit=dict(type="int"),
            platforms=dict(type="list", elements="str"),
            workers=dict(type="int", default=4),
            registry_timeout=dict(type="float", default=30),
        ),
        mutually_exclusive=[
            ("images", "src_repository"), ("images", "dest_repository"), ("tags", "tag_pattern"), ("tags", "tag_semver"),
            ("tags", "tag_limit"),
        ],
        required_one_of=[("images", "src_repository")],
        required_together=[("src_repository", "dest_repository"), ("src_username", "src_password"), ("dest_username", "dest_password")],
        required_by={"src_repository": ("dest_repository",)},
        supports_check_mode=True,
    )
    p = module.params
    if p["src_repository"] and p["tags"] is None and all(p[k] is None for k in ("tag_pattern", "tag_semver", "tag_limit")):
        module.fail_json(msg="src_repository needs tags or tag_pattern (or tag_semver, tag_limit)")

    def action() -> dict:
        return sync_images(
            client_factory(p, "src_"),
            client_factory(p, "dest_"),
            check_mode=module.check_mode,
            **pick(p, "images", "src_repository", "dest_repository", "tags", "tag_pattern", "tag_semver", "tag_limit", "platforms",
                   "workers"),
        )

    run_module(module, action, REQUESTS_LIBRARY, *([PACKAGING_LIBRARY] if p["tag_semver"] or p["tag_limit"] else []))


if __name__ == "__main__":
    main()
