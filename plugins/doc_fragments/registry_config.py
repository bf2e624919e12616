# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The registry configuration options of registry_config and registry_service (CONFIG_ARGSPEC in
    # module_utils/args.py; module_utils/registry_config.py builds the file from them).
    DOCUMENTATION = r"""
options:
  log_level:
    description: The registry's log level (C(log.level)).
    type: str
    choices: [error, warn, info, debug]
    default: info
  log_formatter:
    description: The registry's log format (C(log.formatter)); V(json) for log shippers.
    type: str
    choices: [text, json, logstash]
    default: text
  storage_redirect_disable:
    description:
      - Serve blobs through the registry instead of redirecting clients to the storage backend
        (C(storage.redirect.disable)); for S3, Azure or GCS storage that clients cannot reach.
    type: bool
    default: false
  delete_enabled:
    description: Allow deletes through the registry API (C(storage.delete.enabled)); retention needs it.
    type: bool
    default: false
  blob_cache:
    description:
      - The registry's blob descriptor cache (C(storage.cache.blobdescriptor)).
      - Unset - V(inmemory) for M(dockhand.registry.registry_config) (one registry), V(none) for
        M(dockhand.registry.registry_service), whose replicas would each keep their own cache and go stale after a
        delete through another replica; V(redis) shares one cache between them.
    type: dict
    suboptions:
      type:
        description: V(none), V(inmemory) or V(redis).
        type: str
        choices: [none, inmemory, redis]
        required: true
      addr:
        description: The Redis server, C(host:port) (C(redis.addr)); required with V(redis).
        type: str
      password:
        description: The Redis password (C(redis.password)); never printed.
        type: str
      db:
        description: The Redis database number (C(redis.db)).
        type: int
  metrics:
    description:
      - Turn on the registry's debug server with Prometheus metrics (C(http.debug.addr) V(:5001) inside the
        container or task, C(http.debug.prometheus.enabled)). Where it is published is the running module's
        C(metrics_port); keep it off the public network.
    type: bool
    default: false
  metrics_path:
    description: Path of the metrics on the debug server (C(http.debug.prometheus.path)).
    type: str
    default: /metrics
  notifications:
    description:
      - Endpoints the registry sends its events to (C(notifications.endpoints)) - a JSON envelope of events (push,
        pull, mount, delete, with the repository, tag, digest and size) by HTTP POST.
      - Events queue in the registry's memory and are sent in the background (a receiver that is down does not slow
        pushes; events still queued when the registry stops are lost).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the endpoint (in the registry's log and metrics); V(endpoint-N) when unset.
        type: str
      url:
        description: The receiver's URL.
        type: str
        required: true
      headers:
        description: Headers sent with each request, such as C(Authorization); never printed.
        type: dict
        default: {}
      timeout:
        description: Timeout of one request, a duration such as V(1s) (distribution's default 1s).
        type: str
      threshold:
        description: Failures before the endpoint is backed off (distribution's default 10).
        type: int
      backoff:
        description: Wait after the threshold is reached, a duration such as V(1s) (distribution's default 1s).
        type: str
      ignored_media_types:
        description: Media types of the events not sent, such as V(application/octet-stream) (layer events).
        type: list
        elements: str
        default: []
      ignored_actions:
        description: Actions not sent.
        type: list
        elements: str
        choices: [pull, push, mount, delete]
        default: []
      disabled:
        description: Keep the endpoint configured but send nothing.
        type: bool
        default: false
  config:
    description:
      - Any further configuration of distribution 2.8 (storage drivers C(s3), C(azure), C(gcs) with their options,
        C(redis), C(middleware), C(notifications.events), C(log.hooks), C(http.headers), C(catalog), C(validation),
        ...), deep-merged on top of what the other options set - mappings merge key by key, a list or value replaces,
        V(null) removes a key; a storage driver other than C(filesystem) replaces the filesystem one.
      - Refused in one line, before anything changes - a key the module sets from another option (the listening
        address C(http.addr), C(storage.filesystem.rootdirectory), C(auth) with htpasswd, C(http.tls) with TLS,
        C(http.debug.addr) with O(metrics), C(proxy), C(notifications.endpoints) with O(notifications), C(http.secret)
        with a shared secret); a top-level key distribution does not know (it would ignore it silently); an unknown
        key inside C(log), C(http), C(redis), C(health), C(notifications), C(proxy) or C(catalog); a value of the wrong
        type.
      - Printed with the module invocation at C(-vvv), secret-looking keys masked in results and diffs; put secrets in
        O(secret_config).
    type: dict
    default: {}
  secret_config:
    description:
      - Like O(config), merged after it, for secrets (storage access keys, Redis and upstream passwords, notification
        tokens); never printed (its values are masked wherever they appear in the output).
    type: dict
    default: {}
"""
