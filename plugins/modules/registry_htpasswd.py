#!/usr/bin/python
# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_htpasswd
short_description: Keep the registry's htpasswd file (bcrypt) in line with a list of users
version_added: 0.1.0
description:
  - Writes an htpasswd file with one bcrypt entry per user of O(users) and no other entry, the format the Docker
    Registry (distribution) reads for C(REGISTRY_AUTH=htpasswd).
  - bcrypt hashes are salted, so the module does not compare hashes. A user whose existing entry still verifies the
    given password keeps that exact line; the file is rewritten only when a user is added or removed or a password
    changed. Unchanged inputs report C(changed=false).
  - Passwords are inputs only. They are never returned, logged or shown in a diff (the diff lists user names).
  - The result's RV(checksum) changes whenever the file does. The registry reads htpasswd once, at start, so give it
    to M(dockhand.registry.registry_container)'s O(dockhand.registry.registry_container#module:config_digest) to
    restart the registry when the file changed.
author:
  - dockhand.registry contributors (@dockhand)
extends_documentation_fragment:
  - dockhand.registry.docker.attributes
options:
  path:
    description: The htpasswd file. Its directory is created when missing.
    type: path
    required: true
  users:
    description: Every user the registry accepts. An empty list leaves a file that accepts nobody.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: User name (no C(:) or white space).
        type: str
        required: true
      password:
        description: The user's password, at most 72 bytes (bcrypt ignores the rest). Never printed.
        type: str
        required: true
  mode:
    description: File mode of the htpasswd file.
    type: raw
    default: "0600"
requirements:
  - bcrypt
"""

EXAMPLES = r"""
- name: Registry users
  dockhand.registry.registry_htpasswd:
    path: /etc/dockhand/registry/htpasswd
    users:
      - name: ci
        password: "{{ vault_registry_ci_password }}"
  register: htpasswd
"""

RETURN = r"""
path:
  description: The htpasswd file.
  returned: always
  type: str
users:
  description: The users the file holds (names only).
  returned: always
  type: list
  elements: str
  sample: [ci]
added:
  description: Users that were added.
  returned: always
  type: list
  elements: str
updated:
  description: Users whose password changed.
  returned: always
  type: list
  elements: str
removed:
  description: Users that were removed.
  returned: always
  type: list
  elements: str
checksum:
  description: SHA-256 of the file (null in check mode when the file would be rewritten).
  returned: always
  type: str
actions:
  description: What was done to the htpasswd file (in check mode, what would be done).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockhand.registry.plugins.module_utils.args import run_module
from ansible_collections.dockhand.registry.plugins.module_utils.htpasswd import BCRYPT_LIBRARY, converge_users


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            users=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    name=dict(type="str", required=True),
                    password=dict(type="str", required=True, no_log=True),
                ),
            ),
            mode=dict(type="raw", default="0600"),
        ),
        supports_check_mode=True,
    )
    p = module.params

    def action() -> dict:
        return converge_users(p["path"], p["users"], p["mode"], module.check_mode)

    run_module(module, action, BCRYPT_LIBRARY)


if __name__ == "__main__":
    main()
