#!/usr/bin/env python
"""Search logs for the passwords of a YAML secrets file, as literal, base64 (also inside a longer base64 text) and
URL-encoded forms (tests/support/secrets.py); print only their names, never their values.

Usage: find_secrets.py SECRETS_YAML LOG [LOG...]. Exit 0 when no password occurs in any log, 1 when one does,
2 when a file cannot be read or a log is empty (an empty log would prove nothing).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
from support.secrets import find


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(next(line for line in __doc__.splitlines() if line.startswith("Usage")))
        return 2
    with open(argv[1], encoding="utf-8") as stream:
        secrets = {str(k): str(v) for k, v in (yaml.safe_load(stream) or {}).items() if v}
    if not secrets:
        print("no secrets in %s" % argv[1])
        return 2
    found = []
    total = 0
    for path in argv[2:]:
        with open(path, encoding="utf-8", errors="replace") as stream:
            text = stream.read()
        if not text:
            print("log %s is empty" % path)
            return 2
        total += text.count("\n")
        found += ["%s in %s" % (where, path) for where in find(secrets, text)]
    if found:
        print("PASSWORDS FOUND: %s" % ", ".join(found))
        return 1
    print("none of %d passwords found (literal, base64, URL-encoded) in %d lines of %s" % (len(secrets), total, ", ".join(argv[2:])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
