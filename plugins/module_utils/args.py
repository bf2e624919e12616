# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The modules' side of Ansible: every option spec modules share, and :func:`run_module`, where a module's one
call meets ``fail_json``/``exit_json``.

The only module_utils file that imports Ansible: the clients and the logic beneath (common.py, engine.py,
registry.py, gc.py...) also run where Ansible is not installed, as the registry role's scheduled GC runner does.
"""

from __future__ import annotations

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.dockhand.registry.plugins.module_utils.common import (
    DEFAULT_DOCKER_HOST,
    DEFAULT_DOCKER_TIMEOUT,
    DEFAULT_WORKERS,
    DockhandError,
    PartialFailure,
    one_line,
)

# Engine connection options, named and behaving as community.docker's (doc_fragments/docker.py, DOCUMENTATION).
# EngineClient.from_params() reads them. DOCKER_CERT_PATH (the default directory of ca.pem, cert.pem and key.pem)
# is read there, since it gives no value of its own to any one option.
DOCKER_ARGSPEC: dict = {
    "docker_host": {
        "type": "str",
        "fallback": (env_fallback, ["DOCKER_HOST"]),
        "default": DEFAULT_DOCKER_HOST,
        "aliases": ["docker_url"],
    },
    "timeout": {"type": "int", "fallback": (env_fallback, ["DOCKER_TIMEOUT"]), "default": DEFAULT_DOCKER_TIMEOUT},
    "tls": {"type": "bool", "fallback": (env_fallback, ["DOCKER_TLS"]), "default": False},
    "validate_certs": {
        "type": "bool",
        "fallback": (env_fallback, ["DOCKER_TLS_VERIFY"]),
        "default": False,
        "aliases": ["tls_verify"],
    },
    "ca_path": {"type": "path", "aliases": ["tls_ca_cert"]},
    "client_cert": {"type": "path", "aliases": ["tls_client_cert", "cert_path"]},
    "client_key": {"type": "path", "aliases": ["tls_client_key", "key_path"]},
}

# Registry HTTP API options (doc_fragments/docker.py, REGISTRY): every one carries the registry_ prefix, so that
# "TLS" and "timeout" never mean two things in one module; username/password are the registry login.
DEFAULT_REGISTRY_TIMEOUT = 10.0
REGISTRY_ARGSPEC: dict = {
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "registry_scheme": {"type": "str", "choices": ["auto", "https", "http"], "default": "auto"},
    "registry_timeout": {"type": "float", "default": DEFAULT_REGISTRY_TIMEOUT},
    "registry_validate_certs": {"type": "bool", "default": True},
    "registry_ca_cert": {"type": "path"},
}

# One item of the ``images`` list of image_tag and image_publish: a local image and the names to give it.
TAG_ITEM_OPTIONS: dict = {
    "source": {"type": "str", "required": True},
    "targets": {"type": "list", "elements": "str", "required": True},
}

# Options of the modules that push (image_push, image_publish); documented in doc_fragments/docker.py (PUSH).
PUSH_ARGSPEC: dict = {
    "workers": {"type": "int", "default": DEFAULT_WORKERS},
}

# The registry HTTP options of registry_info and registry_prune (doc fragment registry_api): the registry's
# address and how many requests run at once.
REGISTRY_API_ARGSPEC: dict = dict(
    REGISTRY_ARGSPEC,
    registry={"type": "str", "required": True},
    workers={"type": "int", "default": 16},
)

# The registry configuration every configuring module builds (registry_config, registry_service; doc fragment
# registry_config): config_file.settings_from_params reads them.
CONFIG_ARGSPEC: dict = {
    "log_level": {"type": "str", "choices": ["error", "warn", "info", "debug"], "default": "info"},
    "log_formatter": {"type": "str", "choices": ["text", "json", "logstash"], "default": "text"},
    "storage_redirect_disable": {"type": "bool", "default": False},
    "delete_enabled": {"type": "bool", "default": False},
    "blob_cache": {
        "type": "dict",
        "options": {
            "type": {"type": "str", "choices": ["none", "inmemory", "redis"], "required": True},
            "addr": {"type": "str"},
            "password": {"type": "str", "no_log": True},
            "db": {"type": "int"},
        },
    },
    "metrics": {"type": "bool", "default": False},
    "metrics_path": {"type": "str", "default": "/metrics"},
    "notifications": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "name": {"type": "str"},
            "url": {"type": "str", "required": True},
            "headers": {"type": "dict", "default": {}, "no_log": True},
            "timeout": {"type": "str"},
            "threshold": {"type": "int"},
            "backoff": {"type": "str"},
            "ignored_media_types": {"type": "list", "elements": "str", "default": []},
            "ignored_actions": {"type": "list", "elements": "str", "default": [], "choices": ["pull", "push", "mount", "delete"]},
            "disabled": {"type": "bool", "default": False},
        },
    },
    "config": {"type": "dict", "default": {}},
    "secret_config": {"type": "dict", "default": {}, "no_log": True},
}

# image_sync's registry options, once per side (``src_``, ``dest_``, as skopeo's --src-*/--dest-* flags): the
# REGISTRY_ARGSPEC options but registry_timeout, which both sides share.
SYNC_SIDES_ARGSPEC: dict = {
    "%s_%s" % (side, name): dict(spec)
    for side in ("src", "dest")
    for name, spec in REGISTRY_ARGSPEC.items()
    if name != "registry_timeout"
}


def run_module(module, action, *required: tuple[str, bool, str | None]) -> None:
    """Check the Python libraries ``required`` (name, present, import traceback), run
    ``action()`` and exit with its result, every collection error as one line."""
    for name, present, error in required:
        if not present:
            module.fail_json(msg=missing_required_lib(name), exception=error)
    try:
        result = action()
    except PartialFailure as exc:
        # What did change is reported with the failure: ``changed``, and every item's own outcome.
        extra = {k: v for k, v in exc.result.items() if k not in ("msg", "failed", "warnings") and (k != "diff" or module._diff)}
        for warning in exc.result.get("warnings") or []:
            module.warn(warning)
        module.fail_json(msg=one_line(exc), **extra)
    except DockhandError as exc:
        module.fail_json(msg=one_line(exc))
    if not module._diff:
        result.pop("diff", None)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)
