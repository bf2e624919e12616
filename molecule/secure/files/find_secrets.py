#!/usr/bin/env python
"""Search logs for the passwords of a YAML secrets file; print only their names, never their values.

Usage: find_secrets.py SECRETS_YAML LOG [LOG...]. Exit 0 when no password occurs in any log, 1 when one does,
2 when a file cannot be read or a log is empty (an empty log would prove nothing).
"""

from __future__ import annotations

import sys

import yaml


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2])
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
        found += ["%s in %s" % (name, path) for name, value in secrets.items() if value in text]
    if found:
        print("PASSWORDS FOUND: %s" % ", ".join(found))
        return 1
    print("none of %d passwords found in %d lines of %s" % (len(secrets), total, ", ".join(argv[2:])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
