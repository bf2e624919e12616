# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduled replication of the registry role (systemd timer, or cron): the registry_replication module's run,
from the collection's own module_utils copied next to this file (as the scheduled GC runner does). Its configuration
is the module's parameters as JSON, in a file only root reads (the role writes it: upstream logins are in it). One JSON
line on stdout (the journal, or syslog through logger): per source what was copied and what failed (the whole status
is in the state file); exit 1 when a source failed. A run that finds the previous one still going exits 0 at once, touching nothing.

Usage: python3 dockhand_registry_replicate.py --config FILE [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError, host_lock, one_line  # noqa: E402
from ansible_collections.dockhand.registry.plugins.module_utils.replication import replicate  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description="Copy the chosen tags of upstream registries into this registry")
    parser.add_argument("--config", required=True, help="the replication's parameters (JSON, mode 0600)")
    parser.add_argument("--check", action="store_true", help="say what would be copied; copy and record nothing")
    args = parser.parse_args()
    locked = False
    try:
        with open(args.config, encoding="utf-8") as stream:
            params = json.load(stream)
        with host_lock("replication", str(params.get("registry")), 0, "the replication into %s" % params.get("registry")):
            locked = True
            result = replicate(params, check_mode=args.check)
    except DockhandError as exc:
        if not locked:  # the previous run is still going
            print(json.dumps({"skipped": True, "msg": one_line(exc)}), flush=True)
            return 0
        line = dict(summary(getattr(exc, "result", {})), failed=True, msg=one_line(exc))
        print(json.dumps(line, sort_keys=True), flush=True)
        return 1
    except (OSError, ValueError) as exc:
        print(json.dumps({"failed": True, "msg": "replication configuration %s: %s" % (args.config, one_line(exc))}), flush=True)
        return 1
    print(json.dumps(summary(result), sort_keys=True), flush=True)
    return 0


def summary(result: dict) -> dict:
    """The journal's line: the run's outcome per source (the state file has every tag)."""
    state = result.get("state") or {}
    keys = ("name", "ok", "error", "tags_chosen", "tags_copied", "tags_present", "tags_failed", "duration_seconds")
    return {
        "changed": bool(result.get("changed")),
        "state_file": result.get("state_file"),
        "duration_seconds": state.get("duration_seconds"),
        "sources": [{k: source.get(k) for k in keys} for source in state.get("sources", [])],
    }


if __name__ == "__main__":
    sys.exit(main())
