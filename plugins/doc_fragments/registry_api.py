# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # What registry_info and registry_prune add to the registry HTTP options (dockhand.registry.docker.registry):
    # the registry's address and the request workers (REGISTRY_API_ARGSPEC in module_utils/args.py).
    DOCUMENTATION = r"""
options:
  registry:
    description: The registry's address, C(host:port) (no scheme), for example V(localhost:5000).
    type: str
    required: true
  workers:
    description: How many requests run at the same time (on one pool of connections), 1 to 64.
    type: int
    default: 16
"""
