"""Read a registry the way the collection does: registry_info's reader (module_utils/catalog.py) on its own
RegistryClient (one HTTP client, one Accept list).

    python tests/support/registry.py state <host:port>

prints ``{"catalog": [...], "digests": {"repo:tag": digest}}`` as JSON (what the integration targets' and the
molecule scenarios' playbooks read).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # run as a script: make ``support`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import support  # noqa: F401  # pylint: disable=unused-import  # puts this checkout's collection on sys.path
from ansible_collections.dockhand.registry.plugins.module_utils.catalog import read_catalog
from ansible_collections.dockhand.registry.plugins.module_utils.registry import ACCEPT_MANIFESTS, RegistryClient
from ansible_collections.dockhand.registry.plugins.module_utils.transport import RegistryError


def client(address: str, scheme: str = "http", **options: object) -> RegistryClient:
    """A RegistryClient for ``address`` (plain HTTP unless told; options as RegistryClient takes them)."""
    return RegistryClient(address, scheme=scheme, **options)  # type: ignore[arg-type]


def tag_digests(address: str, **options: object) -> dict[str, str]:
    """``{"repo:tag": manifest digest}`` for everything the registry lists (read as registry_info reads it)."""
    return {"%s:%s" % (repo, tag): digest for repo, tags in snapshot(address, **options).items() for tag, digest in tags.items()}


def snapshot(address: str, **options: object) -> dict[str, dict[str, str | None]]:
    """``{repository: {tag: digest}}`` for everything the registry holds: registry_info's own reader
    (module_utils/catalog.py), so the tests read a registry the way users do with registry_info."""
    listed = read_catalog(client(address, **options))
    return {repo["name"]: {t["tag"]: t["digest"] for t in repo["tags"]} for repo in listed["repositories"]}


def state(address: str) -> dict:
    """``{"catalog": [...], "digests": {"repo:tag": digest}}`` (one read of the registry)."""
    held = snapshot(address)
    digests = {"%s:%s" % (repo, tag): digest for repo, tags in held.items() for tag, digest in tags.items()}
    return {"catalog": sorted(held), "digests": digests}


def wait_v2(address: str, timeout: float = 30.0, scheme: str = "http") -> float:
    """Seconds until ``GET /v2/`` answers 200 (raises AssertionError after ``timeout``)."""
    reg = client(address, scheme=scheme, timeout=1)
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if reg.ping() == 200:
                return time.monotonic() - started
        except RegistryError:
            pass
        time.sleep(0.05)
    raise AssertionError("registry %s did not answer /v2/ within %ss" % (address, timeout))


def verify_pullable(address: str, expected: dict[str, str]) -> int:
    """Check that every ``repo:tag`` still has its digest and that the manifest and each blob it names are served
    with the right content; return the number of blobs verified."""
    reg = client(address)
    blobs = 0
    for name, digest in expected.items():
        repo, _sep, tag = name.rpartition(":")
        assert reg.manifest_digest(repo, tag) == digest, "%s moved to another digest" % name
        manifest = reg.request("GET", "/v2/%s/manifests/%s" % (repo, digest), headers={"Accept": ACCEPT_MANIFESTS})
        assert manifest.status_code == 200, "%s@%s answers %d" % (repo, digest, manifest.status_code)
        assert "sha256:" + hashlib.sha256(manifest.content).hexdigest() == digest, "%s manifest corrupt" % name
        body = manifest.json()
        for blob in [body["config"], *body["layers"]]:
            answer = reg.request("GET", "/v2/%s/blobs/%s" % (repo, blob["digest"]), timeout=60)
            assert answer.status_code == 200, "blob %s of %s answers %d" % (blob["digest"], name, answer.status_code)
            assert "sha256:" + hashlib.sha256(answer.content).hexdigest() == blob["digest"], "blob corrupt"
            blobs += 1
    return blobs


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "state":
        sys.stderr.write("usage: registry.py state <host:port>\n")
        return 2
    print(json.dumps(state(argv[1]), sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
