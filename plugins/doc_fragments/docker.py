# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options of every module that talks to the Docker engine.
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker engine's API address, for example V(unix:///var/run/docker.sock) or V(tcp://127.0.0.1:2375).
      - If not given, the environment variable E(DOCKER_HOST) is used, and then V(unix:///var/run/docker.sock).
    type: str
    default: unix:///var/run/docker.sock
    aliases: [docker_url]
  docker_timeout:
    description:
      - Seconds to wait for an answer of the engine's API.
    type: int
    default: 120
requirements:
  - docker (Python SDK) >= 5.0.3 (Debian 12 ships 5.0.3, Debian 13 7.1.0; both tested)
"""

    REGISTRY_AUTH = r"""
options:
  username:
    description:
      - User name to log in to the registry with.
      - Without it, the registry is used anonymously.
    type: str
  password:
    description:
      - Password of O(username). It is never written to output or logs.
    type: str
  validate_certs:
    description:
      - Verify the registry's TLS certificate.
    type: bool
    default: true
    aliases: [tls_verify]
  ca_cert:
    description:
      - A CA certificate file (PEM) to verify the registry's certificate with.
    type: path
    aliases: [cacert_path]
requirements:
  - requests
"""

    # Options of the modules that push (image_push, image_publish): PUSH_ARGSPEC in module_utils/common.py.
    PUSH = r"""
options:
  workers:
    description: How many pushes run at the same time.
    type: int
    default: 4
  scheme:
    description:
      - How to reach the registry's HTTP API. V(auto) tries HTTPS, then plain HTTP (as the engine does for a registry
        on localhost or listed in its C(insecure-registries)).
    type: str
    choices: [auto, https, http]
    default: auto
  timeout:
    description: Seconds to wait for each answer of the registry.
    type: float
    default: 10
"""

    ATTRIBUTES = r"""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
"""
