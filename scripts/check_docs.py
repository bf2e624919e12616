#!/usr/bin/env python
"""Check that ansible-doc renders every plugin and role of an installed dockhand.registry (scripts/lint).

Every module needs a description, examples and return values; every filter a description and examples; every role
an argument spec. Each one is also rendered as text, as a user would read it; any warning or error fails the check.
Run with ANSIBLE_COLLECTIONS_PATH pointing at the installed collection.
"""

from __future__ import annotations

import json
import subprocess
import sys

COLLECTION = "dockhand.registry"


def ansible_doc(*args: str) -> str:
    run = subprocess.run(["ansible-doc", *args], capture_output=True, text=True, check=False)
    if run.returncode != 0 or "[WARNING]" in run.stderr or "[ERROR]" in run.stderr:
        raise RuntimeError(f"ansible-doc {' '.join(args)} failed (rc={run.returncode}): {run.stderr.strip()}")
    return run.stdout


def main() -> int:
    problems: list[str] = []
    checked = 0
    needs = {"module": ("examples", "return"), "filter": ("examples",), "role": ()}
    for kind, parts in needs.items():
        try:
            names = sorted(json.loads(ansible_doc("-t", kind, "-l", "--json", COLLECTION)))
            if not names:
                raise RuntimeError(f"no {kind}s found in {COLLECTION}")
            docs = json.loads(ansible_doc("-t", kind, "--json", *names))
            ansible_doc("-t", kind, *names)  # the text rendering a user reads
        except (RuntimeError, ValueError) as exc:
            problems.append(f"{kind}s: {exc}")
            continue
        for name in names:
            data = docs.get(name) or {}
            if kind == "role":
                if not (data.get("entry_points", {}).get("main") or {}).get("options"):
                    problems.append(f"role {name}: no options in meta/argument_specs.yml")
                    continue
            else:
                doc = data.get("doc") or {}
                missing = [part for part in parts if not data.get(part)]
                if not doc.get("short_description") or not doc.get("description"):
                    missing.insert(0, "description")
                if missing:
                    problems.append(f"{kind} {name}: no {', '.join(missing)}")
                    continue
            checked += 1
            print(f"ok   {kind:7} {name}")
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    print(f"{checked} documented, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
