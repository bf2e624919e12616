"""Read a registry in the tests through the oracle (support.oracle: standard library only, no code shared with the
collection), so that what the collection wrote is never judged by the collection's own reader.

    python tests/support/registry.py state <host:port>

prints ``{"catalog": [...], "digests": {"repo:tag": digest}}`` as JSON (the same as ``oracle.py state``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # run as a script: make ``support`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.oracle import OracleError, Registry, snapshot, tag_digests

__all__ = ["client", "snapshot", "state", "tag_digests", "verify_pullable", "wait_v2"]


def client(address: str, scheme: str | None = None, **options: object) -> Registry:
    """The oracle for ``address`` (plain HTTP on loopback unless told; ``username``, ``password``, ``cafile``)."""
    return Registry(address, scheme=scheme, **options)  # type: ignore[arg-type]


def state(address: str, **options: object) -> dict:
    """``{"catalog": [...], "digests": {"repo:tag": digest}}`` (one read of the registry)."""
    return client(address, **options).state()


def wait_v2(address: str, timeout: float = 30.0, scheme: str | None = None) -> float:
    """Seconds until ``GET /v2/`` answers 200 (raises AssertionError after ``timeout``)."""
    reg = Registry(address, scheme=scheme, timeout=1)
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if reg.ping() == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("registry %s did not answer /v2/ within %ss" % (address, timeout))


def verify_pullable(address: str, expected: dict[str, str], **options: object) -> int:
    """Every ``repo:tag`` still at its digest, and every manifest and blob it reaches (an index's children too)
    served byte for byte with the right digest; the number of blobs downloaded and checked."""
    reg = client(address, **options)
    blobs = 0
    for name, digest in expected.items():
        repo, _sep, tag = name.rpartition(":")
        blobs += len(reg.verify_tag_whole(repo, tag, digest=digest).blobs)
    return blobs


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "state":
        sys.stderr.write("usage: registry.py state <host:port>\n")
        return 2
    try:
        print(json.dumps(state(argv[1]), sort_keys=True))
    except (OracleError, OSError) as exc:
        sys.stderr.write("registry.py: %s\n" % exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
