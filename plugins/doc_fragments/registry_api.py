# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Registry HTTP API options of registry_info and registry_prune (REGISTRY_API_ARGSPEC in module_utils/inventory.py).
    DOCUMENTATION = r"""
options:
  registry:
    description: The registry's address, C(host:port) (no scheme), for example V(localhost:5000).
    type: str
    required: true
  registry_scheme:
    description:
      - How to reach the registry's HTTP API. V(auto) tries HTTPS, then plain HTTP.
    type: str
    choices: [auto, https, http]
    default: auto
  registry_timeout:
    description: Seconds to wait for each answer of the registry.
    type: float
    default: 10
  registry_validate_certs:
    description: Verify the registry's TLS certificate.
    type: bool
    default: true
  registry_ca_cert:
    description: A CA certificate file (PEM) to verify the registry's certificate with.
    type: path
  username:
    description: User name to log in to the registry with. Without it, the registry is used anonymously.
    type: str
  password:
    description: Password of O(username). It is never written to output or logs.
    type: str
  workers:
    description: How many requests run at the same time (on one pool of connections), 1 to 64.
    type: int
    default: 16
requirements:
  - requests
"""
