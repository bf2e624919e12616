# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduled garbage collection of the registry role (systemd timer, or cron): the same read-only GC
as the registry_gc module, from the collection's own module_utils copied next to this file. One JSON line
on stdout (the journal, or syslog through logger), exit 1 on failure.

Usage: python3 dockhand_registry_gc.py (--name CONTAINER | --service SERVICE) [--delete-untagged] [--docker-host URL]
       [--wait-timeout S] [--uploads-older-than-minutes M]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:  # module_utils/common.py imports one helper of Ansible; a registry host needs no Ansible installed.
    importlib.import_module("ansible.module_utils.basic")
except ImportError:
    basic = types.ModuleType("ansible.module_utils.basic")
    basic.env_fallback = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    sys.modules.update({"ansible": types.ModuleType("ansible"), "ansible.module_utils": types.ModuleType("ansible.module_utils"),
                        "ansible.module_utils.basic": basic})

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError, one_line  # noqa: E402
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient  # noqa: E402
from ansible_collections.dockhand.registry.plugins.module_utils.gc import (  # noqa: E402
    UPLOADS_OLDER_THAN_MINUTES,
    ContainerBackend,
    ServiceBackend,
    run_gc,
)


def main() -> int:
    parser = argparse.ArgumentParser(description="Garbage-collect a registry container or Swarm service while it is read-only")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--name", help="a registry container")
    target.add_argument("--service", help="a registry Swarm service (run on a manager that runs one of its tasks)")
    parser.add_argument("--delete-untagged", action="store_true")
    parser.add_argument("--docker-host", default=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))
    parser.add_argument("--wait-timeout", type=int, default=60, help="seconds per switch (with --service: per task of the rolling update)")
    parser.add_argument("--uploads-older-than-minutes", type=int, default=UPLOADS_OLDER_THAN_MINUTES,
                        help="remove upload sessions nothing was written to for this long (0: every one)")
    args = parser.parse_args()
    try:
        engine = EngineClient(args.docker_host, 120)
        if args.service:
            backend: ContainerBackend | ServiceBackend = ServiceBackend(engine, args.service, args.wait_timeout)
        else:
            backend = ContainerBackend(engine, args.name, args.wait_timeout)
        result = run_gc(backend, False, args.delete_untagged, args.uploads_older_than_minutes)
    except DockhandError as exc:
        print(json.dumps({"failed": True, "msg": one_line(exc)}), flush=True)
        return 1
    print(json.dumps(result, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
