# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options of every module that talks to the Docker engine: DOCKER_ARGSPEC in module_utils/args.py.
    # Named and behaving as community.docker's, so that one module_defaults entry serves both collections.
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker engine's API address, for example V(unix:///var/run/docker.sock), V(tcp://192.0.2.7:2376) or
        V(ssh://admin@192.0.2.7).
      - If not given, the environment variable E(DOCKER_HOST) is used, and then V(unix:///var/run/docker.sock).
    type: str
    default: unix:///var/run/docker.sock
    aliases: [docker_url]
  timeout:
    description:
      - Seconds to wait for an answer of the engine's API.
      - If not given, the environment variable E(DOCKER_TIMEOUT) is used, and then V(120).
      - This is the engine's timeout. The registry's HTTP API has its own, C(registry_timeout), in the modules that talk
        to a registry.
    type: int
    default: 120
  tls:
    description:
      - Talk to the engine over TLS (a C(tcp://) O(docker_host)), without verifying the engine's certificate.
      - If not given, the environment variable E(DOCKER_TLS) is used, and then V(false).
      - O(validate_certs=true) implies TLS.
    type: bool
    default: false
  validate_certs:
    description:
      - Talk to the engine over TLS and verify its certificate (against O(ca_path), or the system's CAs without it).
      - If not given, the environment variable E(DOCKER_TLS_VERIFY) is used, and then V(false).
      - This is about the engine only; the registry's certificate is verified as C(registry_validate_certs) says.
    type: bool
    default: false
    aliases: [tls_verify]
  ca_path:
    description:
      - The CA certificate (PEM) to verify the engine's certificate with.
      - If not given and the environment variable E(DOCKER_CERT_PATH) is set, C(ca.pem) in that directory is used
        when it exists.
    type: path
    aliases: [tls_ca_cert]
  client_cert:
    description:
      - The client certificate (PEM) to authenticate to the engine with; needs O(client_key).
      - If not given and the environment variable E(DOCKER_CERT_PATH) is set, C(cert.pem) in that directory is used
        when it exists.
    type: path
    aliases: [tls_client_cert, cert_path]
  client_key:
    description:
      - The private key (PEM) of O(client_cert).
      - If not given and the environment variable E(DOCKER_CERT_PATH) is set, C(key.pem) in that directory is used
        when it exists.
    type: path
    aliases: [tls_client_key, key_path]
notes:
  - "The engine options (O(docker_host), O(timeout), O(tls), O(validate_certs), O(ca_path), O(client_cert),
    O(client_key)) can be set once for every module of the collection that talks to the engine, with the action group
    C(group/dockhand.registry.docker) in C(module_defaults)."
requirements:
  - docker (Python SDK) >= 5.0.3 (Debian 12 ships 5.0.3, Debian 13 7.1.0; both tested)
"""

    # Options of the modules that talk to a registry's HTTP API: REGISTRY_ARGSPEC in module_utils/args.py.
    REGISTRY = r"""
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
  registry_scheme:
    description:
      - How to reach the registry's HTTP API. V(auto) tries HTTPS, then plain HTTP only for a loopback address
        (C(localhost), C(127.0.0.1), C(::1)); a TLS or connection error on any other address fails the task instead of
        downgrading the connection. Give V(http) for a registry the engine reaches through C(insecure-registries).
      - O(password) is sent over plain HTTP only with V(http), asked for explicitly; the task then warns.
    type: str
    choices: [auto, https, http]
    default: auto
  registry_timeout:
    description: Seconds to wait for each answer of the registry's HTTP API, more than 0.
    type: float
    default: 10
  registry_validate_certs:
    description:
      - Verify the registry's TLS certificate.
    type: bool
    default: true
  registry_ca_cert:
    description:
      - A CA certificate file (PEM) to verify the registry's certificate with.
    type: path
requirements:
  - requests
"""

    # Options of the modules that push (image_push, image_publish): PUSH_ARGSPEC in module_utils/args.py; the bound is common.MAX_WORKERS.
    PUSH = r"""
options:
  workers:
    description: How many pushes run at the same time, 1 to 64.
    type: int
    default: 4
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
