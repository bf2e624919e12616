#!/usr/bin/python
# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_tls
short_description: A private CA and server certificate for the registry, kept across runs, or checks the user's own
version_added: 0.1.0
description:
  - Without O(certificate), keeps or makes, in O(directory), a private CA (C(ca.crt), C(ca.key)) and a server
    certificate signed by it (C(server.crt), C(server.key)) whose subject alternative names are the host names and IP
    addresses of O(names). ECDSA P-256 keys, SHA-256 signatures.
  - Existing files are kept while they serve. The CA is kept while its key matches and it is valid for more than
    O(renew_days); the server certificate is kept while its key matches, the CA signed it, its names are O(names)
    and it is valid for more than O(renew_days). Only what does not serve is made again (new names re-issue the server
    certificate, never the CA).
  - A CA that cannot be kept (its key missing or not matching it, or near its end) is replaced by a new one, with a
    warning - every client that trusted the old CA must get the new C(ca.crt). The registry role installs it again for
    its host's engine, and C(site.yml) for its C(docker_hosts); other clients need it copied.
  - With O(certificate) and O(private_key), checks the user's files (the key matches, the certificate is in force,
    O(ca_certificate) issued it when given) and changes nothing.
  - Private keys are written with mode 0600 and never returned.
  - The result's RV(checksum) changes whenever the certificate or key does; give it to
    M(dockhand.registry.registry_container)'s O(dockhand.registry.registry_container#module:config_digest).
author:
  - dockhand.registry contributors (@dockhand)
extends_documentation_fragment:
  - dockhand.registry.docker.attributes
options:
  directory:
    description: Where generated files live. Required unless O(certificate) is given.
    type: path
  names:
    description: Host names and IP addresses clients reach the registry by (subject alternative names).
    type: list
    elements: str
    default: []
  days:
    description: Validity of a new server certificate, in days, more than O(renew_days) and at most 36500 (100 years).
    type: int
    default: 825
  ca_days:
    description: Validity of a new CA, in days, more than O(renew_days) and at most 36500 (100 years).
    type: int
    default: 3650
  renew_days:
    description: A certificate valid for fewer days than this is renewed (0 or more).
    type: int
    default: 30
  ca_common_name:
    description: Common name of a new CA.
    type: str
    default: dockhand.registry CA
  certificate:
    description: The user's server certificate (PEM) on the host; with it, nothing is generated.
    type: path
  private_key:
    description: The key of O(certificate) (unencrypted PEM).
    type: path
  ca_certificate:
    description: The CA certificate that signed O(certificate) directly, checked when given.
    type: path
requirements:
  - cryptography >= 38 (Debian 12 ships 38.0.4)
"""

EXAMPLES = r"""
- name: CA and server certificate for registry.example.com and its address
  dockhand.registry.registry_tls:
    directory: /etc/dockhand/registry/tls
    names: [registry.example.com, 192.0.2.10]
  register: tls
"""

RETURN = r"""
generated:
  description: Whether the material is the generated one (false for the user's own).
  returned: always
  type: bool
ca_cert:
  description: The CA certificate file (to install under C(/etc/docker/certs.d/<host>:<port>/ca.crt)).
  returned: always
  type: str
cert:
  description: The server certificate file.
  returned: always
  type: str
key:
  description: The server key file.
  returned: always
  type: str
names:
  description: The server certificate's subject alternative names.
  returned: always
  type: list
  elements: str
  sample: ["DNS:registry.example.com", "IP:192.0.2.10"]
not_after:
  description: End of the server certificate's validity.
  returned: always
  type: str
checksum:
  description: SHA-256 over the server certificate and key (null in check mode when they would be made).
  returned: always
  type: str
actions:
  description: The CA and server certificate made or renewed, and modes set (in check mode, what would be done).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockhand.registry.plugins.module_utils.args import run_module
from ansible_collections.dockhand.registry.plugins.module_utils.tls import (
    CRYPTOGRAPHY_LIBRARY,
    generate,
    provided,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            directory=dict(type="path"),
            names=dict(type="list", elements="str", default=[]),
            days=dict(type="int", default=825),
            ca_days=dict(type="int", default=3650),
            renew_days=dict(type="int", default=30),
            ca_common_name=dict(type="str", default="dockhand.registry CA"),
            certificate=dict(type="path"),
            private_key=dict(type="path", no_log=False),
            ca_certificate=dict(type="path"),
        ),
        required_together=[("certificate", "private_key")],
        required_one_of=[("directory", "certificate")],
        supports_check_mode=True,
    )
    p = module.params

    def action() -> dict:
        if p["certificate"]:
            return provided(p["certificate"], p["private_key"], p["ca_certificate"])
        return generate(
            p["directory"], p["names"], p["days"], p["ca_days"], p["renew_days"], p["ca_common_name"], module.check_mode
        )

    run_module(module, action, CRYPTOGRAPHY_LIBRARY)


if __name__ == "__main__":
    main()
