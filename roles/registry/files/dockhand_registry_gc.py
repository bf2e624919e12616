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
import json
import os
import sys

# The module_utils it imports are Ansible-free (Ansible's side of the modules is module_utils/args.py, not copied):
# a registry host needs no Ansible installed.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from ansible_collections.dockhand.registry.plugins.module_utils.common import (  # noqa: E402
    DEFAULT_DOCKER_HOST,
    DEFAULT_DOCKER_TIMEOUT,
    DockhandError,
    one_line,
)
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient  # noqa: E402
from ansible_collections.dockhand.registry.plugins.module_utils.gc import UPLOADS_OLDER_THAN_MINUTES, backend_for, run_gc  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description="Garbage-collect a registry container or Swarm service while it is read-only")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--name", help="a registry container")
    target.add_argument("--service", help="a registry Swarm service (run on a manager that runs one of its tasks)")
    parser.add_argument("--delete-untagged", action="store_true")
    parser.add_argument("--docker-host", default=os.environ.get("DOCKER_HOST", DEFAULT_DOCKER_HOST))
    parser.add_argument("--wait-timeout", type=int, default=60, help="seconds per switch (with --service: per task of the rolling update)")
    parser.add_argument("--uploads-older-than-minutes", type=int, default=UPLOADS_OLDER_THAN_MINUTES,
                        help="remove upload sessions nothing was written to for this long (0: every one)")
    args = parser.parse_args()
    try:
        backend = backend_for(lambda: EngineClient(args.docker_host, DEFAULT_DOCKER_TIMEOUT), args.name, args.service, args.wait_timeout)
        result = run_gc(backend, False, args.delete_untagged, args.uploads_older_than_minutes)
    except DockhandError as exc:
        print(json.dumps({"failed": True, "msg": one_line(exc)}), flush=True)
        return 1
    print(json.dumps(result, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
