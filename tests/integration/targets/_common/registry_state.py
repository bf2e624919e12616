"""Print what a registry holds as JSON: {"catalog": [...], "digests": {"repo:tag": digest}}.

Usage: python registry_state.py <host:port>   (plain HTTP; test helper, not part of the collection)
"""

import json
import sys

import requests

ACCEPT = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


def main(address: str) -> None:
    base = "http://%s/v2" % address
    session = requests.Session()
    catalog = sorted(session.get(base + "/_catalog", timeout=10).json().get("repositories") or [])
    digests = {}
    for repo in catalog:
        for tag in session.get("%s/%s/tags/list" % (base, repo), timeout=10).json().get("tags") or []:
            answer = session.head("%s/%s/manifests/%s" % (base, repo, tag), headers={"Accept": ACCEPT}, timeout=10)
            digests["%s:%s" % (repo, tag)] = answer.headers.get("Docker-Content-Digest")
    print(json.dumps({"catalog": catalog, "digests": digests}, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
